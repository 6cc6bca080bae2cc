"""End-to-end receipts (docs/mqtt-api.md, "Receipts"): after its durable commit, the police
receiver tells the site "the police platform stored this alarm message", signed with a police
key. A broker's PUBACK only says the broker has a message, and a broker can lose one in a crash;
a receipt is what the site can trust.

One receipt per alarm message, ``edgeguard/{site}/receipt``, QoS 1, not retained::

    {"v": 1, "type": "receipt", "site": "hosp-01", "event_id": "…", "seq": 12,
     "message": "new", "receiver": "police-1", "stored_at": "…Z", "sig": "…"}

A receipt names one message by ``(site, event_id, seq)``; repeating it changes nothing (the
police send one for a duplicate too: the site repeated the message because it had none)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from edgeguard.alarm_model import SCHEMA_VERSION, MessageType
from edgeguard.ids import iso_ms, utc_now
from edgeguard.signing import SignatureError, load_public_key, verify

MAX_RECEIPT_BYTES = 2048
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,69}$"


class ReceiptKeyError(ValueError):
    """A configured police receipt key cannot be read or is not an Ed25519 public key."""


def load_receipt_keys(paths: list[Path]) -> list[Ed25519PublicKey]:
    keys = []
    for path in paths:
        try:
            keys.append(load_public_key(path))
        except (OSError, ValueError) as exc:
            raise ReceiptKeyError(f"receipts.police_keys: {path}: {exc}") from exc
    return keys


def receipt_topic(site: str) -> str:
    return f"edgeguard/{site}/receipt"


def receipt_payload(
    site: str, event_id: str, seq: int, message: str, receiver: str
) -> dict[str, Any]:
    """The unsigned receipt for one stored alarm message (the police sign it)."""
    return {
        "v": SCHEMA_VERSION,
        "type": "receipt",
        "site": site,
        "event_id": event_id,
        "seq": seq,
        "message": message,
        "receiver": receiver,
        "stored_at": iso_ms(utc_now()),
    }


class ReceiptFields(BaseModel):
    """A receipt's fields, validated (docs/schema/receipt.json)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = Field(ge=1, le=SCHEMA_VERSION)
    type: str = Field(pattern="^receipt$")
    site: str = Field(pattern=ID_PATTERN)
    event_id: str = Field(pattern=ID_PATTERN)
    seq: int = Field(ge=1, le=2**53)
    message: MessageType
    receiver: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    stored_at: AwareDatetime
    sig: str = Field(min_length=1, max_length=200)


class ReceiptError(ValueError):
    """A receipt this site must not believe: malformed, forged, or meant for another site."""


@dataclass(frozen=True)
class Receipt:
    site: str
    event_id: str
    seq: int
    message: str
    receiver: str


def parse_receipt(body: bytes, keys: list[Ed25519PublicKey], site: str) -> Receipt:
    """The receipt in ``body``, verified against the police keys this site trusts, for this
    site; else :class:`ReceiptError` saying why (the caller logs it and ignores the message)."""
    if len(body) > MAX_RECEIPT_BYTES:
        raise ReceiptError(f"{len(body)} bytes (at most {MAX_RECEIPT_BYTES})")
    payload = _json_object(body)
    try:
        fields = ReceiptFields.model_validate(payload)
    except ValidationError as exc:
        raise ReceiptError(
            f"malformed: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        ) from exc
    if not _signed_by_one_of(payload, keys):
        raise ReceiptError("signature does not match any trusted police key (forged?)")
    if fields.site != site:
        raise ReceiptError(f"addressed to site {fields.site!r}, not to this site (misdirected)")
    return Receipt(fields.site, fields.event_id, fields.seq, fields.message.value, fields.receiver)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ReceiptError(f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ReceiptError("not a JSON object")
    return payload


def _signed_by_one_of(payload: dict[str, Any], keys: list[Ed25519PublicKey]) -> bool:
    for key in keys:
        try:
            verify(payload, key)
        except SignatureError:
            continue
        return True
    return False
