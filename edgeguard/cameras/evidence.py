"""Evidence files: snapshots kept on disk, one folder per alarm, written off the alarm path."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeguard.filemodes import fsync_folder, make_dir, open_new
from edgeguard.ids import iso_ms

logger = logging.getLogger(__name__)

SAFE = re.compile(r"[^A-Za-z0-9_-]")


def evidence_folder(name: str) -> str:
    """A name made safe as one path component (event ids and camera names already are)."""
    return SAFE.sub("_", name)


class EvidenceFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def save_snapshot(
        self, event_id: str, camera: str, jpeg: bytes, taken_at: float, via: str
    ) -> dict[str, Any]:
        """Write the JPEG durably (fsync) and describe it for the store and the police.
        A failing disk does not lose the snapshot for the police: it is still published,
        and the item says it was not kept here."""
        digest = hashlib.sha256(jpeg).hexdigest()
        when = datetime.fromtimestamp(taken_at, UTC)
        item: dict[str, Any] = {
            "camera": camera,
            "kind": "snapshot",
            "sha256": digest,
            "bytes": len(jpeg),
            "taken_at": iso_ms(when),
            "via": via,
        }
        folder = self.root / evidence_folder(event_id)
        path = folder / f"{evidence_folder(camera)}-{when:%Y%m%dT%H%M%S%f}.jpg"
        try:
            make_dir(folder)
            _write_durably(path, jpeg)
        except OSError as exc:
            logger.error("snapshot of %s for %s not kept on disk: %s", camera, event_id, exc)
            item["path"] = f"(not stored: {exc.strerror or exc})"
        else:
            item["path"] = str(path)
        return item


def _write_durably(path: Path, data: bytes) -> None:
    partial = path.with_suffix(".part")
    with os.fdopen(open_new(partial), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    partial.replace(path)
    fsync_folder(path.parent)
