"""Worker processes of the site simulator (edgeguard/lab/site_sim.py, ``processes=k``): each
runs a :class:`~edgeguard.lab.site_sim_engine.SimEngine` for its share of the sites on its own
event loop, and answers the parent's requests over a pipe.

A request is ``(id, method, args)``, an answer ``(id, ok, value)``; both ends read the pipe
from their event loop (``add_reader``), so neither blocks on the other and a long request
(none is, today) would not hold up the others. Request 0 is the start. A worker whose parent
goes away stops its sites cleanly and exits. A worker is a fresh interpreter
(``python -m edgeguard.lab.site_sim_workers FD``, its end of a socket pair), never a fork: the
parent may be a test process with threads, and unlike multiprocessing's ``spawn`` it does not
import the parent's ``__main__`` again (a script needs no ``if __name__`` guard)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any

from edgeguard.lab.site_sim_engine import SimEngine
from edgeguard.lab.site_sim_model import SimConfig

METHODS = frozenset(
    {"raise_alarm", "storm", "kill", "revive", "silence", "get_stats", "traces", "last_errors",
     "freeze", "stop"}
)  # fmt: skip
JOIN_TIMEOUT_S = 15.0


class WorkerError(RuntimeError):
    """A worker process failed a request, or died."""


def worker_main(fd: int) -> None:
    """A worker's life: its settings and sites come first on the pipe, then the requests."""
    logging.basicConfig(level=logging.WARNING, format="site-sim worker: %(levelname)s %(message)s")
    conn = Connection(fd)
    config, site_ids, share = conn.recv()
    try:
        asyncio.run(_serve(SimEngine(config, site_ids, share=share), conn))
    finally:
        conn.close()


async def _serve(engine: SimEngine, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[int, str, tuple[Any, ...]] | None] = asyncio.Queue()

    def readable() -> None:
        try:
            inbox.put_nowait(conn.recv())
        except (EOFError, OSError):  # the parent is gone
            loop.remove_reader(conn.fileno())
            inbox.put_nowait(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await engine.start(own_executor=True)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send((0, False, f"start failed: {exc!r}"))
        return
    conn.send((0, True, None))
    answering: set[asyncio.Task[None]] = set()
    stopped = False
    while True:
        request = await inbox.get()
        if request is None:
            break
        rid, method, args = request
        if method == "exit":
            conn.send((rid, True, None))
            break
        stopped = stopped or method == "stop"
        task = loop.create_task(_answer(engine, conn, rid, method, args))
        answering.add(task)
        task.add_done_callback(answering.discard)
    with contextlib.suppress(OSError):
        loop.remove_reader(conn.fileno())
    await asyncio.gather(*answering, return_exceptions=True)
    if not stopped:
        await engine.stop()


async def _answer(
    engine: SimEngine, conn: Connection, rid: int, method: str, args: tuple[Any, ...]
) -> None:
    try:
        value = await getattr(engine, _checked(method))(*args)
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
        answer: tuple[int, bool, Any] = (rid, False, f"{type(exc).__name__}: {exc}")
    else:
        answer = (rid, True, value)
    with contextlib.suppress(OSError):  # the parent is gone
        conn.send(answer)


def _checked(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown request {method!r}")
    return method


class WorkerProxy:
    """The parent's handle on one worker process; ``call`` awaits its answer on the loop."""

    def __init__(self, config: SimConfig, site_ids: list[str], share: float, index: int) -> None:
        self.name = f"site-sim worker {index}"
        ours, theirs = socket.socketpair()
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        self.conn = Connection(ours.detach())
        self.conn.send((config, site_ids, share))
        self.loop = asyncio.get_running_loop()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {0: self.loop.create_future()}
        self.loop.add_reader(self.conn.fileno(), self._readable)
        self._reading = True

    async def started(self) -> None:
        await self._pending[0]

    async def call(self, method: str, *args: Any) -> Any:
        if not self._reading:
            raise WorkerError(f"{self.name} is gone (exit code {self.process.poll()})")
        rid = next(self._ids)
        answer = self.loop.create_future()
        self._pending[rid] = answer
        self.conn.send((rid, method, args))
        return await answer

    def _readable(self) -> None:
        try:
            rid, ok, value = self.conn.recv()
        except (EOFError, OSError):
            self._gone()
            return
        answer = self._pending.pop(rid, None)
        if answer is None or answer.done():
            return
        if ok:
            answer.set_result(value)
        else:
            answer.set_exception(WorkerError(f"{self.name}: {value}"))

    def _gone(self) -> None:
        if self._reading:
            self.loop.remove_reader(self.conn.fileno())
            self._reading = False
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(WorkerError(f"{self.name} died"))
        self._pending.clear()

    async def close(self) -> None:
        """Ask the worker to exit, wait for it (killing it if it does not), close the pipe."""
        if self._reading:
            with contextlib.suppress(WorkerError, OSError, TimeoutError):
                await asyncio.wait_for(self.call("exit"), JOIN_TIMEOUT_S)
        try:
            await asyncio.to_thread(self.process.wait, JOIN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
        self._gone()
        self.conn.close()


if __name__ == "__main__":
    worker_main(int(sys.argv[1]))
