"""The EGB1 line protocol of the serial panic-button box (docs/serial-protocol.md).

Pure code: framing, parsing, the line splitter and the duplicate filter. No I/O, no threads;
callers that share a :class:`DuplicateFilter` between threads lock around it.

Box → daemon: ``$EGB1,<dev>,<seq>,<event>*<crc>\\r\\n``
Daemon → box: ``$ACK,<dev>,<seq>*<crc>\\r\\n`` and ``$NAK,<dev|->,<seq|->,<reason>*<crc>\\r\\n``

``crc`` is CRC-16/CCITT-FALSE over the bytes strictly between ``$`` and ``*``, as four hex
digits (uppercase when sent, either case accepted).
"""

from __future__ import annotations

import binascii
import itertools
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple

PROTOCOL_TAG = "EGB1"
MAX_LINE = 128  # bytes from '$' up to, not including, the line terminator
SEQ_MODULUS = 65536
DEV_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$"  # starts alphanumeric: "-" means "unknown"
DUPLICATE_WINDOW = 64  # remembered (seq, event) per device
DUPLICATE_TTL = 10.0  # seconds a recorded frame is remembered after it was last seen

_DEV_RE = re.compile(DEV_PATTERN)
_SEQ_RE = re.compile(r"0|[1-9][0-9]{0,4}")  # canonical decimal: no sign, no leading zeros
_CRC_RE = re.compile(r"[0-9A-Fa-f]{4}")
_FRAME_START = b"$" + PROTOCOL_TAG.encode("ascii")
_PRINTABLE = frozenset(range(0x20, 0x7F))


class Event(StrEnum):
    """Events a box may send. Anything else is answered with NAK ``event``."""

    PRESS = "PRESS"
    RELEASE = "RELEASE"
    HB = "HB"  # supervision heartbeat: ACKed at once, raises nothing


class Reason(StrEnum):
    """Why a line was rejected. Every reason but ``garbage`` is sent back in a NAK."""

    CRC = "crc"
    FORMAT = "format"
    EVENT = "event"
    LENGTH = "length"
    GARBAGE = "garbage"  # no "$EGB1" start: dropped without a NAK

    @property
    def nak(self) -> bool:
        return self is not Reason.GARBAGE


NAK_REASONS = frozenset(reason for reason in Reason if reason.nak)


