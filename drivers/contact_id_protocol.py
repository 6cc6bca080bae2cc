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

from edgeguard.alarm_model import AlarmKind

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


# -- event codes ----------------------------------------------------------------------------------


class Handling(StrEnum):
    ALARM = "alarm"  # raise (Q=1/6) or restore (Q=3) an alarm of the code's kind
    SUPERVISION = "supervision"  # periodic test: the panel is alive; raises nothing
    LOG = "log"  # opening/closing, bypass, access, tests: logged, raises nothing


class Ccc(StrEnum):
    """What the CCC field of an event code holds."""

    ZONE = "zone"
    USER = "user"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    code: str
    description: str
    handling: Handling
    kind: AlarmKind | None  # None unless handling is ALARM
    priority: int | None
    category: str
    ccc: Ccc


_A, _S, _L = Handling.ALARM, Handling.SUPERVISION, Handling.LOG
_Z, _U = Ccc.ZONE, Ccc.USER
_PANIC, _DURESS = AlarmKind.PANIC, AlarmKind.DURESS
_INTR, _FAULT = AlarmKind.INTRUSION, AlarmKind.DEVICE_FAULT

# The mapping, one row per code: (code, description, handling, kind, priority, category, ccc).
# Names follow SIA DC-05 (Ademco Contact ID). There is no fire, gas or medical kind in the
# model: those life-safety alarms are raised as `panic` P1 with their category in the detail.
_ROWS: tuple[tuple[str, str, Handling, AlarmKind | None, int | None, str, Ccc], ...] = (
    # 1xx medical, fire, panic
    ("100", "Medical", _A, _PANIC, 1, "medical", _Z),
    ("101", "Personal emergency", _A, _PANIC, 1, "personal_emergency", _Z),
    ("102", "Fail to report in", _A, _PANIC, 1, "medical", _Z),
    ("110", "Fire", _A, _PANIC, 1, "fire", _Z),
    ("111", "Smoke", _A, _PANIC, 1, "fire", _Z),
    ("112", "Combustion", _A, _PANIC, 1, "fire", _Z),
    ("113", "Water flow", _A, _PANIC, 1, "fire", _Z),
    ("114", "Heat", _A, _PANIC, 1, "fire", _Z),
    ("115", "Pull station", _A, _PANIC, 1, "fire", _Z),
    ("116", "Duct", _A, _PANIC, 1, "fire", _Z),
    ("117", "Flame", _A, _PANIC, 1, "fire", _Z),
    ("118", "Near alarm (fire)", _A, _PANIC, 2, "fire", _Z),
    ("120", "Panic", _A, _PANIC, 1, "panic", _Z),
    ("121", "Duress", _A, _DURESS, 1, "duress", _U),
    ("122", "Silent panic (24 h)", _A, _PANIC, 1, "panic", _Z),
    ("123", "Audible panic (24 h)", _A, _PANIC, 1, "panic", _Z),
    ("124", "Duress - access granted", _A, _DURESS, 1, "duress", _Z),
    ("125", "Duress - egress granted", _A, _DURESS, 1, "duress", _Z),
    # 13x burglary
    ("130", "Burglary", _A, _INTR, 2, "burglary", _Z),
    ("131", "Perimeter burglary", _A, _INTR, 2, "burglary", _Z),
    ("132", "Interior burglary", _A, _INTR, 2, "burglary", _Z),
    ("133", "24 hour burglary (safe)", _A, _INTR, 2, "burglary", _Z),
    ("134", "Entry/exit burglary", _A, _INTR, 2, "burglary", _Z),
    ("135", "Day/night burglary", _A, _INTR, 2, "burglary", _Z),
    ("136", "Outdoor burglary", _A, _INTR, 2, "burglary", _Z),
    ("137", "Tamper", _A, _FAULT, 3, "tamper", _Z),
    ("138", "Near alarm (burglary)", _A, _INTR, 2, "burglary", _Z),
    ("139", "Intrusion verifier", _A, _INTR, 2, "burglary", _Z),
    # 14x general
    ("140", "General alarm", _A, _INTR, 2, "general_alarm", _Z),
    ("141", "Polling loop open", _A, _FAULT, 3, "trouble", _Z),
    ("142", "Polling loop short", _A, _FAULT, 3, "trouble", _Z),
    ("143", "Expansion module failure", _A, _FAULT, 3, "trouble", _Z),
    ("144", "Sensor tamper", _A, _FAULT, 3, "tamper", _Z),
    ("145", "Expansion module tamper", _A, _FAULT, 3, "tamper", _Z),
    ("146", "Silent burglary", _A, _INTR, 2, "burglary", _Z),
    ("147", "Sensor supervision failure", _A, _FAULT, 3, "supervision", _Z),
    # 15x/16x 24 hour non-burglary
    ("150", "24 hour non-burglary", _A, _FAULT, 3, "environmental", _Z),
    ("151", "Gas detected", _A, _PANIC, 1, "gas", _Z),
    ("152", "Refrigeration", _A, _FAULT, 3, "environmental", _Z),
    ("153", "Loss of heat", _A, _FAULT, 3, "environmental", _Z),
    ("154", "Water leakage", _A, _FAULT, 3, "environmental", _Z),
    ("155", "Foil break", _A, _INTR, 2, "burglary", _Z),
    ("156", "Day trouble", _A, _FAULT, 3, "trouble", _Z),
    ("157", "Low bottled gas level", _A, _FAULT, 3, "environmental", _Z),
    ("158", "High temperature", _A, _FAULT, 3, "environmental", _Z),
    ("159", "Low temperature", _A, _FAULT, 3, "environmental", _Z),
    ("161", "Loss of air flow", _A, _FAULT, 3, "environmental", _Z),
    ("162", "Carbon monoxide detected", _A, _PANIC, 1, "carbon_monoxide", _Z),
    ("163", "Tank level", _A, _FAULT, 3, "environmental", _Z),
    # 2xx supervisory (fire protection)
    ("200", "Fire supervisory", _A, _FAULT, 3, "supervisory", _Z),
    ("201", "Low water pressure", _A, _FAULT, 3, "supervisory", _Z),
    ("202", "Low CO2", _A, _FAULT, 3, "supervisory", _Z),
    ("203", "Gate valve sensor", _A, _FAULT, 3, "supervisory", _Z),
    ("204", "Low water level", _A, _FAULT, 3, "supervisory", _Z),
    ("205", "Pump activated", _A, _FAULT, 3, "supervisory", _Z),
    ("206", "Pump failure", _A, _FAULT, 3, "supervisory", _Z),
    # 3xx troubles
    ("300", "System trouble", _A, _FAULT, 3, "trouble", _Z),
    ("301", "AC loss", _A, _FAULT, 3, "power", _Z),
    ("302", "Low system battery", _A, _FAULT, 3, "power", _Z),
    ("303", "RAM checksum bad", _A, _FAULT, 3, "trouble", _Z),
    ("304", "ROM checksum bad", _A, _FAULT, 3, "trouble", _Z),
    ("305", "System reset", _L, None, None, "system", _Z),
    ("306", "Panel programming changed", _L, None, None, "system", _Z),
    ("307", "Self-test failure", _A, _FAULT, 3, "trouble", _Z),
    ("308", "System shutdown", _A, _FAULT, 3, "trouble", _Z),
    ("309", "Battery test failure", _A, _FAULT, 3, "power", _Z),
    ("310", "Ground fault", _A, _FAULT, 3, "trouble", _Z),
    ("311", "Battery missing/dead", _A, _FAULT, 3, "power", _Z),
    ("312", "Power supply overcurrent", _A, _FAULT, 3, "power", _Z),
    ("313", "Engineer reset", _L, None, None, "system", _U),
    ("320", "Sounder/relay", _A, _FAULT, 3, "trouble", _Z),
    ("321", "Bell 1", _A, _FAULT, 3, "trouble", _Z),
    ("322", "Bell 2", _A, _FAULT, 3, "trouble", _Z),
    ("323", "Alarm relay", _A, _FAULT, 3, "trouble", _Z),
    ("324", "Trouble relay", _A, _FAULT, 3, "trouble", _Z),
    ("325", "Reversing relay", _A, _FAULT, 3, "trouble", _Z),
    ("326", "Notification appliance circuit 3", _A, _FAULT, 3, "trouble", _Z),
    ("327", "Notification appliance circuit 4", _A, _FAULT, 3, "trouble", _Z),
    ("330", "System peripheral trouble", _A, _FAULT, 3, "trouble", _Z),
    ("331", "Polling loop open", _A, _FAULT, 3, "trouble", _Z),
    ("332", "Polling loop short", _A, _FAULT, 3, "trouble", _Z),
    ("333", "Expansion module failure", _A, _FAULT, 3, "trouble", _Z),
    ("334", "Repeater failure", _A, _FAULT, 3, "trouble", _Z),
    ("335", "Local printer out of paper", _A, _FAULT, 3, "trouble", _Z),
    ("336", "Local printer failure", _A, _FAULT, 3, "trouble", _Z),
    ("337", "Expansion module DC loss", _A, _FAULT, 3, "power", _Z),
    ("338", "Expansion module low battery", _A, _FAULT, 3, "power", _Z),
    ("339", "Expansion module reset", _A, _FAULT, 3, "trouble", _Z),
    ("341", "Expansion module tamper", _A, _FAULT, 3, "tamper", _Z),
    ("342", "Expansion module AC loss", _A, _FAULT, 3, "power", _Z),
    ("343", "Expansion module self-test failure", _A, _FAULT, 3, "trouble", _Z),
    ("344", "RF receiver jam detected", _A, _FAULT, 3, "trouble", _Z),
    ("350", "Communication trouble", _A, _FAULT, 3, "communication", _Z),
    ("351", "Telco 1 fault", _A, _FAULT, 3, "communication", _Z),
    ("352", "Telco 2 fault", _A, _FAULT, 3, "communication", _Z),
    ("353", "Long range radio transmitter fault", _A, _FAULT, 3, "communication", _Z),
    ("354", "Failure to communicate event", _A, _FAULT, 3, "communication", _Z),
    ("355", "Loss of radio supervision", _A, _FAULT, 3, "communication", _Z),
    ("356", "Loss of central polling", _A, _FAULT, 3, "communication", _Z),
    ("357", "Long range radio VSWR problem", _A, _FAULT, 3, "communication", _Z),
    ("370", "Protection loop", _A, _FAULT, 3, "trouble", _Z),
    ("371", "Protection loop open", _A, _FAULT, 3, "trouble", _Z),
    ("372", "Protection loop short", _A, _FAULT, 3, "trouble", _Z),
    ("373", "Fire trouble", _A, _FAULT, 3, "fire_trouble", _Z),
    ("374", "Exit error alarm (zone)", _A, _FAULT, 3, "trouble", _Z),
    ("375", "Panic zone trouble", _A, _FAULT, 2, "panic_trouble", _Z),
    ("376", "Hold-up zone trouble", _A, _FAULT, 2, "panic_trouble", _Z),
    ("377", "Swinger trouble", _A, _FAULT, 3, "trouble", _Z),
    ("378", "Cross-zone trouble", _A, _FAULT, 3, "trouble", _Z),
    ("380", "Sensor trouble", _A, _FAULT, 3, "trouble", _Z),
    ("381", "Loss of supervision - RF", _A, _FAULT, 3, "supervision", _Z),
    ("382", "Loss of supervision - RPM", _A, _FAULT, 3, "supervision", _Z),
    ("383", "Sensor tamper", _A, _FAULT, 3, "tamper", _Z),
    ("384", "RF low battery", _A, _FAULT, 3, "power", _Z),
    ("385", "Smoke detector high sensitivity", _A, _FAULT, 3, "fire_trouble", _Z),
    ("386", "Smoke detector low sensitivity", _A, _FAULT, 3, "fire_trouble", _Z),
    ("387", "Intrusion detector high sensitivity", _A, _FAULT, 3, "trouble", _Z),
    ("388", "Intrusion detector low sensitivity", _A, _FAULT, 3, "trouble", _Z),
    ("389", "Sensor self-test failure", _A, _FAULT, 3, "trouble", _Z),
    ("391", "Sensor watch trouble", _A, _FAULT, 3, "trouble", _Z),
    ("392", "Drift compensation error", _A, _FAULT, 3, "trouble", _Z),
    ("393", "Maintenance alert", _A, _FAULT, 3, "trouble", _Z),
    # 4xx open/close and access: logged only (CCC is the user, unless noted)
    ("400", "Open/close", _L, None, None, "open_close", _U),
    ("401", "Open/close by user", _L, None, None, "open_close", _U),
    ("402", "Group open/close", _L, None, None, "open_close", _U),
    ("403", "Automatic open/close", _L, None, None, "open_close", _U),
    ("404", "Late to open/close", _L, None, None, "open_close", _U),
    ("405", "Deferred open/close", _L, None, None, "open_close", _U),
    ("406", "Cancel", _L, None, None, "open_close", _U),
    ("407", "Remote arm/disarm", _L, None, None, "open_close", _U),
    ("408", "Quick arm", _L, None, None, "open_close", _U),
    ("409", "Keyswitch open/close", _L, None, None, "open_close", _U),
    ("411", "Callback request made", _L, None, None, "remote_access", _U),
    ("412", "Successful download/access", _L, None, None, "remote_access", _U),
    ("413", "Unsuccessful access", _L, None, None, "remote_access", _U),
    ("414", "System shutdown command received", _L, None, None, "remote_access", _U),
    ("415", "Dialer shutdown command received", _L, None, None, "remote_access", _U),
    ("416", "Successful upload", _L, None, None, "remote_access", _Z),
    ("421", "Access denied", _L, None, None, "access", _U),
    ("422", "Access report by user", _L, None, None, "access", _U),
    ("423", "Forced access", _A, _INTR, 2, "forced_access", _Z),
    ("424", "Egress denied", _L, None, None, "access", _U),
    ("425", "Egress granted", _L, None, None, "access", _U),
    ("426", "Access door propped open", _L, None, None, "access", _Z),
    ("427", "Access point door status monitor trouble", _L, None, None, "access", _Z),
    ("428", "Access point request to exit trouble", _L, None, None, "access", _Z),
    ("429", "Access program mode entry", _L, None, None, "access", _U),
    ("430", "Access program mode exit", _L, None, None, "access", _U),
    ("431", "Access threat level change", _L, None, None, "access", _U),
    ("432", "Access relay/trigger failure", _L, None, None, "access", _Z),
    ("433", "Access request-to-exit shunt", _L, None, None, "access", _Z),
    ("434", "Access door status monitor shunt", _L, None, None, "access", _Z),
    ("441", "Armed stay", _L, None, None, "open_close", _U),
    ("442", "Keyswitch armed stay", _L, None, None, "open_close", _U),
    ("450", "Exception open/close", _L, None, None, "open_close", _U),
    ("451", "Early open/close", _L, None, None, "open_close", _U),
    ("452", "Late open/close", _L, None, None, "open_close", _U),
    ("453", "Failed to open", _L, None, None, "open_close", _U),
    ("454", "Failed to close", _L, None, None, "open_close", _U),
    ("455", "Auto-arm failed", _L, None, None, "open_close", _U),
    ("456", "Partial arm", _L, None, None, "open_close", _U),
    ("457", "Exit error (user)", _L, None, None, "open_close", _U),
    ("458", "User on premises", _L, None, None, "open_close", _U),
    ("459", "Recent close", _L, None, None, "open_close", _U),
    ("461", "Wrong code entry", _L, None, None, "access", _Z),
    ("462", "Legal code entry", _L, None, None, "access", _U),
    ("463", "Re-arm after alarm", _L, None, None, "open_close", _U),
    ("464", "Auto-arm time extended", _L, None, None, "open_close", _U),
    ("465", "Panic alarm reset", _L, None, None, "open_close", _Z),
    ("466", "Service on/off premises", _L, None, None, "open_close", _U),
    # 5xx bypasses and disables: logged only
    ("501", "Access reader disable", _L, None, None, "disable", _Z),
    ("520", "Sounder/relay disable", _L, None, None, "disable", _Z),
    ("521", "Bell 1 disable", _L, None, None, "disable", _Z),
    ("522", "Bell 2 disable", _L, None, None, "disable", _Z),
    ("523", "Alarm relay disable", _L, None, None, "disable", _Z),
    ("524", "Trouble relay disable", _L, None, None, "disable", _Z),
    ("525", "Reversing relay disable", _L, None, None, "disable", _Z),
    ("526", "Notification appliance circuit 3 disable", _L, None, None, "disable", _Z),
    ("527", "Notification appliance circuit 4 disable", _L, None, None, "disable", _Z),
    ("531", "Module added", _L, None, None, "disable", _Z),
    ("532", "Module removed", _L, None, None, "disable", _Z),
    ("551", "Dialer disabled", _L, None, None, "disable", _Z),
    ("552", "Radio transmitter disabled", _L, None, None, "disable", _Z),
    ("553", "Remote upload/download disabled", _L, None, None, "disable", _Z),
    ("570", "Zone/sensor bypass", _L, None, None, "bypass", _Z),
    ("571", "Fire bypass", _L, None, None, "bypass", _Z),
    ("572", "24 hour zone bypass", _L, None, None, "bypass", _Z),
    ("573", "Burglary bypass", _L, None, None, "bypass", _U),
    ("574", "Group bypass", _L, None, None, "bypass", _Z),
    ("575", "Swinger bypass", _L, None, None, "bypass", _Z),
    ("576", "Access zone shunt", _L, None, None, "bypass", _Z),
    ("577", "Access point bypass", _L, None, None, "bypass", _Z),
    # 6xx tests and miscellaneous
    ("601", "Manual trigger test report", _L, None, None, "test", _Z),
    ("602", "Periodic test report", _S, None, None, "test", _Z),
    ("603", "Periodic RF transmission", _S, None, None, "test", _Z),
    ("604", "Fire test", _L, None, None, "test", _U),
    ("605", "Status report to follow", _L, None, None, "test", _Z),
    ("606", "Listen-in to follow", _L, None, None, "test", _Z),
    ("607", "Walk test mode", _L, None, None, "test", _U),
    ("608", "Periodic test - system trouble present", _S, None, None, "test", _Z),
    ("609", "Video transmitter active", _L, None, None, "test", _Z),
    ("611", "Point tested OK", _L, None, None, "test", _Z),
    ("612", "Point not tested", _L, None, None, "test", _Z),
    ("613", "Intrusion zone walk tested", _L, None, None, "test", _Z),
    ("614", "Fire zone walk tested", _L, None, None, "test", _Z),
    ("615", "Panic zone walk tested", _L, None, None, "test", _Z),
    ("616", "Service request", _L, None, None, "test", _Z),
    ("621", "Event log reset", _L, None, None, "event_log", _Z),
    ("622", "Event log 50% full", _L, None, None, "event_log", _Z),
    ("623", "Event log 90% full", _L, None, None, "event_log", _Z),
    ("624", "Event log overflow", _L, None, None, "event_log", _Z),
    ("625", "Time/date reset", _L, None, None, "system", _U),
    ("626", "Time/date inaccurate", _L, None, None, "system", _Z),
    ("627", "Program mode entry", _L, None, None, "system", _Z),
    ("628", "Program mode exit", _L, None, None, "system", _Z),
    ("629", "32 hour event log marker", _L, None, None, "event_log", _Z),
    ("630", "Schedule change", _L, None, None, "system", _Z),
    ("631", "Exception schedule change", _L, None, None, "system", _Z),
    ("632", "Access schedule change", _L, None, None, "system", _Z),
)

