"""What every config model builds on: the strict base model, names and alarm points.

Light to import (pydantic and edgeguard.alarm_model only): the config, the drivers' schemas and the
police receiver's config all start here.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from edgeguard.alarm_model import DEFAULT_PRIORITY, AlarmKind

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"

Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="Identifier: letters, digits, '-' and '_', up to 64 characters; "
        "used in MQTT topics, so no spaces, '/', '+' or '#'.",
    ),
]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class PointConfig(StrictModel):
    """What an alarm point raises: its kind, priority and where it is."""

    location: Name = Field(description="Key of the location (under `locations`) this point is at.")
    kind: AlarmKind = Field(
        default=AlarmKind.PANIC,
        description="Alarm kind raised when the point goes into alarm (panic, duress, intrusion, "
        "test, ...).",
    )
    priority: int | None = Field(
        default=None,
        ge=1,
        le=4,
        description="Priority 1-4 (1 = life safety). Default: by kind (panic and duress 1, "
        "intrusion 2, faults 3, test 4).",
    )

    def effective_priority(self) -> int:
        return self.priority if self.priority is not None else DEFAULT_PRIORITY[self.kind]


PointEntry = tuple[str, PointConfig, tuple[str | int, ...]]
