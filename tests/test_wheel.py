"""What ships to a hospital: the wheel built from this tree holds every production module and
none of the lab (a fake ONVIF camera, a development PKI, simulators), which tests, benches and
the demo import from the source tree. Its version is edgeguard.__version__, the only place the
version is written."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

import edgeguard

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"edgeguard": ROOT / "edgeguard", "edgeguard_drivers": ROOT / "drivers"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")  # built from a copy: no build/ left in the repo
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "edgeguard", tree / "edgeguard", ignore=ignore)
    shutil.copytree(ROOT / "drivers", tree / "drivers", ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "-q", "-w", str(out), str(tree)], check=True, timeout=300)
    (built,) = out.glob("edgeguard-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_version_is_written_once() -> None:
    """pyproject.toml takes the version from edgeguard/__init__.py: no second copy to forget."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        pyproject = tomllib.load(f)
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "edgeguard.__version__"}


def test_the_wheel_carries_edgeguard_version(wheel: Path) -> None:
    assert wheel.name.startswith(f"edgeguard-{edgeguard.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        headers = HeaderParser().parsestr(archive.read(metadata).decode("utf-8"))
    assert headers["Name"] == "edgeguard"
    assert headers["Version"] == edgeguard.__version__


def _production_modules() -> set[str]:
    found = set()
    for package, folder in SOURCES.items():
        for module in folder.rglob("*.py"):
            relative = module.relative_to(folder)
            if relative.parts[0] != "lab":
                found.add(f"{package}/{relative.as_posix()}")
    return found


def test_the_wheel_has_no_lab(wheel_names: set[str]) -> None:
    assert not [name for name in wheel_names if name.startswith("edgeguard/lab/")]


def test_the_wheel_has_every_production_module(wheel_names: set[str]) -> None:
    """A new subpackage forgotten in pyproject's package list fails here, not at a hospital."""
    assert _production_modules() - wheel_names == set()
    assert {"edgeguard/py.typed", "edgeguard_drivers/py.typed"} <= wheel_names
    assert any(name.startswith("edgeguard/web/static/") for name in wheel_names)
