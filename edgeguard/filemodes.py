"""Modes of the files edgeguard keeps (event store, evidence): set explicitly, so they do not
depend on the umask of whoever started the process. The same as the unit's ``UMask=0027``:
the service's group (operators) may read, nobody else."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

DATA_FILE = 0o640
DATA_DIR = 0o750


def make_dir(path: Path) -> None:
    """Create ``path`` and any missing parents with DATA_DIR (existing ones are left alone)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DATA_DIR)
        except FileExistsError:
            continue  # made meanwhile by another writer
        folder.chmod(DATA_DIR)  # mkdir's mode passes through the umask


def private_file(path: Path) -> None:
    """Create ``path`` empty with DATA_FILE if it is missing; take away the world's access to
    one that exists (made by an older version, or copied in)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATA_FILE)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o007:
            try:
                path.chmod(mode & ~0o007)
            except PermissionError:
                logger.warning("%s is readable by every user (mode %o); its owner should "
                               "chmod o-rwx it", path, mode)
            else:
                logger.warning("%s was readable by every user; it is not any more", path)
        return
    os.fchmod(fd, DATA_FILE)
    os.close(fd)


def open_new(path: Path) -> int:
    """A file descriptor of ``path``, created (or truncated) with DATA_FILE."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, DATA_FILE)
    os.fchmod(fd, DATA_FILE)
    return fd
