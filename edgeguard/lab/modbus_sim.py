"""A simulated Modbus module for tests and benchmarks: pymodbus' own server (TCP on loopback
or RTU on a pty) whose discrete inputs the caller sets, and a pair of ptys joined back to back
whose relay can hold every byte for its time on a real serial line."""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time
import tty
from collections.abc import Coroutine
from typing import Any, TypeVar

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

WAIT = 5.0
UNIT = 1
T = TypeVar("T")


def _device(size: int) -> SimDevice:
    """One module: separate blocks, bit addressing (coil/input n is address n)."""
    return SimDevice(
        id=UNIT,
        simdata=(
            [SimData(0, count=size, values=False, datatype=DataType.BITS)],  # coils
            [SimData(0, count=size, values=False, datatype=DataType.BITS)],  # discrete inputs
            [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],  # holding registers
            [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],  # input registers
        ),
    )


class ModbusSlave:
    """pymodbus' server on its own asyncio loop in a thread. The test sets the module's
    discrete inputs and reads its coils; the server can be stopped and started again on the
    same address (with fresh, all-off data)."""

    def __init__(
        self, serial_port: str | None = None, *, size: int = 64, baudrate: int = 9600
    ) -> None:
        self.serial_port = serial_port
        self.size = size
        self.baudrate = baudrate
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self.start()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(WAIT)

    def start(self) -> None:
        async def serve() -> ModbusTcpServer | ModbusSerialServer:
            server: ModbusTcpServer | ModbusSerialServer
            if self.serial_port is None:
                server = ModbusTcpServer(_device(self.size), address=("127.0.0.1", self.port))
            else:
                server = ModbusSerialServer(
                    _device(self.size), port=self.serial_port, baudrate=self.baudrate
                )
            await server.serve_forever(background=True)
            return server

        self._server = self._run(serve())
        if self.serial_port is None and self.port == 0:
            listener: Any = self._server.transport  # an asyncio.Server
            self.port = listener.sockets[0].getsockname()[1]

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            self._run(server.shutdown())  # type: ignore[no-untyped-call]

    def set_input(self, address: int, value: bool) -> None:
        assert self._server is not None
        self._run(self._server.async_setValues(UNIT, 2, address, [value]))

    def coil(self, address: int) -> bool:
        assert self._server is not None
        return bool(self._run(self._server.async_getValues(UNIT, 1, address, 1))[0])

    def close(self) -> None:
        self.stop()

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._run(drain())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)
        self._loop.close()


class PtyLink:
    """Two ptys joined back to back, like a null-modem cable: what is written to one's device
    comes out of the other's. With ``baud`` the relay holds bytes for their time on the wire
    (10 bits a character, 8N1); a plain pty passes them at memory speed."""

    def __init__(self, baud: int | None = None) -> None:
        self.baud = baud
        self._stop = threading.Event()
        self._masters: list[int] = []
        self._slaves: list[int] = []
        self.paths: list[str] = []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)  # the relay keeps this end open, so the pty never hangs up
            self._masters.append(master)
            self._slaves.append(slave)
            self.paths.append(os.ttyname(slave))
        self._threads = [
            threading.Thread(target=self._pump, args=(a, b), daemon=True)
            for a, b in ((self._masters[0], self._masters[1]), (self._masters[1], self._masters[0]))
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, src: int, dst: int) -> None:
        line_free = 0.0
        while not self._stop.is_set():
            ready, _, _ = select.select([src], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(src, 4096)
            except OSError:
                continue
            if self.baud:
                line_free = max(line_free, time.monotonic()) + len(data) * 10 / self.baud
                time.sleep(max(0.0, line_free - time.monotonic()))
            os.write(dst, data)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT)
        for fd in self._masters + self._slaves:
            os.close(fd)
