"""A simulated EGB1 serial button box (docs/serial-protocol.md) for tests, the benchmark and
the demo.

It talks over a file descriptor, usually the master side of a pty from :func:`open_pty` whose
slave path is the serial driver's ``port``. Like a real box it numbers each device's events,
keeps at most one frame per device un-ACKed (later events of that device queue behind it, so
they arrive in order) and repeats that frame every ``repeat_interval`` seconds until the ACK
comes. A background thread reads the daemon's replies and does the repeats.

    master, port = open_pty()
    with SerialBoxSim(master) as box:
        seq = box.press("b1")
        assert box.wait_acked(timeout=2.0)
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from edgeguard_drivers.serial_protocol import (
    Event,
    FrameError,
    LineSplitter,
    Overlong,
    Reply,
    encode_frame,
    next_seq,
    parse_reply,
)

logger = logging.getLogger(__name__)

Key = tuple[str, int]  # (dev, seq)

POLL = 0.02  # seconds between checks for due repeats


def open_pty() -> tuple[int, str]:
    """Open a pty with its line discipline in raw mode; return ``(master_fd, slave_path)``.

    The slave side is closed again (the driver opens it by path; raw mode stays set). The
    caller owns ``master_fd``; a :class:`SerialBoxSim` closes it by default.
    """
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        path = os.ttyname(slave)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return master, path


def repoint_symlink(link: Path, target: str) -> None:
    """Atomically (re)point a symlink to a pty, as udev does with /dev/serial/by-id: tests of
    a port that disappears and comes back."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)


@dataclass(slots=True)
class _Device:
    next_seq: int
    outstanding: tuple[Key, bytes] | None = None  # the frame waiting for its ACK
    last_sent: float = 0.0
    queue: deque[tuple[Key, bytes]] = field(default_factory=deque)


