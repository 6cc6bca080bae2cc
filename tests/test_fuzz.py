"""The fuzz suite (bench/fuzz.py) in short: 2,000 inputs per parser with a fixed seed, and a
few raw HTTP requests to a real police console (`make fuzz` runs 1,000,000 per parser). Then
one test per bug the fuzzer found, on the input that found it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgeguard.payloads import AckError, parse_police_ack
from edgeguard_drivers.contact_id_protocol import ContactIdError, Reason, parse_line

REPO = Path(__file__).resolve().parent.parent
PARSERS = [
    "egb1_box", "egb1_reply", "contact_id", "sia_dc09", "police_ack", "police_receiver",
    "config", "control", "http",
]  # fmt: skip

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def fuzz_run() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fuzz.py"), "--inputs", "2000", "--seed", "7",
         "--http", "100", "--workers", "2"],
        capture_output=True, text=True, check=False, timeout=850,
    )  # fmt: skip
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr
    summary: dict[str, Any] = json.loads(lines[-1])
    summary["printed"] = result.stdout
    return summary


@pytest.mark.parametrize("parser", PARSERS)
def test_fuzz_finds_nothing(fuzz_run: dict[str, Any], parser: str) -> None:
    result = fuzz_run["parsers"][parser]
    assert result["inputs"] >= 100
    assert result["errors"] == {}, result["first_failure"]


def test_fuzz_prints_counts_and_ends_with_json(fuzz_run: dict[str, Any]) -> None:
    assert "egb1_box: 2000 inputs" in fuzz_run["printed"]
    assert fuzz_run["inputs_per_parser"] == 2000
    assert set(fuzz_run["failures"]) == set(PARSERS)
    assert fuzz_run["ok"] is True


@pytest.mark.parametrize(
    "payload",
    [
        b'{"event_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # RecursionError
        b'{"event_id": "ab", "state": "received", "by": "x", "at": 1' + b"9" * 5000 + b"}",
    ],
    ids=["deep-nesting", "huge-number"],
)
def test_police_ack_with_hostile_json_is_refused(payload: bytes) -> None:
    with pytest.raises(AckError):
        parse_police_ack(payload)


def test_plain_contact_id_letter_qualifier_is_refused() -> None:
    # E is a hex digit (14 in the checksum) in a plain line, not Sur-Gard's "new event" letter
    with pytest.raises(ContactIdError) as caught:
        parse_line(b"123418E113000002")
    assert caught.value.reason is Reason.QUALIFIER


def _fuzz_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_fuzz", REPO / "bench" / "fuzz.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dc09_adm_cid_zone_with_hex_digit_gets_an_answer() -> None:
    """Found by the fuzzer: a zone with a Contact ID digit B-F got no answer at all; now the
    restore is routed (raw zone kept) and ACKed once recorded."""
    target = _fuzz_module().SiaDc09()
    assert target.check(b'\nA1E10027"ADM-CID"0004L0#1234[#1234|3130 01 0c5]\r') == "ACK"
