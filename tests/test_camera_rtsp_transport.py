"""A camera's `rtsp_transport` (tcp, udp, auto) from its config to the capture process and the
clip recorder, against a real RTSP server that serves RTP over UDP only (gst-rtsp-server,
answering 461 Unsupported Transport to a TCP SETUP, as UDP-only cameras do)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from edgeguard.analytics.recorder import ClipRecorder, RecorderSettings
from edgeguard.cameras.config import CameraConfig
from edgeguard.cameras.rtsp import TransportChoice
from edgeguard.cameras.runner import CameraRunner
from edgeguard.cameras.wire import CaptureSettings, WireError
from edgeguard.lab.footage import locate
from edgeguard.lab.rtsp_server import RtspServer, available

rtsp_only = pytest.mark.skipif(available() is not None, reason=str(available()))
WAIT_S = 60.0  # only bounds a wait: generous for a busy machine


def _camera(url: str, **extra: Any) -> CameraConfig:
    return CameraConfig.model_validate({"name": "cam-udp", "location": "er", "stream_url": url,
                                        **extra})


@pytest.fixture(scope="module")
def udp_only() -> Iterator[RtspServer]:
    server = RtspServer(locate(), transport="udp")
    server.start()
    time.sleep(1.0)  # let its keeper session prepare the shared media (see test_recorder.py)
    yield server
    print(f"RTSP server stderr: {server.errors()!r}")  # shown when a test failed
    server.kill()


# --- config and settings -------------------------------------------------------------------


def test_rtsp_transport_defaults_to_tcp_and_takes_only_known_values() -> None:
    assert _camera("rtsp://10.0.0.5/ch1").rtsp_transport == "tcp"
    assert _camera("rtsp://10.0.0.5/ch1", rtsp_transport="auto").rtsp_transport == "auto"
    with pytest.raises(ValidationError, match="'tcp', 'udp' or 'auto'"):
        _camera("rtsp://10.0.0.5/ch1", rtsp_transport="quic")
    with pytest.raises(WireError, match="rtsp_transport"):
        CaptureSettings.from_dict({"name": "c", "url": "rtsp://h/c", "analysis_fps": 5,
                                   "rtsp_transport": "tcp|udp"})
    runner = CameraRunner(_camera("rtsp://10.0.0.5/ch1", rtsp_transport="udp"),
                          lambda *_a: None)
    settings = runner.capture_settings("rtsp://10.0.0.5/ch1")
    assert CaptureSettings.from_dict(settings.to_dict()).rtsp_transport == "udp"


def test_auto_starts_with_tcp_switches_after_a_failed_open_and_keeps_what_worked() -> None:
    choice = TransportChoice("auto")
    seen = [choice.current]
    for _ in range(3):
        choice.failed()
        seen.append(choice.current)
    assert seen == ["tcp", "udp", "tcp", "udp"]
    fixed = TransportChoice("tcp")
    fixed.failed()
    assert fixed.current == "tcp"
    with pytest.raises(ValueError, match="rtsp_transport"):
        TransportChoice("http")


# --- the capture process -------------------------------------------------------------------


def _capture_until(config: CameraConfig, url: str,
                   done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Run the camera's real capture process until its stats satisfy `done` (or WAIT_S)."""

    async def scenario() -> dict[str, Any]:
        runner = CameraRunner(config, lambda *_a: None)
        runner.start(url)
        try:
            for _ in range(int(WAIT_S / 0.2)):
                if done(runner.stats):
                    break
                await asyncio.sleep(0.2)
            return dict(runner.stats)
        finally:
            await runner.stop()

    return asyncio.run(scenario())


def _frames(stats: dict[str, Any]) -> bool:
    return bool(stats.get("opened")) and int(stats.get("frames_out") or 0) > 0


@rtsp_only
@pytest.mark.parametrize("transport", ["udp", "auto"])
def test_a_udp_only_camera_is_captured(udp_only: RtspServer, transport: str) -> None:
    stats = _capture_until(_camera(udp_only.url, rtsp_transport=transport), udp_only.url,
                           _frames)
    assert _frames(stats), stats
    assert stats["rtsp_transport"] == "udp"


@rtsp_only
def test_tcp_to_a_udp_only_camera_does_not_open(udp_only: RtspServer) -> None:
    stats = _capture_until(_camera(udp_only.url), udp_only.url,
                           lambda s: "could not open" in str(s.get("last_error")))
    assert stats["opened"] is False
    assert re.fullmatch(
        r"could not open the stream \(RTSP over tcp\) in \d+\.\d s \(open timeout \d+(\.\d+)? s\)",
        stats["last_error"],
    ), stats["last_error"]


# --- the clip recorder ---------------------------------------------------------------------


def _recorder_until(settings: RecorderSettings, done: Callable[[dict[str, Any]], bool]
                    ) -> dict[str, Any]:
    recorder = ClipRecorder(settings)
    recorder.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not done(recorder.stats()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return recorder.stats()
    finally:
        recorder.stop()


def _buffered(stats: dict[str, Any]) -> bool:
    return float(stats.get("buffered_s") or 0) >= 1.0


@rtsp_only
@pytest.mark.parametrize("transport", ["udp", "auto"])
def test_the_clip_recorder_reads_a_udp_only_camera(udp_only: RtspServer, transport: str) -> None:
    stats = _recorder_until(RecorderSettings(udp_only.url, rtsp_transport=transport,
                                             backoff_max_s=1.0), _buffered)
    assert _buffered(stats), stats


@rtsp_only
def test_the_clip_recorder_over_tcp_gets_nothing_from_a_udp_only_camera(
        udp_only: RtspServer) -> None:
    stats = _recorder_until(RecorderSettings(udp_only.url), lambda s: bool(s.get("last_error")))
    assert stats["last_error"]
    assert not stats["connected"]
    assert float(stats.get("buffered_s") or 0) == 0
