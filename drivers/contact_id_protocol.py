"""Ademco Contact ID (SIA DC-05) messages as an alarm panel or receiver prints them on a serial
port. Pure code: parsing, checksums, building messages and the event-code table. No I/O.

A Contact ID message is 16 digits ``ACCT MT QXYZ GG CCC S`` (docs/drivers/contact-id.md):

* ``ACCT`` account (4), ``MT`` message type (``18`` or ``98``), ``Q`` qualifier (1 new event or
  opening, 3 restore or closing, 6 still present), ``XYZ`` event code, ``GG`` group/partition,
  ``CCC`` zone or user number, ``S`` check digit.
* Digits are 0-9 and B-F; the digit 0 counts 10 in the checksum and may be written ``0`` or
  ``A``. The message is valid when the sum of its 16 digit values is a multiple of 15.

Two line forms are understood:

* plain (:func:`parse_line`): the 16 digits, optionally with one space between fields, one
  message per line;
* Sur-Gard / MLR2 automation output (:func:`parse_surgard_line`):
  ``5RRL[LL] 18AAAAQXYZGGCCC`` with ``Q`` = ``E``/``R``/``P``, terminated by DC4 (0x14), no
  check digit (the receiver checked it), and the supervisory heartbeat ``1RR...@...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

MESSAGE_TYPES = frozenset({"18", "98"})
MAX_LINE = 64  # longest line either parser looks at (a plain message is at most 21 bytes)
DC4 = b"\x14"  # Sur-Gard message terminator
ACK = b"\x06"
NAK = b"\x15"

_DIGIT_VALUES = {**{str(d): d for d in range(1, 10)}, "0": 10, "A": 10} | {
    c: 11 + i for i, c in enumerate("BCDEF")
}
_VALUE_DIGITS = {value: digit for digit, value in _DIGIT_VALUES.items() if digit != "A"}
_HEX = "[0-9A-Fa-f]"
_PLAIN_RE = re.compile(
    rf"(?P<acct>{_HEX}{{4}}) ?(?P<mt>{_HEX}{{2}}) ?(?P<q>{_HEX})(?P<xyz>{_HEX}{{3}}) ?"
    rf"(?P<gg>{_HEX}{{2}}) ?(?P<ccc>{_HEX}{{3}}) ?(?P<s>{_HEX})"
)
# 5 RR L[LL] [space] 18 AAAA Q XYZ GG CCC [HH:MM:SS-dd/mm]: MLR2 has a 1-character line
# number; newer Sur-Gard receivers can be set to send up to 3.
_SURGARD_RE = re.compile(
    r"5(?P<rr>[0-9A-F]{2})(?P<line>[0-9A-F]{1,3}) ?(?P<mt>18|98)(?P<acct>[0-9A-F]{4})"
    r"(?P<q>[ERP136])(?P<xyz>[0-9A-F]{3})(?P<gg>[0-9A-F]{2})(?P<ccc>[0-9A-F]{3})"
    r"(?:[0-9]{2}:[0-9]{2}:[0-9]{2}-[0-9]{2}/[0-9]{2})?"
)
_HEARTBEAT_RE = re.compile(r"1(?P<rr>[0-9A-F]{2})[0-9A-F]{1,3} +@ *")
_SURGARD_START = re.compile(r"[0-9A-Z]")
_PRINTABLE = frozenset(range(0x20, 0x7F))


class Qualifier(StrEnum):
    NEW = "new"  # Q=1: new event, or opening (disarm)
    RESTORE = "restore"  # Q=3: restore, or closing (arm)
    STATUS = "status"  # Q=6: previously reported condition still present


_QUALIFIERS = {
    "1": Qualifier.NEW,
    "3": Qualifier.RESTORE,
    "6": Qualifier.STATUS,
    "E": Qualifier.NEW,
    "R": Qualifier.RESTORE,
    "P": Qualifier.STATUS,
}
_QUALIFIER_DIGITS = {Qualifier.NEW: "1", Qualifier.RESTORE: "3", Qualifier.STATUS: "6"}


class Reason(StrEnum):
    """Why a line was rejected."""

    EMPTY = "empty"
    LENGTH = "length"  # too long, or not 16 digits
    CHARS = "chars"  # non-ASCII, control or non-hex characters
    CHECKSUM = "checksum"
    MESSAGE_TYPE = "message_type"  # not 18 or 98
    QUALIFIER = "qualifier"  # not 1, 3 or 6
    UNSUPPORTED = "unsupported"  # Sur-Gard: a well-formed line of another protocol


class ContactIdError(ValueError):
    """A line that is not a valid Contact ID message (or Sur-Gard frame)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class ContactIdMessage:
    """A valid message. Fields are upper-case text with the digit ``A`` written ``0``.

    ``checksum_ok`` is True when the line carried the check digit and it was verified, None when
    the line form has none (Sur-Gard output: the receiver verified it).
    """

    account: str
    message_type: str
    qualifier: Qualifier
    event_code: str
    group: str
    zone_or_user: str
    checksum_ok: bool | None
    raw: str
    receiver: str | None = None
    line: str | None = None

    @property
    def digits(self) -> str:
        """The 15 digits before the check digit, ``ACCTMTQXYZGGCCC``."""
        return (
            f"{self.account}{self.message_type}{_QUALIFIER_DIGITS[self.qualifier]}"
            f"{self.event_code}{self.group}{self.zone_or_user}"
        )