class FrameError(ValueError):
    """A line that is not a valid frame. ``dev``/``seq`` are filled in when they could be read
    (they are then echoed in the NAK, as a hint: with a CRC error they may be corrupted)."""

    def __init__(
        self, reason: Reason, message: str, dev: str | None = None, seq: int | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.dev = dev
        self.seq = seq


class FrameKey(NamedTuple):
    """What identifies one event of one device (the duplicate filter's key)."""

    dev: str
    seq: int
    event: Event


@dataclass(frozen=True, slots=True)
class BoxFrame:
    """A valid box → daemon frame."""

    dev: str
    seq: int
    event: Event

    @property
    def key(self) -> FrameKey:
        return FrameKey(self.dev, self.seq, self.event)


@dataclass(frozen=True, slots=True)
class Reply:
    """A daemon → box line: ``ACK`` (dev and seq set) or ``NAK`` (dev/seq None when '-')."""

    kind: Literal["ACK", "NAK"]
    dev: str | None
    seq: int | None
    reason: str | None = None


# -- checksums and encoding -------------------------------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0.

    ``crc16(b"123456789") == 0x29B1``.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def is_dev_id(text: str) -> bool:
    return _DEV_RE.fullmatch(text) is not None


def seal(payload: str) -> bytes:
    """Frame a payload: ``$<payload>*<CRC>\\r\\n``. No validation of the payload's fields."""
    body = payload.encode("ascii")
    return b"$" + body + b"*" + f"{crc16(body):04X}".encode("ascii") + b"\r\n"


def _check_dev(dev: str) -> str:
    if not is_dev_id(dev):
        raise ValueError(f"device id must match {DEV_PATTERN}: {dev!r}")
    return dev


def _check_seq(seq: int) -> int:
    if not 0 <= seq < SEQ_MODULUS:
        raise ValueError(f"seq must be 0..{SEQ_MODULUS - 1}: {seq}")
    return seq


def encode_frame(dev: str, seq: int, event: Event | str) -> bytes:
    """A box → daemon frame, e.g. ``$EGB1,b1,0,PRESS*145E\\r\\n``."""
    return seal(f"{PROTOCOL_TAG},{_check_dev(dev)},{_check_seq(seq)},{Event(event).value}")


def encode_ack(dev: str, seq: int) -> bytes:
    return seal(f"ACK,{_check_dev(dev)},{_check_seq(seq)}")


def encode_nak(dev: str | None, seq: int | None, reason: Reason | str) -> bytes:
    """A NAK; ``dev``/``seq`` None (or invalid, as read from a bad line) are sent as '-'."""
    token = Reason(reason)
    if not token.nak:
        raise ValueError(f"{token.value!r} is not sent in a NAK")
    dev_text = dev if dev is not None and is_dev_id(dev) else "-"
    seq_text = str(seq) if seq is not None and 0 <= seq < SEQ_MODULUS else "-"
    return seal(f"NAK,{dev_text},{seq_text},{token.value}")


def next_seq(seq: int) -> int:
    return (seq + 1) % SEQ_MODULUS


# -- parsing ------------------------------------------------------------------------------------


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line


def _parse_seq(text: str) -> int | None:
    if _SEQ_RE.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value < SEQ_MODULUS else None


def _guess_ids(payload: str) -> tuple[str | None, int | None]:
    """Best-effort dev and seq of a payload that failed a check (for the NAK)."""
    fields = payload.split(",")
    dev = fields[1] if len(fields) > 1 and is_dev_id(fields[1]) else None
    seq = _parse_seq(fields[2]) if len(fields) > 2 else None
    return dev, seq


def _unseal(body: bytes) -> str:
    """Check the characters and the checksum of ``$...*CCCC``; return the payload between."""
    if not _PRINTABLE.issuperset(body):
        raise FrameError(Reason.FORMAT, "non-ASCII or control byte in line")
    text = body.decode("ascii")
    if text.count("*") != 1:
        raise FrameError(Reason.FORMAT, "expected exactly one '*' before the checksum")
    payload, _, crc_text = text[1:].partition("*")
    if _CRC_RE.fullmatch(crc_text) is None:
        raise FrameError(Reason.FORMAT, "checksum must be 4 hex digits", *_guess_ids(payload))
    expected = crc16(payload.encode("ascii"))
    if int(crc_text, 16) != expected:
        raise FrameError(
            Reason.CRC,
            f"checksum {crc_text.upper()} does not match computed {expected:04X}",
            *_guess_ids(payload),
        )
    return payload


def _frame_body(line: bytes, starts: tuple[bytes, ...]) -> bytes:
    body = _strip_eol(line)
    if not body:
        raise FrameError(Reason.GARBAGE, "empty line")
    if len(body) > MAX_LINE:
        raise FrameError(Reason.LENGTH, f"line of {len(body)} bytes is longer than {MAX_LINE}")
    if not body.startswith(starts):
        expected = " or ".join(start.decode("ascii") for start in starts)
        raise FrameError(Reason.GARBAGE, f"line does not start with {expected}")
    return body


def parse_box_line(line: bytes) -> BoxFrame:
    """Parse one box → daemon line (with or without its ``\\r\\n``); raise :class:`FrameError`."""
    payload = _unseal(_frame_body(line, (_FRAME_START,)))
    fields = payload.split(",")
    if len(fields) != 4 or fields[0] != PROTOCOL_TAG:
        raise FrameError(
            Reason.FORMAT, f"expected {PROTOCOL_TAG},<dev>,<seq>,<event>", *_guess_ids(payload)
        )
    _, dev, seq_text, event_text = fields
    if not is_dev_id(dev):
        raise FrameError(
            Reason.FORMAT, "device id must be 1-16 of [A-Za-z0-9_-], starting alphanumeric"
        )
    seq = _parse_seq(seq_text)
    if seq is None:
        raise FrameError(Reason.FORMAT, "seq must be a decimal 0-65535 without leading zeros", dev)
    if not event_text:
        raise FrameError(Reason.FORMAT, "empty event", dev, seq)
    try:
        event = Event(event_text)
    except ValueError:
        raise FrameError(Reason.EVENT, f"unsupported event {event_text!r}", dev, seq) from None
    return BoxFrame(dev, seq, event)


def _reply_id(dev_text: str, seq_text: str) -> tuple[str | None, int | None]:
    dev = None if dev_text == "-" else dev_text
    seq = None if seq_text == "-" else _parse_seq(seq_text)
    if (dev is not None and not is_dev_id(dev)) or (seq is None and seq_text != "-"):
        raise FrameError(Reason.FORMAT, "bad device id or seq in reply")
    return dev, seq


def parse_reply(line: bytes) -> Reply:
    """Parse one daemon → box line (``$ACK`` or ``$NAK``); raise :class:`FrameError`."""
    payload = _unseal(_frame_body(line, (b"$ACK,", b"$NAK,")))
    fields = payload.split(",")
    if fields[0] == "ACK" and len(fields) == 3:
        dev, seq = _reply_id(fields[1], fields[2])
        if dev is None or seq is None:
            raise FrameError(Reason.FORMAT, "ACK without device id or seq")
        return Reply("ACK", dev, seq)
    if fields[0] == "NAK" and len(fields) == 4 and fields[3]:
        dev, seq = _reply_id(fields[1], fields[2])
        return Reply("NAK", dev, seq, fields[3])
    raise FrameError(Reason.FORMAT, "expected ACK,<dev>,<seq> or NAK,<dev>,<seq>,<reason>")


# -- line splitting -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overlong:
    """Stands for a line longer than the limit; the rest of it up to its newline is discarded."""

    prefix: bytes  # its first bytes, for the log


class LineSplitter:
    """Cut a byte stream into lines at ``\\n`` (a ``\\r`` before it is dropped).

    :meth:`feed` returns the complete lines so far, without terminators, and an
    :class:`Overlong` as soon as a line passes ``max_len`` (once per such line). Empty lines are
    skipped.
    """

    PREFIX = 48

    def __init__(self, max_len: int = MAX_LINE) -> None:
        self.max_len = max_len
        self._buf = bytearray()
        self._discarding = False

    def reset(self) -> None:
        self._buf.clear()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | Overlong]:
        out: list[bytes | Overlong] = []
        pos = 0
        while pos < len(data):
            newline = data.find(b"\n", pos)
            end = len(data) if newline < 0 else newline
            self._take(data[pos:end], complete=newline >= 0, out=out)
            if newline < 0:
                break
            pos = newline + 1
        return out

    def _take(self, piece: bytes, *, complete: bool, out: list[bytes | Overlong]) -> None:
        if self._discarding:
            self._discarding = not complete
            return
        self._buf += piece
        # One byte of slack: a '\r' before the '\n' does not count against the limit.
        if len(self._buf) > self.max_len + 1 or (
            complete and len(_strip_eol(bytes(self._buf))) > self.max_len
        ):
            out.append(Overlong(bytes(self._buf[: self.PREFIX])))
            self._buf.clear()
            self._discarding = not complete
            return
        if complete:
            line = _strip_eol(bytes(self._buf))
            self._buf.clear()
            if line:
                out.append(line)


