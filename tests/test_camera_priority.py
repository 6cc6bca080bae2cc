"""Video yields the CPU to the alarm path: each camera's capture process (and every thread it
starts: decoding, analysis, clips) runs `video_nice` below the daemon."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edgeguard.cameras.config import CameraConfig
from edgeguard.cameras.runner import CameraRunner
from edgeguard.config import EdgeguardConfig

WAIT_S = 60.0  # only bounds a wait: generous for a busy machine
BASE: dict[str, Any] = {
    "site": {"id": "hosp-01", "name": "site"},
    "signing": {"private_key": "/etc/edgeguard/site.key"},
    "locations": {"er": {"label": "ER"}},
}


def _nice_of_every_thread(pid: int) -> dict[int, int]:
    """The niceness of each thread of `pid`, from /proc/PID/task/TID/stat (field 19)."""
    nices = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        nices[int(task.name)] = int(fields[16])
    return nices


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _capture_threads(nice: int) -> dict[int, int]:
    """Start a real capture process (its stream never opens: the process runs all the same)
    and read its threads' niceness once it reports statistics (its threads are running)."""
    url = f"rtsp://127.0.0.1:{_closed_port()}/none"
    config = CameraConfig.model_validate({"name": "cam-a", "location": "er", "stream_url": url})

    async def scenario() -> dict[int, int]:
        runner = CameraRunner(config, lambda *_a: None, nice=nice)
        runner.start(url)
        try:
            for _ in range(int(WAIT_S / 0.2)):
                if runner.stats:
                    break
                await asyncio.sleep(0.2)
            assert runner.stats, "the capture process never reported"
            assert runner.child is not None
            assert runner.child.pid is not None
            return _nice_of_every_thread(runner.child.pid)
        finally:
            await runner.stop()

    return asyncio.run(scenario())


def test_the_capture_process_and_all_its_threads_run_video_nice_below_us() -> None:
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    threads = _capture_threads(10)
    assert len(threads) >= 3  # main (read loop), commands, stats
    assert all(nice >= min(ours + 10, 19) for nice in threads.values()), (ours, threads)


def test_video_nice_zero_keeps_our_priority() -> None:
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert set(_capture_threads(0).values()) == {ours}


def test_video_nice_defaults_to_10_and_is_a_niceness() -> None:
    assert EdgeguardConfig.model_validate(BASE).video_nice == 10
    assert EdgeguardConfig.model_validate({**BASE, "video_nice": 0}).video_nice == 0
    for bad in (-1, 20, "low"):
        with pytest.raises(ValidationError, match="video_nice"):
            EdgeguardConfig.model_validate({**BASE, "video_nice": bad})
