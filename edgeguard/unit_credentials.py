"""The credentials the service will get, read outside systemd: the unit's `LoadCredential=` and
`SetCredential=` lines (and its drop-ins), so `check-config` and `user add` resolve
`{credential: NAME}` as the daemon will, and a missing one names the file it expected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

UNIT_NAME = "edgeguard.service"
UNIT_DIRS = (Path("/etc/systemd/system"), Path("/lib/systemd/system"))
SHIPPED_UNIT = Path(__file__).resolve().parent.parent / "systemd" / UNIT_NAME


@dataclass(frozen=True)
class UnitCredentials:
    """Where each credential of a unit comes from: its source file, and whether a
    SetCredential= default stands in for a missing file."""

    unit: Path
    sources: dict[str, Path]
    defaults: frozenset[str]

    def path(self, name: str) -> Path:
        if name not in self.sources:
            raise ValueError(f"credential {name!r}: no LoadCredential={name}:… in {self.unit}")
        source = self.sources[name]
        if not source.is_file():
            if name in self.defaults:
                raise ValueError(
                    f"credential {name!r}: no file {source} (the service gets an empty default)"
                )
            raise ValueError(
                f"credential {name!r}: no file {source} "
                "(the service will not start: 243/CREDENTIALS)"
            )
        return source


def find_unit(explicit: Path | None = None) -> Path:
    """The unit given, else the installed one, else the one shipped beside the package."""
    if explicit is not None:
        return explicit
    for folder in UNIT_DIRS:
        if (folder / UNIT_NAME).is_file():
            return folder / UNIT_NAME
    return SHIPPED_UNIT


def _unit_files(unit: Path) -> list[Path]:
    dropins = Path(f"{unit}.d")
    return [unit, *sorted(dropins.glob("*.conf"))] if dropins.is_dir() else [unit]


def _directive(line: str) -> tuple[str, str] | None:
    key, sep, value = line.strip().partition("=")
    if not sep or key not in ("LoadCredential", "SetCredential"):
        return None
    return key, value.strip()


def read_unit(unit: Path) -> UnitCredentials:
    """Parse a unit's credential lines; OSError if it cannot be read."""
    sources: dict[str, Path] = {}
    defaults: set[str] = set()
    for file in _unit_files(unit):
        for line in file.read_text(encoding="utf-8").splitlines():
            found = _directive(line)
            if found is None:
                continue
            key, value = found
            name, _, source = value.partition(":")
            if key == "SetCredential":
                defaults.add(name)
            elif not value:
                sources.clear()  # an empty LoadCredential= resets the list
            else:
                sources[name] = Path(source or f"/etc/credstore/{name}")
    return UnitCredentials(unit, sources, frozenset(defaults))