class SerialBoxSim:
    """A button box on ``fd``. Public results (read them after a ``wait_*``):

    ``sent_at``: (dev, seq) → time.perf_counter() when the event happened (press() etc.).
    ``acked``: (dev, seq) → time.perf_counter() when its first ACK was read.
    ``sends``: (dev, seq) → how many times the frame was written (1 + repeats).
    ``naks``: the NAKs read, in order.
    ``replies``: every valid ACK and NAK read, in order (re-ACKs and replies to raw frames too).
    """

    def __init__(
        self,
        fd: int,
        *,
        repeat_interval: float = 0.5,
        first_seq: int = 0,
        close_fd: bool = True,
    ) -> None:
        self.fd = fd
        self.repeat_interval = repeat_interval
        self.first_seq = first_seq
        self.close_fd = close_fd
        self.sent_at: dict[Key, float] = {}
        self.acked: dict[Key, float] = {}
        self.sends: dict[Key, int] = {}
        self.naks: list[Reply] = []
        self.replies: list[Reply] = []
        self._devices: dict[str, _Device] = {}
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        os.set_blocking(fd, False)  # a full pty buffer must not hang the box
        self._thread = threading.Thread(target=self._run, name="egb1-box-sim", daemon=True)
        self._thread.start()

    # -- the buttons ------------------------------------------------------------------------

    def press(self, dev: str) -> int:
        return self.send(dev, Event.PRESS)

    def release(self, dev: str) -> int:
        return self.send(dev, Event.RELEASE)

    def heartbeat(self, dev: str) -> int:
        return self.send(dev, Event.HB)

    def send(self, dev: str, event: Event | str) -> int:
        """Raise an event on ``dev``: number it, and send it now or after the device's
        outstanding frame is ACKed. Returns its seq."""
        with self._cond:
            device = self._devices.setdefault(dev, _Device(self.first_seq))
            seq, device.next_seq = device.next_seq, next_seq(device.next_seq)
            key = (dev, seq)
            self.sent_at[key] = time.perf_counter()
            self.acked.pop(key, None)  # a seq used again after wrap-around
            device.queue.append((key, encode_frame(dev, seq, event)))
            due = self._advance(device)
        self._write_frames(due)
        return seq

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are, once (garbage, broken frames, hand-made repeats)."""
        self._write(data)

    # -- waiting ------------------------------------------------------------------------------

    def wait_acked(self, timeout: float) -> bool:
        """Wait until every event sent so far is ACKed."""
        with self._cond:
            return self._cond.wait_for(lambda: self.sent_at.keys() <= self.acked.keys(), timeout)

    def wait_ack(self, dev: str, seq: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: (dev, seq) in self.acked, timeout)

    def wait_naks(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` NAKs have been read."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.naks) >= count, timeout)

    def wait_replies(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` replies (ACK or NAK) have been read."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.replies) >= count, timeout)

    def unacked(self) -> list[Key]:
        with self._cond:
            return [key for key in self.sent_at if key not in self.acked]

    # -- life ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the box; close the fd if it owns it. Safe to call twice."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join(timeout=2.0)
        if self.close_fd:
            os.close(self.fd)

    def __enter__(self) -> SerialBoxSim:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _advance(self, device: _Device) -> list[tuple[Key, bytes]]:
        """Under the lock: make the next queued frame outstanding if none is."""
        if device.outstanding is not None or not device.queue:
            return []
        device.outstanding = device.queue.popleft()
        device.last_sent = time.perf_counter()
        return [device.outstanding]

    def _write_frames(self, frames: list[tuple[Key, bytes]]) -> None:
        for key, frame in frames:
            with self._cond:
                self.sends[key] = self.sends.get(key, 0) + 1
            self._write(frame)

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            view = memoryview(data)
            deadline = time.monotonic() + 0.2
            while view and not self._closed.is_set():
                try:
                    view = view[os.write(self.fd, view) :]
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        logger.debug("box sim: line full, %d bytes dropped", len(view))
                        return
                    select.select([], [self.fd], [], POLL)
                except OSError as exc:
                    logger.debug("box sim: write failed: %s", exc)
                    return

    def _run(self) -> None:
        splitter = LineSplitter()
        while not self._closed.is_set():
            data = self._read()
            for line in splitter.feed(data) if data else []:
                self._on_line(line)
            self._write_frames(self._due_repeats())

    def _read(self) -> bytes | None:
        try:
            ready, _, _ = select.select([self.fd], [], [], POLL)
            return os.read(self.fd, 4096) if ready else None
        except BlockingIOError:
            return None
        except OSError as exc:
            # EIO: no one has the pty's slave open (yet, or any more). Wait for a peer.
            if exc.errno != errno.EIO:
                logger.debug("box sim: read failed: %s", exc)
            self._closed.wait(POLL)
            return None

    def _on_line(self, line: bytes | Overlong) -> None:
        if isinstance(line, Overlong):
            return
        try:
            reply = parse_reply(line)
        except FrameError as exc:
            logger.debug("box sim: ignoring %r: %s", line, exc)
            return
        with self._cond:
            self.replies.append(reply)
            if reply.kind == "NAK":
                self.naks.append(reply)
            self._cond.notify_all()
        if reply.kind == "NAK":
            return
        assert reply.dev is not None
        assert reply.seq is not None
        self._on_ack((reply.dev, reply.seq))

    def _on_ack(self, key: Key) -> None:
        with self._cond:
            device = self._devices.get(key[0])
            if device is None or device.outstanding is None or device.outstanding[0] != key:
                return  # a re-ACK of a frame already ACKed, or of something never sent
            self.acked[key] = time.perf_counter()
            device.outstanding = None
            due = self._advance(device)
            self._cond.notify_all()
        self._write_frames(due)

    def _due_repeats(self) -> list[tuple[Key, bytes]]:
        now = time.perf_counter()
        due: list[tuple[Key, bytes]] = []
        with self._cond:
            for device in self._devices.values():
                if device.outstanding and now - device.last_sent >= self.repeat_interval:
                    device.last_sent = now
                    due.append(device.outstanding)
        return due
