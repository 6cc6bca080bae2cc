"""The sites' public keys, re-read when a site without one speaks: adding a hospital is
dropping its `{site id}.pub` into the keys folder (or the shared folder every receiver of a
city mounts); no receiver restarts.

A folder read costs a few milliseconds, and a stranger may publish under many unknown ids: the
folder is re-read at most every ``RELOAD_EVERY_S``.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from edgeguard.receiver import Receiver, load_site_keys

logger = logging.getLogger(__name__)

RELOAD_EVERY_S = 5.0


class SiteKeys:
    def __init__(self, receiver: Receiver, folder: Path) -> None:
        self.receiver = receiver
        self.folder = folder
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def ensure(self, site: str) -> None:
        """Before verifying a message of ``site``: re-read the folder if it has no key."""
        if site in self.receiver.keys:
            return
        with self._lock:
            now = time.monotonic()
            if site in self.receiver.keys or now - self._last < RELOAD_EVERY_S:
                return
            self._last = now
            try:
                keys = load_site_keys(self.folder)
            except (OSError, ValueError) as exc:
                logger.error("site keys in %s not re-read: %s", self.folder, exc)
                return
            added = sorted(set(keys) - set(self.receiver.keys))
            self.receiver.keys = keys  # one assignment: threads see the old or the new dict
            if added:
                logger.warning("site keys re-read from %s: new %s", self.folder, ", ".join(added))