CODES: dict[str, CodeInfo] = {row[0]: CodeInfo(*row) for row in _ROWS}

# Codes outside the table, by the range the standard gives their first digit.
_RANGE_DEFAULTS: dict[str, tuple[str, Handling, AlarmKind | None, int | None, str, Ccc]] = {
    "1": ("Unknown alarm", _A, _INTR, 2, "unknown_alarm", _Z),
    "2": ("Unknown supervisory", _A, _FAULT, 3, "supervisory", _Z),
    "3": ("Unknown trouble", _A, _FAULT, 3, "trouble", _Z),
    "4": ("Unknown open/close or access", _L, None, None, "open_close", _U),
    "5": ("Unknown bypass or disable", _L, None, None, "bypass", _Z),
    "6": ("Unknown test or miscellaneous", _L, None, None, "test", _Z),
}
_UNDEFINED = ("Undefined event code", _L, None, None, "undefined", _Z)


def lookup(code: str) -> CodeInfo:
    """The table row of an event code, or the default of its range (0xx, 7xx-9xx and codes
    with B-F digits are outside the standard's ranges: logged only)."""
    info = CODES.get(code)
    if info is not None:
        return info
    default = _RANGE_DEFAULTS.get(code[:1], _UNDEFINED)
    return CodeInfo(code, *default)
