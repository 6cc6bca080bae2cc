"""A broker killed right after its PUBACK: does the alarm reach the police platform?

Each trial: the police receiver (a real `PoliceService`, persistent session) is away; a button
is pressed at a real daemon; as soon as the site's store says the broker PUBACKed the alarm,
mosquitto (TLS, ACL, persistence with `autosave_interval 1` as docs/mqtt-api.md advises) is
killed with SIGKILL and started again; then the receiver comes back and we wait for the alarm
in its database. Run twice in the same session:

- baseline: no receipts — what mosquitto held only in memory is gone, and nobody knows;
- receipts: the site awaits the police platform's signed receipt and publishes again after
  `resend_after_s` (docs/mqtt-api.md 4.7) — every alarm must be stored.

    .venv/bin/python bench/broker_loss.py [--trials 30] [--resend-after 2]

Prints figures, then one JSON object on the last line; exits 1 if an alarm was lost with
receipts on."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import emit, machine

from edgeguard.lab.broker_kill import broker_kill_trials


def main() -> int:
    # SIGTERM (a stopped run) unwinds like an error, so the daemon and broker are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--resend-after", type=float, default=2.0, help="receipts.resend_after_s")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for name, receipts in (("baseline", False), ("receipts", True)):
        with tempfile.TemporaryDirectory(prefix=f"edgeguard-loss-{name}-") as work:
            started = time.monotonic()
            results[name] = asyncio.run(
                broker_kill_trials(Path(work), args.trials, args.resend_after, receipts=receipts)
            )
            results[name]["seconds"] = round(time.monotonic() - started, 1)
        print(f"{name:>9}: {results[name]}", flush=True)
    ok = results["receipts"]["lost"] == 0
    emit({"bench": "broker_loss", "ok": ok, **results, "resend_after_s": args.resend_after,
          "machine": machine()})  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
