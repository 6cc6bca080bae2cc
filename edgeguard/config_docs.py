"""Generate docs/config-reference.md from the config models' field descriptions."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from edgeguard.config import EdgeguardConfig

HEADER = """# Configuration reference

Generated from the config models by `edgeguard config-reference`; do not edit by hand
(`make docs` regenerates it, and a test fails when it is stale). See
`config/edgeguard.example.yaml` for a commented example. Secrets (passwords, key paths) may be
written as `{env: VAR}`, `{credential: NAME}` (systemd `LoadCredential=`) or `{file: PATH}`.
"""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return annotation.__name__
        return annotation.__name__
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is not None:
        return (
            f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
        )
    return str(annotation)


def _default(field: Any) -> str:
    if field.default is PydanticUndefined:
        return "*required*" if field.default_factory is None else "(see below)"
    value = field.default
    if hasattr(value, "value"):
        value = value.value
    return f"`{value!r}`" if value is not None else "—"


def _section(model: type[BaseModel]) -> str:
    lines = [
        f"## {model.__name__}",
        "",
        (model.__doc__ or "").strip(),
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    for name, field in model.model_fields.items():
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |")
    return "\n".join(lines) + "\n"


def config_reference() -> str:
    seen: list[type[BaseModel]] = []
    queue: list[type[BaseModel]] = [EdgeguardConfig]
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            queue.extend(m for m in _models_in(field.annotation) if m not in seen)
    return HEADER + "\n" + "\n".join(_section(m) for m in seen)
