"""The store's writer thread: every write to the event store runs here, in order, with group
commit — the jobs queued while one commit is fsyncing share the next commit (one fsync).

Callers on the event loop ``await writer.run(job)``; the job gets the Store. In a batch of
several, each job runs inside a savepoint, so one failing job does not undo the others; a job
alone runs in the transaction itself (no savepoint: its failure rolls back only itself). A
job's result is handed back only after its batch is durably committed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edgeguard.store import Store

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BATCH = 500
_STOP = object()


class _RolledBackError(Exception):
    """A lone job failed: its transaction is rolled back, its error goes to its caller."""


@dataclass
class _Job:
    fn: Callable[[Store], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    queued_at: float = field(default_factory=time.monotonic)


class StoreWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="store-writer", daemon=True)
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self.last_commit = time.monotonic()
        self.commits = 0

    def start(self) -> None:
        """Open the store in the writer thread; raise what opening raised."""
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            raise self._open_error

    def alive(self) -> bool:
        return self._thread.is_alive()

    async def run(self, fn: Callable[[Store], T]) -> T:
        loop = asyncio.get_running_loop()
        if not self._thread.is_alive():
            raise RuntimeError("store writer is not running")
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, loop, future))
        return await future

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    # --- writer thread ----------------------------------------------------------------------
    def _main(self) -> None:
        try:
            store = Store(self.path)
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            while True:
                batch, stop = self._take_batch()
                if batch:
                    self._commit_batch(store, batch)
                if stop:
                    return
        finally:
            store.close()

    def _take_batch(self) -> tuple[list[_Job], bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch: list[_Job] = [first]
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit_batch(self, store: Store, batch: list[_Job]) -> None:
        try:
            with store.transaction():
                if len(batch) == 1:  # the common case: no savepoint needed
                    self._run_alone(store, batch[0])
                else:
                    for job in batch:
                        self._run_job(store, job)
        except _RolledBackError:
            store.forget_cached_head()
        except Exception as exc:  # noqa: BLE001 - every job must get an answer
            store.forget_cached_head()
            logger.critical("store commit failed for %d job(s): %s", len(batch), exc)
            for job in batch:
                if job.error is None:
                    job.error = exc
        else:
            self.last_commit = time.monotonic()
            self.commits += 1
        for job in batch:
            try:
                job.loop.call_soon_threadsafe(_settle, job)
            except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
                logger.debug("store job finished after its event loop closed")

    @staticmethod
    def _run_alone(store: Store, job: _Job) -> None:
        try:
            job.result = job.fn(store)
        except Exception as exc:
            job.error = exc
            raise _RolledBackError from exc

    @staticmethod
    def _run_job(store: Store, job: _Job) -> None:
        try:
            with store.transaction():  # a savepoint inside the batch
                job.result = job.fn(store)
        except Exception as exc:  # noqa: BLE001 - handed to the job's caller
            store.forget_cached_head()
            job.error = exc


def _settle(job: _Job) -> None:
    if job.future.done():
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.result)
