"""The shape of a verified message before it is stored: the fields the receiver reads must
have the types docs/schema gives them. A signed message can still be malformed (a site's bug,
or a key in the wrong hands); it becomes a security warning, never a crash or a bad row."""

from __future__ import annotations

from typing import Any

_TEXT, _INT, _BOOL, _OBJECT, _LIST, _NONE = str, int, bool, dict, list, type(None)

# field -> the types it may have (a field may also be absent); docs/schema/*.json
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "alarm": {
        "message": (_TEXT,), "event_id": (_TEXT,), "seq": (_INT,), "kind": (_TEXT,),
        "state": (_TEXT,), "priority": (_INT,), "source": (_TEXT,), "site_name": (_TEXT,),
        "location": (_OBJECT,), "occurred_at": (_TEXT,), "updated_at": (_TEXT,),
        "input_active": (_BOOL,), "trigger_count": (_INT,), "restored_at": (_TEXT, _NONE),
        "reset_at": (_TEXT, _NONE), "reset_by": (_TEXT, _NONE), "detail": (_OBJECT,),
        "cameras": (_LIST,), "evidence": (_LIST,),
    },
    "status": {"state": (_TEXT,), "version": (_TEXT,), "started_at": (_TEXT,)},
    "heartbeat": {
        "counter": (_INT,), "outbox_pending": (_INT,), "open_alarms": (_INT,),
        "log_head": (_OBJECT, _NONE),
    },
    "device": {"device": (_TEXT,), "state": (_TEXT,), "at": (_TEXT,), "detail": (_OBJECT,)},
}  # fmt: skip
_NESTED: dict[str, dict[str, tuple[type, ...]]] = {
    "location": {"id": (_TEXT,), "label": (_TEXT,)},
}


def shape_problem(kind: str, payload: dict[str, Any]) -> str | None:
    """Why ``payload`` (a verified message of ``kind``) cannot be stored, or None."""
    for name, allowed in _FIELDS.get(kind, {}).items():
        if name in payload:
            problem = _wrong(name, payload[name], allowed)
            if problem is None and name in _NESTED:
                problem = _nested_problem(name, payload[name])
            if problem is not None:
                return problem
    return None


def _nested_problem(name: str, value: dict[str, Any]) -> str | None:
    for field, allowed in _NESTED[name].items():
        if field in value:
            problem = _wrong(f"{name}.{field}", value[field], allowed)
            if problem is not None:
                return problem
    return None


def _wrong(name: str, value: Any, allowed: tuple[type, ...]) -> str | None:
    if isinstance(value, bool) and bool not in allowed:
        return f"{name} is a boolean"  # bool is an int to Python, never to the schema
    if isinstance(value, allowed):
        return None
    names = " or ".join(_NAMES[t] for t in allowed)
    return f"{name} is {_NAMES.get(type(value), type(value).__name__)}, not {names}"


_NAMES = {
    str: "text",
    int: "an integer",
    bool: "a boolean",
    dict: "an object",
    list: "a list",
    type(None): "null",
    float: "a number",
}
