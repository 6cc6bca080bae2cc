"""Signatures: Ed25519 over RFC 8785 canonical JSON, verifiable by any receiver."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgeguard.signing import (
    SignatureError,
    Signer,
    canonical,
    generate_keypair,
    load_public_key,
    verify,
    verify_bytes,
)

EDGEGUARD = str(Path(sys.executable).with_name("edgeguard"))


def test_canonical_form_is_rfc8785() -> None:
    payload = {"b": 1, "a": "急诊", "sig": "ignored", "n": 1.0, "z": [True, None]}
    assert canonical(payload) == '{"a":"急诊","b":1,"n":1,"z":[true,null]}'.encode()


def test_sign_and_verify_round_trip() -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    wire = signer.encode({"site": "hosp-01", "location": {"label": "收费处"}})
    assert "收费处" in wire.decode("utf-8")  # UTF-8 on the wire, not \\u escapes
    payload = verify_bytes(wire, signer.public_key)
    assert payload["location"]["label"] == "收费处"
    # a receiver in another language re-serialises differently: still verifies
    reordered = json.loads(json.dumps(payload, indent=2, ensure_ascii=True))
    verify(reordered, signer.public_key)


@pytest.mark.parametrize("tamper", ["edit", "wrong-key", "no-sig", "garbage-sig"])
def test_tampering_is_rejected(tamper: str) -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    payload = signer.sign({"site": "hosp-01", "priority": 1})
    key = signer.public_key
    if tamper == "edit":
        payload["priority"] = 4
    elif tamper == "wrong-key":
        key = Ed25519PrivateKey.generate().public_key()
    elif tamper == "no-sig":
        del payload["sig"]
    else:
        payload["sig"] = base64.b64encode(b"x" * 64).decode()
    with pytest.raises(SignatureError):
        verify(payload, key)


def test_keygen_and_verify_message_cli(tmp_path: Path) -> None:
    key = tmp_path / "site.key"
    result = subprocess.run(
        [EDGEGUARD, "keygen", "--out", str(key)], capture_output=True, text=True, check=True
    )
    assert "site.pub" in result.stdout
    assert key.stat().st_mode & 0o777 == 0o600
    again = subprocess.run(
        [EDGEGUARD, "keygen", "--out", str(key)], capture_output=True, text=True, check=False
    )
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr

    signer = Signer.from_file(key)
    message = tmp_path / "alarm.json"
    message.write_bytes(signer.encode({"site": "hosp-01", "type": "alarm", "event_id": "e1"}))
    ok = subprocess.run(
        [EDGEGUARD, "verify-message", "--key", str(key.with_suffix(".pub")), str(message)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.startswith("OK")
    forged = json.loads(message.read_text())
    forged["site"] = "hosp-02"
    bad = subprocess.run(
        [EDGEGUARD, "verify-message", "--key", str(key.with_suffix(".pub"))],
        input=json.dumps(forged),
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stdout.startswith("INVALID")


def test_generate_keypair_files(tmp_path: Path) -> None:
    public = generate_keypair(tmp_path / "k" / "a.key")
    assert load_public_key(public) is not None


def test_forced_keygen_keeps_the_private_key_private(tmp_path: Path) -> None:
    key = tmp_path / "site.key"
    key.write_text("old")
    key.chmod(0o644)
    generate_keypair(key, overwrite=True)
    assert key.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match=r"must not be named \.pub"):
        generate_keypair(tmp_path / "site.pub")
