"""The store's error, apart from the store so that the CLI can catch it without importing
SQLite and sqlite-utils for commands that never open a database."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be opened or is not an edgeguard store."""
