"""SIA DC-09 receiver: IP alarm communicators report over TCP and UDP (docs/drivers/sia-dc09.md;
frames in :mod:`sia_dc09_protocol`, data and codes in :mod:`sia_dc09_events`, sockets in
:mod:`sia_dc09_server`, config in :mod:`sia_dc09_config`).

A frame is checked (CRC, length, token, account, decryption, time window), its events become
signals, and the ACK is sent only once every signal of the frame is durably recorded (their
``on_recorded``); a failed write sends nothing, so the communicator repeats. A repeat of a frame
(same account, sequence number and data) raises nothing new: it is ACKed again once recorded.
Every valid frame of an account, NULL polls included, feeds its supervision.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from edgeguard.alarm_model import Action, AlarmKind, DeviceState, DeviceStatus, InputSignal
from edgeguard.config_base import PointConfig
from edgeguard.driver_api import InputDriver, SignalSink
from edgeguard.ids import utc_now

from .logs import LogLimiter, preview
from .logs import held as held_suffix
from .sia_dc09_config import SiaAccountConfig, SiaDc09InputConfig, SiaZoneConfig
from .sia_dc09_protocol import (
    Frame,
    FrameError,
    Overlong,
    Reason,
    answer,
    decrypt,
    in_window,
    nak,
    parse_content,
    split_frame,
)
from .sia_dc09_routes import Route, routes
from .sia_dc09_server import Listener, Peer

__all__ = ["SiaAccountConfig", "SiaDc09Input", "SiaDc09InputConfig", "SiaZoneConfig"]

logger = logging.getLogger(__name__)

MAX_PENDING = 256  # frames awaiting their durable write, all connections together
MAX_REMEMBERED = 1024  # recent frames kept to recognise repeats
MAX_DISCOVERED = 4096
FAULT_SUFFIX = "-fault"  # as the daemon names a device's fault alarm


@dataclass
class _Entry:
    """A frame being recorded (``remaining`` > 0) or recorded, and who waits for its ACK."""

    remaining: int
    waiters: list[tuple[Peer, Frame]] = field(default_factory=list)


class SiaDc09Input(InputDriver[SiaDc09InputConfig]):
    type_name = "sia_dc09"

    def __init__(self, config: SiaDc09InputConfig, sink: SignalSink) -> None:
        super().__init__(config, sink)
        self._keys = {acct: cfg.key_bytes() for acct, cfg in config.accounts.items()}
        self._listener: Listener | None = None
        self._logs = LogLimiter()
        # listener loop only:
        self._frames: OrderedDict[tuple[str, ...], _Entry] = OrderedDict()
        self._pending = 0
        self._heard = {acct: time.monotonic() for acct in config.accounts}
        self._silent: set[str] = set()
        self._discovered: dict[str, PointConfig] = {}

    # -- contract ---------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        self._heard = {acct: time.monotonic() for acct in cfg.accounts}
        self._listener = Listener(
            cfg.name, cfg.host, cfg.port, tcp=cfg.tcp, udp=cfg.udp,
            max_connections=cfg.max_connections, idle_timeout=cfg.idle_timeout,
            handler=self._on_item, tick=self._supervise,
        )
        self._listener.start()
        logger.info("sia_dc09 %s: listening on %s %s", self.name, cfg.host, self._listener.ports)
        self.report(DeviceState.ONLINE, driver=self.type_name, host=cfg.host, port=cfg.port)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    @property
    def ports(self) -> dict[str, int]:
        return dict(self._listener.ports) if self._listener is not None else {}

    def points(self) -> dict[str, PointConfig]:
        points = {source: point for source, point, _ in self.config.point_entries()}
        points.update(self._discovered)
        return points

    # -- frames (listener loop) -------------------------------------------------------------------

    def _on_item(self, item: bytes | Overlong, peer: Peer) -> None:
        if isinstance(item, Overlong):
            self._refuse(FrameError(Reason.FRAMING, "frame longer than the DC-09 maximum"),
                         b"", peer)
            return
        try:
            frame, content, account = self._check(item)
        except FrameError as error:
            self._refuse(error, item, peer)
            return
        self._heard_from(account)
        key = (account, frame.seq, frame.ident, content)
        entry = self._frames.get(key)
        if entry is not None:
            self._repeat(key, entry, peer, frame)
            return
        if self._pending >= MAX_PENDING:
            self._log("busy", logging.WARNING, "%d frames awaiting their write, dropped a frame "
                      "from %s (it will be repeated)", self._pending, peer.label)
            return
        self._accept(key, frame, content, account, peer)

    def _check(self, raw: bytes) -> tuple[Frame, str, str]:
        """The frame, its data and its account, or FrameError."""
        frame = split_frame(raw)
        key = self._keys.get(frame.account) if frame.account else None
        if frame.encrypted:
            if key is None:
                raise FrameError(Reason.ACCOUNT, "encrypted frame of an account without a "
                                 f"key: {frame.account}", frame)
            text = decrypt(frame.body, key, frame=frame)
        else:
            text = frame.body
        content = parse_content(text, frame=frame)
        if content.timestamp is None and frame.encrypted:
            raise FrameError(Reason.TIME, "encrypted frame without a timestamp", frame)
        now = utc_now()
        cfg = self.config
        if content.timestamp is not None and not in_window(
            content.timestamp, now, cfg.max_age, cfg.max_ahead
        ):
            raise FrameError(Reason.TIME, f"timestamp {content.timestamp:%H:%M:%S %m-%d-%Y} "
                             f"outside -{cfg.max_age:g}/+{cfg.max_ahead:g} s of ours", frame)
        account = self._account(frame, content.data)
        if not frame.encrypted and self._keys.get(account) is not None:
            raise FrameError(Reason.ACCOUNT, f"clear frame for encrypted account {account}", frame)
        return frame, content.data, account

    def _account(self, frame: Frame, data: str) -> str:
        account = frame.account
        if account is None and data.startswith("#"):
            account = data[1:].partition("|")[0].upper()
        if account is None or account not in self.config.accounts:
            raise FrameError(Reason.ACCOUNT, f"account {account} is not configured", frame)
        return account

    def _accept(self, key: tuple[str, ...], frame: Frame, data: str, account: str,
                peer: Peer) -> None:
        try:
            found = routes(self.config, frame, data, account)
        except FrameError as error:
            self._refuse(error, b"", peer)
            return
        except Exception:  # a bug in routing: still answer, or the communicator retries forever
            logger.exception("sia_dc09 %s: could not route a frame of %s: %s", self.name,
                             account, preview(data.encode("ascii", "replace")))
            self._refuse(FrameError(Reason.DATA, "data not understood", frame), b"", peer)
            return
        signals = [self._signal(route, key) for route in found]
        if not signals:
            self._send(peer, frame, "ACK")
            return
        entry = _Entry(remaining=len(signals), waiters=[(peer, frame)])
        self._remember(key, entry)
        self._pending += 1
        peer.hold()
        for signal in signals:
            try:
                self.sink.submit(signal)
            except Exception:
                logger.exception("sia_dc09 %s: could not submit %s", self.name, signal.source)
                self._failed(key, RuntimeError("submit failed"))
                return

    def _repeat(self, key: tuple[str, ...], entry: _Entry, peer: Peer, frame: Frame) -> None:
        self._frames.move_to_end(key)
        if entry.remaining == 0:
            logger.info("sia_dc09 %s: repeat of %s seq %s: ACK again, no new alarm",
                        self.name, key[0], frame.seq)
            self._send(peer, frame, "ACK")
        elif len(entry.waiters) < 8:
            entry.waiters.append((peer, frame))
            peer.hold()

    def _remember(self, key: tuple[str, ...], entry: _Entry) -> None:
        self._frames[key] = entry
        while len(self._frames) > MAX_REMEMBERED:
            old_key, old = next(iter(self._frames.items()))
            if old.remaining:
                break  # never forget a frame still being recorded (at most MAX_PENDING)
            del self._frames[old_key]

    # -- the durable write's answer (daemon loop -> listener loop) ----------------------------

    def _signal(self, route: Route, key: tuple[str, ...]) -> InputSignal:
        self._discover(route)
        post = self._listener.call_soon if self._listener is not None else _drop
        return InputSignal(
            source=route.source, action=route.action, kind=route.kind, priority=route.priority,
            location=route.location, occurred_at=utc_now(),
            detail={"input": self.name, **route.detail},
            on_recorded=functools.partial(post, self._recorded, key),
            on_failed=lambda exc: post(self._failed, key, exc),
        )

    def _recorded(self, key: tuple[str, ...]) -> None:
        entry = self._frames.get(key)
        if entry is None or entry.remaining == 0:
            return
        entry.remaining -= 1
        if entry.remaining == 0:
            self._pending -= 1
            for peer, frame in entry.waiters:
                peer.release()
                self._send(peer, frame, "ACK")
            entry.waiters.clear()

    def _failed(self, key: tuple[str, ...], exc: BaseException) -> None:
        entry = self._frames.pop(key, None)
        if entry is None:
            return
        self._pending -= 1
        logger.error("sia_dc09 %s: frame of %s seq %s not recorded (%s): no ACK, the "
                     "communicator will repeat it", self.name, key[0], key[1], exc)
        for peer, _ in entry.waiters:
            peer.release()

    # -- answers and logs ------------------------------------------------------------------------

    def _send(self, peer: Peer, frame: Frame, word: str) -> None:
        key = self._keys.get(frame.account) if frame.account and frame.encrypted else None
        peer.send(answer(word, frame, key, utc_now()))

    def _refuse(self, error: FrameError, raw: bytes, peer: Peer) -> None:
        word = error.reason.answer
        self._log(error.reason.value, logging.WARNING, "refused a frame from %s (%s, %s): %s: %s",
                  peer.label, word, error.reason.value, error.message, preview(raw))
        if word == "DUH" and error.frame is not None:
            peer.send(answer("DUH", error.frame, None, utc_now()))
        else:
            peer.send(nak(utc_now()))

    def _log(self, key: str, level: int, message: str, *args: Any) -> None:
        held = self._logs.allow(key)
        if held is not None:
            logger.log(level, "sia_dc09 %s: %s%s", self.name, message % args, held_suffix(held))

    def _discover(self, route: Route) -> None:
        if route.source in self._discovered or len(self._discovered) >= MAX_DISCOVERED:
            return
        self._discovered[route.source] = PointConfig(
            location=route.location, kind=route.kind, priority=route.priority
        )
        if route.detail.get("unknown_zone"):
            logger.warning("sia_dc09 %s: %s from unlisted zone: raising %s at %s as %s",
                           self.name, route.detail.get("event"), route.kind.value,
                           route.location, route.source)

    # -- supervision (listener loop) ---------------------------------------------------------------

    def _heard_from(self, account: str) -> None:
        self._heard[account] = time.monotonic()
        if account in self._silent:
            self._silent.discard(account)
            logger.info("sia_dc09 %s: account %s heard again", self.name, account)
            self._account_status(account, DeviceState.ONLINE, Action.NORMAL)

    def _supervise(self) -> None:
        now = time.monotonic()
        for account, cfg in self.config.accounts.items():
            limit = cfg.supervision
            if limit is None or account in self._silent:
                continue
            if now - self._heard.get(account, now) > limit:
                self._silent.add(account)
                logger.warning("sia_dc09 %s: account %s silent for more than %g s",
                               self.name, account, limit)
                self._account_status(account, DeviceState.OFFLINE, Action.ACTIVE)

    def _account_status(self, account: str, state: DeviceState, action: Action) -> None:
        device = self.config.account_source(account)
        cfg = self.config.accounts[account]
        detail: dict[str, Any] = {"input": self.name, "account": account}
        if action is Action.ACTIVE:
            detail["error"] = f"no DC-09 frame for more than {cfg.supervision:g} s"
        self.sink.device_status(DeviceStatus(device=device, state=state, detail=detail))
        self.sink.submit(InputSignal(
            source=f"{device}{FAULT_SUFFIX}", action=action, kind=AlarmKind.DEVICE_FAULT,
            priority=3, location=cfg.location, occurred_at=utc_now(),
            detail={"device": device, "state": state.value, **detail},
        ))


def _drop(*_args: Any) -> None:
    """Stand-in for the listener's call_soon once it is gone."""
