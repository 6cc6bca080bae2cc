"""A city's load on the police platform: N simulated hospitals over TLS, one connection each.

For each deployment, in the same run: today's receiver (one `edgeguard police` on SQLite behind
one mosquitto) as the baseline, then the city platform (a three-node RabbitMQ cluster, a
PostgreSQL server, 1 and then 2 city receivers). Each run:

1. N sites of edgeguard/lab/site_sim.py connect (heartbeats every 5 s, Will, receipts on) and
   are seen online;
2. heartbeats only, for a while: every "site lost" from here on is false;
3. a storm of one alarm per site within 1 s, then one of ten per site within 10 s: time until
   every alarm is stored, stored per second, publish → stored p50/p99 (the police's
   `stored_at`, from each receipt, minus the site's publish time: one clock, this machine),
   the dashboard API's p99 meanwhile;
4. real losses: sites killed (the broker sends their Will) and sites silenced (heartbeats stop,
   the connection stays): the time until each is shown lost;
5. the receivers' CPU and peak RSS.

    .venv/bin/python bench/city_scale.py [--sites 1000] [--receivers 1,2] [--quick]

Prints figures, then one JSON object on the last line (the first receiver count's figures at
the top level, every run under "runs", the baseline under "baseline").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from city_parts import (
    LOGIN,
    PASSWORD,
    Deployment,
    add_dashboard_user,
    baseline,
    city,
)
from common import emit, machine, percentiles

from edgeguard.lab.consoles import wait_http
from edgeguard.lab.pki import DevPKI
from edgeguard.lab.postgres import PostgresServer
from edgeguard.lab.rabbitmq import RabbitCluster
from edgeguard.lab.site_sim import SiteSimulator
from edgeguard.signing import generate_keypair

LOSSES = 5  # sites killed, and as many silenced


def _parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _until(predicate: Any, timeout: float, step: float = 0.1) -> float | None:
    """Seconds until ``predicate()`` (run in a thread) is true, or None after ``timeout``."""
    began = time.monotonic()
    while True:
        if await asyncio.to_thread(predicate):
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            return None
        await asyncio.sleep(step)


class ApiProbe:
    """Polls the dashboard's API (summary, first page of sites, open alarms) while asked to."""

    def __init__(self, port: int | None) -> None:
        self.url = f"http://127.0.0.1:{port}" if port else None
        self.samples: list[float] = []
        self.errors = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.url is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self.url is not None
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.post(
                f"{self.url}/login",
                data={"user": LOGIN, "password": PASSWORD},
                headers={"Origin": self.url},
                allow_redirects=False,
            ) as r:
                token = r.cookies["eg_session"].value  # fmt: skip
            headers = {"Cookie": f"eg_session={token}"}
            paths = ("/api/summary", "/api/sites", "/api/alarms/open")
            n = 0
            while True:
                began = time.perf_counter()
                try:
                    async with http.get(self.url + paths[n % 3], headers=headers) as answer:
                        await answer.read()
                        if answer.status != 200:
                            self.errors += 1
                except (aiohttp.ClientError, TimeoutError):
                    self.errors += 1
                self.samples.append(time.perf_counter() - began)
                n += 1
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def _storm(dep: Deployment, sims: list[SiteSimulator], per_site: int, window: float,
                 timeout: float) -> dict[str, Any]:  # fmt: skip
    before = await asyncio.to_thread(dep.stored_count)
    expected = before + per_site * sum(len(s.sites) for s in sims)
    began = time.time()
    await asyncio.gather(*(s.storm(per_site=per_site, window_s=window) for s in sims))
    done = await _until(lambda: dep.stored_count() >= expected, timeout, step=0.05)
    count = await asyncio.to_thread(dep.stored_count) - before
    last = await asyncio.to_thread(dep.query, "SELECT MAX(received_at) FROM messages")
    # from the storm's start to the last commit, on the receivers' own timestamps
    all_stored = _parse_iso(last[0][0]) - began if done is not None and last[0][0] else None
    return {
        "alarms": expected - before,
        "stored": count,
        "all_stored_s": None if all_stored is None else round(all_stored, 2),
        "stored_per_s": round(count / all_stored, 1) if all_stored else None,
    }


