"""Secret sources for config values: literal, environment variable, systemd credential, file.

In YAML a secret is written either as a plain string or as one of::

    password: {env: EDGEGUARD_MQTT_PASSWORD}
    password: {credential: mqtt-password}      # systemd LoadCredential=, via $CREDENTIALS_DIRECTORY
    password: {file: /etc/edgeguard/credentials/mqtt-password}

Key *paths* accept the same forms; a credential or file then resolves to the file's path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, SecretStr

if TYPE_CHECKING:
    from edgeguard.unit_credentials import UnitCredentials

SOURCE_KEYS = ("env", "credential", "file")
_outside: dict[str, Path | UnitCredentials] = {}


def use_credentials(directory: Path | None = None, unit: UnitCredentials | None = None) -> None:
    """Outside systemd (`check-config`, `user add`): credentials from a folder given
    (`--credentials`), else from the unit's LoadCredential= sources when
    $CREDENTIALS_DIRECTORY is not set."""
    _outside.clear()
    if directory is not None:
        _outside["directory"] = directory
    if unit is not None:
        _outside["unit"] = unit


def _single_source(value: dict[str, Any]) -> tuple[str, str]:
    keys = [k for k in value if k in SOURCE_KEYS]
    extra = [k for k in value if k not in SOURCE_KEYS]
    if len(keys) != 1 or extra:
        raise ValueError("a secret source is one of {env: NAME}, {credential: NAME}, {file: PATH}")
    key = keys[0]
    name = value[key]
    if not isinstance(name, str) or not name:
        raise ValueError(f"{key}: expected a non-empty string")
    return key, name


def credential_path(name: str) -> Path:
    given = _outside.get("directory")
    directory = str(given) if isinstance(given, Path) else os.environ.get("CREDENTIALS_DIRECTORY")
    unit = _outside.get("unit")
    if not directory and unit is not None and not isinstance(unit, Path):
        return unit.path(name)
    if not directory:
        raise ValueError(
            f"credential {name!r}: $CREDENTIALS_DIRECTORY is not set "
            "(not started by systemd with LoadCredential=?)"
        )
    path = Path(directory) / name
    if not path.is_file():
        raise ValueError(f"credential {name!r}: no file {path}")
    return path


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {path}: {exc.strerror}") from exc


def resolve_secret_value(value: Any) -> Any:
    """Turn a secret source into its value; leave plain values to normal validation. An empty
    secret is an error: systemd's SetCredential= default for an absent file is a newline."""
    if not isinstance(value, dict):
        return value
    key, name = _single_source(value)
    if key == "env":
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        secret, what = os.environ[name], f"environment variable {name}"
    elif key == "credential":
        secret, what = (
            _read_text(credential_path(name), f"credential {name!r}"),
            f"credential {name!r}",
        )
    else:
        secret, what = _read_text(Path(name), "file"), f"file {name}"
    if not secret.strip():
        raise ValueError(f"{what} is empty")
    return secret


def resolve_secret_path(value: Any) -> Any:
    """Turn a source into a path: env gives the path, credential/file point at the file."""
    if not isinstance(value, dict):
        return value
    key, name = _single_source(value)
    if key == "env":
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]
    if key == "credential":
        return str(credential_path(name))
    return name


Secret = Annotated[SecretStr, BeforeValidator(resolve_secret_value)]
SecretPath = Annotated[Path, BeforeValidator(resolve_secret_path)]