@dataclass(frozen=True, slots=True)
class SurgardHeartbeat:
    """The Sur-Gard supervisory heartbeat (``1RR...@...``): acknowledge it, raise nothing."""

    receiver: str
    raw: str


# -- checksum and building --------------------------------------------------------------------


def digit_value(char: str) -> int:
    """Checksum value of one Contact ID digit: 0 and A count 10, B-F 11-15. KeyError if none."""
    return _DIGIT_VALUES[char.upper()]


def checksum_ok(digits: str) -> bool:
    """True if ``digits`` is 16 Contact ID digits whose values sum to a multiple of 15."""
    if len(digits) != 16 or not all(c.upper() in _DIGIT_VALUES for c in digits):
        return False
    return sum(digit_value(c) for c in digits) % 15 == 0


def check_digit(digits15: str) -> str:
    """The digit that completes 15 Contact ID digits to a valid message."""
    if len(digits15) != 15:
        raise ValueError(f"expected 15 digits, got {len(digits15)}")
    try:
        total = sum(digit_value(c) for c in digits15)
    except KeyError:
        raise ValueError(f"not Contact ID digits: {digits15!r}") from None
    return _VALUE_DIGITS[15 - total % 15]  # 1..15: never 0, so 15 stands for "already a multiple"


def _field(value: int | str, width: int, what: str) -> str:
    text = f"{value:0{width}d}" if isinstance(value, int) else value.upper().replace("A", "0")
    if len(text) != width or any(c not in _DIGIT_VALUES for c in text):
        raise ValueError(f"{what} must be {width} Contact ID digits (0-9, B-F): {value!r}")
    return text


def make_message(
    account: int | str,
    event_code: int | str,
    zone_or_user: int | str = 0,
    *,
    qualifier: Qualifier | int | str = Qualifier.NEW,
    group: int | str = 0,
    message_type: str = "18",
    spaces: bool = False,
) -> str:
    """A valid 16-digit message (with its check digit), e.g. ``make_message(1234, 120, 5)``."""
    q = qualifier if isinstance(qualifier, Qualifier) else _QUALIFIERS[str(qualifier)]
    fields = [
        _field(account, 4, "account"),
        _field(message_type, 2, "message type"),
        _QUALIFIER_DIGITS[q] + _field(event_code, 3, "event code"),
        _field(group, 2, "group"),
        _field(zone_or_user, 3, "zone or user"),
    ]
    fields.append(check_digit("".join(fields)))
    return " ".join(fields) if spaces else "".join(fields)


def make_surgard_message(
    account: int | str,
    event_code: int | str,
    zone_or_user: int | str = 0,
    *,
    qualifier: Qualifier | int | str = Qualifier.NEW,
    group: int | str = 0,
    receiver: int = 1,
    line: int = 1,
) -> bytes:
    """A Sur-Gard (MLR2) Contact ID line with its DC4, e.g. ``b"5011 181234E12101001\\x14"``."""
    q = qualifier if isinstance(qualifier, Qualifier) else _QUALIFIERS[str(qualifier)]
    letter = {Qualifier.NEW: "E", Qualifier.RESTORE: "R", Qualifier.STATUS: "P"}[q]
    text = (
        f"5{receiver:02X}{line:X} 18{_field(account, 4, 'account')}{letter}"
        f"{_field(event_code, 3, 'event code')}{_field(group, 2, 'group')}"
        f"{_field(zone_or_user, 3, 'zone or user')}"
    )
    return text.encode("ascii") + DC4


