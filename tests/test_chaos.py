"""A short run of `make chaos` (bench/chaos.py): a real daemon and broker killed with SIGKILL
while buttons are pressed; nothing lost, nothing out of order, the hash chain intact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "chaos.py"


@pytest.mark.timeout(600)
def test_short_chaos_run_loses_nothing() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--daemon-kills", "4", "--broker-kills", "2", "--seed", "7"],
        capture_output=True, text=True, check=False, timeout=540,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["daemon_kills"], result["broker_kills"]) == (4, 2)
    assert result["acked_presses"] > 0
    assert result["messages_received"] == result["messages_recorded"] > 0
    assert (result["lost_messages"], result["lost_presses"], result["out_of_order"]) == (0, 0, 0)
    assert result["verify_log_ok"] is True
    assert done.returncode == 0, done.stdout + done.stderr
