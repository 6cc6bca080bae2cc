"""Received snapshots on disk: ``{snapshots_dir}/{site}/{event_id}/{camera}.jpg``, written
atomically and durably: temporary file, fsync, rename, fsync of the folder (the rename, and
each folder created for it, is only on disk once its parent folder is). Every part of the path
is checked strictly: no separators, no dot-files, no traversal out of the folder. Files are
mode 0600 and folders 0700 (edgeguard.police.files)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

from edgeguard.police.files import fsync_folder, make_private_folders, open_private

logger = logging.getLogger(__name__)

PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,69}$")


def snapshot_file(folder: Path, site: str, event_id: str, camera: str) -> Path:
    """The file of a snapshot; ValueError for a part that is not a plain identifier."""
    for part in (site, event_id, camera):
        if not PART.fullmatch(part):
            raise ValueError(f"invalid snapshot path part {part[:80]!r}")
    root = folder.resolve()
    target = (root / site / event_id / f"{camera}.jpg").resolve()
    if not target.is_relative_to(root):  # belt and braces: PART already excludes it
        raise ValueError("snapshot path outside the snapshots folder")
    return target


def save_snapshot(folder: Path, site: str, event_id: str, camera: str, blob: bytes) -> Path | None:
    """Write the JPEG; None (logged) if the path is invalid or the disk refuses."""
    try:
        target = snapshot_file(folder, site, event_id, camera)
    except ValueError as exc:
        logger.warning("snapshot not saved: %s", exc)
        return None
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        make_private_folders(target.parent)
        with os.fdopen(open_private(temporary), "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(target)
        fsync_folder(target.parent)
    except OSError as exc:
        logger.error("snapshot %s not saved: %s", target, exc)
        with contextlib.suppress(OSError):
            temporary.unlink()
        return None
    return target