# -- parsing --------------------------------------------------------------------------------------


def _text(line: bytes) -> str:
    """Strip whitespace and terminators; check length and characters; return ASCII text."""
    body = line.strip(b" \t\r\n\x14")
    if not body:
        raise ContactIdError(Reason.EMPTY, "empty line")
    if len(body) > MAX_LINE:
        raise ContactIdError(Reason.LENGTH, f"line of {len(body)} bytes is longer than {MAX_LINE}")
    if not _PRINTABLE.issuperset(body):
        raise ContactIdError(Reason.CHARS, "non-ASCII or control byte in line")
    return body.decode("ascii")


def _norm(text: str) -> str:
    return text.upper().replace("A", "0")


def _qualifier(char: str, *, letters: bool = True) -> Qualifier:
    """Q of a message; the letters E, R, P only in Sur-Gard output (in a plain line E is a
    hex digit that counts 14 in the checksum, not a qualifier)."""
    qualifier = _QUALIFIERS.get(char) if letters or char.isdigit() else None
    if qualifier is None:
        raise ContactIdError(Reason.QUALIFIER, f"qualifier {char!r} is not 1, 3 or 6")
    return qualifier


def parse_line(line: bytes) -> ContactIdMessage:
    """Parse one plain line (terminator optional); raise :class:`ContactIdError`.

    Checks, in order: characters and length, the checksum, the message type (18 or 98), the
    qualifier (1, 3 or 6).
    """
    text = _text(line)
    match = _PLAIN_RE.fullmatch(text)
    if match is None:
        compact = text.replace(" ", "")
        if len(compact) != 16 and all(c in "0123456789ABCDEFabcdef" for c in compact):
            raise ContactIdError(Reason.LENGTH, f"expected 16 digits, got {len(compact)}")
        raise ContactIdError(Reason.CHARS, "expected digits 0-9, A-F, one space between fields")
    digits = "".join(match.groups())
    if not checksum_ok(digits):
        total = sum(digit_value(c) for c in digits)
        raise ContactIdError(Reason.CHECKSUM, f"digit sum {total} is not a multiple of 15")
    if _norm(match["mt"]) not in MESSAGE_TYPES:
        raise ContactIdError(Reason.MESSAGE_TYPE, f"message type {match['mt']!r} is not 18 or 98")
    return ContactIdMessage(
        account=_norm(match["acct"]),
        message_type=_norm(match["mt"]),
        qualifier=_qualifier(match["q"], letters=False),
        event_code=_norm(match["xyz"]),
        group=_norm(match["gg"]),
        zone_or_user=_norm(match["ccc"]),
        checksum_ok=True,
        raw=text,
    )


def parse_surgard_line(line: bytes) -> ContactIdMessage | SurgardHeartbeat:
    """Parse one Sur-Gard automation line (DC4 optional); raise :class:`ContactIdError`.

    ``Reason.UNSUPPORTED``: a printable line that starts like a Sur-Gard protocol line but is
    not Contact ID (protocol 5) or the heartbeat; the caller may acknowledge it so that the
    receiver does not stall, after logging it.
    """
    text = _text(line)
    heartbeat = _HEARTBEAT_RE.fullmatch(text)
    if heartbeat is not None:
        return SurgardHeartbeat(receiver=heartbeat["rr"], raw=text)
    match = _SURGARD_RE.fullmatch(text)
    if match is not None:
        return ContactIdMessage(
            account=_norm(match["acct"]),
            message_type=match["mt"],
            qualifier=_qualifier(match["q"]),
            event_code=_norm(match["xyz"]),
            group=_norm(match["gg"]),
            zone_or_user=_norm(match["ccc"]),
            checksum_ok=None,
            raw=text,
            receiver=match["rr"],
            line=match["line"],
        )
    if text.startswith("5"):
        raise ContactIdError(Reason.CHARS, "protocol 5 line is not 5RRL 18AAAAQXYZGGCCC")
    if _SURGARD_START.match(text) is None:
        raise ContactIdError(Reason.CHARS, "line does not start with a Sur-Gard protocol id")
    raise ContactIdError(Reason.UNSUPPORTED, f"Sur-Gard protocol {text[0]!r} is not Contact ID")
