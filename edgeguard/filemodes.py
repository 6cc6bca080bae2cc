"""Modes of the files edgeguard keeps, set explicitly so they do not depend on the umask of
whoever started the process (a login shell's 022 would make them world-readable), and the
folder fsync that makes a rename or a new folder survive a power cut.

The site's event store and evidence: DATA_FILE / DATA_DIR, as the unit's ``UMask=0027`` (the
service's group, operators, may read). The police receiver's files: PRIVATE_FILE /
PRIVATE_DIR (its own user only)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

DATA_FILE = 0o640
DATA_DIR = 0o750
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def make_dir(path: Path, mode: int = DATA_DIR, *, durable: bool = False) -> None:
    """Create ``path`` and any missing parents with ``mode``; existing ones are left alone
    (e.g. systemd's StateDirectory=). ``durable``: each new folder fsynced in its parent."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode)
        except FileExistsError:
            continue  # made meanwhile by another writer
        folder.chmod(mode)  # mkdir's mode passes through the umask
        if durable:
            fsync_folder(folder.parent)


def private_file(path: Path, mode: int = DATA_FILE) -> None:
    """Make sure ``path`` exists with at most ``mode``: created so, or tightened (logged) if
    it was made looser earlier (by an older version, or copied in)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        tighten(path, mode)
        return
    os.fchmod(fd, mode)
    os.close(fd)


def tighten(path: Path, mode: int = DATA_FILE) -> None:
    """Take from an existing file any permission beyond ``mode`` (a missing one is skipped)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~mode == 0:
        return
    try:
        path.chmod(current & mode)
    except PermissionError:
        logger.warning("%s is mode %04o, looser than %04o; its owner should tighten it",
                       path, current, mode)
    else:
        logger.warning("%s was mode %04o: now %04o", path, current, current & mode)


def open_new(path: Path, mode: int = DATA_FILE) -> int:
    """A file descriptor of ``path`` for writing, created (or truncated) with ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # a leftover file keeps its own mode through O_TRUNC
    return fd


def fsync_folder(folder: Path) -> None:
    """fsync the folder itself, so a rename or a new entry in it is on disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
