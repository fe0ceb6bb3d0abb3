"""A Store's state and the parts every room of the access layer shares:
where ``head.stock`` points now, the raw Hangar writer, the staged marker."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

from hangar.constants import DIR_DATA, DIR_DATA_REMOTE, DIR_DATA_STAGE, DIR_DATA_STORE
from hangar.records import commiting, heads

from stockroom.errors import StockroomError
from stockroom.git import git_dir_of
from stockroom.headfile import HANGAR_DIR, HEAD_FILE
from stockroom.lock import WriterLock
from stockroom.quickread import HeadWatch
from stockroom.store.repository import _USERS, Checkout, _quiet, open_repository

BRANCH_PREFIX = "stock-"
# Present while stock writes may be staged; lets the git hooks skip
# importing hangar when it is absent (see StoreBase.mark_dirty).
STAGED_MARKER = "stockroom-staged"
# The marker while nothing is staged, kept under another name: no hook looks at it.
SPARE_MARKER = "stockroom-staged.idle"
# Present while Hangar rebuilds its staging area for another branch.
SWITCH_MARKER = "stockroom-switching"


class StoreBase:
    """State shared by the rooms of :class:`stockroom.store.Store`."""

    def __init__(
        self, root: Path, lock_timeout: float | None = None, headwatch: HeadWatch | None = None
    ) -> None:
        self.root = root
        self.repo = open_repository(root)
        self._repo_key = (os.getpid(), str(root))
        _USERS[self._repo_key] = _USERS.get(self._repo_key, 0) + 1
        self._released = False
        self.lock = WriterLock(root / HANGAR_DIR, lock_timeout)
        self._git_dir = git_dir_of(root)
        # Shared with the StockRoom that opened this store (it reads head.stock before).
        self._headwatch = headwatch or HeadWatch(root)
        self._reader: Checkout | None = None
        self._reader_digest = ""
        self._writer: Checkout | None = None
        self._writer_base = ""
        self._lent_writer: Checkout | None = None
        # Inside optimize(): Hangar columns of the writer kept in their write
        # context between per-sample writes and reads (see Staging.hold_column).
        self._held: dict[str, Any] = {}
        self._held_stack = contextlib.ExitStack()
        self._git_head_key: tuple[int, int, int, int] | None = None
        self._git_head_detached = False
        self._git_head_path: str | None = None
        self.optimizing = False
        # As strings, built once: a staged tag write checks these each time,
        # and joining Paths costs more than the stat.
        self._hangar_dir_str = str(root / HANGAR_DIR)
        self._marker_path = os.path.join(self._hangar_dir_str, STAGED_MARKER)
        self._spare_path = os.path.join(self._hangar_dir_str, SPARE_MARKER)
        self._switch_path = os.path.join(self._hangar_dir_str, SWITCH_MARKER)
        # This object staged writes since its last commit (read-your-writes):
        # to the Hangar columns in dirty_columns, or to any (dirty_all: an
        # expert's writer). Reads of other columns stay on the reader.
        self.dirty = False
        self.dirty_all = False
        self.dirty_columns: set[str] = set()

    def head(self) -> str:
        """The digest ``head.stock`` names now ('' before the first commit)."""
        return self._headwatch.head()

    def has_commit(self, digest: str) -> bool:
        return bool(commiting.check_commit_hash_in_history(self.repo._env.refenv, digest))

    def _require_commit(self, digest: str) -> None:
        if not self.has_commit(digest):
            raise StockroomError(
                f"{HEAD_FILE} names stock commit {digest}, which {HANGAR_DIR} does not "
                f"have; fetch the stock data that belongs to this git commit, or check "
                f"out a git commit whose stock data is here"
            )

    def _staging_base(self) -> str:
        env = self.repo._env.branchenv
        return str(heads.get_branch_head_commit(env, heads.get_staging_branch_head(env)))

    def _checkout_writer(self, branch: str) -> Checkout:
        # A Hangar commit empties its staging directory by deleting and
        # re-creating it: a writer killed in between leaves it missing, and
        # every later writer checkout fails. Re-create what Hangar expects.
        hangar_dir = self.root / HANGAR_DIR
        for name in (DIR_DATA, DIR_DATA_STORE, DIR_DATA_STAGE, DIR_DATA_REMOTE):
            (hangar_dir / name).mkdir(exist_ok=True)
        # Opening another branch makes Hangar empty the staging area, then
        # fill it from that branch's commit (two transactions): a writer killed
        # in between leaves an empty staging area, which reads as "delete
        # everything". The marker spans the switch; found later, the staging
        # area (clean before any switch) is reset to its branch's commit.
        switching = hangar_dir / SWITCH_MARKER
        staging = heads.get_staging_branch_head(self.repo._env.branchenv)
        if switching.exists():
            writer = self._hangar_writer(staging)
            if writer.diff.status() == "DIRTY":
                with _quiet():
                    writer.reset_staging_area()  # closes the checkout
            else:
                writer.close()
            switching.unlink()
        if branch == staging:
            return self._hangar_writer(branch)
        switching.touch()
        try:
            return self._hangar_writer(branch)
        finally:
            switching.unlink()

    def _hangar_writer(self, branch: str) -> Checkout:
        try:
            return self.repo.checkout(write=True, branch=branch)
        except PermissionError:
            # We hold the stock writer lock, so Hangar's lock was left by a
            # writer that died: release it (see stockroom.lock), without
            # Hangar's ResourceWarning: recovering is stockroom's job, not news.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                self.repo.force_release_writer_lock()
            return self.repo.checkout(write=True, branch=branch)

    def _check_not_lent(self) -> None:
        if self._lent_writer is not None:
            if hasattr(self._lent_writer, "_writer_lock"):
                raise StockroomError(
                    "a write checkout from get_hangar_checkout(write=True) is open; "
                    "close it before writing through stockroom"
                )
            self._lent_writer = None  # the expert closed it
            self.lock.release()

    def staged_in(self, column: str) -> bool:
        """Whether this object staged writes to the Hangar column ``column``
        (``dirty`` with no column recorded counts as every column)."""
        return self.dirty and (self.dirty_all or not self.dirty_columns or column in self.dirty_columns)

    def clear_dirty(self) -> None:
        self.dirty = self.dirty_all = False
        self.dirty_columns = set()

    def mark_dirty(self, column: str | None = None) -> None:
        """Record that this object staged writes to ``column`` (None: to any
        column, or to which columns exist); call after each write.

        Reads then come from the staging area (read your writes). The
        ``.hangar/stockroom-staged`` marker that tells the git hooks, without
        opening Hangar, that writes may be staged is left by
        :meth:`writing` before the write; this only makes sure of it.
        """
        self.dirty = True
        if column is None:
            self.dirty_all = True
        else:
            self.dirty_columns.add(column)
        self._touch_marker()

    def _touch_marker(self) -> None:
        # Before any staged write reaches Hangar, so that a crash cannot leave
        # staged writes without it. It may outlive them (a failed write).
        marker = self._marker_path
        if not os.path.exists(marker):
            # Creating a file costs a journalled inode allocation (0.37 ms
            # here, a third of a staged tag write); renaming the one that the
            # last commit put aside costs 7 us. Either way the marker exists
            # under its name before the write, atomically.
            try:
                os.rename(self._spare_path, marker)
            except FileNotFoundError:
                Path(marker).touch()

    def _clear_marker(self) -> None:
        # Put aside, not deleted, for the next first write (see _touch_marker).
        marker = self.root / HANGAR_DIR / STAGED_MARKER
        with contextlib.suppress(FileNotFoundError):
            os.rename(marker, marker.with_name(SPARE_MARKER))

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                reader.close()
