"""Starting and stopping the control-room console inside `edgeguard run`."""

from __future__ import annotations

import asyncio
import logging

from edgeguard.console.backend import ConsoleBackend, DaemonView
from edgeguard.console.routes import console_app
from edgeguard.web.server import WebServer
from edgeguard.web.users import UserStore

logger = logging.getLogger(__name__)


class Console:
    def __init__(self, backend: ConsoleBackend, server: WebServer) -> None:
        self.backend = backend
        self.server = server

    async def stop(self) -> None:
        await self.server.stop()
        self.backend.close()


async def start_console(daemon: DaemonView) -> Console | None:
    """The console per `console:` in the config; None when disabled. A console that cannot
    start is logged and retried by WebServer: the daemon goes on either way."""
    config = daemon.config.console
    if not config.enabled:
        return None
    try:
        users = await asyncio.to_thread(UserStore, config.users_path(daemon.config.store.path))
    except OSError as exc:
        logger.error("console disabled: its users database cannot be opened: %s", exc)
        return None
    backend = ConsoleBackend(daemon)
    server = WebServer(console_app(backend, config, users), config, "control-room")
    await server.start()
    return Console(backend, server)
