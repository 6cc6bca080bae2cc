"""The input drivers, found by name: the entry points of group ``edgeguard.drivers``.

Each entry maps a driver type (the `type` of an input in the config) to that driver's config
schema, a :class:`~edgeguard.driver_api.DriverConfig` whose ``implementation`` names its driver
class. Schemas are loaded when the config is imported; a driver class only when an input of its
type starts, so the config never imports hardware libraries. Adding a driver is a module and an
entry in pyproject.toml (docs/architecture.md, "Adding a driver"); nothing in the core names it.
"""

from __future__ import annotations

import functools
import typing
from importlib.metadata import EntryPoint, entry_points
from pkgutil import resolve_name
from typing import Any

from edgeguard.driver_api import DriverConfig, InputDriver

ENTRY_POINT_GROUP = "edgeguard.drivers"


class RegistryError(RuntimeError):
    """A registered driver is broken: its entry, schema or class does not fit."""


@functools.cache
def schemas() -> dict[str, type[DriverConfig]]:
    """Every registered driver's config schema, by driver type, in name order (installers do
    not keep the order of the entries)."""
    found: dict[str, type[DriverConfig]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in found:  # an entry shadowed by an earlier distribution
            found[entry.name] = _schema(entry)
    if not found:
        raise RegistryError(
            f"no input drivers registered (entry points {ENTRY_POINT_GROUP!r}): "
            "is edgeguard installed (`make venv`)?"
        )
    return dict(sorted(found.items()))


def _schema(entry: EntryPoint) -> type[DriverConfig]:
    schema = entry.load()
    if not (isinstance(schema, type) and issubclass(schema, DriverConfig)):
        raise RegistryError(f"driver {entry.name!r}: {entry.value} is not a DriverConfig")
    if schema_type(schema) != entry.name:
        raise RegistryError(
            f"driver {entry.name!r}: {entry.value} has type {schema_type(schema)!r}"
        )
    if not isinstance(getattr(schema, "implementation", None), str):
        raise RegistryError(f"driver {entry.name!r}: {entry.value} names no implementation")
    return schema


def schema_type(schema: type[DriverConfig]) -> str | None:
    """The driver type a schema accepts: its ``type: Literal["..."]``, else None."""
    annotation = schema.model_fields["type"].annotation
    if typing.get_origin(annotation) is typing.Literal and len(typing.get_args(annotation)) == 1:
        return str(typing.get_args(annotation)[0])
    return None


def driver_class(driver_type: str) -> type[InputDriver[Any]]:
    """The driver class for inputs of ``driver_type`` (imported now, with its libraries)."""
    schema = schemas()[driver_type]
    cls = resolve_name(schema.implementation)
    if not (isinstance(cls, type) and issubclass(cls, InputDriver)):
        raise RegistryError(f"driver {driver_type!r}: {schema.implementation} is no InputDriver")
    return cls
