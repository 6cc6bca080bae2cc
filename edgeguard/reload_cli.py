"""`edgeguard reload`: ask the running daemon to re-read its config and wait for the verdict.

The unit's ExecReload= (systemd 252 has no Type=notify-reload): a rejected config, or no daemon
answering, exits non-zero with the reason, so `systemctl reload edgeguard` fails visibly
instead of reporting success while the daemon only logs the rejection."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeguard.cli_common import EXIT_FAIL, EXIT_OK, config_setting

# Within systemd's default TimeoutStartSec= (90 s), which also bounds ExecReload=: a reload
# restarts the inputs and, when their settings changed, the cameras and the MQTT link.
DEFAULT_TIMEOUT_S = 60.0


def _socket(args: argparse.Namespace) -> tuple[Path, str]:
    """The control socket, and why it may be the wrong one. A config broken enough to be
    rejected may not even parse: then the default socket, and the daemon gives the errors."""
    from edgeguard.config import ControlConfig
    from edgeguard.config_loader import ConfigError

    if args.socket is not None:
        return Path(args.socket), ""
    default = ControlConfig().socket
    try:
        return config_setting(args, "control", "socket", default), ""
    except ConfigError as exc:
        return default, f" ({args.config} does not parse: {exc.issues[0]})"


def cmd_reload(args: argparse.Namespace) -> int:
    from edgeguard.control import call

    path, caveat = _socket(args)
    try:
        answer = call(path, {"cmd": "reload"}, timeout=args.timeout)
    except TimeoutError:
        print(
            f"edgeguard: no verdict within {args.timeout:g} s; the reload may still be running "
            "(see the daemon's log)",
            file=sys.stderr,
        )
        return EXIT_FAIL
    except (ConnectionError, OSError, ValueError) as exc:
        print(f"edgeguard: reload not done: {exc}{caveat}", file=sys.stderr)
        return EXIT_FAIL
    if not answer.get("ok"):
        print(f"edgeguard: reload not done: {answer.get('error')}", file=sys.stderr)
        return EXIT_FAIL
    config = answer.get("config")
    if not answer.get("reloaded"):
        for error in answer.get("errors", []):
            print(error, file=sys.stderr)
        print(
            f"edgeguard: reload of {config} rejected, the daemon keeps its running config",
            file=sys.stderr,
        )
        return EXIT_FAIL
    print(f"reloaded {config}")
    for note in answer.get("notes", []):
        print(f"note: {note}")
    return EXIT_OK


def add_reload_command(
    sub: Any, socket_args: Callable[[argparse.ArgumentParser], None]
) -> None:
    p = sub.add_parser("reload", help="make the daemon re-read its config; fails if rejected")
    socket_args(p)
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for the verdict (default {DEFAULT_TIMEOUT_S:g})",
    )
    p.set_defaults(func=cmd_reload)
