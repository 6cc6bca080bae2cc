"""Reloading the daemon's config, with a verdict: SIGHUP (the verdict only goes to the log) and
`edgeguard reload` (the `reload` request of the control socket, answered once the reload is
done, so that `systemctl reload` fails when the new config is rejected).

One reload at a time: a second one waits for the first, then reads the file again. systemd is
told RELOADING=1 before and READY=1 after, whatever the outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeguard import sysd
from edgeguard.config import EdgeguardConfig
from edgeguard.config_loader import ConfigError, load_config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did: applied, or rejected with every reason (a config error names its
    file:line); ``notes`` are parts of an applied config that wait for a restart."""

    reloaded: bool
    config: Path | None
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def answer(self) -> dict[str, Any]:
        """The control socket's answer to a `reload` request."""
        return {
            "reloaded": self.reloaded,
            "config": str(self.config) if self.config is not None else None,
            "errors": list(self.errors),
            "notes": list(self.notes),
        }


def restart_notes(old: EdgeguardConfig, new: EdgeguardConfig) -> tuple[str, ...]:
    if new.store != old.store or new.control != old.control:
        return ("store and control socket changes take effect on restart",)
    return ()


class Reloader:
    """Reads ``path`` again and hands a valid config to ``apply``; anything that fails leaves
    the running config (``current``) in place."""

    def __init__(
        self,
        path: Path | None,
        current: Callable[[], EdgeguardConfig],
        apply: Callable[[EdgeguardConfig], Awaitable[None]],
    ) -> None:
        self.path = path
        self._current = current
        self._apply = apply
        self._lock = asyncio.Lock()

    async def reload(self) -> ReloadOutcome:
        if self.path is None:
            logger.warning("reload: the daemon was not started from a file")
            return ReloadOutcome(False, None, ("the daemon was not started from a config file",))
        async with self._lock:  # a second reload waits for the first
            sysd.notify("RELOADING=1")
            try:
                return await self._reload(self.path)
            finally:
                sysd.notify("READY=1")

    async def _reload(self, path: Path) -> ReloadOutcome:
        try:
            new = await asyncio.to_thread(load_config, path)
            notes = restart_notes(self._current(), new)
            for note in notes:
                logger.warning("reload: %s", note)
            await self._apply(new)
        except ConfigError as exc:
            for issue in exc.issues:
                logger.error("reload rejected, keeping the running config: %s", issue)
            return ReloadOutcome(False, path, tuple(str(issue) for issue in exc.issues))
        except Exception as exc:
            logger.exception("reload failed, keeping the running config")
            return ReloadOutcome(False, path, (f"reload failed: {str(exc) or type(exc).__name__}",))
        return ReloadOutcome(True, path, notes=notes)
