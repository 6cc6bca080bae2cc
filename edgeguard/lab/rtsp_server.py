"""A real RTSP server on loopback serving real footage as a camera (tests, bench, demo).

It runs scripts/gst_rtsp_serve.py (Debian's gst-rtsp-server) under Debian's own python3; the
stream loops without re-encoding and all clients share one live position, like a camera. The
server can be killed and started again on the same port to simulate a camera going away."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from edgeguard.lab.footage import REPO_ROOT

SERVE_SCRIPT = REPO_ROOT / "scripts" / "gst_rtsp_serve.py"
SYSTEM_PYTHON = Path("/usr/bin/python3")
START_TIMEOUT_S = 10.0


class RtspServerError(RuntimeError):
    """The RTSP server could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def available() -> str | None:
    """None when the server can run here, else what is missing."""
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
        check=False,
        timeout=30,
    )
    if probe.returncode != 0:
        return "python3-gi / gir1.2-gst-rtsp-server-1.0 are not installed (scripts/system-deps.sh)"
    return None


class RtspServer:
    """``with RtspServer(video) as server: server.url`` serves rtsp://127.0.0.1:PORT/MOUNT."""

    def __init__(self, video: Path, port: int | None = None, mount: str = "cam1") -> None:
        self.video = video
        self.port = port or free_port()
        self.mount = mount
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{self.mount}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(SYSTEM_PYTHON), str(SERVE_SCRIPT), str(self.port), str(self.video), self.mount],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RtspServerError(f"RTSP server exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            except OSError:
                time.sleep(0.02)
            else:
                return
        self.kill()
        raise RtspServerError(f"RTSP server did not listen on {self.port}")

    def kill(self) -> None:
        """Stop at once (SIGKILL): the camera vanishes mid-stream."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: the connection stays open but no data flows (a hung camera)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.thaw()
        self.kill()