async def _losses(dep: Deployment, sims: list[SiteSimulator]) -> dict[str, Any]:
    victims = [s for sim in sims for s in sim.sites][-2 * LOSSES :]
    killed, silenced = victims[:LOSSES], victims[LOSSES:]
    owner = {site: sim for sim in sims for site in sim.sites}
    began = time.monotonic()
    await asyncio.gather(*(owner[s].kill(s) for s in killed),
                         *(owner[s].silence(s) for s in silenced))  # fmt: skip
    seen: dict[str, float] = {}

    def check() -> bool:
        states = dep.states()
        for site in victims:
            if site not in seen and states.get(site) == "lost":
                seen[site] = time.monotonic() - began
        return len(seen) == len(victims)

    await _until(check, 60, step=0.2)
    will = [seen.get(s) for s in killed]
    silence = [seen.get(s) for s in silenced]
    worst = will + silence
    return {
        "will_seen_s": None if None in will else round(max(will), 1),  # type: ignore[type-var]
        "silence_seen_s": None if None in silence else round(max(silence), 1),  # type: ignore[type-var]
        "loss_seen_s": None if None in worst else round(max(worst), 1),  # type: ignore[type-var]
        "losses_not_seen": sum(v is None for v in worst),
    }


def _latencies(traces: list[Any], stored_at: dict[tuple[str, str, int], str]) -> dict[str, Any]:
    """Publish → first commit: the message row's `received_at` (the receiver's clock, this
    machine) minus the site's first publish. Not the receipt's `stored_at`: a receipt lost or
    dropped makes the site resend, and the duplicate's receipt carries a later time."""
    samples = []
    for trace in traces:
        at = stored_at.get((trace.site, trace.event_id, trace.seq))
        if at and trace.published_wall:
            samples.append(max(0.0, _parse_iso(at) - trace.published_wall))
    found = percentiles(samples)
    return {"publish_to_stored_p50_ms": found.get("p50_ms"),
            "publish_to_stored_p99_ms": found.get("p99_ms")}  # fmt: skip


