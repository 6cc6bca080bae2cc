"""Site supervision, docs/mqtt-api.md section 8. Pure logic on an injectable monotonic clock.

A site is **lost** as soon as its status becomes ``offline`` (Will or clean stop), or when no
heartbeat (or fresh ``online`` status) has arrived for its timeout (3 x its heartbeat interval),
timed from arrival on this receiver's clock. While the receiver's own broker link is down,
nothing is declared lost (the receiver knows nothing: the dashboard shows "broker link down"),
and after reconnecting every site gets one full timeout. With two broker links (a site on two
transmission paths) a Will counts per link: the site is lost when every link it has been seen
on reports it offline; one path lost while another still carries it is an alert, not a loss.
Heartbeats reporting
``outbox_pending > 0`` for over a minute raise an alert on the site: alive, but its alarms are
not getting through the broker (ACL, certificate).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

OUTBOX_ALERT_AFTER_S = 60.0


@dataclass(frozen=True)
class SiteUpdate:
    """A change to show: the site's new state, why, and its alert (None when cleared)."""

    site: str
    state: str  # online | lost | unknown
    reason: str | None
    alert: str | None


@dataclass
class _Watch:
    state: str = "unknown"
    reason: str | None = None
    alert: str | None = None
    last_sign: float | None = None  # last heartbeat or fresh online status (monotonic)
    last_heartbeat: float | None = None
    pending_since: float | None = None
    seen_on: set[str] = field(default_factory=set)  # broker links the site has spoken on
    offline_on: set[str] = field(default_factory=set)  # links whose status says offline


class Tracker:
    def __init__(
        self,
        lost_after: Callable[[str], float],
        clock: Callable[[], float] = time.monotonic,
        outbox_alert_after: float = OUTBOX_ALERT_AFTER_S,
    ) -> None:
        self.lost_after = lost_after
        self.clock = clock
        self.outbox_alert_after = outbox_alert_after
        self.link_up = False
        self._sites: dict[str, _Watch] = {}

    # --- what the receiver knows ------------------------------------------------------------
    def seed(self, site: str, state: str = "unknown", reason: str | None = None) -> None:
        """A site known before this run (database, keys): its timer starts at the next connect."""
        self._sites.setdefault(site, _Watch(state=state, reason=reason))

    def state(self, site: str) -> str:
        watch = self._sites.get(site)
        return watch.state if watch else "unknown"

    def views(self) -> dict[str, SiteUpdate]:
        """Every site's state as this tracker sees it (a new supervisor writes it down)."""
        return {
            site: SiteUpdate(site, watch.state, watch.reason, _alert(watch))
            for site, watch in self._sites.items()
        }

    def heartbeat_age(self, site: str) -> float | None:
        watch = self._sites.get(site)
        if watch is None or watch.last_heartbeat is None:
            return None
        return max(0.0, self.clock() - watch.last_heartbeat)

    # --- the receiver's own link ------------------------------------------------------------
    def connected(self) -> None:
        """Broker link up: give every site one full timeout from now."""
        self.link_up = True
        now = self.clock()
        for watch in self._sites.values():
            watch.last_sign = now
            if watch.pending_since is not None:
                watch.pending_since = now

    def disconnected(self) -> None:
        self.link_up = False

    # --- messages (verified) ----------------------------------------------------------------
    def on_status(
        self,
        site: str,
        state: str,
        *,
        retained: bool = False,
        at: float | None = None,
        link: str = "primary",
    ) -> SiteUpdate | None:
        watch = self._sites.setdefault(site, _Watch())
        now = self.clock() if at is None else at
        watch.seen_on.add(link)
        if state == "offline":
            watch.offline_on.add(link)
            if watch.offline_on >= watch.seen_on:
                reason = "site went offline (Will or clean stop)"
                return self._set(site, watch, "lost", reason)
            return self._set(site, watch, watch.state, watch.reason, force=True)  # path alert
        if state != "online":
            return None
        path_back = link in watch.offline_on
        watch.offline_on.discard(link)
        watch.last_sign = now
        if retained:  # said online when it last spoke: not proof of life (section 4.2)
            return None
        update = self._set(site, watch, "online", None)
        return update or (self._set(site, watch, "online", None, force=True) if path_back else None)

    def on_heartbeat(
        self, site: str, outbox_pending: int, *, at: float | None = None, link: str = "primary"
    ) -> SiteUpdate | None:
        watch = self._sites.setdefault(site, _Watch())
        now = self.clock() if at is None else at
        watch.last_sign = watch.last_heartbeat = now
        watch.seen_on.add(link)
        if link in watch.offline_on:  # the path works again
            watch.offline_on.discard(link)
            return self._set(site, watch, "online", None, force=True)
        if outbox_pending > 0:
            if watch.pending_since is None:
                watch.pending_since = now
        else:
            watch.pending_since = None
            if watch.alert is not None:
                watch.alert = None
                return self._set(site, watch, "online", None, force=True)
        update = self._set(site, watch, "online", None)
        return update or self._check_outbox(site, watch, now)

    def tick(self) -> list[SiteUpdate]:
        """Call every second: the sites that became lost or got an alert since the last tick."""
        if not self.link_up:
            return []
        now = self.clock()
        updates: list[SiteUpdate] = []
        for site, watch in self._sites.items():
            update = self._check_silence(site, watch, now) or self._check_outbox(site, watch, now)
            if update is not None:
                updates.append(update)
        return updates

    # --- rules ------------------------------------------------------------------------------
    def _check_silence(self, site: str, watch: _Watch, now: float) -> SiteUpdate | None:
        if watch.state == "lost" or watch.last_sign is None:
            return None
        timeout = self.lost_after(site)
        if now - watch.last_sign <= timeout:
            return None
        return self._set(site, watch, "lost", f"no heartbeat for {timeout:g} s")

    def _check_outbox(self, site: str, watch: _Watch, now: float) -> SiteUpdate | None:
        if watch.alert is not None or watch.pending_since is None or watch.state != "online":
            return None
        if now - watch.pending_since <= self.outbox_alert_after:
            return None
        watch.alert = (
            f"outbox_pending > 0 for over {self.outbox_alert_after:g} s: the site's alarms are "
            "not getting through the broker (ACL or certificate?)"
        )
        return self._set(site, watch, watch.state, watch.reason, force=True)

    @staticmethod
    def _set(
        site: str, watch: _Watch, state: str, reason: str | None, *, force: bool = False
    ) -> SiteUpdate | None:
        if not force and (watch.state, watch.reason) == (state, reason):
            return None
        watch.state, watch.reason = state, reason
        return SiteUpdate(site, state, reason, _alert(watch))


def _alert(watch: _Watch) -> str | None:
    """The outbox alert and, while the site is still reachable, the paths it lost."""
    alerts = [watch.alert] if watch.alert else []
    if watch.state != "lost" and watch.offline_on:
        links = ", ".join(sorted(watch.offline_on))
        alerts.append(f"transmission path lost: offline on the {links} broker (Will)")
    return "; ".join(alerts) or None
