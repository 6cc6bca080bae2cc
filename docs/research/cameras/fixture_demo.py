"""Shape of a test fixture for a loopback RTSP camera (gst-rtsp-server via Debian python3-gi)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp|analyzeduration;500000|probesize;65536")
import cv2  # noqa: E402

SERVER = Path(__file__).resolve().parent.parent / "gst_rtsp.py"
FOOTAGE = "/work/shared/data/one-by-one-person-detection.mp4"
PARAMS = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 3000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 1000]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspCam:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/cam1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["/usr/bin/python3", str(SERVER), str(self.port), FOOTAGE],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("rtsp server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture
def rtsp_cam() -> Iterator[RtspCam]:
    if not Path("/usr/bin/python3").exists():
        pytest.skip("needs Debian python3-gi + gir1.2-gst-rtsp-server-1.0")
    cam = RtspCam(free_port())
    cam.start()
    yield cam
    cam.kill()


def test_loss_and_restore(rtsp_cam: RtspCam) -> None:
    cap = cv2.VideoCapture(rtsp_cam.url, cv2.CAP_FFMPEG, PARAMS)
    assert cap.isOpened()
    for _ in range(20):
        ok, frame = cap.read()
        assert ok and frame.shape == (432, 768, 3)
    rtsp_cam.kill()
    t0 = time.monotonic()
    while cap.read()[0]:
        assert time.monotonic() - t0 < 5
    cap.release()
    assert not cv2.VideoCapture(rtsp_cam.url, cv2.CAP_FFMPEG, PARAMS).isOpened()
    rtsp_cam.start()
    cap = cv2.VideoCapture(rtsp_cam.url, cv2.CAP_FFMPEG, PARAMS)
    assert cap.isOpened() and cap.read()[0]
    cap.release()
