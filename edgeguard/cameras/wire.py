"""The pipe between the daemon and a camera child process.

One JSON object per line in both directions. A message with a ``size`` member is followed by
exactly that many raw bytes (a JPEG). The first line the parent writes is the child's settings,
so that credentials never appear on a command line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field

MAX_LINE = 1 << 16
MAX_BLOB = 32 << 20


class WireError(ValueError):
    """A malformed message on the pipe."""


class CaptureSettings(BaseModel):
    """What a capture process needs (sent on its stdin, never on the command line)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    analysis_fps: float = Field(gt=0)
    open_timeout_s: float = 3.0
    read_timeout_s: float = 1.0
    backoff_min: float = 0.5
    backoff_max: float = 10.0
    stall_exit_s: float = 20.0


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
