"""The site simulator's engine: every simulated site of one process on one event loop
(edgeguard/lab/site_sim.py runs one in the caller's loop, or one per worker process).

It ramps the connections up (a rate and a bound on handshakes at once: a TLS handshake costs
the broker and this process a few milliseconds of CPU each), ticks the heartbeats of all its
sites from one timer (sites spread evenly over the interval, so 5,000 sites at 5 s are 100
heartbeats every 0.1 s rather than 5,000 timers), and schedules alarm storms."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import resource
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from edgeguard.lab.site_sim_model import AlarmTrace, SimConfig, SimStats, prepare_sites
from edgeguard.lab.site_sim_site import SimSite, SiteContext
from edgeguard.receipts import load_receipt_keys

TICK_S = 0.1  # the heartbeat timer's period
KEEPALIVE_S = 1.0  # each session's paho housekeeping (keepalive), as aiomqtt's own task does


class Ramp:
    """At most ``rate`` connection attempts a second, ``concurrency`` of them at once."""

    def __init__(self, rate: float, concurrency: int) -> None:
        self._interval = 1.0 / rate
        self._slots = asyncio.Semaphore(concurrency)
        self._next = 0.0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
            if start > now:
                await asyncio.sleep(start - now)
            yield


class SimEngine:
    """The sites ``site_ids`` of ``config`` on the running loop. ``share`` is this engine's
    part of the whole simulator's connection rate (1 / number of processes)."""

    def __init__(self, config: SimConfig, site_ids: list[str], *, share: float = 1.0) -> None:
        self.config = config
        self.site_ids = site_ids
        self.share = share
        self.stats = SimStats(sites=len(site_ids))
        self.sites: dict[str, SimSite] = {}
        self._order: list[SimSite] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._storm: list[asyncio.TimerHandle] = []
        self._storm_pending = 0
        self._rng = random.Random(config.seed)
        self._unsettled = 0
        self._stopping = False
        self._executor: ThreadPoolExecutor | None = None

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self, *, own_executor: bool = False) -> None:
        """Keys and certificates (made or reused), then every site connecting in turn.
        ``own_executor``: the loop's default executor gets a thread per handshake at once
        (aiomqtt connects, TLS handshake included, in the default executor)."""
        loop = asyncio.get_running_loop()
        if own_executor:
            self._executor = ThreadPoolExecutor(self.config.max_connecting, "site-sim-connect")
            loop.set_default_executor(self._executor)
        prepared = await asyncio.to_thread(prepare_sites, self.config, self.site_ids)
        keys = load_receipt_keys(list(self.config.police_keys)) if self.config.receipts else []
        ramp = Ramp(self.config.connect_rate * self.share, self.config.max_connecting)
        ctx = SiteContext(self.config, self.stats, keys, ramp.slot, self._settled)
        for identity in prepared.identities:
            site = SimSite(identity, ctx)
            self.sites[site.site] = site
            self._order.append(site)
        for site in self._order:
            site.start()
        self._tasks.append(loop.create_task(self._heartbeats(), name="site-sim-heartbeats"))

    async def stop(self) -> None:
        """Every site stops cleanly (`offline`, DISCONNECT); storms not yet raised are not."""
        self._stopping = True
        for handle in self._storm:
            handle.cancel()
        self._storm.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await asyncio.gather(*(site.stop() for site in self._order))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # --- controls ---------------------------------------------------------------------------
    async def raise_alarm(self, site: str) -> tuple[str, int]:
        trace = self._site(site).raise_alarm()
        self._unsettled += 1
        return trace.event_id, trace.seq

    async def storm(self, per_site: int, window_s: float, sites: list[str] | None) -> int:
        """``per_site`` alarms at each site (all, or ``sites``), each at a random moment of
        the next ``window_s`` seconds; returns how many were scheduled."""
        loop = asyncio.get_running_loop()
        targets = [self._site(s) for s in sites] if sites is not None else self._order
        count = 0
        for site in targets:
            for _ in range(per_site):
                delay = self._rng.uniform(0.0, window_s)
                self._storm.append(loop.call_later(delay, self._fire, site))
                self._storm_pending += 1
                count += 1
        return count

    def _fire(self, site: SimSite) -> None:
        self._storm_pending -= 1
        if self._storm_pending == 0:
            self._storm.clear()
        if not self._stopping:
            site.raise_alarm()
            self._unsettled += 1

    async def kill(self, site: str) -> None:
        self._site(site).kill()

    async def revive(self, site: str) -> None:
        await self._site(site).revive()

    async def silence(self, site: str, silent: bool) -> None:
        self._site(site).silenced = silent

    async def freeze(self) -> None:
        """Move everything alive now out of the cyclic GC's sight (``gc.freeze``, as the daemon
        does): a full collection over 5,000 sites' objects took 0.37 s, during which no site
        of the process sends or reads anything."""
        gc.collect()
        gc.freeze()

    async def get_stats(self) -> SimStats:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return replace(
            self.stats,
            connected=sum(1 for s in self._order if s.session is not None),
            killed=sum(1 for s in self._order if s.killed),
            silenced=sum(1 for s in self._order if s.silenced),
            storm_pending=self._storm_pending,
            unsettled=self._unsettled,
            cpu_s=usage.ru_utime + usage.ru_stime,
            rss_mb=_rss_mb(),
            processes=1,
        )

    async def traces(self) -> list[AlarmTrace]:
        return [trace for site in self._order for trace in site.alarms.values()]

    async def last_errors(self) -> dict[str, str]:
        return {s.site: s.last_error for s in self._order if s.last_error is not None}

    # --- internals --------------------------------------------------------------------------
    def _site(self, site: str) -> SimSite:
        try:
            return self.sites[site]
        except KeyError:
            raise KeyError(f"no simulated site {site!r} here") from None

    def _settled(self) -> None:
        self._unsettled -= 1

    async def _heartbeats(self) -> None:
        """Every site once per interval, spread evenly, and its keepalive work once a second,
        on one timer. Each tick's lag is counted (a loop too busy to keep time makes every
        latency measured through it longer); rounds the loop fell more than a whole interval
        behind on are skipped, not burst."""
        interval, stats = self.config.heartbeat_interval, self.stats
        slots = max(1, round(interval / TICK_S))
        tick = interval / slots
        buckets = [self._order[i::slots] for i in range(slots)]
        misc_slots = max(1, round(KEEPALIVE_S / tick))
        misc = [self._order[i::misc_slots] for i in range(misc_slots)]
        started = time.monotonic()
        done = 0  # ticks handled since started
        while True:
            now = time.monotonic()
            due = int((now - started) / tick) + 1
            if due - done > slots:
                stats.ticks_skipped += due - done - slots
                done = due - slots
            while done < due:
                lag = now - (started + done * tick)
                stats.ticks += 1
                stats.tick_lag_s += lag
                stats.ticks_late += int(lag > tick)
                for site in buckets[done % slots]:
                    site.heartbeat()
                for site in misc[done % misc_slots]:
                    site.keepalive()
                done += 1
            await asyncio.sleep(max(0.0, started + done * tick - time.monotonic()))


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:  # noqa: PTH123
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20
