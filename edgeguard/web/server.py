"""Serving a console on the daemon's own event loop. A console that cannot start (port taken,
bad certificate) is logged and retried; it never stops the alarm path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from edgeguard.safe_text import preview
from edgeguard.web.config import WebConfig

logger = logging.getLogger(__name__)

RETRY_S = 30.0
SHUTDOWN_S = 1.0  # open live streams never end by themselves: do not hold a stop for them


def ssl_context(config: WebConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    return context


class MalformedRequests(logging.Filter):
    """aiohttp answers a request it cannot parse with 400 itself, and logs it with
    ``logger.exception``: an ERROR and a traceback for what is only bad input from outside.
    This filter, on the logger our servers hand aiohttp, makes such a record one WARNING line
    (a DEBUG one stays DEBUG: aiohttp keeps non-HTTP bytes such as a TLS hello there)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            said = record.getMessage()  # "Error handling request from <address>"
            record.msg = "%s: malformed HTTP request, answered %s: %s"
            record.args = (said, error.code, preview(" ".join(error.message.split()), 240))
            record.levelno = min(record.levelno, logging.WARNING)
            record.levelname = logging.getLevelName(record.levelno)
            record.exc_info = record.exc_text = None
        return True


# aiohttp's RequestHandler logs through the `logger` the runner passes it (default aiohttp.server)
HTTP_LOGGER = logging.getLogger("edgeguard.web.http")
HTTP_LOGGER.addFilter(MalformedRequests())


class WebServer:
    def __init__(self, app: web.Application, config: WebConfig, what: str) -> None:
        self.app = app
        self.config = config
        self.what = what
        self._runner: web.AppRunner | None = None
        self._retry: asyncio.Task[None] | None = None
        self.url: str | None = None
        self.last_error: str | None = None

    async def start(self) -> bool:
        """Start serving; on failure log it, retry every 30 s in the background, return False."""
        if await self._try_start():
            return True
        self._retry = asyncio.create_task(self._retry_loop(), name=f"{self.what} web retry")
        return False

    async def _try_start(self) -> bool:
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_S,
            logger=HTTP_LOGGER,
        )
        try:
            await runner.setup()
            site = web.TCPSite(
                runner, self.config.host, self.config.port, ssl_context=ssl_context(self.config)
            )
            await site.start()
        except (OSError, ssl.SSLError, ValueError) as exc:
            await runner.cleanup()
            self.last_error = str(exc)
            logger.error(
                "%s web console cannot listen on %s:%s: %s (retrying every %.0f s)",
                self.what, self.config.host, self.config.port, exc, RETRY_S,
            )  # fmt: skip
            return False
        self._runner = runner
        scheme = "https" if self.config.https else "http"
        self.url = f"{scheme}://{self.config.host}:{self.config.port}/"
        self.last_error = None
        logger.info("%s web console on %s", self.what, self.url)
        return True

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(RETRY_S)
            if await self._try_start():
                return

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
