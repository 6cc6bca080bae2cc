"""Ed25519 signatures over RFC 8785 canonical JSON, so receivers in any language can verify.

The signature covers the payload object without its ``sig`` member; ``sig`` is base64 (standard
alphabet, padded) of the 64-byte Ed25519 signature.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIG_FIELD = "sig"


class SignatureError(Exception):
    """A message is not signed, badly signed, or signed by another key."""


def canonical(payload: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of ``payload`` without its signature."""
    body = {k: v for k, v in payload.items() if k != SIG_FIELD}
    return bytes(rfc8785.dumps(body))


class Signer:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        return cls(load_private_key(path))

    def sign(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of ``payload`` with ``sig`` set."""
        signature = self._key.sign(canonical(payload))
        return {**payload, SIG_FIELD: base64.b64encode(signature).decode("ascii")}

    def encode(self, payload: dict[str, Any]) -> bytes:
        """Sign and serialise to the UTF-8 JSON sent on the wire."""
        return json.dumps(self.sign(payload), ensure_ascii=False, separators=(",", ":")).encode()


def verify(payload: dict[str, Any], public_key: Ed25519PublicKey) -> None:
    """Raise SignatureError unless ``payload['sig']`` is a valid signature by ``public_key``."""
    sig = payload.get(SIG_FIELD)
    if not isinstance(sig, str):
        raise SignatureError("message has no signature")
    try:
        raw = base64.b64decode(sig, validate=True)
    except ValueError as exc:
        raise SignatureError("signature is not base64") from exc
    try:
        public_key.verify(raw, canonical(payload))
    except InvalidSignature as exc:
        raise SignatureError("signature does not match the site's key") from exc


def verify_bytes(message: bytes, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """Decode a wire message and verify it; return the payload."""
    try:
        payload = json.loads(message.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignatureError(f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise SignatureError("message is not a JSON object")
    verify(payload, public_key)
    return payload


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:  # the file's content: say which file (a reload's answer)
        raise ValueError(f"{path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")  # noqa: TRY004 - bad file
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    return public_key_from_pem(path.read_bytes(), str(path))


def public_key_from_pem(data: bytes, origin: str = "key") -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{origin}: not an Ed25519 public key")  # noqa: TRY004 - bad file
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_keypair(private_path: Path, *, overwrite: bool = False) -> Path:
    """Write a new private key (mode 0600) and its public key beside it (``.pub``)."""
    if private_path.suffix == ".pub":
        raise ValueError(f"{private_path}: a private key must not be named .pub")
    if private_path.exists() and not overwrite:
        raise FileExistsError(f"{private_path} exists; refusing to overwrite a site key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path = private_path.with_suffix(".pub")
    public_path.write_bytes(public_pem(key.public_key()))
    return public_path
