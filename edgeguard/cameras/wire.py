"""The pipe between the daemon and a camera child process.

One JSON object per line in both directions. A message with a ``size`` member is followed by
exactly that many raw bytes (a JPEG). The first line the parent writes is the child's settings,
so that credentials never appear on a command line."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import IO, Any

from edgeguard.cameras.rtsp import RTSP_TRANSPORTS

MAX_LINE = 1 << 16
MAX_BLOB = 32 << 20


class WireError(ValueError):
    """A malformed message on the pipe."""


@dataclass(frozen=True)
class CaptureSettings:
    """What a capture process needs (sent on its stdin, never on the command line). A plain
    dataclass: pydantic would add ~19 MB to every capture process."""

    name: str
    url: str
    analysis_fps: float
    open_timeout_s: float = 5.0
    read_timeout_s: float = 1.0
    backoff_min: float = 0.5
    backoff_max: float = 5.0
    stall_exit_s: float = 20.0
    analytics: dict[str, Any] | None = None  # edgeguard.analytics.spec.PipelineSpec.to_dict()
    model: str | None = None  # person detector model path; None: the default search
    min_score: float = 0.2
    detector_socket: str | None = None  # the shared person detector; None: one in-process
    clip_url: str | None = None  # stream recorded for evidence clips; None: no clips
    clip_pre_s: float = 30.0
    clip_post_s: float = 10.0
    rtsp_transport: str = "tcp"  # edgeguard.cameras.rtsp.RTSP_TRANSPORTS

    TEXT = ("name", "url")
    OPTIONAL_TEXT = ("model", "clip_url", "detector_socket")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self.TEXT or (f.name in self.OPTIONAL_TEXT and value is not None):
                if not isinstance(value, str) or not value:
                    raise WireError(f"setting {f.name}: bad value")
            elif f.name == "rtsp_transport":
                if value not in RTSP_TRANSPORTS:
                    raise WireError(f"setting rtsp_transport: bad value {value!r}")
            elif f.name == "analytics":
                if value is not None and not isinstance(value, dict):
                    raise WireError("setting analytics: not an object")
            elif f.name in self.OPTIONAL_TEXT:
                continue
            elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise WireError(f"setting {f.name}: must be a number > 0, not {value!r}")

    @classmethod
    def from_dict(cls, data: Any) -> CaptureSettings:
        if not isinstance(data, dict):
            raise WireError("settings: not an object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise WireError(f"settings: unknown {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise WireError(f"settings: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def read_message(stream: IO[bytes]) -> tuple[dict[str, Any], bytes | None] | None:
    """The next message and its bytes, or None at end of stream. Raises WireError."""
    line = stream.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise WireError("line too long or truncated")
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise WireError("not a JSON object")
    size = message.get("size")
    if size is None:
        return message, None
    if not isinstance(size, int) or not 0 <= size <= MAX_BLOB:
        raise WireError(f"bad size {size!r}")
    blob = stream.read(size)
    if len(blob) != size:
        raise WireError("stream ended inside a blob")
    return message, blob


class ChildChannel:
    """The child's end: ``send`` from any thread; ``commands`` until stdin closes."""

    def __init__(self, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self._in = stdin
        self._out = stdout
        self._lock = threading.Lock()

    def read_first_line(self) -> bytes:
        line = self._in.readline(MAX_LINE)
        if not line:
            raise SystemExit("no settings on stdin")
        return line

    def send(self, message: dict[str, Any], blob: bytes | None = None) -> None:
        data = encode(message) + (blob or b"")
        with self._lock:
            try:
                self._out.write(data)
                self._out.flush()
            except (BrokenPipeError, ValueError):
                raise SystemExit(0) from None  # the parent is gone

    def commands(self) -> Iterator[dict[str, Any]]:
        while True:
            try:
                item = read_message(self._in)
            except WireError:
                continue
            if item is None:
                return
            yield item[0]


def child_start(label: str, log_env: str) -> tuple[ChildChannel, Any]:
    """The start of a child's ``main``: log to stderr (the daemon's journal), open the pipe
    and read the settings line. Returns the channel and the parsed settings (JSON)."""
    logging.basicConfig(
        level=os.environ.get(log_env, "INFO"),
        stream=sys.stderr,
        format=f"%(levelname)s {label}: %(message)s",
    )
    channel = ChildChannel(sys.stdin.buffer, sys.stdout.buffer)
    return channel, json.loads(channel.read_first_line())
