"""The extra transmission paths of the daemon (docs/transmission-paths.md): the secondary
broker's uplink, the SMS modem, and the supervision of every path. The primary uplink stays
the daemon's own (``Daemon.uplink``, its events reported to ``supervisor`` too); this object is
only built when a second path is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from edgeguard.alarm_model import DeviceState
from edgeguard.config import EdgeguardConfig
from edgeguard.gsm_modem import GsmModem
from edgeguard.service import AlarmService
from edgeguard.signing import Signer
from edgeguard.uplink.link_events import LinkEvents
from edgeguard.uplink.outbox import Outbox
from edgeguard.uplink.path_supervisor import PathSupervisor, failover_after
from edgeguard.uplink.site_link import NotConnectedError, Uplink
from edgeguard.uplink.sms import SMS_FAILED, SMS_SENT, SmsNotifier, mask_number

logger = logging.getLogger(__name__)


class Transmission:
    def __init__(
        self,
        config: EdgeguardConfig,
        signer: Signer,
        outbox: Outbox,
        service: AlarmService,
        started_at: datetime,
    ) -> None:
        self.config = config
        self.signer = signer
        self.outbox = outbox
        self.service = service
        self.started_at = started_at
        self.supervisor = PathSupervisor(config, service)
        self.secondary: Uplink | None = None
        self.secondary_events: LinkEvents | None = None
        self.modem: GsmModem | None = None
        self.notifier: SmsNotifier | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def prepare(self, texted: list[str] | None = None) -> None:
        """Before the outbox loads its rows (on the loop): set up the failover. ``texted``: the
        alarms already texted before a restart (from the ledger), not texted again."""
        secondary = self.config.mqtt.secondary
        if self.config.sms is not None:
            self.modem = GsmModem(self.config.sms, self._modem_state, self._sms_result)
            self.notifier = SmsNotifier(self.config.sms, self.modem, texted or [])
        self.outbox.enable_failover(
            failover_after(self.config),
            secondary.inflight_window if secondary is not None else None,
            self.notifier.on_overdue if self.notifier is not None else None,
        )

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.supervisor.start()
        if self.config.mqtt.secondary is not None:
            assert self.outbox.secondary is not None  # prepare() made its lane
            self.secondary_events = LinkEvents(
                "secondary",
                self.outbox,
                self.outbox.secondary,
                self.service,
                spawn=self._spawn,
                supervisor=self.supervisor,
            )
            self.secondary = self._make_secondary(self.config, self.signer, loop)
            self.outbox.attach_secondary(self.secondary)
            self.secondary.start()
        if self.modem is not None:
            self.modem.start()

    def _make_secondary(
        self, config: EdgeguardConfig, signer: Signer, loop: asyncio.AbstractEventLoop
    ) -> Uplink:
        assert self.secondary_events is not None
        broker = config.mqtt.secondary
        return Uplink(
            config,
            signer,
            self.secondary_events,
            loop,
            self.started_at,
            broker=broker,
            path="secondary",
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _modem_state(self, state: DeviceState, detail: dict[str, Any]) -> None:
        """From the modem's thread: handed to the loop."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(self.supervisor.modem_state, state, detail)

    def _sms_result(self, event_id: str, number: str, mr: int | None, error: str | None) -> None:
        """From the modem's thread: each SMS, sent or not, goes into the ledger (evidence that
        the police were, or were not, told this way; and no second SMS after a restart)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(self._record_sms, event_id, number, mr, error)

    def _record_sms(self, event_id: str, number: str, mr: int | None, error: str | None) -> None:
        kind = SMS_FAILED if error else SMS_SENT
        data = {"to": mask_number(number), "mr": mr, **({"error": error} if error else {})}
        task = asyncio.ensure_future(
            self.service.writer.run(lambda s: s.append_event(kind, event_id=event_id, data=data))
        )
        task.add_done_callback(_log_record_failure)

    # --- the daemon's hooks -----------------------------------------------------------------
    def publish_heartbeat(self, topic: str, payload: bytes, qos: int) -> None:
        uplink = self.secondary
        if uplink is not None and uplink.connected:
            with contextlib.suppress(NotConnectedError):
                uplink.publish(topic, payload, qos, False)

    async def reload(self, new: EdgeguardConfig, signer: Signer) -> None:
        """A changed secondary broker reconnects; adding or removing a path needs a restart."""
        old, self.config, self.signer = self.config, new, signer
        self.supervisor.config = new
        if (old.mqtt.secondary is None) != (new.mqtt.secondary is None) or old.sms != new.sms:
            logger.warning("reload: adding or removing a transmission path takes a restart")
            return
        unchanged = (old.mqtt.secondary, old.site, old.signing) == (
            new.mqtt.secondary,
            new.site,
            new.signing,
        )
        if self.secondary is None or unchanged:
            return
        assert self._loop is not None
        uplink = self._make_secondary(new, signer, self._loop)
        previous, self.secondary = self.secondary, uplink
        self.outbox.attach_secondary(uplink)
        await previous.stop()
        uplink.start()

    async def stop(self) -> None:
        self.outbox.close()
        await self.supervisor.close()
        if self.secondary is not None:
            await self.secondary.stop()
        if self.modem is not None:
            await asyncio.to_thread(self.modem.stop)

    def status(self) -> dict[str, Any]:
        uplink = self.secondary
        out: dict[str, Any] = {"supervision": self.supervisor.status()}
        if uplink is not None:
            out["secondary"] = uplink.info()
        if self.modem is not None:
            out["sms"] = {"sent": self.modem.sent, "failed": self.modem.failed}
        return out


def _log_record_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("sms: could not record the result in the ledger: %s", task.exception())
