"""A reproduced person model: the output check (scripts/check_person_model.py) passes the
measured model, fails a model whose outputs differ, and the `.verified` record it leads to is
accepted only for the bytes it names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeguard.analytics import model_files
from edgeguard.analytics.model_files import (
    PERSON_MODEL_NAME,
    PERSON_MODEL_SHA256,
    ModelError,
    find_person_model,
)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_person_model.py"
REFERENCE = SCRIPT.with_name("person-model-reference.npz")


@pytest.fixture(scope="module")
def measured() -> Path:
    try:
        return find_person_model()
    except ModelError as exc:
        pytest.skip(str(exc))


def _check(model: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), str(model), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_measured_model_passes(measured: Path) -> None:
    result = _check(measured)
    assert result.returncode == 0, result.stderr
    assert "same outputs" in result.stdout


def test_different_outputs_fail(measured: Path, tmp_path: Path) -> None:
    with np.load(REFERENCE) as stored:
        changed = dict(stored)
    changed["person_scores"] = changed["person_scores"] + np.float32(0.01)
    reference = tmp_path / "reference.npz"
    np.savez_compressed(reference, **changed)
    result = _check(measured, "--reference", str(reference))
    assert result.returncode == 1
    assert "person_scores: differs by up to 0.01" in result.stderr


def test_a_file_that_is_no_model_is_an_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00" * 64)
    result = _check(junk)
    assert result.returncode == 2
    assert "cannot run" in result.stderr


def _copy_with_a_changed_byte(measured: Path, folder: Path) -> tuple[Path, str]:
    """A copy whose sha256 is not the measured one (a byte appended): another conversion, as
    far as the hash check can tell."""
    copy = folder / PERSON_MODEL_NAME
    shutil.copyfile(measured, copy)
    with copy.open("ab") as f:
        f.write(b"\n")
    return copy, model_files.sha256_of(copy)


def _record(model: Path, sha256: str, measured_sha256: str = PERSON_MODEL_SHA256) -> None:
    record = {"sha256": sha256, "same_outputs_as": measured_sha256, "checked_by": "test"}
    model.with_name(model.name + model_files.VERIFIED_SUFFIX).write_text(
        json.dumps(record), "utf-8"
    )


def test_a_verified_record_admits_exactly_its_bytes(measured: Path, tmp_path: Path) -> None:
    copy, sha256 = _copy_with_a_changed_byte(measured, tmp_path)
    with pytest.raises(ModelError, match="sha256"):
        find_person_model(copy)
    _record(copy, sha256)
    assert find_person_model(copy) == copy
    _record(copy, "0" * 64)  # a record for other bytes
    with pytest.raises(ModelError, match="sha256"):
        find_person_model(copy)
    _record(copy, sha256, measured_sha256="1" * 64)  # checked against another model
    with pytest.raises(ModelError, match="sha256"):
        find_person_model(copy)


def test_a_broken_record_is_ignored_with_a_warning(
    measured: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copy, _ = _copy_with_a_changed_byte(measured, tmp_path)
    copy.with_name(copy.name + model_files.VERIFIED_SUFFIX).write_text("{not json", "utf-8")
    with pytest.raises(ModelError, match="sha256"):
        find_person_model(copy)
    assert "ignoring" in caplog.text
