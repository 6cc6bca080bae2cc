"""Importing a library without one of its optional dependencies."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def import_without(name: str, optional: str) -> ModuleType:
    """Import ``name`` as if ``optional`` were not installed, unless ``optional`` is already
    loaded. Only this import is affected: ``optional`` stays importable afterwards."""
    if name in sys.modules or optional in sys.modules:
        return importlib.import_module(name)
    sys.modules[optional] = None  # type: ignore[assignment]  # makes `import optional` fail
    try:
        return importlib.import_module(name)
    finally:
        del sys.modules[optional]
