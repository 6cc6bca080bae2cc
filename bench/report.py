"""The monthly report on a month of N ledger rows (default 100,000): a seeded month written into
a real store (edgeguard/lab/month_gen.py), then `edgeguard report --pdf` run as a fresh
process, as an administrator runs it, and its parts timed in this process (read and compute,
PDF, HTML). Baseline in the same run: reading every row of the month (`edgeguard events`'s
query, no figures). Prints a line per case and, last, one JSON object with `events` and
`seconds` (the command's wall time for the site report with its PDF).
Usage: python bench/report.py [--events 100000] [--busy 100] [--runs 3].
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine

from edgeguard.lab.month_gen import MonthGenerator, lab_config, write_lab_config
from edgeguard.reports.build import build_report
from edgeguard.reports.month import report_month, time_zone
from edgeguard.reports.render import write_html, write_pdf
from edgeguard.store import Store

MONTH, ZONE = "2026-11", "Asia/Shanghai"


def _month(folder: Path, busy: float, motion_rows: int) -> tuple[int, int]:
    window = report_month(MONTH, time_zone(ZONE))
    config = lab_config(folder)
    store = Store(Path(config.store.path))
    try:
        generator = MonthGenerator(store, config, window.start, window.end, seed=1)
        generator.plan(busy, motion_rows)
        result = generator.run()
    finally:
        store.close()
    return result.ledger_rows, len(result.alarms)


def generate(folder: Path, events: int, busy: float) -> tuple[int, int]:
    """A month of ``events`` ledger rows: the alarms' rows (a first pass with the same seed
    counts them), then camera motion rows up to the number; returns (rows, alarms)."""
    with tempfile.TemporaryDirectory(prefix="eg-report-count-") as scratch:
        alarm_rows, _ = _month(Path(scratch), busy, 0)
    return _month(folder, busy, max(0, events - alarm_rows))


def timed(action: Callable[[], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def read_all_rows(db: Path) -> None:
    window = report_month(MONTH, time_zone(ZONE))
    store = Store(db, readonly=True)
    try:
        since, until = window.start.isoformat(), window.end.isoformat()
        list(store.query_events(since=since, until=until))
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--busy", type=float, default=100.0, help="alarms: 17 a month per unit")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eg-report-") as temp:
        folder = Path(temp)
        started = time.perf_counter()
        rows, alarms = generate(folder, args.events, args.busy)
        print(f"generated {rows:,} ledger rows ({alarms:,} alarms) in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        config_file = write_lab_config(folder)
        config = lab_config(folder)
        db = Path(config.store.path)
        command = [str(Path(sys.executable).with_name("edgeguard")), "report", "-c",
                   str(config_file), "--month", MONTH, "--tz", ZONE, "--pdf",
                   str(folder / "report.pdf")]  # fmt: skip
        wall = timed(lambda: subprocess.run(command, check=True, capture_output=True), args.runs)
        figures = build_report(config, MONTH, ZONE)
        parts = {
            "read_and_compute_s": timed(lambda: build_report(config, MONTH, ZONE), args.runs),
            "pdf_s": timed(lambda: write_pdf(figures, "zh", folder / "p.pdf"), args.runs),
            "html_s": timed(lambda: write_html(figures, "zh", folder / "html"), args.runs),
            "baseline_read_rows_s": timed(lambda: read_all_rows(db), args.runs),
        }
    print(f"`edgeguard report --pdf` (a fresh process): {wall:.2f} s (median of {args.runs})")
    for name, value in parts.items():
        print(f"  {name}: {value:.3f} s")
    emit({
        "bench": "report", "events": rows, "alarms": alarms, "seconds": round(wall, 3),
        **{k: round(v, 3) for k, v in parts.items()}, "target_s": 10, "machine": machine(),
    })  # fmt: skip


if __name__ == "__main__":
    main()
