"""Writing and staging: the writer checkout on the commit ``head.stock``
names, the writer lock around it, staged changes, commit and reset."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from hangar.records import heads

from stockroom import journal
from stockroom.errors import StockroomError
from stockroom.git import head_is_detached
from stockroom.headfile import HANGAR_DIR, HEAD_FILE, write_head
from stockroom.store.base import BRANCH_PREFIX
from stockroom.store.labels import describe_changes
from stockroom.store.recovery import Recovery
from stockroom.store.repository import Checkout, _quiet


class Staging(Recovery):
    """Stages writes on the commit ``head.stock`` names, and commits them."""

    def _branch_at(self, digest: str) -> str:
        """A Hangar branch whose head is ``digest``, created when there is none."""
        env = self.repo._env.branchenv
        for name in heads.get_branch_names(env):
            if heads.get_branch_head_commit(env, name) == digest:
                return str(name)
        existing = set(heads.get_branch_names(env))
        base = BRANCH_PREFIX + digest.split("=")[-1][:12]
        name, n = base, 1
        while name in existing:
            n += 1
            name = f"{base}-{n}"
        self.repo.create_branch(name, base_commit=digest)
        return name

    def _open_writer(self) -> Checkout:
        """Open the writer on the commit ``head.stock`` names (lock held)."""
        self._check_journal()
        want = self.head()
        env = self.repo._env.branchenv
        staging_branch = heads.get_staging_branch_head(env)
        base = self._staging_base()
        if base == want:
            return self._checkout_writer(staging_branch)
        writer = self._checkout_writer(staging_branch)
        dirty = writer.diff.status() == "DIRTY"
        writer.close()
        if dirty:
            raise StockroomError(
                f"uncommitted stock writes are based on stock commit {base or '(none)'}, "
                f"but {HEAD_FILE} now names {want or '(none)'}; check out the git commit "
                f"whose {HEAD_FILE} names {base or '(none)'} and run `stock commit`, or "
                f"drop the staged writes with `stock reset`"
            )
        if want == "":
            # A git commit from before the first stock commit. Writing "on
            # nothing" would make a second root commit, which Hangar counts as
            # a corrupt history (verify_repo_integrity), so refuse.
            raise StockroomError(
                f"{HEAD_FILE} is empty (this git commit predates the first stock commit) "
                f"but the stock repository already has commits, and Hangar allows only "
                f"one first commit; to write here, start from an existing stock state, "
                f"e.g. `git checkout main -- {HEAD_FILE}` (any branch that has one)"
            )
        self._require_commit(want)
        return self._checkout_writer(self._branch_at(want))

    def _check_can_write(self) -> None:
        self._check_not_lent()
        if self._git_dir is not None and head_is_detached(self._git_dir):
            raise StockroomError(
                "git HEAD is detached (an old commit is checked out): reads work, but "
                "check out a branch to write (`git switch BRANCH` or `git switch -c NEW`)"
            )

    def _locked_writer(self) -> Checkout:
        """Take the writer lock and open the writer; the lock is not kept on failure."""
        self.lock.acquire()
        try:
            return self._open_writer()
        except BaseException:
            self.lock.release()
            raise

    @contextlib.contextmanager
    def writing(self, check_branch: bool = True) -> Iterator[Checkout]:
        """The writer checkout, on the commit ``head.stock`` names.

        ``check_branch`` (the default) is for blocks that stage writes: it
        refuses a detached git HEAD and leaves the staged marker *before*
        anything reaches Hangar. Outside ``optimize()`` the lock is taken for
        this block only.
        """
        if check_branch:
            self._check_can_write()
        else:
            self._check_not_lent()
        if self._writer is not None:
            if self._writer_base != self.head():
                raise StockroomError(
                    f"{HEAD_FILE} moved to {self.head() or '(none)'} while stockroom "
                    f"held the writer on {self._writer_base or '(none)'}; leave "
                    f"optimize() before checking out another commit"
                )
            if check_branch:
                self._touch_marker()
            yield self._writer
            return
        writer = self._locked_writer()
        self._writer = writer
        self._writer_base = self.head()
        try:
            if check_branch:
                self._touch_marker()
            yield writer
        finally:
            if not self.optimizing:
                self._close_writer()

    @contextlib.contextmanager
    def _staging_area(self) -> Iterator[Checkout]:
        """The writer on Hangar's staging branch, whatever commit it is based on.

        For looking at or dropping staged writes, which must work even when
        ``head.stock`` moved away from their base (that is when users need it).
        """
        self._check_not_lent()
        if self._writer is not None:  # inside optimize(): already the staging branch
            yield self._writer
            return
        self.lock.acquire()
        try:
            env = self.repo._env.branchenv
            writer = self._checkout_writer(heads.get_staging_branch_head(env))
        except BaseException:
            self.lock.release()
            raise
        try:
            yield writer
        finally:
            try:
                writer.close()
            finally:
                self.lock.release()

    def close_writer(self) -> None:
        """Close the writer if this object holds one (end of optimize())."""
        if self._writer is not None:
            self._close_writer()

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.close()
        finally:
            self.lock.release()

    def staged_status(self) -> str:
        """'DIRTY' when anything is staged in the repository, else 'CLEAN'."""
        with self._staging_area() as writer:
            return str(writer.diff.status())

    def staged_base(self) -> str:
        """The stock commit the staged writes build on ('' before the first)."""
        return self._staging_base()

    def staged_changes(self) -> list[str]:
        """One line per changed column, in the names users know (empty when clean).

        For example ``data column 'img': 3 samples added, 1 sample deleted``,
        ``model 'net': new`` or ``tags: 2 added`` (see
        :func:`stockroom.store.labels.describe_change`).
        """
        counts: dict[str, dict[str, int]] = {}

        def count(column: str, kind: str, n: int = 1) -> None:
            kinds = counts.setdefault(column, {})
            kinds[kind] = kinds.get(kind, 0) + n

        with self._staging_area() as writer:
            if writer.diff.status() == "CLEAN":
                self._clear_marker()
                return []
            if self._staging_base() == "":
                # No commit to diff against (Hangar's diff needs one): all is new.
                for name in writer.columns.keys():
                    count(name, "new column")
                    count(name, "added", len(writer.columns[name]))
            else:
                diff = writer.diff.staged().diff
                for kind in ("added", "deleted", "mutated"):
                    changes = getattr(diff, kind)
                    for key in changes.samples:
                        count(getattr(key, "column", str(key)), kind)
                    for column in changes.schema:
                        name = getattr(column, "column", str(column))
                        count(
                            name,
                            {"added": "new column", "deleted": "column deleted"}.get(kind, "column changed"),
                        )
        return describe_changes(counts)

    def commit(self, message: str, update_head: bool = True) -> str:
        """Commit the staging area; point ``head.stock`` at it when asked."""
        if not isinstance(message, str) or not message.strip():
            raise ValueError("a commit message is required: stock commit -m 'what changed'")
        self._check_can_write()
        with self.writing(check_branch=False) as writer:
            if writer.diff.status() == "CLEAN":
                raise StockroomError(
                    "nothing to commit: no stock writes since the last commit "
                    "(write to stock.data, stock.model or stock.tag first)"
                )
            if update_head:
                # Written before the Hangar commit, removed once head.stock names
                # it: a crash in between is found and repaired (stock repair).
                env = self.repo._env.branchenv
                journal.begin(
                    self.root / HANGAR_DIR, self._staging_base(), heads.get_staging_branch_head(env)
                )
            with _quiet():
                digest = str(writer.commit(message))
            if update_head:
                write_head(self.root, digest)
                journal.clear(self.root / HANGAR_DIR)
            self._clear_marker()
        if self._writer is not None:  # inside optimize()
            if update_head:
                self._writer_base = digest
            else:
                # The writer now sits on the new commit, which head.stock does
                # not name; the next write reopens it on what head.stock names.
                self._close_writer()
        self.dirty = False
        return digest

    def reset_staging(self) -> bool:
        """Drop every staged write; False when there was nothing staged."""
        with self._staging_area() as writer:
            if writer.diff.status() == "CLEAN":
                self._clear_marker()
                return False
            with _quiet():
                writer.reset_staging_area()
            self._clear_marker()
        self.dirty = False
        return True
