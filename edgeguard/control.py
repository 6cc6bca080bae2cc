"""The local control socket: one JSON request per line, one JSON answer per line.

Used by `edgeguard reset`, `status`, `simulate` and `reload`. Requests are validated; a bad
request gets ``{"ok": false, "error": ...}`` and never reaches the alarm path half-formed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from edgeguard.safe_text import preview

logger = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024


# A person's name as recorded in the log: no control characters (no forged log lines).
PersonName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusRequest(_Req):
    cmd: Literal["status"]


class SimulateRequest(_Req):
    cmd: Literal["press", "release"]
    input: str = Field(min_length=1, max_length=64)


class ResetRequest(_Req):
    cmd: Literal["reset"]
    event_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9a-fA-F-]+$")
    by: PersonName


class ReloadRequest(_Req):
    """Re-read the config; answered when the reload is done (edgeguard.reloading)."""

    cmd: Literal["reload"]


Request = Annotated[
    StatusRequest | SimulateRequest | ResetRequest | ReloadRequest, Field(discriminator="cmd")
]
REQUEST = TypeAdapter(Request)
Handler = Callable[[Any], Awaitable[dict[str, Any]]]


class RequestError(Exception):
    """A well-formed request that cannot be carried out; the message goes to the caller."""


class ControlServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=MAX_REQUEST
        )
        self.path.chmod(0o660)  # the service's group (operators) may use it
        logger.info("control socket at %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(
                    json.dumps(await self._answer(line), ensure_ascii=False).encode() + b"\n"
                )
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            logger.warning("control connection dropped: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = REQUEST.validate_json(line)
        except ValidationError as exc:
            logger.warning("control: bad request: %s",
                           preview(str(exc.errors(include_url=False)[:1]), 300))
            return {"ok": False, "error": f"bad request: {exc.errors(include_url=False)[0]['msg']}"}
        try:
            return {"ok": True, **await self.handler(request)}
        except RequestError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            logger.exception("control: %s failed", type(request).__name__)
            return {"ok": False, "error": f"internal error: {exc}"}


def call(path: Path, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Client side: send one request and return the answer (blocking)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ConnectionError(
                f"edgeguard is not running (no control socket at {path})"
            ) from exc
        except PermissionError as exc:
            raise ConnectionError(
                f"no permission for {path}: are you in the edgeguard group?"
            ) from exc
        sock.sendall(json.dumps(request, ensure_ascii=False).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:  # e.g. the daemon stopped or crashed while carrying the request out
        raise ConnectionError(f"edgeguard closed {path} without answering")
    answer: dict[str, Any] = json.loads(data.decode("utf-8"))
    return answer
