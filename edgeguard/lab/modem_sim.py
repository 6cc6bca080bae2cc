"""A simulated GSM modem on a pty, for tests: enough of 3GPP TS 27.005 text mode with UCS2 to
send SMS, answering the way a Quectel EC25 (EC25&EC21 AT Commands Manual V1.3) or a SIMCom
SIM800 (SIM800 Series AT Command Manual V1.09) does:

* echo on at power-up (``ATE0`` turns it off); commands end with CR; every answer is framed
  ``<CR><LF>text<CR><LF>``; ``OK`` / ``ERROR`` / ``+CME ERROR: <text>`` (after ``AT+CMEE=2``);
* ``AT+CMGS="<da>"`` answers the four-character prompt ``<CR><LF>> `` (IRA 13, 10, 62, 32);
  the text follows, Ctrl-Z (0x1A) sends, ESC (0x1B) cancels; then ``+CMGS: <mr>`` and ``OK``,
  or ``+CMS ERROR: <err>``. With ``+CSCS="UCS2"`` both the number and the text are UCS2 hex;
  SMS before ``AT+CMGF=1`` gives ``+CMS ERROR: 302`` (operation not allowed); text that is not
  UCS2 hex gives ``+CMS ERROR: 305`` (invalid text mode parameter);
* ``AT+CREG?`` → ``+CREG: 0,<stat>``; ``AT+CSQ`` → ``+CSQ: 20,99``.

``silent = True`` makes it stop answering (a hung or unplugged modem); ``registered = False``
reports no network.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from dataclasses import dataclass

from edgeguard.gsm_modem_at import ucs2_decode
from edgeguard.lab.serial_box_sim import open_pty


@dataclass(frozen=True)
class SentSms:
    number: str
    text: str
    mr: int


class ModemSim:
    def __init__(self) -> None:
        self.master, self.port = open_pty()
        os.set_blocking(self.master, False)
        self.silent = False
        self.registered = True
        self.echo = True
        self.text_mode = False
        self.ucs2 = False
        self.verbose_errors = False
        self.csmp: str | None = None
        self.commands: list[str] = []
        self.sent: list[SentSms] = []
        self._buffer = b""
        self._number: str | None = None  # collecting the text of an SMS to it
        self._mr = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modem-sim", daemon=True)
        self._thread.start()

    # --- test side --------------------------------------------------------------------------
    def wait_sent(self, count: int, timeout: float) -> list[SentSms]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.sent) >= count, timeout)
            return list(self.sent)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with contextlib.suppress(OSError):
            os.close(self.master)

    def __enter__(self) -> ModemSim:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- the modem --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except BlockingIOError:
                continue
            except OSError:  # EIO: nobody has the slave open; wait for one
                self._stop.wait(0.05)
                continue
            if not self.silent:
                self._feed(data)

    def _feed(self, data: bytes) -> None:
        self._buffer += data
        while self._buffer:
            if self._number is not None:
                if not self._take_text():
                    return
                continue
            end = self._buffer.find(b"\r")
            if end < 0:
                return
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :].lstrip(b"\n")
            if self.echo:
                self._write(raw + b"\r")
            self._command(raw.decode("ascii", errors="replace").strip())

    def _take_text(self) -> bool:
        for i, byte in enumerate(self._buffer):
            if byte in (0x1A, 0x1B):
                text, self._buffer = self._buffer[:i], self._buffer[i + 1 :]
                number, self._number = self._number, None
                if byte == 0x1A:
                    assert number is not None
                    self._submit(number, text.decode("ascii", errors="replace"))
                else:
                    self._answer("OK")
                return True
        return False

    def _submit(self, number: str, text: str) -> None:
        try:
            decoded = ucs2_decode(text) if self.ucs2 else text
        except ValueError:
            self._answer("+CMS ERROR: 305")
            return
        self._mr = (self._mr + 1) % 256
        with self._cond:
            self.sent.append(SentSms(number, decoded, self._mr))
            self._cond.notify_all()
        self._answer(f"+CMGS: {self._mr}", "OK")

    def _command(self, line: str) -> None:
        if not line:
            return
        self.commands.append(line)
        upper = line.upper()
        if upper.startswith("AT+CMGS="):
            self._cmgs(line[8:].strip())
            return
        reply = self._simple(upper, line)
        if reply is None:
            self._error()
        else:
            self._answer(*reply, "OK")

    def _simple(self, upper: str, line: str) -> list[str] | None:
        if upper in ("AT", "AT+CMEE=2", "AT+CMEE=1"):
            self.verbose_errors = upper != "AT"
            return []
        if upper in ("ATE0", "ATE1"):
            self.echo = upper == "ATE1"
            return []
        if upper in ("AT+CMGF=1", "AT+CMGF=0"):
            self.text_mode = upper.endswith("1")
            return []
        if upper.startswith("AT+CSCS="):
            self.ucs2 = upper.endswith('"UCS2"')
            return []
        if upper.startswith("AT+CSMP="):
            self.csmp = line[8:]
            return []
        if upper == "AT+CREG?":
            return [f"+CREG: 0,{1 if self.registered else 2}"]
        if upper == "AT+CSQ":
            return ["+CSQ: 20,99" if self.registered else "+CSQ: 99,99"]
        return None

    def _cmgs(self, argument: str) -> None:
        if not self.text_mode:
            self._answer("+CMS ERROR: 302")
            return
        number = argument.split(",", 1)[0].strip('"')
        try:
            number = ucs2_decode(number) if self.ucs2 else number
        except ValueError:
            self._answer("+CMS ERROR: 305")
            return
        if not self.registered:
            self._answer("+CMS ERROR: 331")  # no network service
            return
        self._number = number
        self._write(b"\r\n> ")

    def _error(self) -> None:
        self._answer("+CME ERROR: unknown" if self.verbose_errors else "ERROR")

    def _answer(self, *lines: str) -> None:
        self._write(b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines))

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self.master, data)
