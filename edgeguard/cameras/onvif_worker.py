"""The ONVIF process: ``python -m edgeguard.cameras.onvif_worker`` (one for all ONVIF cameras).

It keeps a session to each camera (device information, stream and snapshot URIs, clock check),
pulls its events (PullPoint, renewed, re-subscribed after a loss) and carries out PTZ moves and
snapshot fetches the daemon asks for. SOAP and XML parsing stay out of the daemon's process,
so a slow or hostile camera cannot slow the alarm path. Wire format: edgeguard.cameras.wire."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict

from edgeguard.cameras.onvif_answers import OnvifError
from edgeguard.cameras.onvif_client import OnvifDevice
from edgeguard.cameras.wire import ChildChannel, child_start

logger = logging.getLogger(__name__)

RETRY_MIN_S = 2.0
RETRY_MAX_S = 60.0
AUTH_RETRY_S = 300.0  # refused credentials: do not hammer the camera (account lock-outs)
STATS_INTERVAL_S = 2.0


class OnvifCameraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    host: str
    port: int
    username: str
    password: str
    profile: str | None = None
    events: bool = True
    timeout: float = 10.0


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cameras: list[OnvifCameraSettings]


class Worker:
    def __init__(self, settings: WorkerSettings, channel: ChildChannel) -> None:
        self.settings = settings
        self.channel = channel
        self.devices: dict[str, OnvifDevice] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        threading.Thread(target=self._read_commands, daemon=True, name="commands").start()
        tasks = [asyncio.create_task(self._camera(c)) for c in self.settings.cameras]
        tasks.append(asyncio.create_task(self._alive()))
        await self.stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for device in list(self.devices.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(device.close(), 3.0)

    async def _alive(self) -> None:
        while True:  # tells the parent this process is not wedged
            self.channel.send({"type": "alive", "connected": sorted(self.devices)})
            await asyncio.sleep(STATS_INTERVAL_S)

    # --- one camera -------------------------------------------------------------------------
    async def _camera(self, cfg: OnvifCameraSettings) -> None:
        delay = RETRY_MIN_S
        while True:
            device = OnvifDevice(
                cfg.host, cfg.port, cfg.username, cfg.password, profile=cfg.profile,
                timeout_s=cfg.timeout,
            )  # fmt: skip
            try:
                info = await device.connect()
                self.devices[cfg.name] = device
                self.channel.send(
                    {"type": "info", "camera": cfg.name, "info": dataclasses.asdict(info)}
                )
                delay = RETRY_MIN_S
                await self._follow(cfg, device)
            except OnvifError as exc:
                self.channel.send(
                    {"type": "error", "camera": cfg.name, "error": str(exc), "auth": exc.auth}
                )
                delay = AUTH_RETRY_S if exc.auth else delay
            finally:
                self.devices.pop(cfg.name, None)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(device.close(), 3.0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _follow(self, cfg: OnvifCameraSettings, device: OnvifDevice) -> None:
        info = device.info
        if cfg.events and info is not None and not info.has_events:
            logger.warning("camera %s: has no ONVIF events service; events off", cfg.name)
        if not cfg.events or info is None or not info.has_events:
            await asyncio.Event().wait()  # kept for PTZ and snapshots until stopped
        async for event in device.events():
            self.channel.send(
                {
                    "type": "event",
                    "camera": cfg.name,
                    "kind": event.kind,
                    "topic": event.topic,
                    "source": event.source,
                    "active": event.active,
                    "at": event.at.isoformat(),
                    "initialized": event.initialized,
                }
            )

    # --- commands from the daemon -----------------------------------------------------------
    def _read_commands(self) -> None:
        for command in self.channel.commands():
            if command.get("cmd") == "stop":
                break
            assert self.loop is not None
            self.loop.call_soon_threadsafe(self._dispatch, command)
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.stopping.set)

    def _dispatch(self, command: dict[str, Any]) -> None:
        task = asyncio.create_task(self._handle(command))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _handle(self, command: dict[str, Any]) -> None:
        request_id = command.get("id")
        device = self.devices.get(str(command.get("camera")))
        reply: dict[str, Any] = {"type": "reply", "id": request_id}
        if device is None:
            self.channel.send({**reply, "error": "camera not connected over ONVIF"})
            return
        try:
            if command.get("cmd") == "snapshot":
                jpeg = await device.snapshot()
                self.channel.send({**reply, "size": len(jpeg)}, jpeg)
                return
            if command.get("cmd") == "ptz":
                preset, profile = command.get("preset"), command.get("profile")
                if preset:
                    await device.goto_preset(str(preset), profile)
                else:
                    await device.goto_home(profile)
                self.channel.send({**reply, "ok": True})
                return
            self.channel.send({**reply, "error": f"unknown command {command.get('cmd')!r}"})
        except OnvifError as exc:
            self.channel.send({**reply, "error": str(exc)})


def main() -> int:
    channel, raw = child_start("onvif", "EDGEGUARD_ONVIF_LOG")
    settings = WorkerSettings.model_validate(raw)
    channel.send({"type": "hello", "pid": os.getpid()})
    asyncio.run(Worker(settings, channel).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
