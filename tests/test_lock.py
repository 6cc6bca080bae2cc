"""requirements.lock, the constraints `make venv` installs with (reproducible installs): every
requirement of pyproject.toml has a pin there that satisfies it, and scripts/lock.sh writes
it in the form it is read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
LOCK_SH = ROOT / "scripts" / "lock.sh"


def read_lock(path: Path) -> dict[str, Version]:
    """name → pinned version; every line a comment or exactly `name==version`."""
    pins: dict[str, Version] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{path.name}:{number}: not a pin: {raw!r}"
        assert not requirement.extras, raw
        assert requirement.marker is None, raw
        assert not requirement.url, raw
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{path.name}:{number}: {name} pinned twice"
        pins[name] = Version(spec.version)
    return pins


def pyproject_requirements() -> list[tuple[str, Requirement]]:
    """(where, requirement) for the dependencies, every extra and the build requirements,
    except edgeguard's own extras (`edgeguard[city]`)."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        pyproject = tomllib.load(f)
    found = [("dependencies", Requirement(r)) for r in pyproject["project"]["dependencies"]]
    for extra, requirements in pyproject["project"].get("optional-dependencies", {}).items():
        found += [(f"[{extra}]", Requirement(r)) for r in requirements]
    found += [("build-system", Requirement(r)) for r in pyproject["build-system"]["requires"]]
    return [(where, r) for where, r in found if canonicalize_name(r.name) != "edgeguard"]


def test_the_lock_pins_each_package_once() -> None:
    pins = read_lock(LOCK)
    assert "edgeguard" not in pins  # the project itself is installed from the checkout
    assert len(pins) > 50


@pytest.mark.parametrize(
    ("where", "requirement"), pyproject_requirements(), ids=str
)
def test_every_requirement_has_a_pin_that_satisfies_it(
    where: str, requirement: Requirement
) -> None:
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        pytest.skip(f"{requirement} does not apply on this platform")
    pins = read_lock(LOCK)
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement} ({where}) has no pin in requirements.lock"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"requirements.lock pins {name}=={pins[name]}, outside {requirement} ({where})"
    )


def test_make_venv_installs_with_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet -c requirements.lock -e '.[dev]'" in makefile
    assert "$(STAMP): pyproject.toml requirements.lock" in makefile  # a new lock reinstalls
    assert "bash scripts/lock.sh" in makefile  # make lock


def test_lock_sh_writes_the_lock_of_a_venv(tmp_path: Path) -> None:
    """scripts/lock.sh on the environment running the tests: the format read_lock reads,
    that environment's versions, no editable edgeguard."""
    out = tmp_path / "requirements.lock"
    env = {**os.environ, "VENV": sys.prefix, "LOCK": str(out)}
    subprocess.run(["bash", str(LOCK_SH)], check=True, env=env, timeout=120, cwd=tmp_path)
    pins = read_lock(out)
    assert "edgeguard" not in pins
    for name in ("pytest", "pydantic", "packaging", "pip"):
        assert pins[name] == Version(version(name)), name
    assert out.read_text(encoding="utf-8").startswith("# ")


def test_lock_sh_is_shellcheck_clean() -> None:
    assert os.access(LOCK_SH, os.X_OK), "scripts/lock.sh should be executable"
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(
        [shellcheck, str(LOCK_SH)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
