"""The cluster alone: how many alarms a second the three RabbitMQ nodes on this machine take in
from N simulated sites over MQTT (TLS, QoS 1) into the receivers' queue, with a consumer that
acknowledges at once (no database, no receiver). Run with the alarm queue as a quorum queue
(what the city platform uses: it survives a node) and, in the same run, as a classic queue
(one node's disk; the baseline of what the MQTT plugin itself takes). This is where the
2-core machine limits bench/city_scale.py.

    .venv/bin/python bench/city_ingress.py [--sites 1000] [--per-site 10] [--window 10]

Prints figures, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aio_pika
from common import emit, machine, percentiles

from edgeguard.lab.pki import DevPKI
from edgeguard.lab.rabbitmq import RabbitCluster
from edgeguard.lab.site_sim import SimConfig, SiteSimulator


async def _one(cluster: RabbitCluster, work: Path, sites: list[str], queue_type: str,
               per_site: int, window: float) -> dict[str, Any]:  # fmt: skip
    consumed = 0
    expected = per_site * len(sites)
    all_in = asyncio.Event()
    connection = await aio_pika.connect(cluster.amqp_url(0))
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=2000)
    queue = await channel.declare_queue(
        f"edgeguard-police.ingress-{queue_type}", durable=True,
        arguments={"x-queue-type": queue_type},
    )  # fmt: skip
    await queue.bind("amq.topic", "edgeguard.*.alarm.#")

    async def on_message(message: Any) -> None:
        nonlocal consumed
        consumed += 1
        await message.ack()
        if consumed >= expected:
            all_in.set()

    await queue.consume(on_message)
    sims = [SiteSimulator(SimConfig(
        work / "sim", port=cluster.nodes[i].mqtts_port, host="localhost",
        site_ids=tuple(sites[i::3]), pki_dir=cluster.pki.directory, protocol="3.1.1",
        client_id="{site}", processes=1,
    )) for i in range(3)]  # fmt: skip
    try:
        await asyncio.gather(*(s.start() for s in sims))
        began = time.monotonic()
        await asyncio.gather(*(s.storm(per_site=per_site, window_s=window) for s in sims))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 600)
        took = time.monotonic() - began
        traces = [t for s in sims for t in await s.traces()]
    finally:
        for sim in sims:
            await sim.stop()
        await queue.delete(if_unused=False, if_empty=False)
        await connection.close()
    pubacks = [t.puback_mono - t.published_mono for t in traces
               if t.puback_mono is not None and t.published_mono is not None]  # fmt: skip
    found = percentiles(pubacks)
    return {"queue": queue_type, "alarms": expected, "consumed": consumed,
            "all_consumed_s": round(took, 2), "consumed_per_s": round(consumed / took, 1),
            "offered_per_s": round(expected / window, 1),
            "puback_p50_ms": found.get("p50_ms"), "puback_p99_ms": found.get("p99_ms")}  # fmt: skip


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sites = [f"sim-{i:05d}" for i in range(1, args.sites + 1)]
    with RabbitCluster(work / "rabbit", DevPKI(work / "pki"), sites=sites) as cluster:
        results = {}
        for queue_type in ("quorum", "classic"):
            results[queue_type] = await _one(cluster, work, sites, queue_type, args.per_site,
                                             args.window)  # fmt: skip
            print(f"{queue_type:>8}: {results[queue_type]}", flush=True)
    return results


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--per-site", type=int, default=10)
    parser.add_argument("--window", type=float, default=10.0, help="the storm's seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeguard-ingress-") as work:
        results = asyncio.run(bench(args, Path(work)))
    emit({"bench": "city_ingress", "sites": args.sites, **results, "machine": machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
