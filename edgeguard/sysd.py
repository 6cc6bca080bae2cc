"""systemd integration: sd_notify (READY, STOPPING, RELOADING, STATUS, WATCHDOG) via
systemd-python, and journald logging. Everything is a no-op when not started by systemd."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

try:
    from systemd.journal import JournalHandler

    from systemd import daemon as sd_daemon
except ImportError:  # pragma: no cover - systemd-python is a dependency on Linux
    sd_daemon = None
    JournalHandler = None


def notify(*lines: str) -> bool:
    """Send state lines (e.g. 'READY=1') to the service manager; False if none listens."""
    if sd_daemon is None or not os.environ.get("NOTIFY_SOCKET"):
        return False
    try:
        return bool(sd_daemon.notify("\n".join(lines)))
    except OSError as exc:
        logger.warning("sd_notify failed: %s", exc)
        return False


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None when not requested."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 1_000_000 / 2)
    except ValueError:
        logger.warning("ignoring malformed WATCHDOG_USEC=%r", usec)
        return None


JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


def under_systemd() -> bool:
    return bool(os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))


def setup_logging(level: str, journald: str) -> None:
    """Log to the journal under systemd (or when asked), to stderr otherwise."""
    use_journal = journald == "yes" or (
        journald == "auto" and under_systemd() and JOURNAL_SOCKET.exists()
    )
    handler: logging.Handler
    if use_journal and JournalHandler is not None:
        handler = JournalHandler(SYSLOG_IDENTIFIER="edgeguard")
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # paho logs every failed reconnect attempt at ERROR; the uplink reports the link state
    # itself, so paho's own lines are only wanted when debugging.
    logging.getLogger("edgeguard.paho").setLevel(
        logging.DEBUG if level == "DEBUG" else logging.CRITICAL
    )