async def run(dep: Deployment, sites: int, quick: bool) -> dict[str, Any]:
    for receiver in dep.receivers:
        receiver.start()
    web = next(r for r in dep.receivers if r.web_port)
    assert web.proc is not None
    await asyncio.to_thread(wait_http, f"http://127.0.0.1:{web.web_port}", web.proc,
                            web.workdir / "receiver.log", 120)  # fmt: skip
    await asyncio.to_thread(add_dashboard_user, web)
    sims = [SiteSimulator(config) for config in dep.sim_configs]
    wall = time.monotonic()
    try:
        await asyncio.gather(*(s.start(timeout=600) for s in sims))
        online = await _until(lambda: sum(v == "online" for v in dep.states().values()) >= sites,
                              180, step=0.5)  # fmt: skip
        print(f"  {dep.name}: {sites} sites online in "
              f"{'-' if online is None else f'{online:.1f} s'}", flush=True)  # fmt: skip
        # "lost" from here on is false: every site is connected and heartbeating (before,
        # a site that has not connected yet is rightly lost 15 s after the receivers start)
        lost_before = sum(len(r.lost_lines()) for r in dep.receivers)
        await asyncio.sleep(10 if quick else 30)  # heartbeats only
        probe = ApiProbe(web.web_port)
        await probe.start()
        one = await _storm(dep, sims, 1, 1.0, 120)
        print(f"  {dep.name}: storm 1/site {one}", flush=True)
        ten = await _storm(dep, sims, 3 if quick else 10, 10.0, 300)
        print(f"  {dep.name}: storm {3 if quick else 10}/site {ten}", flush=True)
        await probe.stop()
        settled = await asyncio.gather(*(s.wait_settled(timeout=120) for s in sims),
                                       return_exceptions=True)  # fmt: skip
        false_lost = sum(len(r.lost_lines()) for r in dep.receivers) - lost_before
        losses = await _losses(dep, sims)
        traces = [t for s in sims for t in await s.traces()]
        stats = [await s.stats() for s in sims]
    finally:
        usage = [r.usage() for r in dep.receivers]
        seconds = time.monotonic() - wall
        for sim in sims:
            with contextlib.suppress(Exception):
                await sim.stop()
        for receiver in dep.receivers:
            receiver.stop()
    rows = await asyncio.to_thread(
        dep.query, "SELECT site, event_id, seq, received_at FROM messages"
    )
    stored_at = {(r[0], r[1], int(r[2])): str(r[3]) for r in rows}
    stored_keys = set(stored_at)
    sent = {(t.site, t.event_id, t.seq) for t in traces}
    api = percentiles(probe.samples)
    return {
        "sites": sites,
        "receivers": len(dep.receivers),
        "alarms_sent": len(sent),
        "alarms_stored": len(sent & stored_keys),
        "alarms_lost": len(sent - stored_keys),
        "false_site_lost": false_lost,
        "storm_all_stored_s": one["all_stored_s"],
        "storm_stored_per_s": one["stored_per_s"],
        "storm10_all_stored_s": ten["all_stored_s"],
        "storm10_stored_per_s": ten["stored_per_s"],
        **_latencies(traces, stored_at),
        **losses,
        "dashboard_api_p99_ms": api.get("p99_ms"),
        "dashboard_api_errors": probe.errors,
        "receiver_cpu_percent": [round(100 * u["cpu_s"] / seconds, 1) for u in usage],
        "receiver_rss_peak_mib": [u["rss_peak_mib"] for u in usage],
        "sim_unsettled": sum(s.unsettled for s in stats),
        "sim_resent_no_receipt": sum(s.resent_no_receipt for s in stats),
        "sim_connect_failures": sum(s.connect_failures for s in stats),
        "settled_errors": [repr(r) for r in settled if isinstance(r, BaseException)],
    }


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    pki = DevPKI(work / "pki")
    keys = work / "police-keys"
    keys.mkdir()
    receipt_key = work / "police-receipts.key"
    receipt = (receipt_key, generate_keypair(receipt_key))
    sites = [f"sim-{i:05d}" for i in range(1, args.sites + 1)]
    broker, base = baseline(work, pki, sites, keys, receipt, args.processes)
    try:
        print(f"baseline: today's receiver (SQLite) on mosquitto, {args.sites} sites", flush=True)
        results: dict[str, Any] = {"baseline": await run(base, args.sites, args.quick)}
    finally:
        broker.stop()
    print(f"  baseline: {results['baseline']}", flush=True)
    with PostgresServer(work / "pg") as pg, RabbitCluster(work / "rabbit", pki, sites=sites) as cl:
        print(f"cluster: 3 nodes up in {cl.start_seconds:.1f} s", flush=True)
        runs = []
        for count in args.receivers:
            dep = city(work, cl, pg, f"city{count}", count, sites, keys, receipt, args.processes)
            figures = await run(dep, args.sites, args.quick)
            print(f"  city, {count} receiver(s): {figures}", flush=True)
            runs.append(figures)
    return {**runs[0], "runs": runs, "baseline": results["baseline"]}


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--receivers", default="1,2", help="receiver counts, e.g. 1,2")
    parser.add_argument("--processes", type=int, default=2, help="simulator worker processes")
    parser.add_argument("--quick", action="store_true", help="200 sites, short phases (< 3 min)")
    parser.add_argument("--keep", metavar="DIR", help="keep the run's files (logs) under DIR")
    args = parser.parse_args()
    args.receivers = [int(n) for n in str(args.receivers).split(",") if n.strip()]
    if args.quick:
        args.sites = min(args.sites, 200)
        args.receivers = args.receivers[:1] if len(args.receivers) > 1 else args.receivers
    began = time.monotonic()
    if args.keep is not None:
        work = tempfile.mkdtemp(prefix="edgeguard-city-", dir=args.keep)
        print(f"keeping the run's files in {work}", flush=True)
        figures = asyncio.run(bench(args, Path(work)))
    else:
        with tempfile.TemporaryDirectory(prefix="edgeguard-city-") as work:
            figures = asyncio.run(bench(args, Path(work)))
    targets = {
        "no_false_site_lost": figures["false_site_lost"] == 0,
        "loss_seen_within_20_s": (figures["loss_seen_s"] or 99) <= 20,
        "storm_stored_within_2_5_s": (figures["storm_all_stored_s"] or 99) <= 2.5,
        "none_lost": figures["alarms_lost"] == 0,
    }
    emit({"bench": "city_scale", **figures, "targets": targets,
          "seconds": round(time.monotonic() - began), "machine": machine()})  # fmt: skip
    return 0 if figures["alarms_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
