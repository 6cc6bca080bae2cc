"""The data field of a DC-09 frame: SIA event blocks (``SIA-DCS``, SIA DC-04/DC-03 codes) and
Contact ID events (``ADM-CID``, SIA DC-05), and what each SIA code raises. Pure code.

``SIA-DCS`` data: ``[#acct]|N[ri<area>/][id<user>/][ti<HH:MM>/]<CC><zone>[/<CC><zone>...]``
(``^text^`` and ``*"text"NM`` annotations are skipped), e.g. ``#1234|NBA01``,
``#123456|Nri1CL0^VX FRONTE ^``. ``ADM-CID`` data: ``[#acct]|QXYZ GG CCC``, e.g.
``#1234|1130 01 015``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgeguard.alarm_model import AlarmKind

from .contact_id_codes import Handling
from .contact_id_protocol import Qualifier
from .sia_dc09_protocol import Frame, FrameError, Reason

_ACCOUNT_RE = re.compile(r"(?:#(?P<acct>[0-9A-Fa-f]{3,16}))?\|?")
_TOKEN_RE = re.compile(
    r"(?P<sep>[/ ]+)|(?P<text>\^[^^]*\^|\*\"[^\"]*\"(?:NM)?)"
    r"|(?P<mod>[a-z]{2})(?P<value>[0-9:]{0,8})|(?P<code>[A-Z]{2})(?P<addr>[0-9]{0,6})"
)
_ADM_RE = re.compile(
    r"(?P<q>[136])(?P<xyz>[0-9A-Fa-f]{3}) (?P<gg>[0-9A-Fa-f]{2}) (?P<ccc>[0-9A-Fa-f]{3})"
)
_QUALIFIERS = {"1": Qualifier.NEW, "3": Qualifier.RESTORE, "6": Qualifier.STATUS}


@dataclass(frozen=True, slots=True)
class SiaEvent:
    """One SIA event block: a two-letter code, its address (zone, or user for some codes; ``""``
    when none), and the modifiers before it (``ri`` area, ``id`` user, ``ti`` time)."""

    code: str
    address: str
    area: str | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class CidEvent:
    """A Contact ID event carried in ``ADM-CID``."""

    qualifier: Qualifier
    event_code: str
    group: str
    ccc: str


def _account(data: str, frame: Frame | None) -> tuple[str | None, str]:
    match = _ACCOUNT_RE.match(data)
    assert match is not None  # every part is optional
    account = match["acct"].upper() if match["acct"] else None
    if account is not None and frame is not None and frame.account not in (None, account):
        raise FrameError(Reason.FORMAT, "account in header and data differ", frame)
    return account, data[match.end() :]


def parse_sia(data: str, frame: Frame | None = None) -> tuple[str | None, list[SiaEvent]]:
    """The account (if the data names one) and the event blocks of SIA-DCS data."""
    account, rest = _account(data, frame)
    rest = rest.split("|", 1)[0]  # "|A<text>" after the events: a comment
    if rest[:1] == "N":
        rest = rest[1:]  # N: a new event block (DC-03 data always starts with it)
    modifiers: dict[str, str] = {}
    events: list[SiaEvent] = []
    pos = 0
    while pos < len(rest):
        match = _TOKEN_RE.match(rest, pos)
        if match is None or match.end() == pos:
            raise FrameError(Reason.DATA, f"unreadable SIA data at {rest[pos:pos + 8]!r}", frame)
        pos = match.end()
        if match["mod"]:
            modifiers[match["mod"]] = match["value"]
        elif match["code"]:
            address = match["addr"].lstrip("0") or ("0" if match["addr"] else "")
            events.append(
                SiaEvent(match["code"], address, modifiers.get("ri"), modifiers.get("id"))
            )
    if not events:
        raise FrameError(Reason.DATA, "SIA data without an event code", frame)
    return account, events


def parse_adm(data: str, frame: Frame | None = None) -> tuple[str | None, CidEvent]:
    """The account (if named) and the Contact ID event of ADM-CID data."""
    account, rest = _account(data, frame)
    match = _ADM_RE.fullmatch(rest)
    if match is None:
        raise FrameError(Reason.DATA, "ADM-CID data is not QXYZ GG CCC", frame)
    norm = {k: v.upper().replace("A", "0") for k, v in match.groupdict().items()}
    return account, CidEvent(_QUALIFIERS[norm["q"]], norm["xyz"], norm["gg"], norm["ccc"])


# -- SIA event codes --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiaCode:
    """What a SIA code does. A restore names the alarm code it restores (``BR`` -> ``BA``), so
    that both act on the same alarm source."""

    code: str
    description: str
    handling: Handling
    kind: AlarmKind | None = None
    priority: int | None = None
    category: str = ""
    restores: str | None = None


_A, _S, _L = Handling.ALARM, Handling.SUPERVISION, Handling.LOG
_P, _D, _I, _F = AlarmKind.PANIC, AlarmKind.DURESS, AlarmKind.INTRUSION, AlarmKind.DEVICE_FAULT

# (alarm code, description, kind, priority, category, restore code). Life-safety alarms with no
# kind of their own in the model (fire, medical, gas) are panic P1, as in the Contact ID table.
_ALARMS: tuple[tuple[str, str, AlarmKind, int, str, str], ...] = (
    ("BA", "Burglary alarm", _I, 2, "burglary", "BR"),
    ("PA", "Panic alarm", _P, 1, "panic", "PR"),
    ("HA", "Hold-up alarm (duress)", _D, 1, "holdup", "HR"),
    ("DF", "Door forced", _I, 2, "burglary", "DR"),
    ("FA", "Fire alarm", _P, 1, "fire", "FR"),
    ("KA", "Heat alarm", _P, 1, "fire", "KR"),
    ("MA", "Medical alarm", _P, 1, "medical", "MR"),
    ("GA", "Gas alarm", _P, 1, "gas", "GR"),
    ("QA", "Emergency alarm", _P, 1, "emergency", "QR"),
    ("TA", "Tamper alarm", _F, 3, "tamper", "TR"),
    ("ES", "Expansion module tamper", _F, 3, "tamper", "EJ"),
    ("BT", "Burglary trouble", _F, 3, "trouble", "BJ"),
    ("PT", "Panic trouble", _F, 2, "panic_trouble", "PJ"),
    ("HT", "Hold-up trouble", _F, 2, "panic_trouble", "HJ"),
    ("FT", "Fire trouble", _F, 3, "fire_trouble", "FJ"),
    ("MT", "Medical trouble", _F, 3, "trouble", "MJ"),
    ("UT", "Untyped zone trouble", _F, 3, "trouble", "UJ"),
    ("AT", "AC trouble", _F, 3, "power", "AR"),
    ("YT", "System battery trouble", _F, 3, "power", "YR"),
    ("YP", "Power supply trouble", _F, 3, "power", "YQ"),
    ("YS", "Communications trouble", _F, 3, "communication", "YK"),
    ("XT", "Transmitter battery trouble", _F, 3, "power", "XR"),
    ("WA", "Water alarm", _F, 3, "environmental", "WR"),
    ("ZA", "Freeze alarm", _F, 3, "environmental", "ZR"),
)
_TESTS = (("RP", "Automatic test"), ("RX", "Manual test"), ("RY", "Exit manual test"))
_LOGGED = (
    ("OP", "Opening"), ("CL", "Closing"), ("OA", "Automatic opening"),
    ("CA", "Automatic closing"), ("OR", "Disarm from alarm"), ("CG", "Close area"),
    ("OG", "Open area"), ("BB", "Burglary bypass"), ("BU", "Burglary unbypass"),
    ("RR", "Power up"), ("RS", "Remote program success"), ("LB", "Local program begin"),
    ("LX", "Local program end"), ("JA", "User code tamper"), ("NL", "Perimeter armed"),
    ("BC", "Burglary cancel"), ("PC", "Panic cancel"), ("HC", "Hold-up cancel"),
)


def _table() -> dict[str, SiaCode]:
    table: dict[str, SiaCode] = {}
    for code, desc, kind, prio, category, restore in _ALARMS:
        table[code] = SiaCode(code, desc, _A, kind, prio, category)
        if restore not in table:
            table[restore] = SiaCode(restore, f"{desc} restoral", _A, kind, prio, category, code)
    for code, desc in _TESTS:
        table[code] = SiaCode(code, desc, _S, category="test")
    for code, desc in _LOGGED:
        table[code] = SiaCode(code, desc, _L, category="log")
    return table


SIA_CODES = _table()


def sia_code(code: str) -> SiaCode:
    """The table's row; for a code outside it, an alarm when it ends in ``A`` (the SIA
    convention for alarms: an unknown alarm is still an alarm), its restore when it ends in
    ``R``, else a logged ``unknown`` row."""
    known = SIA_CODES.get(code)
    if known is not None:
        return known
    if code.endswith("A"):
        return SiaCode(code, "Unknown SIA alarm", _A, _I, 2, category="unknown_alarm")
    if code.endswith("R"):
        return SiaCode(code, "Unknown SIA alarm restore", _A, _I, 2, category="unknown_alarm",
                       restores=f"{code[0]}A")
    return SiaCode(code, "Unknown SIA code", _L, category="unknown")
