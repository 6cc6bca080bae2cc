"""The driver registry: every registered driver has a schema and a class, every schema in
drivers/ is registered, and a new driver needs only a module and an entry point."""

from __future__ import annotations

import inspect
import json
import os
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import import_module
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import edgeguard_drivers
from edgeguard import driver_registry
from edgeguard.driver_api import DriverConfig, InputDriver
from edgeguard.driver_registry import (
    ENTRY_POINT_GROUP,
    RegistryError,
    driver_class,
    schema_type,
    schemas,
)


def _driver_modules() -> Iterator[Any]:
    for info in pkgutil.iter_modules(edgeguard_drivers.__path__):
        yield import_module(f"edgeguard_drivers.{info.name}")


def _defined_in_drivers(base: type) -> set[type]:
    return {
        obj
        for module in _driver_modules()
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, base) and obj.__module__ == module.__name__
    }


def test_every_registered_driver_has_its_schema_and_class() -> None:
    assert set(schemas()) == {"contact_id", "gpio", "modbus", "serial", "sia_dc09", "simulated"}
    for name, schema in schemas().items():
        assert schema_type(schema) == name
        cls = driver_class(name)
        assert cls.type_name == name, f"{schema.implementation} has type_name {cls.type_name!r}"
        assert not inspect.isabstract(cls)


def test_every_schema_and_driver_in_drivers_is_registered() -> None:
    concrete = {s for s in _defined_in_drivers(DriverConfig) if schema_type(s) is not None}
    assert concrete == set(schemas().values()), "a driver schema is not in pyproject's entry points"
    drivers = {d for d in _defined_in_drivers(InputDriver) if not inspect.isabstract(d)}
    assert drivers == {driver_class(name) for name in schemas()}, "a driver class has no schema"


def test_schemas_import_no_hardware_library() -> None:
    code = (
        "import json, sys; from edgeguard.driver_registry import schemas; schemas(); "
        "print(json.dumps([m for m in ('gpiozero', 'lgpio', 'serial', 'pymodbus') "
        "if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.fixture
def fake_entries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EntryPoint]]:
    entries: list[EntryPoint] = []
    monkeypatch.setattr(driver_registry, "entry_points", lambda group: list(entries))
    schemas.cache_clear()
    yield entries
    schemas.cache_clear()


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("gpio", "edgeguard_drivers.serial_box_config:SerialInputConfig", "has type 'serial'"),
        ("gpio", "edgeguard.config_base:StrictModel", "is not a DriverConfig"),
        ("gpio", "edgeguard.driver_api:DriverConfig", "has type None"),
    ],
)
def test_a_broken_entry_is_refused(
    fake_entries: list[EntryPoint], name: str, value: str, problem: str
) -> None:
    fake_entries.append(EntryPoint(name, value, ENTRY_POINT_GROUP))
    with pytest.raises(RegistryError, match=problem):
        schemas()


def test_no_driver_registered_says_why(fake_entries: list[EntryPoint]) -> None:
    with pytest.raises(RegistryError, match="is edgeguard installed"):
        schemas()


THROWAWAY = '''\
from typing import ClassVar, Literal

from pydantic import Field

from edgeguard.config_base import PointConfig
from edgeguard.driver_api import DriverConfig, InputDriver
from edgeguard.alarm_model import Action, DeviceState


class ThrowawayConfig(DriverConfig, PointConfig):
    """A driver that exists only in this test."""

    implementation: ClassVar[str] = "throwaway_driver:Throwaway"
    type: Literal["throwaway"] = Field(description="Driver type: `throwaway`.")
    volts: float = Field(default=5.0, description="Made up.")


class Throwaway(InputDriver[ThrowawayConfig]):
    type_name = "throwaway"

    def points(self):
        return {self.name: self.config}

    def start(self):
        self.report(DeviceState.ONLINE, volts=self.config.volts)
        self.sink.submit(self.signal(self.name, Action.ACTIVE))

    def stop(self):
        pass
'''

CHECK = '''\
import asyncio, json, sys
from edgeguard.config_loader import ConfigError, load_config
from edgeguard.inputs import InputManager

class Sink:
    def __init__(self):
        self.seen = []
    def submit(self, signal):
        self.seen.append(["signal", signal.source, signal.action.value])
    def device_status(self, status):
        self.seen.append(["status", status.device, status.state.value])

config = load_config(sys.argv[1])
sink = Sink()
manager = InputManager(sink)
asyncio.run(manager.start_all(list(config.inputs)))
try:
    load_config(sys.argv[2])
except ConfigError as exc:
    issues = [str(issue) for issue in exc.issues]
print(json.dumps({"points": list(config.points()), "seen": sink.seen, "issues": issues}))
'''

SITE = """\
site: {id: hosp-01, name: Test}
signing: {private_key: /etc/edgeguard/site.key}
locations:
  er: {label: ER}
inputs:
  - type: throwaway
    name: t1
    location: er
"""


def test_a_driver_is_a_module_and_an_entry_point(tmp_path: Path) -> None:
    """A distribution of its own (a module and its dist-info with the entry point) adds a
    driver type that the config validates and the input manager starts."""
    (tmp_path / "throwaway_driver.py").write_text(THROWAWAY, encoding="utf-8")
    dist = tmp_path / "throwaway_driver-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: throwaway-driver\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nthrowaway = throwaway_driver:ThrowawayConfig\n"
    )
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(SITE, encoding="utf-8")
    bad.write_text(SITE + "    volts: lots\n", encoding="utf-8")
    (tmp_path / "check.py").write_text(CHECK, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, str(tmp_path / "check.py"), str(good), str(bad)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout)
    assert result["points"] == ["t1"]
    assert result["seen"] == [["status", "t1", "online"], ["signal", "t1", "active"]]
    assert len(result["issues"]) == 1
    assert result["issues"][0].startswith(f"{bad}:9: inputs[0].volts: Input should be a valid")
