"""`make city-demo` works: the whole city platform starts, a press at the demo's real site is
stored through the three-node cluster, receipted, and shown on the other receiver's dashboard,
and a storm at the simulated hospitals is all receipted (scripts/city_demo.py --smoke)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_city_demo_smoke() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "city_demo.py"), "--smoke", "--hospitals", "50"],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '{"smoke": "ok", "hospitals": 50}' in result.stdout
    assert "on both dashboards' open alarms" in result.stdout
