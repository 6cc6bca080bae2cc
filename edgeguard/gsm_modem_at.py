"""The AT dialogue of a GSM/4G modem for SMS in text mode with UCS2 (3GPP TS 27.005 / 27.007),
as pure functions: encoding, trimming, and parsing what the modem answers. No I/O.

Text mode with ``AT+CSCS="UCS2"``: the destination number and the text are both written as
UCS2 (UTF-16BE) hex, four hex digits per character (Quectel EC25/EC21 AT Commands Manual
V1.3, SIMCom SIM800 Series AT Command Manual V1.09: +CSCS, +CMGS). ``AT+CSMP=17,167,0,8``
sets first octet 17 (SMS-SUBMIT, relative validity period), validity 167 (24 h), PID 0 and
DCS 8 (UCS2). One SMS holds 140 octets: 70 UCS2 units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CTRL_Z = b"\x1a"
ESC = b"\x1b"
PROMPT = b"> "
SMS_UNITS = 70  # UCS2 code units in one (unconcatenated) SMS
ELLIPSIS = "…"
MAX_LINE = 1024  # a longer "line" is garbage: dropped

INIT_COMMANDS = ("AT", "ATE0", "AT+CMEE=2", "AT+CMGF=1", 'AT+CSCS="UCS2"', "AT+CSMP=17,167,0,8")

_CREG = re.compile(r"^\+CREG:\s*(\d+)\s*,\s*(\d+)")
_CREG_URC = re.compile(r"^\+CREG:\s*(\d+)\s*$")
_CSQ = re.compile(r"^\+CSQ:\s*(\d+)\s*,\s*(\d+)")
_CMGS = re.compile(r"^\+CMGS:\s*(\d+)")
_ERROR = re.compile(r"^\+(CME|CMS) ERROR:\s*(.{1,120})$")

REGISTRATION = {
    0: "not registered, not searching",
    1: "registered, home network",
    2: "not registered, searching",
    3: "registration denied",
    4: "unknown",
    5: "registered, roaming",
}


def ucs2_hex(text: str) -> str:
    """``text`` as UCS2 hex for text mode with ``+CSCS="UCS2"`` (upper case, UTF-16BE)."""
    return text.encode("utf-16-be").hex().upper()


def ucs2_decode(hex_text: str) -> str:
    """The inverse of :func:`ucs2_hex`; ValueError when it is not UCS2 hex."""
    if len(hex_text) % 4:
        raise ValueError("UCS2 hex must have 4 digits per character")
    return bytes.fromhex(hex_text).decode("utf-16-be")


def fit_sms(text: str, units: int = SMS_UNITS) -> str:
    """``text`` trimmed to one SMS: at most ``units`` UTF-16 code units, an ellipsis marking a
    cut, never half of a surrogate pair."""
    if _units(text) <= units:
        return text
    out, used = [], _units(ELLIPSIS)
    for char in text:
        size = _units(char)
        if used + size > units:
            break
        out.append(char)
        used += size
    return "".join(out) + ELLIPSIS


def _units(text: str) -> int:
    return len(text.encode("utf-16-be")) // 2


def cmgs_command(number: str) -> str:
    return f'AT+CMGS="{ucs2_hex(number)}"'


@dataclass
class Reply:
    """What the modem answered to one command: its information lines and the final result."""

    lines: list[str] = field(default_factory=list)
    final: str | None = None  # OK | ERROR | +CME ERROR: x | +CMS ERROR: x
    prompt: bool = False

    @property
    def ok(self) -> bool:
        return self.final == "OK"

    @property
    def done(self) -> bool:
        return self.final is not None or self.prompt

    def error(self) -> str:
        return self.final or "no answer"


def final_result(line: str) -> str | None:
    """The final result code a line is, if it is one (27.007 4.1, 27.005 3.2.5)."""
    if line in ("OK", "ERROR", "NO CARRIER"):
        return line
    match = _ERROR.match(line)
    return f"+{match.group(1)} ERROR: {match.group(2).strip()}" if match else None


class ReplyParser:
    """Feeds bytes from the modem; collects lines up to a final result code or the ``> ``
    prompt. Anything unexpected (noise, echo, URCs) becomes an ignored line; never raises."""

    def __init__(self) -> None:
        self._buffer = b""
        self.reply = Reply()

    def reset(self) -> None:
        self._buffer = b""
        self.reply = Reply()

    def feed(self, data: bytes) -> Reply | None:
        """The reply once complete, else None."""
        self._buffer += data
        while not self.reply.done:
            if self._buffer.lstrip(b"\r\n").startswith(PROMPT):
                self._buffer = self._buffer.lstrip(b"\r\n")[len(PROMPT) :]
                self.reply.prompt = True
                break
            end = self._buffer.find(b"\r")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    self._buffer = b""
                break
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :].lstrip(b"\n")
            self._line(raw.strip(b"\n \t").decode("ascii", errors="replace"))
        return self.reply if self.reply.done else None

    def _line(self, line: str) -> None:
        if not line or len(line) > MAX_LINE:
            return
        final = final_result(line)
        if final is not None:
            self.reply.final = final
        else:
            self.reply.lines.append(line)


def parse_creg(lines: list[str]) -> int | None:
    """The registration status ``<stat>`` of a ``+CREG: <n>,<stat>`` answer."""
    for line in lines:
        match = _CREG.match(line) or _CREG_URC.match(line)
        if match:
            return int(match.groups()[-1])
    return None


def parse_csq(lines: list[str]) -> tuple[int, int] | None:
    """``(rssi, ber)`` of a ``+CSQ`` answer; rssi 99 = unknown, 0-31 = -113..-51 dBm."""
    for line in lines:
        match = _CSQ.match(line)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def parse_cmgs(lines: list[str]) -> int | None:
    """The message reference of a ``+CMGS: <mr>`` answer."""
    for line in lines:
        match = _CMGS.match(line)
        if match:
            return int(match.group(1))
    return None


def registered(stat: int | None) -> bool:
    return stat in (1, 5)


def rssi_dbm(rssi: int) -> int | None:
    return None if not 0 <= rssi <= 31 else -113 + 2 * rssi
