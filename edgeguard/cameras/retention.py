"""Retention of evidence folders (``evidence/{event_id}/``): age limits and a disk quota.

Runs in the daemon (no av, no cv2). ``plan_prune`` is a pure function deciding what to delete;
``scan`` measures the folders; ``prune`` deletes, never following symlinks and never touching
anything outside the evidence root. The order is described in docs/evidence-clips.md.

Deletion order when over the quota (``deletion_key``, smallest first):

1. ordinary evidence (priority 3, 4, or 5 = non-alarm events such as motion clips) before
   alarm evidence (priority 1 and 2): no P1/P2 folder is deleted while any P3–P5 folder is left;
2. within each of those two classes, folders older than ``keep_days`` before younger ones;
3. then lower priority (higher number) before higher;
4. then older before newer (then by event id, so that the plan is deterministic).

Folders younger than ``grace_s`` are never deleted for the quota (an alarm's clip may still be
being written): the total may then stay over the quota until they age.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DAY_S = 86_400.0
NON_ALARM = 5
ALARM_PRIORITIES = frozenset({1, 2})  # "alarms' evidence", kept longest


@dataclass(frozen=True)
class EvidenceEntry:
    path: Path  # an event folder evidence/{event_id}/
    event_id: str
    priority: int  # 1..4 for alarms, 5 for non-alarm events (motion clips, ...)
    created: float  # epoch seconds
    bytes: int


@dataclass(frozen=True)
class RetentionPolicy:
    quota_bytes: int
    keep_days: float = 90.0  # younger evidence is kept unless the quota forces otherwise
    max_days: float | None = None  # older evidence is deleted regardless
    grace_s: float = 300.0  # younger folders are never deleted for the quota (being written)


def deletion_key(entry: EvidenceEntry, policy: RetentionPolicy, now: float) -> tuple[object, ...]:
    """Sort key of the quota pass: smallest is deleted first (see the module docstring)."""
    is_alarm = entry.priority in ALARM_PRIORITIES
    young = now - entry.created < policy.keep_days * DAY_S
    return (is_alarm, young, -entry.priority, entry.created, entry.event_id)


def plan_prune(
    entries: Sequence[EvidenceEntry], policy: RetentionPolicy, now: float
) -> list[EvidenceEntry]:
    """The folders to delete, in deletion order: first every folder older than ``max_days``;
    then, while the total is over ``quota_bytes``, the next folder in ``deletion_key`` order
    (folders younger than ``grace_s`` excepted). Stops as soon as the total fits."""
    expired: list[EvidenceEntry] = []
    kept: list[EvidenceEntry] = []
    for entry in entries:
        too_old = policy.max_days is not None and now - entry.created > policy.max_days * DAY_S
        (expired if too_old else kept).append(entry)
    expired.sort(key=lambda e: (e.created, e.event_id))
    total = sum(e.bytes for e in kept)
    plan = list(expired)
    candidates = sorted(
        (e for e in kept if now - e.created >= policy.grace_s),
        key=lambda e: deletion_key(e, policy, now),
    )
    for entry in candidates:
        if total <= policy.quota_bytes:
            break
        plan.append(entry)
        total -= entry.bytes
    return plan


def created_from_id(event_id: str) -> float | None:
    """The creation time embedded in a UUIDv7 event id (milliseconds), else None."""
    try:
        value = uuid.UUID(event_id)
    except ValueError:
        return None
    if value.version != 7:
        return None
    return (value.int >> 80) / 1000.0


def folder_size(folder: Path) -> int:
    """Bytes of the regular files under ``folder``; symlinks are neither followed nor counted."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(folder, followlinks=False):
        for name in filenames:
            try:
                info = (Path(dirpath) / name).lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def scan(root: Path, priorities: Mapping[str, int]) -> list[EvidenceEntry]:
    """One entry per real folder directly under ``root`` (the evidence folder); symlinks and
    files are skipped. ``created`` comes from the UUIDv7 event id, else the folder's mtime;
    priority from ``priorities`` (event_id → priority), 5 when unknown."""
    entries: list[EvidenceEntry] = []
    try:
        children = list(os.scandir(root))
    except FileNotFoundError:
        return []
    for child in children:
        if child.is_symlink() or not child.is_dir(follow_symlinks=False):
            if child.is_symlink():
                logger.warning("evidence: skipping symlink %s", child.path)
            continue
        size = folder_size(Path(child.path))
        created = created_from_id(child.name)
        if created is None:
            created = child.stat(follow_symlinks=False).st_mtime
        entries.append(
            EvidenceEntry(
                path=Path(child.path),
                event_id=child.name,
                priority=int(priorities.get(child.name, NON_ALARM)),
                created=created,
                bytes=size,
            )
        )
    return entries


def prune(
    root: Path,
    policy: RetentionPolicy,
    priorities: Mapping[str, int],
    now: float | None = None,
) -> list[EvidenceEntry]:
    """Delete what ``plan_prune`` chooses; returns what was deleted. Each deletion is logged."""
    moment = time.time() if now is None else now
    entries = scan(root, priorities)
    total = sum(e.bytes for e in entries)
    deleted: list[EvidenceEntry] = []
    for entry in plan_prune(entries, policy, moment):
        if _delete(root, entry):
            deleted.append(entry)
            total -= entry.bytes
            logger.info(
                "evidence pruned: %s (priority %d, %.1f days old, %d bytes); %d bytes kept",
                entry.event_id,
                entry.priority,
                (moment - entry.created) / DAY_S,
                entry.bytes,
                total,
            )
    return deleted


def _delete(root: Path, entry: EvidenceEntry) -> bool:
    """Remove one event folder: only a real directory directly under ``root``."""
    base = root.resolve()
    path = entry.path
    if path.parent.resolve() != base or path.name in ("", ".", ".."):
        logger.error("evidence: refusing to delete %s (not directly under %s)", path, base)
        return False
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        logger.error("evidence: refusing to delete %s (not a real folder)", path)
        return False
    try:
        shutil.rmtree(path)  # fd-based on Linux: symlinks inside are unlinked, not followed
    except OSError as exc:
        logger.error("evidence: could not delete %s: %s", path, exc)
        return False
    return True
