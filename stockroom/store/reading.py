"""Reading: a reader checkout that follows ``head.stock``, or this object's
own staged writes (read your writes)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import lmdb

from stockroom.headfile import HANGAR_DIR
from stockroom.store.repository import Checkout, _quiet, damaged
from stockroom.store.staging import Staging


class Reading(Staging):
    """Reads at the commit ``head.stock`` names now."""

    def _read_checkout(self) -> Checkout | None:
        digest = self.head()
        if digest == "":
            return None
        if self._reader is None or self._reader_digest != digest:
            self._close_reader()
            self._require_commit(digest)
            with _quiet():
                self._reader = self.repo.checkout(commit=digest)
            self._reader_digest = digest
        return self._reader

    def commit(self, message: str, update_head: bool = True) -> str:
        digest = super().commit(message, update_head)
        if update_head and self._reader is not None:
            # This object reads: open the reader on the new commit now, while
            # the commit's data files are in the page cache, so the first read
            # after a commit costs what later ones do.
            with contextlib.suppress(Exception):
                self._read_checkout()
        return digest

    def reader(self) -> Checkout | None:
        """The reader checkout at the commit ``head.stock`` names now, kept open.

        The per-sample fast path of :meth:`reading` (no context to enter). It
        never shows this object's staged writes: callers that may have written
        (``self.dirty``) use :meth:`reading`. None before the first commit.
        """
        try:
            return self._read_checkout()
        except (lmdb.Error, OSError) as exc:
            raise damaged(self.root / HANGAR_DIR, f"reading failed: {exc}") from exc

    @contextlib.contextmanager
    def reading(self, keep_held: bool = False, column: str | None = None) -> Iterator[Checkout | None]:
        """A checkout to read from: None when there is nothing to read yet.

        ``keep_held``: the block only reads samples, so columns held open
        for per-sample writes may stay open (see ``Staging.hold_column``).
        ``column``: the block reads only that Hangar column, so the reader
        serves it unless this object staged writes to it (or to any column
        through an expert's writer).
        """
        try:
            staged = self.dirty if column is None else self.staged_in(column)
            if staged and self._staging_base() == self.head():
                lent = self._lent_writer
                if lent is not None and hasattr(lent, "_writer_lock"):
                    yield lent  # an expert's open write checkout holds our writes
                    return
                with self.writing(check_branch=False, keep_held=keep_held) as writer:
                    yield writer
                return
            yield self._read_checkout()
        except (lmdb.Error, OSError) as exc:
            if isinstance(exc, PermissionError):
                raise  # says what is wrong already (and Hangar's lock errors are these)
            # A data file under .hangar/data is gone or unreadable.
            raise damaged(self.root / HANGAR_DIR, f"reading failed: {exc}") from exc


def detached_column(column: Any) -> Any:
    """A copy of the reader column ``column`` that opens its own data files.

    Only for a forked child process (a data-loader worker), on a column its
    parent opened: the copy reads with the sample records the parent loaded
    and touches no LMDB environment (one must not be used across ``fork``,
    and py-lmdb refuses to open the same files again in the child). Hangar
    supports pickling reader columns for this; only the data-file handles
    go through pickle here, as pickling a large column's records takes
    seconds. (Pickling closes the handles it copies: never call this on a
    column the calling process opened itself.)
    """
    import copy
    import pickle

    clone = copy.copy(column)
    clone._be_fs = {code: pickle.loads(pickle.dumps(files)) for code, files in column._be_fs.items()}
    return clone
