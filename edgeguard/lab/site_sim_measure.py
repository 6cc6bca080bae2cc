"""What one site-simulator process sustains: the figures in edgeguard/lab/site_sim.py.

``python -m edgeguard.lab.site_sim_measure --sites 5000`` starts a lab mosquitto (TLS with
client certificates and the ACL, logging off, nothing subscribed), connects the sites as fast
as the ramp allows, runs heartbeats for a while, then an alarm storm, and prints what it saw
(connections per second, CPU per connection, heartbeats per second and their CPU, the
heartbeat timer's lag, alarms per second and their PUBACK latency, memory), ending with one
JSON line. CPU is of the simulator (this process with ``--processes 0``, else its workers)
and of the broker, from /proc; ``--plain`` measures plain TCP instead of TLS."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.pki import DevPKI
from edgeguard.lab.site_sim import SimConfig, SimStats, SiteSimulator


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text("ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _say(*parts: Any) -> None:
    print(*parts, flush=True)  # noqa: T201 - a measuring script reports on stdout


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _phase(sim: SiteSimulator, broker: Mosquitto, seconds: float) -> dict[str, float]:
    """Heartbeats and CPU over ``seconds`` of steady state."""
    before, broker_before, t0 = await sim.stats(), _cpu_s(broker.pid or 0), time.monotonic()
    await asyncio.sleep(seconds)
    after, broker_after, t1 = await sim.stats(), _cpu_s(broker.pid or 0), time.monotonic()
    span = t1 - t0
    return {
        "heartbeats_per_s": (after.heartbeats - before.heartbeats) / span,
        "tick_lag_ms_mean": 1000
        * (after.tick_lag_s - before.tick_lag_s)
        / max(1, after.ticks - before.ticks),
        "ticks_late": after.ticks_late - before.ticks_late,
        "sim_cpu_pct": 100 * (after.cpu_s - before.cpu_s) / span,
        "broker_cpu_pct": 100 * (broker_after - broker_before) / span,
    }


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    pki = None if args.plain else DevPKI(work / "pki")
    broker = Mosquitto(
        work / ("broker-plain" if args.plain else "broker"),
        pki=pki,
        acl=pki is not None,
        log_to_file=False,
        plain=pki is None,
    )
    broker.start()
    try:
        config = SimConfig(
            work / "sim",
            port=broker.port,
            host="127.0.0.1" if pki is None else "localhost",
            sites=args.sites,
            pki_dir=None if pki is None else pki.directory,
            heartbeat_interval=args.heartbeat_interval,
            connect_rate=args.connect_rate,
            max_connecting=args.max_connecting,
            processes=args.processes,
        )
        sim = SiteSimulator(config)
        t0 = time.monotonic()
        prepared = sim.prepare()
        prepare_s = time.monotonic() - t0
        t0, cpu0, broker0 = time.monotonic(), await _own_cpu(), _cpu_s(broker.pid or 0)
        await sim.start(timeout=args.sites / 10 + 120)
        ramp_s = time.monotonic() - t0
        stats = await sim.stats()
        ramp = {
            "prepare_s": round(prepare_s, 2),
            "keys_made": prepared.keys_made,
            "certs_made": prepared.certs_made,
            "connect_s": round(ramp_s, 2),
            "connects_per_s": round(args.sites / ramp_s, 1),
            "sim_cpu_ms_per_connect": round(1000 * (stats.cpu_s - cpu0) / args.sites, 2),
            "broker_cpu_ms_per_connect": round(
                1000 * (_cpu_s(broker.pid or 0) - broker0) / args.sites, 2
            ),
            "rss_mb": round(stats.rss_mb, 1),
        }
        _say("ramp", ramp)
        await asyncio.sleep(args.heartbeat_interval)  # every site in its rhythm
        steady = {k: round(v, 1) for k, v in (await _phase(sim, broker, args.seconds)).items()}
        _say("heartbeats", steady)
        storm = await _storm(sim, broker, args)
        _say("storm", storm)
        await sim.stop()
        tls = "plain" if pki is None else "tls"
        return {"sites": args.sites, "processes": args.processes, "transport": tls,
                **ramp, **steady, **storm}  # fmt: skip
    finally:
        broker.stop()


async def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _storm(sim: SiteSimulator, broker: Mosquitto, args: argparse.Namespace) -> dict[str, Any]:
    before: SimStats = await sim.stats()
    broker0, t0 = _cpu_s(broker.pid or 0), time.monotonic()
    count = await sim.storm(args.per_site, args.window)
    after = await sim.wait_settled(timeout=args.window + 300)
    span = time.monotonic() - t0
    traces = await sim.traces()
    latency = [1000 * (t.puback_mono - t.published_mono) for t in traces
               if t.puback_mono is not None and t.published_mono is not None]  # fmt: skip
    return {
        "alarms": count,
        "alarms_per_s": round(count / args.window, 1),
        "storm_s": round(span, 2),
        "puback_ms_p50": round(_percentile(latency, 0.5), 2),
        "puback_ms_p99": round(_percentile(latency, 0.99), 2),
        "storm_sim_cpu_pct": round(100 * (after.cpu_s - before.cpu_s) / span, 1),
        "storm_broker_cpu_pct": round(100 * (_cpu_s(broker.pid or 0) - broker0) / span, 1),
        "storm_tick_lag_ms_mean": round(
            1000 * (after.tick_lag_s - before.tick_lag_s) / max(1, after.ticks - before.ticks), 1
        ),
        "storm_ticks_late": after.ticks_late - before.ticks_late,
        "resent": after.resent_no_puback - before.resent_no_puback,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=0)
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
    parser.add_argument("--connect-rate", type=float, default=1000.0)
    parser.add_argument("--max-connecting", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="steady heartbeats (s)")
    parser.add_argument("--per-site", type=int, default=2, help="storm: alarms per site")
    parser.add_argument("--window", type=float, default=10.0, help="storm: over this many s")
    parser.add_argument("--plain", action="store_true", help="plain TCP, no TLS")
    parser.add_argument("--dir", type=Path, default=None, help="keep keys and certs here")
    args = parser.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(measure(args, args.dir))
    else:
        with tempfile.TemporaryDirectory() as work:
            result = asyncio.run(measure(args, Path(work)))
    _say(json.dumps(result))


if __name__ == "__main__":
    main()
