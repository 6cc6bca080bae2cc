"""The daemon: one asyncio loop owns the alarm path (inputs → rules → store → outbox → MQTT)
and the control socket. SIGTERM stops cleanly, SIGHUP reloads the config."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from pathlib import Path
from typing import Any

from edgeguard import __version__, sysd
from edgeguard.alarms import AlarmBook, AlarmChange, AlarmError
from edgeguard.bridge import Bridge
from edgeguard.broker_nodes import format_address
from edgeguard.cameras.manager import CameraManager
from edgeguard.config import EdgeguardConfig
from edgeguard.config_loader import load_config
from edgeguard.console.server import Console, start_console
from edgeguard.control import (
    ControlServer,
    ReloadRequest,
    RequestError,
    ResetRequest,
    SimulateRequest,
)
from edgeguard.driver_api import CoilDriver, DriverError
from edgeguard.ids import iso_ms, utc_now
from edgeguard.inputs import InputManager
from edgeguard.outputs import OutputController
from edgeguard.payloads import device_payload, device_topic, heartbeat_payload, heartbeat_topic
from edgeguard.reloading import Reloader, ReloadOutcome
from edgeguard.service import AlarmService
from edgeguard.signing import Signer
from edgeguard.uplink.link_events import LinkEvents
from edgeguard.uplink.outbox import Outbox
from edgeguard.uplink.path_supervisor import several_paths
from edgeguard.uplink.receipt_wait import enable_receipts, load_awaiting_receipts
from edgeguard.uplink.site_link import NotConnectedError, Uplink
from edgeguard.uplink.sms import texted_alarms
from edgeguard.uplink.transmission import Transmission
from edgeguard.writer import StoreWriter

logger = logging.getLogger(__name__)

STOP_FLUSH_S = 5.0
SIMULATE_RECORD_TIMEOUT_S = 10.0
HOUSEKEEPING_S = 5.0
EVIDENCE_PRUNE_S = 3600.0  # the age limits: checked hourly
EVIDENCE_PRUNE_GAP_S = 1.0  # the quota: checked after every write, at most this often


class Daemon:
    def __init__(
        self,
        config: EdgeguardConfig,
        config_path: Path | None = None,
        *,
        pin_factory: Any | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.pin_factory = pin_factory
        self.started_at = utc_now()
        self._started = time.monotonic()
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()
        self.reloader = Reloader(config_path, lambda: self.config, self._apply_config)
        self.heartbeats = 0
        self.last_heartbeat_at: str | None = None
        self.signer = Signer.from_file(config.signing.private_key)
        self.writer = StoreWriter(config.store.path)
        self.book = AlarmBook(config, self.signer)
        self.outbox = Outbox(config.mqtt.inflight_window, self._mark_delivered)
        self.service = AlarmService(self.writer, self.book, self.outbox)
        enable_receipts(config.receipts, self.outbox)
        self._evidence_written = asyncio.Event()
        self.service.listeners.append(self._on_alarm_change)
        self.uplink: Uplink | None = None
        self.transmission: Transmission | None = None
        if several_paths(config):
            self.transmission = Transmission(
                config, self.signer, self.outbox, self.service, self.started_at
            )
        self.uplink_events = LinkEvents(
            "primary",
            self.outbox,
            self.outbox.primary,
            self.service,
            spawn=self._spawn,
            supervisor=self.transmission.supervisor if self.transmission is not None else None,
        )
        self.inputs: InputManager | None = None
        self.bridge: Bridge | None = None
        self.control: ControlServer | None = None
        self.outputs: OutputController | None = None
        self.cameras: CameraManager | None = None
        self.console: Console | None = None

    # --- lifecycle --------------------------------------------------------------------------
    async def run(self, *, install_signals: bool = True) -> int:
        loop = asyncio.get_running_loop()
        self._loop = loop
        await asyncio.to_thread(self.writer.start)
        try:
            await self._start(loop, install_signals=install_signals)
            # Move everything built at start-up out of the collector's reach: a full collection
            # over it would pause the alarm path for tens of milliseconds (measured).
            gc.collect()
            gc.freeze()
            sysd.notify(
                "READY=1", f"STATUS=edgeguard {__version__} running for site {self.config.site.id}"
            )
            self.ready.set()
            await self._stop.wait()
        finally:
            await self._shutdown()
        return 0

    async def _start(self, loop: asyncio.AbstractEventLoop, *, install_signals: bool) -> None:
        await self.writer.run(
            lambda s: s.append_event(
                "system.start", data={"version": __version__, "site": self.config.site.id}
            )
        )
        self.book.seq.load(await self.writer.run(lambda s: s.current_seq()))
        if self.transmission is not None:
            self.transmission.prepare(await self.writer.run(texted_alarms))
        self.outbox.load(await self.writer.run(lambda s: s.undelivered()))
        await load_awaiting_receipts(self.writer, self.outbox)
        self.bridge = Bridge(loop, self.service.handle_signal, self.service.handle_status)
        self._start_uplink(loop)
        if self.transmission is not None:
            self.transmission.start(loop)
        self.inputs = InputManager(self.bridge, {"pin_factory": self.pin_factory})
        await self.inputs.start_all(list(self.config.inputs))
        await self._start_outputs()
        await self._start_cameras()
        self.control = ControlServer(self.config.control.socket, self._handle_control)
        await self.control.start()
        self.console = await start_console(self)
        if install_signals:
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        self._spawn(self._heartbeat_loop())
        self._spawn(self._watchdog_loop())
        self._spawn(self._housekeeping_loop())
        self._spawn(self._evidence_loop())

    async def _start_outputs(self) -> None:
        controller = OutputController(list(self.config.outputs), self.pin_factory, self._write_coil)
        controller.start(await self.writer.run(lambda s: s.open_alarms()))
        self.service.listeners.append(controller.on_alarm)
        self.outputs = controller

    async def _start_cameras(self) -> None:
        self.cameras = CameraManager(self.config, self.service, self._publish_device_stats)
        await self.cameras.start()

    async def _stop_cameras(self) -> None:
        manager, self.cameras = self.cameras, None
        if manager is not None:
            await manager.stop()

    def _publish_device_stats(self, device: str, detail: dict[str, Any]) -> None:
        """Refresh a camera's retained device topic with its statistics, when the link is up.
        Not queued: a later refresh supersedes it; state changes go through the outbox."""
        uplink = self.uplink
        if uplink is None or not uplink.connected:
            return
        state = "online" if detail.get("state") == "online" else "offline"
        payload = device_payload(self.config.site.id, device, state, detail)
        with contextlib.suppress(NotConnectedError):
            uplink.publish(
                device_topic(self.config.site.id, device), self.signer.encode(payload), 1, True
            )

    async def _stop_outputs(self) -> None:
        controller, self.outputs = self.outputs, None
        if controller is not None:
            self.service.listeners.remove(controller.on_alarm)
            await asyncio.to_thread(controller.close)

    def _write_coil(self, input_name: str, address: int, value: bool) -> None:
        """Runs on the outputs' worker thread."""
        driver = self.inputs.drivers.get(input_name) if self.inputs is not None else None
        if not isinstance(driver, CoilDriver):
            raise RuntimeError(f"modbus input {input_name!r} is not running")  # noqa: TRY004
        driver.set_coil(address, value)

    def _start_uplink(self, loop: asyncio.AbstractEventLoop) -> None:
        self.uplink = Uplink(self.config, self.signer, self.uplink_events, loop, self.started_at)
        self.outbox.attach(self.uplink)
        self.uplink.start()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    def request_stop(self) -> None:
        """Ask the daemon to stop; safe from any thread."""
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)

    async def _shutdown(self) -> None:
        logger.info("stopping: flushing what can be delivered")
        sysd.notify("STOPPING=1")
        if self.inputs is not None:
            await self.inputs.stop_all()
        await self._stop_cameras()
        await self._stop_outputs()
        if self.bridge is not None:
            await self.bridge.settle(STOP_FLUSH_S)
        if self.control is not None:
            await self.control.stop()
        if self.console is not None:
            await self.console.stop()
        if self.outbox.connected():
            delivered = await self.outbox.drain(STOP_FLUSH_S)
            if not delivered:
                logger.warning(
                    "stopping with %d message(s) undelivered; they are kept and "
                    "sent after the restart",
                    len(self.outbox.pending),
                )
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.writer.run(lambda s: s.append_event("system.stop", data={}))
        if self.transmission is not None:
            await self.transmission.stop()
        if self.uplink is not None:
            await self.uplink.stop()
        await asyncio.to_thread(self.writer.stop)
        logger.info("stopped")

    async def _mark_delivered(self, ids: list[int]) -> None:
        await self.service.mark_delivered(ids)

    # --- periodic work ----------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.mqtt.heartbeat_interval)
            try:
                await self._heartbeat()
            except Exception:  # a failing store must not end the heartbeats for good
                logger.exception("heartbeat failed; trying again next time")

    async def _heartbeat(self) -> None:
        uplink = self.uplink
        if not self.outbox.connected():
            return
        head, open_count = await self.writer.run(lambda s: (s.head(), len(s.open_alarms())))
        self.heartbeats += 1
        payload = heartbeat_payload(
            self.config.site.id,
            self.heartbeats,
            uptime_s=time.monotonic() - self._started,
            open_alarms=open_count,
            pending=len(self.outbox.pending),
            log_head=head,
        )
        body, topic = self.signer.encode(payload), heartbeat_topic(self.config.site.id)
        if self.transmission is not None:
            self.transmission.publish_heartbeat(topic, body, self.config.mqtt.heartbeat_qos)
        if uplink is not None and uplink.connected:
            with contextlib.suppress(NotConnectedError):
                uplink.publish(topic, body, self.config.mqtt.heartbeat_qos, False)
        self.last_heartbeat_at = iso_ms(utc_now())

    async def _watchdog_loop(self) -> None:
        interval = sysd.watchdog_interval()
        if interval is None:
            return
        logger.info(
            "systemd watchdog: pinging every %.1f s while the alarm path is alive", interval
        )
        while True:
            if await self.alarm_path_alive(timeout=interval):
                sysd.notify("WATCHDOG=1")
            else:
                logger.critical("alarm path not responding: withholding the watchdog ping")
            await asyncio.sleep(interval)

    async def alarm_path_alive(self, timeout: float) -> bool:
        """The store writer answers within ``timeout`` (the loop obviously runs)."""
        if not self.writer.alive():
            return False
        try:
            await asyncio.wait_for(self.writer.run(lambda s: s.head()), timeout)
        except Exception:  # noqa: BLE001 - any failure means: do not ping
            return False
        return True

    async def _housekeeping_loop(self) -> None:
        """Every few seconds: re-send messages whose PUBACK never came, and record alarms that
        were sent from memory while the store failed."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                self.outbox.check_stale()
                self.outbox.check_receipts()
                await self.service.record_unrecorded()
            except Exception:
                logger.exception("housekeeping failed; trying again next time")

    def _on_alarm_change(self, what: AlarmChange, _record: object) -> None:
        if what == AlarmChange.EVIDENCE:
            self._evidence_written.set()

    async def _evidence_loop(self) -> None:
        """Keep the evidence folder within its quota (docs/evidence-clips.md): after evidence
        is written (so an alarm storm cannot fill the disk), and hourly for the age limits."""
        while True:
            self._evidence_written.clear()
            try:
                await self.prune_evidence()
            except Exception:
                logger.exception("evidence pruning failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._evidence_written.wait(), EVIDENCE_PRUNE_S)
            await asyncio.sleep(EVIDENCE_PRUNE_GAP_S)  # one pass for a burst of writes

    async def prune_evidence(self) -> int:
        from edgeguard.cameras.retention import RetentionPolicy, prune

        store = self.config.store
        root = store.evidence_path()
        if not root.is_dir():
            return 0
        priorities = await self.writer.run(lambda s: s.alarm_priorities())
        policy = RetentionPolicy(
            quota_bytes=store.evidence_quota_mb * 1_000_000,
            keep_days=store.evidence_keep_days,
            max_days=store.evidence_max_days,
            grace_s=store.evidence_grace_s,
        )
        deleted = await asyncio.to_thread(prune, root, policy, priorities)
        if deleted:
            await self.writer.run(
                lambda s: s.append_event(
                    "evidence.pruned",
                    data={"folders": [entry.event_id for entry in deleted]},
                )
            )
        return len(deleted)

    # --- reload -----------------------------------------------------------------------------
    async def reload(self) -> ReloadOutcome:
        """SIGHUP and `edgeguard reload`: re-read the config; a config that cannot be applied
        leaves the running one (edgeguard.reloading)."""
        return await self.reloader.reload()

    async def _apply_config(self, new: EdgeguardConfig) -> None:
        old = self.config
        assert self.inputs is not None
        assert self._loop is not None
        # Build everything that can fail (key file, TLS files) before changing anything.
        signer = (
            Signer.from_file(new.signing.private_key) if new.signing != old.signing else self.signer
        )
        uplink = None
        if (new.mqtt, new.site, new.signing) != (old.mqtt, old.site, old.signing):
            uplink = Uplink(new, signer, self.uplink_events, self._loop, self.started_at)
        self.config, self.signer = new, signer
        self.book.config, self.book.signer = new, signer
        self.outbox.window = new.mqtt.inflight_window
        sysd.setup_logging(new.logging.level, new.logging.journald)
        await self._stop_outputs()
        await self.inputs.stop_all()
        await self.inputs.start_all(list(new.inputs))
        await self._start_outputs()
        await self._reload_cameras(old, new)
        if uplink is not None:
            logger.info("reload: MQTT settings changed, reconnecting")
            await self._replace_uplink(uplink)
        if self.transmission is not None:
            await self.transmission.reload(new, signer)
        await self.writer.run(lambda s: s.append_event("config.reload", data={}))
        logger.info("config reloaded from %s", self.config_path)

    async def _reload_cameras(self, old: EdgeguardConfig, new: EdgeguardConfig) -> None:
        """Restart the cameras only when their settings changed: a restart blinds them for a
        second or two."""
        changed = (old.cameras, old.locations, old.store) != (new.cameras, new.locations, new.store)
        if changed or self.cameras is None:
            await self._stop_cameras()
            await self._start_cameras()
        else:
            self.cameras.config = new

    async def _replace_uplink(self, uplink: Uplink) -> None:
        old, self.uplink = self.uplink, uplink
        self.outbox.attach(uplink)
        if old is not None:
            await old.stop()
        uplink.start()

    # --- control socket ---------------------------------------------------------------------
    async def _handle_control(self, request: Any) -> dict[str, Any]:
        if isinstance(request, ReloadRequest):
            return (await self.reload()).answer()
        if isinstance(request, ResetRequest):
            try:
                record = await self.service.reset(request.event_id, request.by)
            except AlarmError as exc:
                raise RequestError(str(exc)) from exc
            return {"alarm": record.__dict__}
        if isinstance(request, SimulateRequest):
            assert self.inputs is not None
            recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def on_recorded() -> None:
                if not recorded.done():
                    recorded.set_result(None)

            def on_failed(exc: BaseException) -> None:
                if not recorded.done():
                    recorded.set_exception(
                        RequestError(
                            f"not recorded ({exc}); the alarm was sent to the police from memory"
                        )
                    )

            try:
                button = self.inputs.simulated(request.input)
                (button.press if request.cmd == "press" else button.release)(on_recorded, on_failed)
            except (KeyError, DriverError) as exc:
                raise RequestError(str(exc).strip("'\"")) from exc
            try:  # answer once the press is durably recorded, like a serial box's ACK
                await asyncio.wait_for(recorded, SIMULATE_RECORD_TIMEOUT_S)
            except TimeoutError as exc:
                raise RequestError("not recorded in time (see the daemon's log)") from exc
            return {"input": request.input, "action": request.cmd, "recorded": True}
        return await self.status()

    async def status(self) -> dict[str, Any]:
        uplink = self.uplink
        snapshot = await self.service.snapshot()
        if uplink is not None:
            link = uplink.info()  # the broker's node it is on, with `mqtt.nodes`
        else:
            first = format_address(self.config.mqtt.addresses()[0])
            link = {"connected": False, "broker": first, "since": None, "last_error": None}
        store = {
            "failed_writes": self.service.failed_writes,
            "unrecorded_alarms": [r.event_id for r in self.service.unrecorded.values()],
        }
        cameras = self.cameras
        return {
            "cameras": cameras.status() if cameras is not None else {},
            "coverage": cameras.coverage() if cameras is not None else [],
            "store": store,
            "site": self.config.site.id,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "link": link,
            "heartbeat": {"count": self.heartbeats, "last_at": self.last_heartbeat_at},
            "outbox": self.outbox.stats(),
            **({"paths": self.transmission.status()} if self.transmission is not None else {}),
            **snapshot,
        }


def run_daemon(config_path: Path) -> int:
    """Entry point of `edgeguard run`."""
    config = load_config(config_path)
    sysd.setup_logging(config.logging.level, config.logging.journald)
    logger.info(
        "edgeguard %s starting for site %s (%s)", __version__, config.site.id, config.site.name
    )
    daemon = Daemon(config, config_path)
    return asyncio.run(daemon.run())
