"""The access layer: the only code that talks to Hangar.

It owns everything about the Hangar repository under a stock root, one
module per concept:

* :mod:`~stockroom.store.repository`: the compatibility patches, opening,
  caching and checking the repository;
* :mod:`~stockroom.store.base`: where ``head.stock`` points, the raw writer;
* :mod:`~stockroom.store.recovery`: the commit journal and ``stock repair``;
* :mod:`~stockroom.store.staging`: the writer checkout, its lock, commits;
* :mod:`~stockroom.store.reading`: the reader that follows ``head.stock``;
* :mod:`~stockroom.store.labels`: user-facing names of Hangar columns.
* :mod:`~stockroom.store.view`: read-only stores at any commit, commit
  records by digest, reading samples by digest (imported on use).

Storages (``stock.data``, ``stock.tag``, ``stock.model``) ask a
:class:`Store` for a checkout to read from or write to and know nothing
else about Hangar.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from stockroom import journal
from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR, HEAD_FILE
from stockroom.quickread import CLOSED_MESSAGE, HeadWatch
from stockroom.store import transfer  # noqa: F401 - arms the message for data not fetched
from stockroom.store.base import BRANCH_PREFIX, STAGED_MARKER, SWITCH_MARKER
from stockroom.store.labels import column_label, register_column_label
from stockroom.store.reading import Reading, detached_column
from stockroom.store.repository import (
    _REPOS,
    _USERS,
    Checkout,
    _quiet,
    damaged,
    hangar,
    init_hangar,
    open_repository,
    release_repository,
)

__all__ = [
    "BRANCH_PREFIX",
    "STAGED_MARKER",
    "SWITCH_MARKER",
    "Checkout",
    "Store",
    "column_label",
    "damaged",
    "detached_column",
    "hangar",
    "init_hangar",
    "open_repository",
    "register_column_label",
    "release_repository",
    "_REPOS",
    "_quiet",
]


class Store(Reading):
    """A stock root's Hangar repository, as one ``StockRoom`` object sees it.

    Reads go to a reader checkout at the commit ``head.stock`` names, kept
    open and reopened only when ``head.stock`` changes; or, when this object
    has staged writes on that commit, to the writer checkout (read your
    writes). Writes take the writer lock for as long as they need it: one
    operation, or the whole ``optimize()`` block.
    """

    def __init__(
        self, root: Path, lock_timeout: float | None = None, headwatch: HeadWatch | None = None
    ) -> None:
        super().__init__(root, lock_timeout, headwatch)
        if journal.exists(root / HANGAR_DIR):
            self._warn_if_interrupted()

    def hangar_checkout(self, write: bool) -> Checkout:
        if write:
            if self._writer is not None:
                raise StockroomError(
                    "stockroom holds the writer (inside optimize()); leave it before "
                    "asking for a write checkout"
                )
            self._check_can_write()
            writer = self._locked_writer()
            self._lent_writer = writer
            self.mark_dirty()  # the expert may write through it
            self._release_on_close(writer)
            return writer
        digest = self.head()
        if digest == "":
            raise StockroomError(
                f"{HEAD_FILE} is empty: there is no stock commit to read yet; write and `stock commit` first"
            )
        self._require_commit(digest)
        with _quiet():
            return self.repo.checkout(commit=digest)

    def _release_on_close(self, writer: Checkout) -> None:
        """Make the lent writer's ``close()`` also release the stock writer lock,
        so other processes can write as soon as the expert is done."""
        hangar_close = writer.close

        def close() -> None:
            hangar_close()
            if self._lent_writer is writer:
                self._lent_writer = None
                self.lock.release()

        close.__doc__ = hangar_close.__doc__
        writer.close = close

    def log(self) -> list[dict[str, Any]]:
        """Hangar commits reachable from ``head.stock``, newest first."""
        digest = self.head()
        if not digest:
            return []
        self._require_commit(digest)
        with _quiet():
            info = self.repo.log(commit=digest, return_contents=True)
        order = info["order"]
        specs = info["specs"]
        return [{"digest": d, **specs[d]} for d in order]

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return isinstance(self.repo, _Closed)

    def close(self) -> None:
        if isinstance(self.repo, _Closed):
            return  # closed already
        self._close_reader()
        if self._lent_writer is not None:
            with contextlib.suppress(Exception):
                if hasattr(self._lent_writer, "_writer_lock"):
                    self._lent_writer.close()
            self._lent_writer = None
        if self._writer is not None:
            self._close_writer()
        self.lock.release()
        if not self._released and self._repo_key[0] == os.getpid():
            self._released = True
            _USERS[self._repo_key] = _USERS.get(self._repo_key, 1) - 1
            release_repository(self.root)
        # Every later read, write or commit goes through these and says the
        # object is closed, instead of failing on closed LMDB handles (which
        # would read as a damaged store).
        self.repo = _Closed()
        self.lock = _Closed()  # type: ignore[assignment]


class _Closed:
    """Stands in for the repository and the lock of a closed :class:`Store`."""

    def __getattr__(self, name: str) -> Any:
        raise StockroomError(CLOSED_MESSAGE)
