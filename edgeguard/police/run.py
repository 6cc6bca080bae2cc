"""`edgeguard police -c FILE`: load the config, start the receiver, start the dashboard if
edgeguard.police.web is installed, run until SIGTERM/SIGINT, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import signal
from pathlib import Path
from typing import Any

from edgeguard import __version__, sysd
from edgeguard.police.config import PoliceConfig, load_police_config
from edgeguard.police.service import PoliceService

logger = logging.getLogger(__name__)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _start_dashboard(service: PoliceService, config: PoliceConfig) -> Any:
    """The dashboard's handle, or None when edgeguard.police.web is absent or disabled."""
    if not config.web.enabled:
        return None
    try:
        web = importlib.import_module("edgeguard.police.web")
    except ImportError as exc:
        if exc.name != "edgeguard.police.web":
            raise  # the dashboard is there but broken: say so
        logger.info("no dashboard (edgeguard.police.web not installed): receiver only")
        return None
    return await _maybe_await(web.start_dashboard(service, config))


async def _stop_dashboard(handle: Any) -> None:
    for name in ("stop", "close", "cleanup"):
        method = getattr(handle, name, None)
        if callable(method):
            await _maybe_await(method())
            return


async def _watchdog(interval: float) -> None:
    while True:
        sysd.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


async def serve(config: PoliceConfig, stop: asyncio.Event | None = None) -> int:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    service = PoliceService(config)
    dashboard: Any = None
    watchdog: asyncio.Task[None] | None = None
    try:
        await service.start()
        dashboard = await _start_dashboard(service, config)
        interval = sysd.watchdog_interval()
        if interval is not None:
            watchdog = asyncio.create_task(_watchdog(interval))
        sysd.notify("READY=1", f"STATUS=receiving as {config.receiver_id}")
        await stop.wait()
        sysd.notify("STOPPING=1")
        logger.info("stopping")
    finally:
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if dashboard is not None:
            await _stop_dashboard(dashboard)
        await service.stop()
        service.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return 0


def run_police(config_path: Path) -> int:
    """Entry point of `edgeguard police`."""
    config = load_police_config(config_path)
    sysd.setup_logging(config.logging.level, config.logging.journald)
    logger.info("edgeguard %s police receiver %s starting", __version__, config.receiver_id)
    return asyncio.run(serve(config))
