"""How late heartbeats reach the platform, beyond what is usual for each site.

A broker that is congested (a storm of alarms at thousands of sites, a node recovering) delays
every site's heartbeats before any receiver sees them: the receivers are not behind, yet each
site looks silent. A supervisor that decided "lost" then would declare healthy sites lost by
the hundred. Each verified heartbeat carries the site's own time (`at`); its delay is the
receiver's clock minus that. A site's clock may be off by seconds, so a site's usual delay is
its own smallest one (allowed to creep up slowly with clock drift), and only the excess over
it counts. The platform is congested when the median excess of the heartbeats of the last few
seconds is over a bound: a few sites with bad clocks or bad links do not move the median, a
congested broker moves all of them.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 3.0  # the heartbeats this recent make the estimate
DRIFT_PER_S = 0.01  # a site's usual delay may rise this much per second (clock drift)
MAX_SITES = 200_000


class IngressLag:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._usual: dict[str, tuple[float, float]] = {}  # site -> (usual delay, when)
        self._recent: deque[tuple[float, float]] = deque()  # (when, excess)

    def heartbeat(self, site: str, delay_s: float) -> None:
        """A verified heartbeat of ``site`` arrived ``delay_s`` after its own `at`."""
        now = self.clock()
        usual, since = self._usual.get(site, (delay_s, now))
        usual = min(delay_s, usual + DRIFT_PER_S * (now - since))
        if len(self._usual) < MAX_SITES or site in self._usual:
            self._usual[site] = (usual, now)
        self._recent.append((now, delay_s - usual))
        self._forget(now)

    def excess_s(self) -> float:
        """The median excess delay of the last WINDOW_S (0 without heartbeats)."""
        self._forget(self.clock())
        return statistics.median(e for _, e in self._recent) if self._recent else 0.0

    def _forget(self, now: float) -> None:
        while self._recent and now - self._recent[0][0] > WINDOW_S:
            self._recent.popleft()
