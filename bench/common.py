"""Helpers shared by the benchmarks: percentiles, a lab broker in a temp dir, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean of samples given in seconds, reported in milliseconds."""
    if not samples_s:
        return {"n": 0}
    ordered = sorted(samples_s)

    def at(q: float) -> float:
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return round(ordered[index] * 1000, 3)

    return {
        "n": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def line(label: str, stats: dict[str, float]) -> None:
    if not stats.get("n"):
        print(f"{label:<40} no samples")
        return
    print(
        f"{label:<40} n={stats['n']:<5} p50={stats['p50_ms']:>8.3f} ms  "
        f"p95={stats['p95_ms']:>8.3f} ms  p99={stats['p99_ms']:>8.3f} ms  "
        f"max={stats['max_ms']:>8.3f} ms"
    )


def emit(result: dict[str, Any]) -> None:
    """The last line of every benchmark: one JSON object."""
    sys.stdout.flush()
    print(json.dumps(result, ensure_ascii=False))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def memory_mb(pid: int) -> dict[str, float]:
    """RSS, PSS (shared pages split between the processes mapping them) and USS (pages only
    this process has: what its exit would free, so what one more such process costs)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            fields[name] = int(rest.split()[0])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {
        "rss_mb": round(fields.get("Rss", 0) / 1024, 1),
        "pss_mb": round(fields.get("Pss", 0) / 1024, 1),
        "uss_mb": round(uss / 1024, 1),
    }


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


class CaptureProcess:
    """A camera's capture process exactly as the daemon starts it (settings on stdin), with
    its latest stats and its analytics events collected by a reader thread."""

    def __init__(self, settings: Any) -> None:
        import subprocess
        import threading

        from edgeguard.cameras.wire import encode

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeguard.cameras.capture"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(encode(settings.to_dict()))
        self.proc.stdin.flush()
        self.latest: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        from edgeguard.cameras.wire import read_message

        assert self.proc.stdout is not None
        while (item := read_message(self.proc.stdout)) is not None:
            if item[0].get("type") == "stats":
                self.latest.update(item[0])
            elif item[0].get("type") == "analytics":
                self.events.append(item[0])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
