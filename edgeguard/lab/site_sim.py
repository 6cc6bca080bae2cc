"""A site simulator for tests and benchmarks: N simulated hospitals, faithful to
docs/mqtt-api.md, for a police platform at city scale (N = 1,000 to 5,000 on one machine).

Each simulated site has its own Ed25519 signing key (as `edgeguard keygen` makes it; its
public half written as ``{site}.pub`` into ``keys_dir`` for the police), optionally its own TLS
client certificate (CN = site id, from a :class:`~edgeguard.lab.pki.DevPKI`), and one MQTT
connection (MQTT 5 or 3.1.1; client id ``edgeguard-{site}`` as the daemon, or any pattern with
``{site}``) with a persistent session (Clean Start 0 and Session Expiry on MQTT 5, Clean
Session 0 on 3.1.1). Like the daemon it leaves a signed Will (`offline`, retained, signed anew
for each connection), says `online` (retained) on each connection, subscribes to its ack topic
(and its receipt topic when receipts are on), sends a signed heartbeat every
``heartbeat_interval`` with its counter (from 1 at each start, counted only while connected),
uptime, open alarms, pending messages and the head of a hash chain as ``log_head``, and says
`offline` before a clean DISCONNECT at stop(). Alarms (`new` panic messages, each with its own
source, event_id and the site's next seq) are published at QoS 1, the same bytes each time,
until PUBACK (again after ``puback_timeout_s`` or a lost link); with receipts (``police_keys``)
again every ``resend_after_s`` after the PUBACK until a receipt verified by
:func:`edgeguard.receipts.parse_receipt` arrives. Payloads and signatures are the daemon's own
(``edgeguard.payloads``, ``Signer.encode``): a police receiver verifies them unchanged.

::

    sim = SiteSimulator(SimConfig(tmp / "sim", port=broker.tls_port, sites=50,
                                  pki_dir=broker.pki.directory, police_keys=(police_pub,)))
    sim.prepare()                       # keys and certificates: the police need the .pub files
    async with sim:                     # start(): connect all (ramped) and wait for them
        await sim.storm(per_site=2, window_s=5.0)
        await sim.wait_settled(timeout=120)
        traces = await sim.traces()     # AlarmTrace: raised, published, PUBACK, receipt times
        await sim.kill("sim-00001")     # socket closed, no DISCONNECT: the broker sends the Will
        await sim.silence("sim-00002")  # heartbeats stop, the connection stays
        print(await sim.stats())        # SimStats: counters, gauges, CPU and memory

``sim.sites`` lists the site ids; ``revive(site)`` restarts a killed site as a restarted
daemon; a trace's ``stored_at`` is the police's own time of storing (from its receipt).
``processes=0`` runs every site on the caller's event loop; ``processes=k`` spreads them over k
worker processes, same API (fresh interpreters, site_sim_workers.py: a script needs no
``__main__`` guard). The receipt topic is subscribed only with receipts on (``subscribe_receipts``
overrides), so the simulator also runs, without receipts, against a broker that lets a site
read only its ack topic (RabbitMQ 3.10 closes the connection on a refused subscription,
docs/city-platform.md).

Measured (this 2-core VM, 2026-12-03, ``python -m edgeguard.lab.site_sim_measure``: mosquitto
2.0.11 on loopback with TLS client certificates, the ACL and persistence, nothing subscribed,
so no police receiver in the figures; CPU in % of one core; runs with the machine otherwise
quiet, rates lower while other work runs):

* **5,000 sites in one process**: connected in 20-21 s (**~240 TLS connections/s**, ramp
  unbounded: connect_rate 1,000, 8 handshakes at once; 4.9-5.1 ms of simulator CPU and
  1.5 ms of broker CPU per connection, its TLS context included: the two take ~1.5 of the
  2 cores); 1.2 ms with plain TCP (765 connections/s). 2 worker processes: ~275/s.
  **453 MB RSS (~90 KB a site)**.
* **Heartbeats**: 1,000/s (5,000 sites at 5 s) cost **19 %** (the broker 3 %), 4,000/s
  (interval 1.25 s) **63 %**, the timer's mean lag under 1 ms in both: ~0.16-0.19 ms each
  (RFC 8785 and Ed25519 of the daemon's code, the TLS write, the keepalive pings).
* **Alarms** on top of the 1,000 heartbeats/s: a storm of **1,000 alarms/s** for 10 s
  (2 a site) 56 %, PUBACK p50 0.75 ms, p99 20 ms; **1,500/s** (3 a site) 68 %, p50 1.0 ms,
  p99 23 ms, none resent: ~0.33 ms of CPU per alarm (over a third of it the daemon's
  pure-Python RFC 8785). 2,000 alarms/s over 4,000 heartbeats/s saturates the process
  (95 %, the timer 340 ms late, PUBACK p50 3.2 s): beyond ~70 % of a core the simulator's
  own queueing shows in every latency, so watch ``ticks_late`` and ``tick_lag_s`` in the
  stats, and spread the sites over ``processes`` (each costs an interpreter, ~25 MB).
* Keys and certificates: made at ~0.6-1.2 ms a site (Ed25519 key, EC P-256 client
  certificate from DevPKI), cached on disk: 5,000 already made are read in 0.3-0.9 s.
* A full cyclic GC over 5,000 sites' objects took 0.37 s, stalling every site of the process:
  start() ends with ``gc.freeze()`` (``gc_freeze``; by default in worker processes, and in the
  caller's with 1,000 sites or more).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, cast

from edgeguard.lab.pki import DevPKI
from edgeguard.lab.site_sim_engine import SimEngine
from edgeguard.lab.site_sim_model import AlarmTrace, Prepared, SimConfig, SimStats, prepare_sites
from edgeguard.lab.site_sim_workers import WorkerError, WorkerProxy

__all__ = ["AlarmTrace", "SimConfig", "SimStats", "SiteSimulator", "WorkerError"]

POLL_S = 0.1
FREEZE_FROM_SITES = 1000  # gc_freeze's default in the caller's process (processes=0)


class _Backend(Protocol):
    async def call(self, method: str, *args: Any) -> Any: ...


class _Local:
    """The engine on the caller's loop."""

    def __init__(self, engine: SimEngine) -> None:
        self.engine = engine

    async def call(self, method: str, *args: Any) -> Any:
        return await getattr(self.engine, method)(*args)


