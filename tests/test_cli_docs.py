"""Every command and option of `edgeguard` is documented in docs/cli.md (as sqlite-utils does)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from edgeguard.cli import build_parser

DOC = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:  # argparse has no public API for this
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


@pytest.mark.parametrize("command", sorted(_commands()))
def test_command_documented(command: str) -> None:
    assert f"### `edgeguard {command}" in DOC, f"docs/cli.md has no section for {command}"


@pytest.mark.parametrize(
    ("command", "option"),
    sorted(
        (name, opt)
        for name, sub in _commands().items()
        for action in sub._actions
        for opt in action.option_strings
        if opt not in ("-h", "--help")
    ),
)
def test_option_documented(command: str, option: str) -> None:
    assert f"`{option}" in DOC, f"docs/cli.md does not mention {option} of {command}"


def test_global_options_documented() -> None:
    assert "`--version`" in DOC
