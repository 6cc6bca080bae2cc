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
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from edgeguard.ids import iso_ms, utc_now
from edgeguard.police.files import fsync_folder, make_private_folders, open_private

logger = logging.getLogger(__name__)

PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,69}$")
ORPHAN_WINDOW_S = 600.0
MAX_ORPHANS = 200
MAX_ORPHAN_BYTES = 64 << 20


@dataclass(frozen=True)
class OrphanLimits:
    """How much is kept of snapshots whose alarm has not arrived: a site publishes the
    snapshot after the alarm's first message, so one without it is kept only for ``window_s``
    (the alarm may come by another path or receiver), and never more than ``max_count``
    snapshots or ``max_bytes`` in all: the oldest go first."""

    window_s: float = ORPHAN_WINDOW_S
    max_count: int = MAX_ORPHANS
    max_bytes: int = MAX_ORPHAN_BYTES

    def to_drop(
        self, orphans: list[dict[str, Any]], now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Of ``orphans`` (oldest first, as PoliceStore.orphan_snapshots), those to drop."""
        cutoff = iso_ms((now or utc_now()) - timedelta(seconds=self.window_s))
        expired = [o for o in orphans if o["received_at"] < cutoff]
        kept = orphans[len(expired) :]  # oldest first: the expired ones are a prefix
        count, size = len(kept), sum(int(o["bytes"]) for o in kept)
        over: list[dict[str, Any]] = []
        for orphan in kept:
            if count <= self.max_count and size <= self.max_bytes:
                break
            over.append(orphan)
            count, size = count - 1, size - int(orphan["bytes"])
        return [*expired, *over]


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


def remove_snapshot_file(path: Path) -> None:
    """Delete a snapshot's file, and its event folder once empty."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(OSError):  # not empty: other cameras of the alarm
        path.parent.rmdir()
