"""`make demo` runs: the scripted smoke run of scripts/demo.py presses, acknowledges and resets,
and the police subscriber shows the verified alarm in Chinese. The demo's default ports are
used only when free; the smoke run takes ports the OS picks."""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _demo_module() -> Any:
    spec = importlib.util.spec_from_file_location("demo_script", REPO / "scripts" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_demo_smoke() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--smoke", "--free-ports"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '{"demo_smoke": "ok"}' in result.stdout
    broker = re.search(r"broker:  mosquitto on localhost:(\d+)", result.stdout)
    assert broker is not None, result.stdout
    assert int(broker[1]) != 18883  # the OS's choice, printed


def test_a_taken_default_port_is_replaced_by_a_free_one() -> None:
    demo = _demo_module()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        defaults = demo.Ports(mqtt=busy, rtsp=busy, console=busy, dashboard=busy)
        chosen = demo.choose_ports(defaults)
        ports = [chosen.mqtt, chosen.rtsp, chosen.console, chosen.dashboard]
        assert busy not in ports
        assert len(set(ports)) == 4
        assert all(demo.port_is_free(port) for port in ports)


def test_demo_configs_get_the_chosen_ports() -> None:
    demo = _demo_module()
    ports = demo.Ports(mqtt=41883, rtsp=41554, console=41080, dashboard=41090)
    site = demo.with_ports((REPO / "config" / "demo.yaml").read_text("utf-8"), ports)
    police = demo.with_ports((REPO / "config" / "demo-police.yaml").read_text("utf-8"), ports)
    assert "port: 41883" in site
    assert "rtsp://127.0.0.1:41554/cam1" in site
    assert "port: 41080" in site
    assert "port: 41883" in police
    assert "port: 41090" in police
    assert not re.search(r"18883|18554|18080|18090", site + police)
