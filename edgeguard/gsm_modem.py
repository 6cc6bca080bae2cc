"""A GSM/4G modem that sends SMS (AT commands, 3GPP TS 27.005 text mode with UCS2).

One worker thread owns the serial port: it opens and initialises the modem, sends the queued
messages one at a time, and between them checks the modem every ``supervision_interval_s``
(``AT+CREG?``, ``AT+CSQ``). A port that cannot be opened, a modem that stops answering, or no
network registration is reported through ``on_state``; the port is reopened with back-off.
Callers never block: :meth:`GsmModem.send` only queues. Callbacks run in the worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from edgeguard.alarm_model import DeviceState
from edgeguard.gsm_modem_at import (
    CTRL_Z,
    ESC,
    INIT_COMMANDS,
    REGISTRATION,
    Reply,
    ReplyParser,
    cmgs_command,
    fit_sms,
    parse_cmgs,
    parse_creg,
    parse_csq,
    registered,
    rssi_dbm,
    ucs2_hex,
)
from edgeguard.gsm_modem_config import SmsConfig

logger = logging.getLogger(__name__)

READ_CHUNK_S = 0.1
QUEUE_SIZE = 100
SEND_ATTEMPTS = 2

StateCallback = Callable[[DeviceState, dict[str, Any]], None]
SentCallback = Callable[[str, str, int | None, str | None], None]  # tag, number, mr, error


class ModemError(Exception):
    pass


@dataclass(frozen=True)
class Sms:
    number: str
    text: str
    tag: str  # what it is about (an event id), for the log and the callback


class GsmModem:
    def __init__(
        self, config: SmsConfig, on_state: StateCallback, on_sent: SentCallback | None = None
    ) -> None:
        self.config = config
        self.on_state = on_state
        self.on_sent = on_sent
        self._jobs: queue.Queue[Sms | None] = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gsm-modem", daemon=True)
        self._port: serial.Serial | None = None
        self._parser = ReplyParser()
        self._state: tuple[DeviceState, dict[str, Any]] | None = None
        self.sent = 0
        self.failed = 0

    # --- the caller's side ------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._jobs.put_nowait(None)
        self._thread.join(timeout)

    def send(self, text: str, tag: str) -> None:
        """Queue ``text`` (trimmed to one SMS) for every recipient; never blocks."""
        text = fit_sms(text)
        for number in self.config.recipients:
            try:
                self._jobs.put_nowait(Sms(number, text, tag))
            except queue.Full:
                logger.error("sms: queue full; SMS about %s to a recipient dropped", tag)

    # --- the worker thread ------------------------------------------------------------------
    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._open()
                delay = 0.5
                self._serve()
            except (ModemError, serial.SerialException, OSError) as exc:
                state = DeviceState.OFFLINE if self._port is None else DeviceState.FAULT
                self._report(state, {"error": str(exc)[:200]})
            finally:
                self._close()
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.config.reconnect_max)

    def _open(self) -> None:
        self._port = serial.serial_for_url(
            self.config.port, baudrate=self.config.baudrate, timeout=READ_CHUNK_S, exclusive=True
        )
        for command in INIT_COMMANDS:
            reply = self._command(command)
            if not reply.ok:
                raise ModemError(f"{command}: {reply.error()}")
        self._supervise()

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                logger.debug("sms: closing the port failed", exc_info=True)

    def _serve(self) -> None:
        interval = self.config.supervision_interval_s
        next_check = time.monotonic() + interval
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=max(0.0, next_check - time.monotonic()))
            except queue.Empty:
                self._supervise()
                next_check = time.monotonic() + interval
                continue
            if job is None:
                return
            self._deliver(job)

    def _supervise(self) -> None:
        creg = self._command("AT+CREG?")
        if not creg.ok:
            raise ModemError(f"AT+CREG?: {creg.error()}")
        stat = parse_creg(creg.lines)
        csq = self._command("AT+CSQ")
        signal = parse_csq(csq.lines) if csq.ok else None
        detail: dict[str, Any] = {
            "port": self.config.port,
            "registration": REGISTRATION.get(stat, "unknown") if stat is not None else None,
            "rssi_dbm": rssi_dbm(signal[0]) if signal else None,
        }
        self._report(DeviceState.ONLINE if registered(stat) else DeviceState.FAULT, detail)

    def _deliver(self, job: Sms) -> None:
        error: str | None = None
        for _ in range(SEND_ATTEMPTS):
            try:
                mr = self._send_one(job)
            except ModemError as exc:
                error = str(exc)
                logger.error("sms: sending about %s failed: %s", job.tag, error)
                continue
            self.sent += 1
            logger.warning("sms: alarm %s texted (message reference %s)", job.tag, mr)
            self._callback(job, mr, None)
            return
        self.failed += 1
        self._callback(job, None, error)

    def _send_one(self, job: Sms) -> int | None:
        prompt = self._command(cmgs_command(job.number))
        if not prompt.prompt:
            self._write(ESC)  # leave the text-entry state if the prompt came late
            raise ModemError(f"no '> ' prompt: {prompt.error()}")
        reply = self._command(
            ucs2_hex(job.text), terminator=CTRL_Z, timeout=self.config.send_timeout_s
        )
        if not reply.ok:
            raise ModemError(f"not sent: {reply.error()}")
        return parse_cmgs(reply.lines)

    def _callback(self, job: Sms, mr: int | None, error: str | None) -> None:
        if self.on_sent is None:
            return
        try:
            self.on_sent(job.tag, job.number, mr, error)
        except Exception:
            logger.exception("sms: the sent callback failed")

    # --- the port ---------------------------------------------------------------------------
    def _command(
        self, command: str, *, terminator: bytes = b"\r", timeout: float | None = None
    ) -> Reply:
        """Write a command and read its reply (final result or prompt) within ``timeout``."""
        self._parser.reset()
        self._write(command.encode("ascii") + terminator)
        deadline = time.monotonic() + (timeout or self.config.command_timeout_s)
        while time.monotonic() < deadline and not self._stop.is_set():
            port = self._port
            if port is None:
                raise ModemError("port closed")
            reply = self._parser.feed(port.read(port.in_waiting or 1))
            if reply is not None:
                return reply
        raise ModemError(f"no answer to {command[:20]!r}")

    def _write(self, data: bytes) -> None:
        if self._port is None:
            raise ModemError("port closed")
        self._port.write(data)
        self._port.flush()

    def _report(self, state: DeviceState, detail: dict[str, Any]) -> None:
        key = (state, {k: v for k, v in detail.items() if k != "rssi_dbm"})
        if self._state is not None and (self._state[0], self._state[1]) == key:
            return
        self._state = key
        try:
            self.on_state(state, detail)
        except Exception:
            logger.exception("sms: the state callback failed")
