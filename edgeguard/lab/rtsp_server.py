"""A real RTSP server on loopback serving real footage as a camera (tests, bench, demo).

It runs scripts/gst_rtsp_serve.py (Debian's gst-rtsp-server) under Debian's own python3; the
stream loops without re-encoding and all clients share one live position, like a camera. The
server can be killed and started again on the same port to simulate a camera going away."""

from __future__ import annotations

import contextlib
import select
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit

from edgeguard.lab.footage import REPO_ROOT

SERVE_SCRIPT = REPO_ROOT / "scripts" / "gst_rtsp_serve.py"
SYSTEM_PYTHON = Path("/usr/bin/python3")
START_TIMEOUT_S = 10.0
PROBE_S = 10.0


class RtspServerError(RuntimeError):
    """The RTSP server could not be started."""


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
    """``with RtspServer(video) as server: server.url`` serves rtsp://127.0.0.1:PORT/MOUNT.
    Without a port the server binds an ephemeral one itself (no free-port race); a restart
    after ``kill`` reuses it, like a camera that reboots. ``transport="udp"`` (or ``"tcp"``)
    serves RTP over that one only, refusing the other as a camera does (461)."""

    def __init__(
        self, video: Path, port: int | None = None, mount: str = "cam1", transport: str = "any"
    ) -> None:
        self.video = video
        self.port = port or 0
        self.mount = mount
        self.transport = transport
        self.proc: subprocess.Popen[bytes] | None = None
        self._errors: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{self.mount}"

    def start(self, attempts: int = 3) -> None:
        """Start and wait until it serves video: a client (ffprobe) must get the stream. A
        server that listens but does not serve (seen rarely: gst-rtsp-server's shared media
        can fail its first preparation) is started again."""
        for attempt in range(1, attempts + 1):
            self._start_once()
            problem = self._probe()
            if problem is None:
                return
            errors = self.errors()
            port = self.port
            self.kill()
            self.port = port
            if attempt == attempts:
                raise RtspServerError(f"RTSP server does not serve video: {problem} {errors}")

    def _probe(self) -> str | None:
        command = [
            "ffprobe", "-v", "error", "-rtsp_transport",
            "udp" if self.transport == "udp" else "tcp", "-analyzeduration", "500000",
            "-probesize", "65536", "-select_streams", "v:0", "-show_entries", "stream=width",
            "-of", "csv=p=0", self.url,
        ]  # fmt: skip
        try:
            result = subprocess.run(
                command, check=False, capture_output=True, text=True, timeout=PROBE_S
            )
        except subprocess.TimeoutExpired:
            return "no answer to a probe"
        if result.returncode != 0 or not result.stdout.strip():
            return result.stderr.strip()[-300:] or "no video stream"
        return None

    def _start_once(self) -> None:
        """Start and wait until it listens (it prints its URL then)."""
        # stderr to a file, not a pipe: a pipe nobody reads would stall the server once full
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in kill()
        self.proc = proc = subprocess.Popen(
            [str(SYSTEM_PYTHON), str(SERVE_SCRIPT), str(self.port), str(self.video), self.mount,
             self.transport],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._errors,
        )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
        if not line.startswith("rtsp://"):
            self.kill()
            raise RtspServerError(f"RTSP server did not start: {self.errors() or 'no answer'}")
        self.port = int(urlsplit(line).port or 0)

    def errors(self) -> str:
        """What the server wrote to stderr (the last 2,000 characters)."""
        if self._errors is None:
            return ""
        self._errors.seek(0)
        return self._errors.read().decode(errors="replace").strip()[-2000:]

    def kill(self) -> None:
        """Stop at once (SIGKILL): the camera vanishes mid-stream."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._errors is not None:
            self._errors.close()
            self._errors = None

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
