"""A supervised child process speaking edgeguard.cameras.wire, seen from the daemon's loop.

A reader thread per child reads its stdout and hands whole messages to the loop, so a child
that hangs mid-message can never block the loop (and so the alarm path). A child that exits,
or says nothing for ``silence_s``, is killed and started again after a back-off that doubles
up to a minute (rate limit); a child that ran for a while starts again quickly."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from edgeguard.cameras.wire import WireError, encode, read_message

logger = logging.getLogger(__name__)

RESTART_MIN_S = 1.0
RESTART_MAX_S = 60.0
HEALTHY_RUN_S = 60.0
MAX_NICE = 19

MessageHandler = Callable[[dict[str, Any], bytes | None], None]
Reply = tuple[dict[str, Any], bytes | None]


class ChildUnavailableError(RuntimeError):
    """A request to a child got no answer: not running, not reading, or too slow."""


class ChildProcess:
    """``python -m MODULE`` with ``first_line`` written to its stdin, kept running."""

    def __init__(
        self,
        label: str,
        module: str,
        first_line: bytes,
        on_message: MessageHandler,
        *,
        silence_s: float = 10.0,
        on_exit: Callable[[int | None], None] | None = None,
        nice: int = 0,
    ) -> None:
        self.label = label
        self.nice = nice
        self.module = module
        self.first_line = first_line
        self.on_message = on_message
        self.on_exit = on_exit
        self.silence_s = silence_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.last_message = time.monotonic()
        self.started_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._write_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Reply]] = {}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._supervise(), name=f"child {self.label}")

    async def stop(self, timeout: float = 3.0) -> None:
        self._stopping = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChildUnavailableError(f"{self.label}: stopping"))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._terminate, timeout)

    def send(self, message: dict[str, Any]) -> bool:
        """Write a command; False when the child is not running or not reading (hung)."""
        proc = self.proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            return False
        with self._write_lock:
            try:
                os.write(proc.stdin.fileno(), encode(message))
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EPIPE):
                    logger.warning("%s: command not sent: %s", self.label, exc)
                return False
        return True

    async def request(self, command: dict[str, Any], timeout: float) -> Reply:
        """Send a command with a fresh ``id`` and wait for the message carrying that ``id``."""
        request_id = next(self._ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            if not self.send({**command, "id": request_id}):
                raise ChildUnavailableError(f"{self.label}: not running")
            return await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise ChildUnavailableError(f"{self.label}: did not answer in time") from exc
        finally:
            self._pending.pop(request_id, None)

    # --- supervision ------------------------------------------------------------------------
    async def _supervise(self) -> None:
        delay = RESTART_MIN_S
        while not self._stopping:
            await asyncio.to_thread(self._spawn)
            code = await self._wait_or_silence()
            self._close_stdin()
            if self._stopping:
                return
            ran = time.monotonic() - self.started_at
            if self.on_exit is not None:
                self.on_exit(code)
            if ran > HEALTHY_RUN_S:
                delay = RESTART_MIN_S
            logger.warning(
                "%s: child exited (code %s) after %.1f s; restarting in %.0f s",
                self.label,
                code,
                ran,
                delay,
            )
            self.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_S)

    def _spawn(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a signal to the daemon's group does not hit it twice
        )
        self._lower_priority(self.proc.pid)
        assert self.proc.stdin is not None
        self.proc.stdin.write(self.first_line)
        self.proc.stdin.flush()
        fd = self.proc.stdin.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self.started_at = self.last_message = time.monotonic()
        threading.Thread(
            target=self._read, args=(self.proc,), daemon=True, name=f"read {self.label}"
        ).start()

    def _lower_priority(self, pid: int) -> None:
        """Our niceness + ``nice`` for the child, set as soon as it runs: Popen returns once
        the child has exec'd, before the interpreter could start a thread (each thread has
        its own niceness on Linux; later ones inherit it)."""
        if self.nice <= 0:
            return
        try:
            ours = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, pid, min(ours + self.nice, MAX_NICE))
        except OSError as exc:
            logger.warning("%s: priority not lowered: %s", self.label, exc)

    async def _wait_or_silence(self) -> int | None:
        proc = self.proc
        assert proc is not None
        while proc.poll() is None:
            await asyncio.sleep(0.25)
            if time.monotonic() - self.last_message > self.silence_s:
                logger.error("%s: silent for %.0f s; killing it", self.label, self.silence_s)
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
        return proc.returncode

    def _terminate(self, timeout: float) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            self.send({"cmd": "stop"})
            self._close_stdin()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_stdin()

    def _close_stdin(self) -> None:
        proc = self.proc
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    # --- reader thread ----------------------------------------------------------------------
    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            self._read_until_end(proc)
        finally:
            assert proc.stdout is not None
            with contextlib.suppress(OSError):
                proc.stdout.close()

    def _read_until_end(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        while True:
            try:
                item = read_message(proc.stdout)
            except WireError as exc:
                logger.error("%s: bad message from the child (%s); killing it", self.label, exc)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return
            except (OSError, ValueError):
                return
            if item is None:
                return
            self._deliver(*item)

    def _deliver(self, message: dict[str, Any], blob: bytes | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closing during shutdown
            loop.call_soon_threadsafe(self._on_loop, message, blob)

    def _on_loop(self, message: dict[str, Any], blob: bytes | None) -> None:
        self.last_message = time.monotonic()
        future = self._pending.pop(message["id"], None) if "id" in message else None
        if future is not None:
            if not future.done():
                future.set_result((message, blob))
            return
        try:
            self.on_message(message, blob)
        except Exception:
            logger.exception("%s: message handler failed", self.label)
