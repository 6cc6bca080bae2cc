"""What importing a module drags in: the config is light, the daemon carries no numpy, and the
core never imports a concrete driver (docs/architecture.md, "Dependency direction")."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "sqlite_utils", "edgeguard.store", "gpiozero", "serial", "pymodbus", "cv2")


def _loaded_after(statement: str) -> list[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout))


def test_importing_the_config_loads_no_store_numpy_or_hardware() -> None:
    loaded = _loaded_after("import edgeguard.config")
    assert [m for m in HEAVY if m in loaded] == []


def test_the_daemon_loads_no_numpy() -> None:
    loaded = _loaded_after("import edgeguard.daemon")
    assert "sqlite_utils" in loaded
    assert "numpy" not in loaded


def test_numpy_still_imports_after_the_store() -> None:
    loaded = _loaded_after("import edgeguard.store, numpy")
    assert "numpy" in loaded


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_core_imports_no_driver() -> None:
    """Drivers depend on the core (edgeguard.driver_api); the core finds them through the
    registry. Only the lab's device simulators use the drivers' protocol modules."""
    core = [p for p in sorted((REPO / "edgeguard").rglob("*.py")) if "lab" not in p.parts]
    offenders = {
        str(path.relative_to(REPO)): sorted(drivers)
        for path in core
        if (drivers := {m for m in _imported_modules(path) if m.startswith("edgeguard_drivers")})
    }
    assert offenders == {}
