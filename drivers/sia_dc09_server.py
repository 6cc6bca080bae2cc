"""The DC-09 listeners: TCP and UDP on one asyncio loop in the driver's own thread, so that
nothing a communicator does (floods, garbage, half-open connections) touches the daemon's loop.

Bounds: ``max_connections`` TCP connections (more are closed at once), one frame buffer of at
most ``MAX_FRAME`` bytes per connection, reading paused while a connection has
``MAX_IN_FLIGHT`` frames awaiting their durable write, idle connections closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol, cast

from edgeguard.driver_api import DriverError, SetupFailure

from .logs import LogLimiter
from .logs import held as held_suffix
from .sia_dc09_protocol import FrameSplitter, Overlong

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT = 16  # frames of one TCP connection awaiting their write before reading pauses
TICK_S = 1.0


class Peer(Protocol):
    """Where answers to a frame go. Methods are called on the listener loop only."""

    label: str

    def send(self, data: bytes) -> None: ...

    def hold(self) -> None: ...

    def release(self) -> None: ...


Handler = Callable[[bytes | Overlong, Peer], None]


class _TcpPeer(asyncio.Protocol):
    def __init__(self, server: Listener) -> None:
        self.server = server
        self.label = "tcp"
        self.transport: asyncio.Transport | None = None
        self._splitter = FrameSplitter()
        self._held = 0
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.label = f"tcp {peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "tcp"
        if not self.server.admit(self):
            transport.abort()
            return
        self._touch()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self._idle is not None:
            self._idle.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self._touch()
        for item in self._splitter.feed(data):
            self.server.handle(item, self)

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self.server.idle_timeout, self._close)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def hold(self) -> None:
        self._held += 1
        if self._held == MAX_IN_FLIGHT and self.transport is not None:
            self.transport.pause_reading()

    def release(self) -> None:
        self._held -= 1
        if self._held == MAX_IN_FLIGHT - 1 and self.transport is not None:
            self.transport.resume_reading()


class _UdpPeer:
    def __init__(self, transport: asyncio.DatagramTransport, addr: Any) -> None:
        self.transport = transport
        self.addr = addr
        self.label = f"udp {addr[0]}:{addr[1]}" if isinstance(addr, tuple) else "udp"

    def send(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.sendto(data, self.addr)

    def hold(self) -> None:
        pass

    def release(self) -> None:
        pass


class _UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, server: Listener) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # not a subclass at runtime

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.transport is None:
            return
        peer = _UdpPeer(self.transport, addr)
        items = FrameSplitter().feed(data) if b"\n" in data else [data]
        for item in items[:4]:  # one frame per datagram; a few tolerated
            self.server.handle(item, peer)

    def error_received(self, exc: Exception) -> None:
        logger.debug("sia_dc09 %s: UDP error %s", self.server.name, exc)


class Listener:
    """Runs the TCP server and UDP endpoint on a loop in its own thread."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        tcp: bool,
        udp: bool,
        max_connections: int,
        idle_timeout: float,
        handler: Handler,
        tick: Callable[[], None],
    ) -> None:
        self.name, self.host, self.port = name, host, port
        self.tcp, self.udp = tcp, udp
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._handler, self._tick = handler, tick
        self.connections: set[_TcpPeer] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._logs = LogLimiter()
        self.ports: dict[str, int] = {}  # bound ports (port 0 in tests)

    # -- lifecycle (caller's thread) ------------------------------------------------------------

    def start(self) -> None:
        ready: dict[str, BaseException | None] = {}
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready, started), name=f"sia-dc09-{self.name}", daemon=True
        )
        self._thread.start()
        started.wait(10)
        error = ready.get("error")
        if error is not None or "error" not in ready:
            self._thread.join(5)
            message = f"cannot listen on {self.host}:{self.port}: {error}"
            raise DriverError(message, SetupFailure.RETRY)

    def stop(self) -> None:
        loop, stop = self.loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback`` on the listener loop (from any thread); dropped once stopped."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed between the check and the call
            loop.call_soon_threadsafe(callback, *args)

    # -- the loop thread --------------------------------------------------------------------------

    def _run(self, ready: dict[str, BaseException | None], started: threading.Event) -> None:
        try:
            asyncio.run(self._main(ready, started))
        except BaseException as exc:
            if "error" not in ready:
                ready["error"] = exc
            else:
                logger.exception("sia_dc09 %s: listener stopped", self.name)
        finally:
            started.set()

    async def _main(self, ready: dict[str, BaseException | None], started: threading.Event) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server, endpoint = await self._open()
        ready["error"] = None
        started.set()
        ticker = asyncio.create_task(self._ticker())
        try:
            await self._stop.wait()
        finally:
            ticker.cancel()
            if endpoint is not None:
                endpoint.close()
            if server is not None:
                server.close()
                for peer in list(self.connections):
                    if peer.transport is not None:
                        peer.transport.abort()
                await server.wait_closed()

    async def _open(self) -> tuple[asyncio.Server | None, asyncio.DatagramTransport | None]:
        loop = asyncio.get_running_loop()
        server, endpoint = None, None
        if self.tcp:
            server = await loop.create_server(
                lambda: _TcpPeer(self), self.host, self.port, reuse_address=True, backlog=64
            )
            self.ports["tcp"] = server.sockets[0].getsockname()[1]
        if self.udp:
            udp_port = self.ports.get("tcp", self.port) if self.port == 0 else self.port
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpEndpoint(self), local_addr=(self.host, udp_port)
                )
            except BaseException:
                if server is not None:
                    server.close()
                raise
            endpoint = transport
            self.ports["udp"] = transport.get_extra_info("sockname")[1]
        return server, endpoint

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self._tick()
            except Exception:
                logger.exception("sia_dc09 %s: supervision tick failed", self.name)

    def admit(self, peer: _TcpPeer) -> bool:
        if len(self.connections) >= self.max_connections:
            held = self._logs.allow("connections")
            if held is not None:
                logger.warning(
                    "sia_dc09 %s: %d connections open, refused %s%s",
                    self.name, len(self.connections), peer.label, held_suffix(held),
                )
            return False
        self.connections.add(peer)
        return True

    def handle(self, item: bytes | Overlong, peer: Peer) -> None:
        try:
            self._handler(item, peer)
        except Exception:
            held = self._logs.allow("handler")
            if held is not None:
                logger.exception("sia_dc09 %s: frame from %s not handled", self.name, peer.label)
