"""Load a YAML config, validate it, and report every error with file:line and key path."""

from __future__ import annotations

from dataclasses import dataclass
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


def _line_map(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], dupes: list[ConfigIssue], file: str
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                dupes.append(
                    ConfigIssue(
                        file,
                        key_node.start_mark.line + 1,
                        format_path((*path, key)),
                        "duplicate key",
                    )
                )
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), lines, dupes, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*path, index), lines, dupes, file)


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
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigIssue(file, line, "", f"YAML syntax: {exc.problem}")]) from exc
    lines: dict[KeyPath, int] = {}
    dupes: list[ConfigIssue] = []
    if node is not None:
        _line_map(node, (), lines, dupes, file)
    if dupes:
        raise ConfigError(dupes)
    return data, lines


def validate_model(
    model: type[ModelT], data: Any, lines: dict[KeyPath, int], file: str
) -> ModelT:
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
