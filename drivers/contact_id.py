"""Ademco Contact ID input: the serial output of an alarm panel or alarm receiver
(docs/drivers/contact-id.md; parsing in :mod:`contact_id_protocol`).

Each message names an event code, a qualifier (new / restore / still present) and a zone or
user. The code table (overridable per code) decides whether it raises an alarm and of which
kind; the zone or user decides the source name and location. Alarm kinds that latch (panic,
duress, intrusion) are raised on the zone's (or user's) own source; other kinds (troubles,
tampers, faults) on ``<zone source>-<code>``, so each condition opens and restores on its own.

Line forms (``framing``): ``plain`` reads 16-digit messages, one per line, and never writes.
``surgard`` reads a Sur-Gard/MLR2 automation output (DC4-terminated, ``5RRL 18AAAAQXYZGGCCC``)
and answers ACK (0x06) only after the alarm path has durably recorded the signal, NAK (0x15) for
a corrupt line or a failed write, so that the receiver repeats it.

Threads, reconnect with back-off and status reporting follow the serial button box driver.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, NamedTuple

from edgeguard.alarm_model import (
    DEFAULT_PRIORITY,
    LATCHING_KINDS,
    Action,
    AlarmKind,
    DeviceState,
    InputSignal,
)
from edgeguard.config_base import PointConfig
from edgeguard.driver_api import SignalSink
from edgeguard.ids import utc_now

from .contact_id_codes import Ccc, CodeInfo, Handling
from .contact_id_config import ContactIdInputConfig
from .contact_id_protocol import (
    ACK,
    MAX_LINE,
    NAK,
    ContactIdError,
    ContactIdMessage,
    Qualifier,
    Reason,
    SurgardHeartbeat,
    parse_line,
    parse_surgard_line,
)
from .logs import held as held_suffix
from .logs import preview
from .serial_link import SerialLineDriver
from .serial_protocol import LineSplitter, Overlong

logger = logging.getLogger(__name__)

MAX_DISCOVERED = 4096
MAX_ACCOUNTS = 64
_TERMINATORS = bytes.maketrans(b"\r\x14", b"\n\n")  # CR, LF, CRLF and DC4 all end a line


class _Route(NamedTuple):
    """Where an alarm message goes: its source, location, kind and priority."""

    source: str
    location: str
    kind: AlarmKind
    priority: int
    ref: Ccc
    listed: bool


class ContactIdInput(SerialLineDriver[ContactIdInputConfig]):
    type_name = "contact_id"
    log_name = "contact_id"

    def __init__(self, config: ContactIdInputConfig, sink: SignalSink) -> None:
        super().__init__(config, sink)
        # guarded by self._lock: discovered points, pending messages, accounts
        self._discovered: dict[str, PointConfig] = {}
        self._pending: set[tuple[int, str]] = set()  # (epoch, raw) submitted, not yet recorded
        self._accounts: set[str] = set()
        self.last_test: float | None = None  # monotonic time of the last periodic test (602)
        self._supervised_since = 0.0
        self._configured_sources = {source for source, _, _ in config.point_entries()}

    # -- contract ---------------------------------------------------------------------------

    def points(self) -> dict[str, PointConfig]:
        """Listed zones and users, plus sources seen since start (unlisted zones, troubles)."""
        points = {source: point for source, point, _ in self.config.point_entries()}
        with self._lock:
            points.update(self._discovered)
        return points

    # -- hooks of SerialLineDriver -------------------------------------------------------------

    def _writes_replies(self) -> bool:
        return self._surgard

    def _online_detail(self) -> dict[str, Any]:
        return {"driver": self.type_name, "framing": self.config.framing}

    def _splitter(self) -> LineSplitter:
        return LineSplitter(max_len=MAX_LINE)

    def _prepare(self, data: bytes) -> bytes:
        return data.translate(_TERMINATORS)

    def _on_opened(self) -> None:
        self._supervised_since = time.monotonic()  # a full test interval from (re)opening

    def _after_read(self) -> None:
        """A panel whose periodic test does not come is reported faulty."""
        timeout = self.config.test_timeout
        if timeout is None or self._state is not DeviceState.ONLINE:
            return
        last = max(self.last_test or 0.0, self._supervised_since)
        if time.monotonic() - last > timeout:
            logger.warning(
                "contact_id %s: no periodic test for more than %.0f s", self.name, timeout
            )
            self._set_state(
                DeviceState.FAULT,
                port=self.port_name,
                error=f"no periodic test for more than {timeout:g} s",
            )

    # -- messages -----------------------------------------------------------------------------

    @property
    def _surgard(self) -> bool:
        return self.config.framing == "surgard"

    def _handle(self, item: bytes | Overlong, epoch: int) -> None:
        if isinstance(item, Overlong):
            error = ContactIdError(Reason.LENGTH, f"line longer than {MAX_LINE} bytes")
            self._reject(error, item.prefix + b"...", epoch)
            return
        try:
            parsed = parse_surgard_line(item) if self._surgard else parse_line(item)
        except ContactIdError as error:
            self._reject(error, item, epoch)
            return
        if isinstance(parsed, SurgardHeartbeat):
            logger.debug("contact_id %s: receiver heartbeat %s", self.name, parsed.raw)
            self._reply(ACK, epoch, "ACK heartbeat")
            return
        self._message(parsed, epoch)

    def _reject(self, error: ContactIdError, raw: bytes, epoch: int) -> None:
        held = self._logs.allow(error.reason.value)
        if held is not None:
            logger.warning(
                "contact_id %s (%s): rejected line, %s: %s: %s%s",
                self.name,
                self.port_name,
                error.reason.value,
                error.message,
                preview(raw),
                held_suffix(held),
            )
        if error.reason is Reason.UNSUPPORTED:  # the receiver's own: ACK, or it stalls
            self._reply(ACK, epoch, "ACK unsupported")
        elif error.reason is not Reason.EMPTY:
            self._reply(NAK, epoch, f"NAK {error.reason.value}")

    def _message(self, msg: ContactIdMessage, epoch: int) -> None:
        if not self._account_ok(msg):
            self._reply(ACK, epoch, f"ACK account {msg.account}")
            return
        info = self.config.code_info(msg.event_code)
        if info.handling is Handling.SUPERVISION:
            self._supervision(msg, info)
        elif info.handling is Handling.LOG:
            self._log_event(msg, info)
        else:
            self._alarm(msg, info, epoch)
            return
        self._reply(ACK, epoch, f"ACK {msg.event_code}")

    def _account_ok(self, msg: ContactIdMessage) -> bool:
        wanted = self.config.account
        if wanted is not None and msg.account != wanted:
            held = self._logs.allow("account")
            if held is not None:
                logger.warning(
                    "contact_id %s (%s): ignored a message for account %s (configured: %s): %s%s",
                    self.name,
                    self.port_name,
                    msg.account,
                    wanted,
                    msg.raw,
                    held_suffix(held),
                )
            return False
        with self._lock:
            new = msg.account not in self._accounts and len(self._accounts) < MAX_ACCOUNTS
            if new:
                self._accounts.add(msg.account)
        if new:
            logger.info("contact_id %s: messages from account %s", self.name, msg.account)
        return True

    def _supervision(self, msg: ContactIdMessage, info: CodeInfo) -> None:
        self.last_test = time.monotonic()
        self._set_state(DeviceState.ONLINE, driver="contact_id", port=self.port_name)
        level = logging.WARNING if msg.event_code == "608" else logging.DEBUG
        logger.log(
            level,
            "contact_id %s: %s, account %s: %s",
            self.name,
            info.description,
            msg.account,
            msg.raw,
        )

    def _log_event(self, msg: ContactIdMessage, info: CodeInfo) -> None:
        undefined = info.category == "undefined"
        logger.log(
            logging.WARNING if undefined else logging.INFO,
            "contact_id %s: %s %s (%s), account %s, group %s, %s %s: %s",
            self.name,
            info.description,
            msg.event_code,
            _qualifier_words(msg.qualifier, info),
            msg.account,
            msg.group,
            info.ccc.value,
            msg.zone_or_user,
            msg.raw,
        )

    def _alarm(self, msg: ContactIdMessage, info: CodeInfo, epoch: int) -> None:
        key = (epoch, msg.raw)
        if self._surgard:
            with self._lock:
                if key in self._pending:
                    logger.debug(
                        "contact_id %s: repeat of %s still being recorded", self.name, msg.raw
                    )
                    return
                self._pending.add(key)
        signal = self._signal_for(msg, info, epoch)
        try:
            self.sink.submit(signal)
        except Exception:
            logger.exception("contact_id %s: could not submit %s", self.name, msg.raw)
            self._settle(key, NAK, "NAK submit failed")

    def _route(self, msg: ContactIdMessage, info: CodeInfo) -> _Route:
        point = self.config.point(info.ccc, msg.zone_or_user)
        source = self.config.point_source(info.ccc, msg.zone_or_user)
        location = point.location if point is not None else self.config.location
        kind = info.kind or AlarmKind.DEVICE_FAULT  # the table gives every alarm code a kind
        priority = info.priority or DEFAULT_PRIORITY[kind]
        if kind in LATCHING_KINDS and point is not None and "kind" in point.model_fields_set:
            kind, priority = point.kind, point.effective_priority()
        elif kind in LATCHING_KINDS and point is not None and point.priority is not None:
            priority = point.priority
        if kind not in LATCHING_KINDS:
            source = f"{source}-{msg.event_code}"
        return _Route(source, location, kind, priority, info.ccc, point is not None)

    def _signal_for(self, msg: ContactIdMessage, info: CodeInfo, epoch: int) -> InputSignal:
        route = self._route(msg, info)
        self._discover(route, msg, info)
        detail: dict[str, Any] = {
            "input": self.name,
            "port": self.port_name,
            "account": msg.account,
            "message_type": msg.message_type,
            "event_code": msg.event_code,
            "event": info.description,
            "category": info.category,
            "qualifier": msg.qualifier.value,
            "group": msg.group,
            route.ref.value: msg.zone_or_user,
            "raw": msg.raw,
        }
        if msg.receiver is not None:
            detail.update(receiver=msg.receiver, line=msg.line)
        if not route.listed:
            detail[f"unknown_{route.ref.value}"] = True
        action = Action.NORMAL if msg.qualifier is Qualifier.RESTORE else Action.ACTIVE
        key = (epoch, msg.raw)
        return InputSignal(
            source=route.source,
            action=action,
            kind=route.kind,
            priority=route.priority,
            location=route.location,
            occurred_at=utc_now(),
            detail=detail,
            on_recorded=functools.partial(self._settle, key, ACK, f"ACK {msg.event_code}"),
            on_failed=functools.partial(self._failed, key, msg.raw),
        )

    def _discover(self, route: _Route, msg: ContactIdMessage, info: CodeInfo) -> None:
        with self._lock:
            known = route.source in self._discovered or len(self._discovered) >= MAX_DISCOVERED
            if not known and route.source not in self._configured_sources:
                self._discovered[route.source] = PointConfig(
                    location=route.location, kind=route.kind, priority=route.priority
                )
            else:
                return
        if not route.listed:
            logger.warning(
                "contact_id %s (%s): %s from unlisted %s %s: raising %s at %s as %s",
                self.name,
                self.port_name,
                info.description,
                route.ref.value,
                msg.zone_or_user,
                route.kind.value,
                route.location,
                route.source,
            )

    def _settle(self, key: tuple[int, str], reply: bytes, what: str) -> None:
        """``on_recorded`` (ACK) or a failure (NAK): runs on the event loop, only queues."""
        if not self._surgard:
            return
        with self._lock:
            self._pending.discard(key)
        self._reply(reply, key[0], what)

    def _failed(self, key: tuple[int, str], raw: str, exc: BaseException) -> None:
        logger.error("contact_id %s: %s could not be recorded (%s)", self.name, raw, exc)
        self._settle(key, NAK, "NAK not recorded")

    # -- replies (writer thread, surgard framing only) ------------------------------------------

    def _reply(self, data: bytes, epoch: int, what: str) -> None:
        if self._surgard:
            self._send(data, epoch, what)


def _qualifier_words(qualifier: Qualifier, info: CodeInfo) -> str:
    if info.category == "open_close" and qualifier is not Qualifier.STATUS:
        return "opening" if qualifier is Qualifier.NEW else "closing"
    return qualifier.value
