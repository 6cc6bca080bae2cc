"""1,000 alarms at once (a storm): time until the police subscriber has all of them, over TLS.

1,000 distinct alarm points go into alarm in the same instant (their signals are handed to the
daemon's bridge in one burst, as simultaneous presses on 1,000 buttons would be). Reported: time
from the burst to the last alarm received, per-alarm latency percentiles, whether every alarm
arrived exactly once and in seq order, and how many store commits the burst took (group commit).
Target (design brief): all delivered, in order, none lost, within 2 s.

Run: .venv/bin/python bench/alarm_storm.py   (last line: one JSON object)
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, line, machine, percentiles

from edgeguard.lab.harness import (
    InProcessDaemon,
    PoliceSubscriber,
    lab_broker,
    make_site,
    storm_signals,
)

STORM = int(os.environ.get("EDGEGUARD_STORM_N", "1000"))


def run(workdir: Path) -> dict[str, Any]:
    broker = lab_broker(workdir / "lab")
    try:
        site = make_site(workdir / "site", broker, mqtt_extra={"heartbeat_interval": 5.0})
        with (
            PoliceSubscriber(broker, {site.site_id: site.public_key}) as police,
            InProcessDaemon(site.config()) as running,
        ):
            running.wait_connected()
            bridge = running.daemon.bridge
            assert bridge is not None
            commits_before = running.daemon.writer.commits
            signals = storm_signals(STORM)
            start = time.perf_counter()
            for signal in signals:
                bridge.submit(signal)
            police.wait_alarms(STORM, timeout=60)
            elapsed = time.perf_counter() - start
            arrivals = [
                (at, r.payload)
                for at, r in police.received
                if r.kind == "alarm" and r.payload and not r.duplicate
            ]
            duplicates = sum(1 for _, r in police.received if r.kind == "alarm" and r.duplicate)
            commits = running.daemon.writer.commits - commits_before
    finally:
        broker.stop()
    seqs = [int(p["seq"]) for _, p in arrivals]
    sources = {str(p["source"]) for _, p in arrivals}
    return {
        "elapsed_s": elapsed,
        "latencies": [at - start for at, _ in arrivals],
        "received": len(arrivals),
        "lost": STORM - len(sources),
        "duplicates": duplicates,
        "in_order": seqs == sorted(seqs) and len(set(seqs)) == len(seqs),
        "commits": commits,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="eg-storm-") as tmp:
        result = run(Path(tmp))
    stats = percentiles(result["latencies"])
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    met = result["lost"] == 0 and result["in_order"] and result["elapsed_s"] <= 2.0
    line(f"storm of {STORM}: burst -> each alarm", stats)
    print(
        f"all {result['received']} received in {result['elapsed_s']:.3f} s; lost "
        f"{result['lost']}; duplicates {result['duplicates']}; in seq order: "
        f"{result['in_order']}; store commits for the burst: {result['commits']}; "
        f"peak RSS of the bench process {rss_mb:.0f} MB"
    )
    print(f"target: all delivered in order within 2 s: {'MET' if met else 'NOT MET'}")
    emit(
        {
            "bench": "alarm_storm",
            "alarms": STORM,
            "machine": machine(),
            "elapsed_s": round(result["elapsed_s"], 3),
            "latency": stats,
            "received": result["received"],
            "lost": result["lost"],
            "duplicates": result["duplicates"],
            "in_order": result["in_order"],
            "store_commits": result["commits"],
            "peak_rss_mb": round(rss_mb, 1),
            "target_s": 2.0,
            "target_met": met,
        }
    )


if __name__ == "__main__":
    main()
