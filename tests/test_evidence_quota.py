"""The evidence quota holds as evidence is written, not only at the hourly check: an alarm
storm's snapshots and clips cannot fill the disk. A real daemon (in process) on a real broker."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

from edgeguard.cameras.retention import folder_size
from edgeguard.control import call
from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import InProcessDaemon, lab_broker, make_site

MB = 1_000_000


def _uuid7_at(epoch: float) -> str:
    value = (int(epoch * 1000) << 80) | (0x7 << 76) | (0b10 << 62) | random.getrandbits(62)
    return str(uuid.UUID(int=value))


def _old_evidence(root: Path, count: int, size: int) -> None:
    for i in range(count):
        folder = root / _uuid7_at(time.time() - (10 + i) * 86_400)
        folder.mkdir(parents=True)
        (folder / "cam-clip.mp4").write_bytes(b"\0" * size)


def _total(root: Path) -> int:
    return sum(folder_size(child) for child in root.iterdir() if child.is_dir())


def test_quota_is_enforced_when_evidence_is_written(tmp_path: Path) -> None:
    broker: Mosquitto = lab_broker(tmp_path / "broker", tls=False)
    try:
        site = make_site(tmp_path / "site", broker, tls=False)
        site.data["store"].update(evidence_quota_mb=10, evidence_grace_s=0, evidence_keep_days=1)
        evidence = Path(site.data["store"]["path"]).parent / "evidence"
        with InProcessDaemon(site.config()) as running:
            daemon = running.daemon
            _old_evidence(evidence, 4, 6 * MB)  # 24 MB appear after the start-up check
            answer = call(site.socket, {"cmd": "press", "input": "er-button"})
            assert answer["ok"], answer
            event_id = call(site.socket, {"cmd": "status"})["open_alarms"][0]["event_id"]
            assert daemon._loop is not None
            item = {"camera": "cam", "kind": "snapshot", "error": "camera offline"}
            asyncio.run_coroutine_threadsafe(
                daemon.service.add_evidence(event_id, [(item, None)]), daemon._loop
            ).result(30)
            deadline = time.monotonic() + 60
            while _total(evidence) > 10 * MB:
                assert time.monotonic() < deadline, f"{_total(evidence)} bytes kept"
                time.sleep(0.1)
    finally:
        broker.stop()
