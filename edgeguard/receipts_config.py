"""The site's `receipts` settings (docs/mqtt-api.md 4.7), apart from edgeguard/config.py."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgeguard.config_base import StrictModel


class ReceiptsConfig(StrictModel):
    """End-to-end receipts (docs/mqtt-api.md 4.7): the police platform confirms each alarm
    message it stored. Without one in time the message is published again: a broker's PUBACK
    alone does not prove the police have it."""

    police_keys: list[Path] = Field(
        min_length=1,
        max_length=8,
        description="The police platform's public receipt key(s), PEM (`.pub` of its "
        "`receipt_key`); two during a key change. A receipt signed otherwise is refused.",
    )
    resend_after_s: float = Field(
        default=10.0,
        ge=1.0,
        le=3600.0,
        description="An alarm message without its receipt this long after its PUBACK is "
        "published again (checked every 5 s), for as long as it takes (receivers dedupe); "
        "each further wait doubles, up to resend_max_s.",
    )
    resend_max_s: float = Field(
        default=120.0,
        ge=1.0,
        le=3600.0,
        description="The longest wait for a receipt before publishing again: the waits "
        "double from resend_after_s so that a saturated broker is not flooded with resends.",
    )
    required: bool = Field(
        default=True,
        description="False: a missing receipt is only shown (`delivered`, not `received`), "
        "nothing is published again — for a police side that sends no receipts yet.",
    )