# -- duplicates -----------------------------------------------------------------------------------


class Seen(StrEnum):
    """What :meth:`DuplicateFilter.admit` says about a frame."""

    NEW = "new"  # raise it; call recorded() or failed() with the token when the write ends
    PENDING = "pending"  # a repeat of a frame still being written: ignore it
    RECORDED = "recorded"  # a repeat of a recorded frame: ACK it again, raise nothing


@dataclass(slots=True)
class _Entry:
    event: Event
    token: int
    recorded: bool
    last_seen: float


class DuplicateFilter:
    """Recognise repeats of a frame by (dev, seq, event), for the last ``window`` seqs of each
    device (so seq wrap-around works) and the last ``max_devices`` devices.

    A recorded frame is forgotten ``ttl`` seconds after it was last seen, so a box that restarts
    its numbering after a reboot cannot have a new press taken for an old repeat for long.
    Forgetting only ever costs a duplicate signal, never a lost one.
    """

    def __init__(
        self,
        window: int = DUPLICATE_WINDOW,
        ttl: float = DUPLICATE_TTL,
        max_devices: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.ttl = ttl
        self.max_devices = max_devices
        self._clock = clock
        self._tokens = itertools.count(1)
        self._devices: OrderedDict[str, OrderedDict[int, _Entry]] = OrderedDict()

    def admit(self, key: FrameKey) -> tuple[Seen, int]:
        """Classify a frame; a NEW one is remembered as pending under the returned token."""
        now = self._clock()
        seqs = self._device(key.dev)
        entry = seqs.get(key.seq)
        if entry is not None and entry.event is key.event:
            if not entry.recorded:
                entry.last_seen = now
                return Seen.PENDING, entry.token
            if now - entry.last_seen <= self.ttl:
                entry.last_seen = now
                return Seen.RECORDED, entry.token
        token = next(self._tokens)
        seqs.pop(key.seq, None)
        seqs[key.seq] = _Entry(key.event, token, recorded=False, last_seen=now)
        while len(seqs) > self.window:
            seqs.popitem(last=False)
        return Seen.NEW, token

    def recorded(self, key: FrameKey, token: int) -> bool:
        """Mark a pending frame recorded. False if it was forgotten meanwhile (do not ACK)."""
        entry = self._entry(key, token)
        if entry is None:
            return False
        entry.recorded = True
        entry.last_seen = self._clock()
        return True

    def failed(self, key: FrameKey, token: int) -> None:
        """Forget a frame whose write failed, so that the box's next repeat is raised again."""
        if self._entry(key, token) is not None:
            del self._devices[key.dev][key.seq]

    def clear(self) -> None:
        self._devices.clear()

    def __len__(self) -> int:
        return sum(len(seqs) for seqs in self._devices.values())

    def _device(self, dev: str) -> OrderedDict[int, _Entry]:
        seqs = self._devices.get(dev)
        if seqs is None:
            seqs = self._devices[dev] = OrderedDict()
            while len(self._devices) > self.max_devices:
                self._devices.popitem(last=False)
        else:
            self._devices.move_to_end(dev)
        return seqs

    def _entry(self, key: FrameKey, token: int) -> _Entry | None:
        seqs = self._devices.get(key.dev)
        entry = seqs.get(key.seq) if seqs is not None else None
        if entry is None or entry.token != token or entry.event is not key.event:
            return None
        return entry
