"""SIA DC-09 frames as IP alarm communicators send them (docs/drivers/sia-dc09.md). Pure code:
framing, CRC, AES, the timestamp window and the receiver's answers. No I/O.

A frame is ``LF crc len "id"seq[Rrcvr]Lline[#acct][data][xdata]..._HH:MM:SS,MM-DD-YYYY CR``:

* ``crc``: 4 hex digits, CRC-16/ARC (polynomial 0x8005 reflected = 0xA001, initial 0) of the
  bytes from the first ``"`` to the byte before CR; ``len``: 4 hex digits, their count.
* ``id``: the token, ``SIA-DCS``, ``ADM-CID`` or ``NULL``; a leading ``*`` means that
  everything after ``[`` is AES-CBC ciphertext (zero IV) in hex, which decrypts to
  ``<pad>|data]...[xdata]_timestamp`` (``<pad>]_timestamp`` for NULL).
* ``seq``: 4 decimal digits; ``R``/``L``: receiver and line prefix, 1-6 hex digits; ``#acct``:
  the account, 3-16 hex digits.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

LF, CR = 0x0A, 0x0D
MAX_FRAME = 4096 + 10  # the length field is 4 hex digits starting with 0: at most 0x0FFF
TIME_FORMAT = "%H:%M:%S,%m-%d-%Y"
TOKENS = frozenset({"SIA-DCS", "ADM-CID", "NULL"})
KEY_SIZES = frozenset({16, 24, 32})

_HEADER_RE = re.compile(
    r'"(?P<enc>\*?)(?P<token>[^"]{1,16})"(?P<seq>[0-9]{4})(?:R(?P<rcvr>[0-9A-Fa-f]{1,6}))?'
    r"L(?P<line>[0-9A-Fa-f]{1,6})(?:#(?P<acct>[0-9A-Fa-f]{3,16}))?\["
)
_TAIL_RE = re.compile(
    r"(?P<xdata>(?:\[[^\[\]]*\])*)(?:_(?P<ts>[0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{2}-[0-9]{2}-[0-9]{4}))?"
)
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{32})+")
_PAD_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "|[]")
_CRC_TABLE: list[int] = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0xA001 if _crc & 1 else _crc >> 1
    _CRC_TABLE.append(_crc)


class Reason(StrEnum):
    """Why a frame was refused; ``answer`` is what the receiver sends back for it."""

    FRAMING = "framing"  # no LF ... CR, too long, control bytes: NAK
    LENGTH = "length"  # length field does not match: NAK
    CRC = "crc"  # NAK
    FORMAT = "format"  # header or content not DC-09: NAK
    DECRYPT = "decrypt"  # ciphertext that does not decrypt to a DC-09 content: NAK
    TIME = "time"  # timestamp missing (encrypted) or outside the window: NAK with our time
    UNSUPPORTED = "unsupported"  # a token (protocol) we do not support: DUH
    ACCOUNT = "account"  # an account that is not configured (or has no key): DUH
    DATA = "data"  # well-formed frame whose data we cannot read: DUH

    @property
    def answer(self) -> str:
        return "DUH" if self in (Reason.UNSUPPORTED, Reason.ACCOUNT, Reason.DATA) else "NAK"


class FrameError(ValueError):
    def __init__(self, reason: Reason, message: str, frame: Frame | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.frame = frame


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame whose CRC and length were checked. ``body`` is what follows the ``[``: the
    content, or for an encrypted frame its ciphertext in hex."""

    ident: str  # the token: SIA-DCS, ADM-CID, NULL
    encrypted: bool
    seq: str
    receiver: str | None
    line: str
    account: str | None
    body: str


@dataclass(frozen=True, slots=True)
class Content:
    """The readable part of a frame: data (without its ``]``), extended data, timestamp."""

    data: str
    xdata: tuple[str, ...]
    timestamp: datetime | None