class SiteSimulator:
    """N simulated sites (see the module's docstring); every control is a coroutine."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.sites = config.site_list()
        if not self.sites:
            raise ValueError("no sites: set sites=N or site_ids")
        self._backends: list[_Backend] = []
        self._owner: dict[str, _Backend] = {}
        self._workers: list[WorkerProxy] = []
        self._engine: SimEngine | None = None
        self._started = False

    @property
    def keys_dir(self) -> Path:
        """Where the sites' public keys are, ``{site}.pub``: the police receiver's keys_dir."""
        return self.config.police_keys_dir

    def prepare(self) -> Prepared:
        """Make (or reuse) every site's keys and certificates now; start() does it otherwise,
        but a police receiver reads its keys_dir when it starts."""
        return prepare_sites(self.config, self.sites)

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self, *, wait: bool = True, timeout: float = 300.0) -> None:
        """Start every site (connections ramped at connect_rate); with ``wait``, return once
        all are connected, after a ``gc.freeze()`` (SimEngine.freeze) where ``gc_freeze``
        says: by default in worker processes, and in the caller's own process only with
        1,000 sites or more."""
        if self._started:
            raise RuntimeError("already started")
        self._started = True
        if self.config.pki_dir is not None:
            DevPKI(self.config.pki_dir)  # the CA, before processes issue certificates with it
        count = self.config.processes
        if count == 0:
            self._engine = SimEngine(self.config, self.sites)
            await self._engine.start()
            local = _Local(self._engine)
            self._backends = [local]
            self._owner = dict.fromkeys(self.sites, local)
        else:
            parts = [self.sites[i::count] for i in range(count)]
            self._workers = [
                WorkerProxy(self.config, part, 1.0 / count, i) for i, part in enumerate(parts)
            ]
            self._backends = list(self._workers)
            try:
                await asyncio.gather(*(w.started() for w in self._workers))
            except BaseException:
                await self._close_workers()
                raise
            for worker, part in zip(self._workers, parts, strict=True):
                self._owner.update(dict.fromkeys(part, worker))
        if wait:
            await self.wait_connected(timeout=timeout)
            freeze = self.config.gc_freeze
            if freeze is None:
                freeze = count > 0 or len(self.sites) >= FREEZE_FROM_SITES
            if freeze:
                await self._all("freeze")

    async def stop(self) -> None:
        """Stop every site cleanly (`offline` retained, DISCONNECT); alarms still unsettled
        stay so in the traces."""
        if not self._started:
            return
        await asyncio.gather(*(b.call("stop") for b in self._backends), return_exceptions=True)
        await self._close_workers()
        self._backends, self._owner, self._engine = [], {}, None
        self._started = False

    async def _close_workers(self) -> None:
        await asyncio.gather(*(w.close() for w in self._workers), return_exceptions=True)
        self._workers = []

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- controls ---------------------------------------------------------------------------
    async def raise_alarm(self, site: str) -> tuple[str, int]:
        """A new alarm at ``site`` now; its (event_id, seq). Delivered in the background."""
        return cast(tuple[str, int], tuple(await self._at(site).call("raise_alarm", site)))

    async def storm(
        self, per_site: int, window_s: float, sites: Sequence[str] | None = None
    ) -> int:
        """``per_site`` alarms at every site (or at ``sites``), each at a random moment of the
        next ``window_s`` seconds; returns how many are scheduled."""
        if sites is None:
            counts = await self._all("storm", per_site, window_s, None)
        else:
            groups: dict[int, tuple[_Backend, list[str]]] = {}
            for site in sites:
                backend = self._at(site)
                groups.setdefault(id(backend), (backend, []))[1].append(site)
            counts = await asyncio.gather(
                *(b.call("storm", per_site, window_s, part) for b, part in groups.values())
            )
        return sum(cast(list[int], counts))

    async def kill(self, site: str) -> None:
        """Close the site's connection without DISCONNECT (a crash): the broker sends its
        Will. It stays down until revive()."""
        await self._at(site).call("kill", site)

    async def revive(self, site: str) -> None:
        """Start a killed site again, as a restarted daemon (heartbeat counter from 1, new
        started_at); its alarms not yet settled are published again."""
        await self._at(site).call("revive", site)

    async def silence(self, site: str, silent: bool = True) -> None:
        """Stop (or resume) the site's heartbeats; its connection and keepalives go on."""
        await self._at(site).call("silence", site, silent)

    # --- what happened ----------------------------------------------------------------------
    async def stats(self) -> SimStats:
        parts = cast(list[SimStats], await self._all("get_stats"))
        total = SimStats(processes=0)
        for part in parts:
            total = total + part
        return total

    async def traces(self) -> list[AlarmTrace]:
        """Every alarm raised so far, with its times (monotonic and wall clock)."""
        parts = cast(list[list[AlarmTrace]], await self._all("traces"))
        return [trace for part in parts for trace in part]

    async def last_errors(self) -> dict[str, str]:
        """Per site, why its last connection attempt failed or its last session ended."""
        found: dict[str, str] = {}
        for part in cast(list[dict[str, str]], await self._all("last_errors")):
            found.update(part)
        return found

    async def wait_connected(self, count: int | None = None, timeout: float = 300.0) -> SimStats:
        """Until ``count`` sites (default: all not killed) have a session; TimeoutError
        otherwise, with the stats and a few sites' last errors."""

        def ready(stats: SimStats) -> bool:
            return stats.connected >= (stats.sites - stats.killed if count is None else count)

        return await self._until(ready, timeout, "sites connected")

    async def wait_settled(self, timeout: float = 300.0) -> SimStats:
        """Until every alarm raised or scheduled so far has its receipt (receipts on) or its
        PUBACK (off)."""
        return await self._until(
            lambda s: s.storm_pending == 0 and s.unsettled == 0, timeout, "alarms settled"
        )

    async def _until(self, ready: Any, timeout: float, what: str) -> SimStats:
        deadline = time.monotonic() + timeout
        while True:
            stats = await self.stats()
            if ready(stats):
                return stats
            if time.monotonic() > deadline:
                errors = list((await self.last_errors()).items())[:5]
                raise TimeoutError(f"{what}: not within {timeout} s: {stats}; errors: {errors}")
            await asyncio.sleep(POLL_S)

    def _at(self, site: str) -> _Backend:
        try:
            return self._owner[site]
        except KeyError:
            raise KeyError(f"{site!r} is not a site of this (started) simulator") from None

    async def _all(self, method: str, *args: Any) -> list[Any]:
        if not self._started:
            raise RuntimeError("the simulator is not started")
        return list(await asyncio.gather(*(b.call(method, *args) for b in self._backends)))
