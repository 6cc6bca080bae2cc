"""docs/architecture.md's module tree is kept true: every module of the daemon package and of
the drivers is named under its own folder, and every module named there exists (as
test_cli_docs does for the commands)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = {"edgeguard/": ROOT / "edgeguard", "drivers/": ROOT / "drivers"}
ENTRY = re.compile(r"^( *)(\S+/|\S+\.py)(?=\s|$)")
MODULE = re.compile(r"(?<![\w/.])((?:[a-z_]+/)*[a-z_][a-z0-9_]*\.py)\b")


def _tree_block() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Modules", 1)[1]
    return section.split("```", 2)[1].splitlines()


def documented_modules() -> set[str]:
    """Paths like ``edgeguard/cameras/manager.py`` named in the tree: an entry's folder comes
    from its indentation; modules named in its description (``(discover_args.py: …)``) or on
    its continuation lines belong to the entry's folder (a folder's own description: inside
    it); a name with a slash is a path from the repository root."""
    found: set[str] = set()
    folders: list[str] = []
    current = ""
    for line in _tree_block():
        entry = ENTRY.match(line)
        if entry and (entry.group(2).endswith("/") or len(entry.group(1)) % 2 == 0):
            depth = len(entry.group(1)) // 2
            del folders[depth:]
            if entry.group(2).endswith("/"):
                folders.append(entry.group(2))
            current = "".join(folders)
        found.update(_resolve(current, name) for name in MODULE.findall(line))
    return {path for path in found if path.startswith(tuple(TREES))}


def _resolve(folder: str, name: str) -> str:
    return name if "/" in name else folder + name


def actual_modules() -> set[str]:
    found = set()
    for prefix, folder in TREES.items():
        for module in folder.rglob("*.py"):
            if module.name != "__init__.py" and "__pycache__" not in module.parts:
                found.add(prefix + module.relative_to(folder).as_posix())
    return found


def test_every_module_is_in_the_tree() -> None:
    assert actual_modules() - documented_modules() == set()


def test_every_module_in_the_tree_exists() -> None:
    assert documented_modules() - actual_modules() == set()


def test_the_tree_parser_reads_folders_and_descriptions() -> None:
    """The parser itself: a nested entry, a module named in a description, a continuation."""
    documented = documented_modules()
    assert "edgeguard/cameras/discover_args.py" in documented
    assert "edgeguard/analytics/model_files.py" in documented
    assert "edgeguard/gsm_modem_config.py" in documented
    assert "drivers/serial_link_config.py" in documented
    assert "edgeguard/cli.py" in documented


def test_no_production_module_over_500_lines() -> None:
    """Modules at a readable size (split where a real seam is); the lab is not production."""
    long = {}
    for path in actual_modules():
        if path.startswith("edgeguard/lab/"):
            continue
        folder, _, rest = path.partition("/")
        lines = len((TREES[folder + "/"] / rest).read_text(encoding="utf-8").splitlines())
        if lines > 500:
            long[path] = lines
    assert long == {}
