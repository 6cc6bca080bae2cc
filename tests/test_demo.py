"""`make demo` runs: the scripted smoke run of scripts/demo.py presses, acknowledges and resets,
and the police subscriber shows the verified alarm in Chinese."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_demo_smoke() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '{"demo_smoke": "ok"}' in result.stdout
