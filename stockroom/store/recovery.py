"""Interrupted stock commits: the commit journal, and ``stock repair``."""

from __future__ import annotations

import warnings

from hangar.records import commiting, heads

from stockroom import journal, taglog
from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR, HEAD_FILE, write_head
from stockroom.lock import WriterLock
from stockroom.store.base import StoreBase


class Recovery(StoreBase):
    """Finds and finishes a stock commit killed before ``head.stock`` named it."""

    def _journal_target(self) -> tuple[journal.Journal, str] | None:
        """The journal and the Hangar commit it wrote that head.stock does not
        name yet; None when there is no journal or it is stale (the Hangar
        commit never happened, or head.stock already names it)."""
        record = journal.read(self.root / HANGAR_DIR)
        if record is None:
            return None
        env = self.repo._env.branchenv
        if record.branch not in heads.get_branch_names(env):
            return None
        digest = str(heads.get_branch_head_commit(env, record.branch))
        if digest in ("", record.base) or digest == self.head():
            return None
        ancestors = commiting.get_commit_ancestors(self.repo._env.refenv, digest)
        if ancestors.master_ancestor != record.base:
            return None  # the branch moved on since: not the interrupted commit
        return record, digest

    def _check_journal(self) -> None:
        """Lock held: refuse to write past an interrupted commit; drop a stale journal."""
        if not journal.exists(self._hangar_dir_str):
            return
        hangar_dir = self.root / HANGAR_DIR
        found = self._journal_target()
        if found is None:
            journal.clear(hangar_dir)
            return
        raise StockroomError(
            f"stock commit {found[1]} was written to {HANGAR_DIR} but the process stopped "
            f"before updating {HEAD_FILE}; run `stock repair` to finish it, then write again"
        )

    def interrupted_commit(self) -> str | None:
        """A line explaining an interrupted stock commit, None when there is none.

        Looks only when the writer lock is free: a journal that a live writer
        holds is a commit in progress, not an interrupted one.
        """
        hangar_dir = self.root / HANGAR_DIR
        if not journal.exists(hangar_dir) or self._writer is not None:
            return None
        probe = WriterLock(hangar_dir, timeout=0)
        try:
            probe.acquire()
        except StockroomError:
            return None  # a live writer holds it: a commit in progress
        try:
            found = self._journal_target()
        finally:
            probe.release()
        if found is None:
            return None
        record, digest = found
        return (
            f"stock commit {digest} (on {record.base or '(none)'}, started {record.since} by pid "
            f"{record.pid}) was interrupted before {HEAD_FILE} named it; run `stock repair`"
        )

    def _warn_if_interrupted(self) -> None:
        try:
            line = self.interrupted_commit()
        except StockroomError:
            return  # head.stock unreadable: the next read explains that
        if line is not None:
            warnings.warn(line, UserWarning, stacklevel=4)

    def repair(self) -> str:
        """Finish or clear an interrupted stock commit; returns what was done."""
        self._check_not_lent()
        if self._writer is not None:
            raise StockroomError("leave optimize() before running repair")
        hangar_dir = self.root / HANGAR_DIR
        self.lock.acquire()
        try:
            if not journal.exists(hangar_dir):
                return "nothing to repair: no interrupted stock commit"
            found = self._journal_target()
            if found is None:
                journal.clear(hangar_dir)
                return (
                    "the interrupted stock commit never reached the store (or was already "
                    "finished); staged writes, if any, are kept: see `stock status`"
                )
            record, digest = found
            head = self.head()
            if head == record.base:
                write_head(self.root, digest)
                journal.clear(hangar_dir)
                self._clear_marker_if_clean()
                return (
                    f"{HEAD_FILE} now names stock commit {digest}, which the interrupted "
                    f"commit wrote; record it in git with `git add {HEAD_FILE}`"
                )
            # head.stock moved (a checkout) since: pointing it elsewhere now would
            # be wrong for the checked-out code. The commit stays in the store.
            journal.clear(hangar_dir)
            return (
                f"the interrupted stock commit {digest} was based on {record.base or '(none)'}, "
                f"but {HEAD_FILE} now names {head or '(none)'}; left {digest} in the store "
                f"(Hangar branch {record.branch}): write it into {HEAD_FILE} to use it"
            )
        finally:
            self.lock.release()

    def _clear_marker_if_clean(self) -> None:
        # Lock held. The interrupted commit consumed the staged writes.
        if taglog.exists(self._hangar_dir_str):
            return  # tags staged since: the next writer folds them in
        env = self.repo._env.branchenv
        writer = self._checkout_writer(heads.get_staging_branch_head(env))
        try:
            if writer.diff.status() == "CLEAN":
                self._clear_marker()
        finally:
            writer.close()
