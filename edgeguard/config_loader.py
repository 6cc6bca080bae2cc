"""Load a YAML config, validate it, and report every error with file:line and key path."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from edgeguard.config import EdgeguardConfig, ReferenceProblemsError

ModelT = TypeVar("ModelT", bound=BaseModel)

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The config file is unusable; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


# Deeper than any real config; PyYAML's composer recurses per level and would overflow the stack.
MAX_NESTING = 100

_OPENERS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSERS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _check_nesting(text: str, file: str) -> None:
    """Reject nesting deeper than MAX_NESTING before composing (the scanner does not recurse)."""
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, _OPENERS):
            depth += 1
            if depth > MAX_NESTING:
                line = token.start_mark.line + 1
                message = f"YAML: nested deeper than {MAX_NESTING} levels"
                raise ConfigError([ConfigIssue(file, line, "", message)])
        elif isinstance(token, _CLOSERS):
            depth -= 1


@dataclass
class _LineMap:
    """Walks the composed YAML: the line of every key path, and every duplicate key."""

    file: str
    lines: dict[KeyPath, int] = field(default_factory=dict)
    dupes: list[ConfigIssue] = field(default_factory=list)

    def walk(self, node: yaml.Node, path: KeyPath, ancestors: frozenset[int]) -> None:
        if id(node) in ancestors:
            line = node.start_mark.line + 1
            message = "YAML: an alias refers to itself (recursive anchor)"
            raise ConfigError([ConfigIssue(self.file, line, format_path(path), message)])
        ancestors = ancestors | {id(node)}
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self._walk_mapping(node, path, ancestors)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index), ancestors)

    def _walk_mapping(
        self, node: yaml.MappingNode, path: KeyPath, ancestors: frozenset[int]
    ) -> None:
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                message = "YAML: a key must be a plain value, not a list or mapping"
                raise ConfigError([ConfigIssue(self.file, line, format_path(path), message)])
            key = key_node.value
            if key in seen:
                self.dupes.append(
                    ConfigIssue(self.file, line, format_path((*path, key)), "duplicate key")
                )
            seen.add(key)
            self.lines[(*path, key)] = line
            self.walk(value_node, (*path, key), ancestors)


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _data_path(data: Any, loc: tuple[Any, ...]) -> KeyPath:
    """Map a pydantic error location onto the YAML data, dropping union tags it inserts."""
    path: list[str | int] = []
    current = data
    for part in loc:
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        ):
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, str) and part not in current:
            # a missing key or a tagged-union name: keep the key if it is the last part
            if part == loc[-1]:
                path.append(part)
            continue
    return tuple(path)


def _nearest_line(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def parse_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, int]]:
    line_map = _LineMap(file)
    try:
        _check_nesting(text, file)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            line_map.walk(node, (), frozenset())
        # only after the walk: a recursive anchor gives recursive data, and the walk refuses it
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigIssue(file, line, "", f"YAML syntax: {exc.problem}")]) from exc
    except ValueError as exc:  # PyYAML's int() of a number longer than Python converts
        long_number = re.search(r"[0-9_]{4000,}", text)
        line = text.count("\n", 0, long_number.start()) + 1 if long_number else None
        raise ConfigError([ConfigIssue(file, line, "", f"YAML: {exc}")]) from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        message = f"YAML: unacceptable character #x{exc.character:04x}: {exc.reason}"
        raise ConfigError([ConfigIssue(file, line, "", message)]) from exc
    if line_map.dupes:
        raise ConfigError(line_map.dupes)
    return data, line_map.lines


def validate_model(model: type[ModelT], data: Any, lines: dict[KeyPath, int], file: str) -> ModelT:
    """``data`` validated as ``model``; ConfigError with file:line for every problem."""
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(file, 1, "", "the file must be a YAML mapping")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues: list[ConfigIssue] = []
        for err in exc.errors(include_url=False):
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, ReferenceProblemsError):
                issues.extend(
                    ConfigIssue(file, _nearest_line(lines, path), format_path(path), msg)
                    for path, msg in cause.problems
                )
                continue
            path = _data_path(data, tuple(err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            issues.append(ConfigIssue(file, _nearest_line(lines, path), format_path(path), message))
        raise ConfigError(issues) from exc


def validate(data: Any, lines: dict[KeyPath, int], file: str) -> EdgeguardConfig:
    return validate_model(EdgeguardConfig, data, lines, file)


def load_model(model: type[ModelT], path: Path | str) -> ModelT:
    """Read a YAML config file as ``model``; raise ConfigError listing every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(file, None, "", f"cannot read: {exc}")]) from exc
    data, lines = parse_yaml(text, file)
    return validate_model(model, data, lines, file)


def load_config(path: Path | str) -> EdgeguardConfig:
    """Read and validate a config file; raise ConfigError listing every problem."""
    return load_model(EdgeguardConfig, path)


def masked_dump(config: EdgeguardConfig) -> dict[str, Any]:
    """The effective config as plain data; pydantic writes every SecretStr as '**********'."""
    return config.model_dump(mode="json")