def crc16(data: bytes) -> int:
    """CRC-16/ARC, as SIA DC-09 specifies: ``crc16(b"123456789") == 0xBB3D``."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def wrap(body: str) -> bytes:
    """``LF crc len body CR`` for a frame body (from its first ``"``)."""
    raw = body.encode("ascii")
    return b"\n%04X%04X%s\r" % (crc16(raw), len(raw), raw)


def split_frame(raw: bytes) -> Frame:
    """Check and split one frame: the bytes between LF and CR (either may still be there)."""
    raw = raw.strip(b"\r\n")
    if len(raw) < 8 + 14 or len(raw) > MAX_FRAME:
        raise FrameError(Reason.FRAMING, f"frame of {len(raw)} bytes")
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise FrameError(Reason.FRAMING, "control or non-ASCII byte in frame")
    text = raw.decode("ascii")
    try:
        crc, length = int(text[0:4], 16), int(text[4:8], 16)
    except ValueError:
        raise FrameError(Reason.FORMAT, "CRC or length field is not hex") from None
    body = text[8:]
    if length != len(body):
        raise FrameError(Reason.LENGTH, f"length field {length}, frame {len(body)}")
    if crc != crc16(raw[8:]):
        raise FrameError(Reason.CRC, f"CRC {text[0:4]} does not match {crc16(raw[8:]):04X}")
    match = _HEADER_RE.match(body)
    if match is None:
        raise FrameError(Reason.FORMAT, "header is not \"id\"seq[R]L[#acct][")
    frame = Frame(
        ident=match["token"],
        encrypted=bool(match["enc"]),
        seq=match["seq"],
        receiver=match["rcvr"].upper() if match["rcvr"] else None,
        line=match["line"].upper(),
        account=match["acct"].upper() if match["acct"] else None,
        body=body[match.end() :],
    )
    if frame.ident not in TOKENS:
        raise FrameError(Reason.UNSUPPORTED, f"token {frame.ident!r} is not supported", frame)
    return frame


def parse_content(text: str, *, frame: Frame | None = None) -> Content:
    """``data]`` + optional ``[xdata]``s + optional ``_timestamp``, nothing else."""
    data, bracket, tail = text.partition("]")
    match = _TAIL_RE.fullmatch(tail)
    if not bracket or "[" in data or match is None:
        raise FrameError(Reason.FORMAT, "content is not data][xdata]_HH:MM:SS,MM-DD-YYYY", frame)
    xdata = tuple(re.findall(r"\[([^\[\]]*)\]", match["xdata"]))
    timestamp = None
    if match["ts"]:
        try:
            timestamp = datetime.strptime(match["ts"], TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise FrameError(Reason.FORMAT, f"bad timestamp {match['ts']!r}", frame) from None
    return Content(data, xdata, timestamp)


# -- encryption -------------------------------------------------------------------------------


def _cipher(key: bytes) -> Cipher[modes.CBC]:
    if len(key) not in KEY_SIZES:
        raise ValueError("AES keys are 16, 24 or 32 bytes")
    return Cipher(algorithms.AES(key), modes.CBC(bytes(16)))


def decrypt(body: str, key: bytes, *, frame: Frame | None = None) -> str:
    """The content of an encrypted frame: decrypt, drop the padding up to ``|`` (or up to
    the ``]`` of an empty data field)."""
    if _HEX_RE.fullmatch(body) is None:
        raise FrameError(Reason.FORMAT, "ciphertext is not hex in 16-byte blocks", frame)
    decryptor = _cipher(key).decryptor()
    plain = (decryptor.update(bytes.fromhex(body)) + decryptor.finalize()).decode("latin-1")
    bar, bracket = plain.find("|"), plain.find("]")
    if bar >= 0 and (bracket < 0 or bar < bracket):
        content = plain[bar + 1 :]
    elif bracket >= 0:
        content = plain[bracket:]
    else:
        raise FrameError(Reason.DECRYPT, "decrypted text has no '|' or ']' (wrong key?)", frame)
    if not content.isascii() or not content.isprintable():
        raise FrameError(Reason.DECRYPT, "decrypted text is not printable (wrong key?)", frame)
    return content


def encrypt(text: str, key: bytes) -> str:
    """Hex ciphertext of random padding + ``text`` (a block multiple, at least one pad byte)."""
    pad = 16 - len(text) % 16
    padding = "".join(secrets.choice(_PAD_CHARS) for _ in range(pad))
    encryptor = _cipher(key).encryptor()
    data = encryptor.update((padding + text).encode("ascii")) + encryptor.finalize()
    return data.hex().upper()


# -- time -------------------------------------------------------------------------------------


def format_time(when: datetime) -> str:
    return "_" + when.astimezone(UTC).strftime(TIME_FORMAT)


def in_window(stamp: datetime, now: datetime, max_age: float, max_ahead: float) -> bool:
    """DC-09's window: no older than ``max_age`` s, no more than ``max_ahead`` s ahead."""
    return now - timedelta(seconds=max_age) <= stamp <= now + timedelta(seconds=max_ahead)


# -- answers ----------------------------------------------------------------------------------


def answer(word: str, frame: Frame, key: bytes | None, now: datetime) -> bytes:
    """``"ACK"``/``"DUH"`` echoing the frame's sequence, prefixes and account. An ACK to an
    encrypted frame is encrypted and carries our time; a DUH never is."""
    head = f"{frame.seq}{'R' + frame.receiver if frame.receiver else ''}L{frame.line}"
    head += f"#{frame.account}" if frame.account else ""
    if key is not None and word == "ACK":
        return wrap(f'"*{word}"{head}[{encrypt("]" + format_time(now), key)}')
    return wrap(f'"{word}"{head}[]')


def nak(now: datetime) -> bytes:
    """The NAK, always in the clear and with our time: ``"NAK"0000R0L0A0[]_HH:MM:SS,...``."""
    return wrap(f'"NAK"0000R0L0A0[]{format_time(now)}')


# -- a byte stream (TCP) into frames ----------------------------------------------------------


class Overlong:
    """Marker: bytes after an LF that reached ``MAX_FRAME`` without a CR; they were dropped."""


class FrameSplitter:
    """Cuts a byte stream into ``LF ... CR`` frames. Bytes before an LF are noise and dropped;
    memory is bounded by ``MAX_FRAME``."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False

    def feed(self, data: bytes) -> list[bytes | Overlong]:
        out: list[bytes | Overlong] = []
        view = memoryview(data)
        while view:
            if not self._in_frame:
                start = bytes(view).find(b"\n")
                if start < 0:
                    return out
                view, self._in_frame = view[start + 1 :], True
                self._buf.clear()
                continue
            end = bytes(view).find(b"\r")
            chunk = view if end < 0 else view[:end]
            lf = bytes(chunk).find(b"\n")
            if lf >= 0:  # a new frame starts before this one ended: restart there
                view = view[lf:]
                self._in_frame = False
                continue
            if len(self._buf) + len(chunk) > MAX_FRAME:
                out.append(Overlong())
                self._in_frame = False
                view = view[end + 1 :] if end >= 0 else view[len(view) :]
                continue
            self._buf += chunk
            if end < 0:
                return out
            out.append(bytes(self._buf))
            self._buf.clear()
            self._in_frame = False
            view = view[end + 1 :]
        return out
