"""What the `edgeguard` commands share: exit codes, the default config file, its option, and
one setting read from it without validating the rest."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_CONFIG = Path(os.environ.get("EDGEGUARD_CONFIG", "/etc/edgeguard/edgeguard.yaml"))
EXIT_OK, EXIT_FAIL = 0, 1


def config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="config file (default: $EDGEGUARD_CONFIG or /etc/edgeguard/edgeguard.yaml)",
    )


def config_setting(args: argparse.Namespace, section: str, key: str, default: Path) -> Path:
    """One path from the config file without validating the rest: operators run `status`,
    `reset` and `events` outside systemd, where the daemon's credentials cannot be read."""
    from edgeguard.config_loader import ConfigError, ConfigIssue, parse_yaml

    try:
        text = Path(args.config).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(args.config), None, "", f"cannot read: {exc}")]) from exc
    data, _ = parse_yaml(text, str(args.config))
    part = data.get(section) if isinstance(data, dict) else None
    found = part.get(key) if isinstance(part, dict) else None
    return Path(found) if isinstance(found, str) else default
