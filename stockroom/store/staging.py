"""Writing and staging: the writer checkout on the commit ``head.stock``
names, the writer lock around it, staged changes, commit and reset."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from hangar.columns.common import ColumnTxn
from hangar.columns.constructors import column_type_object_from_schema, generate_flat_column
from hangar.constants import DIR_DATA, DIR_DATA_REMOTE, DIR_DATA_STAGE, DIR_DATA_STORE
from hangar.records import heads, schema_hash_db_key_from_digest, schema_spec_from_db_val
from hangar.records.queries import RecordQuery

from stockroom import journal, quickread, taglog
from stockroom.errors import StockroomError
from stockroom.git import head_is_detached
from stockroom.headfile import HANGAR_DIR, HEAD_FILE, write_head
from stockroom.store import commitrefs
from stockroom.store.base import BRANCH_PREFIX, SWITCH_MARKER
from stockroom.store.labels import TAG_COLUMN, describe_changes
from stockroom.store.recovery import Recovery
from stockroom.store.repository import Checkout, _quiet

# Up to this many tags, a commit writes them to quickread's cache itself
# (reading 10,000 tags takes about 0.1 s).
_TAGS_CACHED_AT_COMMIT = 10_000


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
        self._fold_tags()
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

    def _detached(self) -> bool:
        """Whether git's HEAD is detached, re-read only when ``.git/HEAD`` changed.

        Checked before every write; git rewrites HEAD by renaming a new file
        over it, so its stat tells when to read it again (a recent one, whose
        timestamp may not change on the next rewrite, is always read).
        """
        if self._git_dir is None:
            return False
        path = self._git_head_path
        if path is None:
            path = self._git_head_path = os.path.join(self._git_dir, "HEAD")
        try:
            st = os.stat(path)
        except OSError:
            return False
        key = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
        if key != self._git_head_key:
            self._git_head_detached = head_is_detached(self._git_dir)
            self._git_head_key = None if quickread.racy(st) else key
        return self._git_head_detached

    def _check_can_write(self) -> None:
        self._check_not_lent()
        if self._detached():
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
    def writing(self, check_branch: bool = True, keep_held: bool = False) -> Iterator[Checkout]:
        """The writer checkout, on the commit ``head.stock`` names.

        ``check_branch`` (the default) is for blocks that stage writes: it
        refuses a detached git HEAD and leaves the staged marker *before*
        anything reaches Hangar. Outside ``optimize()`` the lock is taken for
        this block only. Columns held open by :meth:`hold_column` are closed
        first (their writes committed to the staging area), unless
        ``keep_held``: the block then only reads or writes samples.
        """
        if check_branch:
            self._check_can_write()
        else:
            self._check_not_lent()
        if not keep_held:
            self.release_held()
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
            self.release_held()
            yield self._writer
            return
        self.lock.acquire()
        try:
            self._fold_tags()
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

    def take_writer(self) -> bool:
        """On entering ``optimize()``: take the writer lock and open the writer
        now, for the whole block (another process then waits for the lock, as
        it would for any write), where this object could write: on a branch,
        at a commit it may stage writes on. Elsewhere (detached git HEAD, a
        ``head.stock`` the writer refuses) nothing is taken and reads work, as
        writes would say why they are refused. A lock held by another process
        raises as a write would. True when the writer was taken."""
        self._check_not_lent()
        if self._writer is not None:
            return True
        if self._detached():
            return False
        self.lock.acquire()
        try:
            writer = self._open_writer()
        except StockroomError:
            # Not writable here: the first write gives this error, with its advice.
            self.lock.release()
            return False
        except BaseException:
            self.lock.release()
            raise
        self._writer = writer
        self._writer_base = self.head()
        return True

    def close_writer(self) -> None:
        """Close the writer if this object holds one (end of optimize())."""
        if self._writer is not None:
            self._close_writer()

    def _close_writer(self) -> None:
        try:
            self.release_held()
        finally:
            writer, self._writer = self._writer, None
            try:
                if writer is not None:
                    writer.close()
            finally:
                self.lock.release()

    def hold_column(self, name: str, column: Any) -> Any:
        """Keep the writer's Hangar column ``column`` in its write context.

        Inside ``optimize()`` only (elsewhere it does nothing): entering a
        Hangar column's context opens three LMDB write transactions and
        leaving it commits them, which costs far more than writing one
        sample. A held column stays open until the writer is next used for
        anything but samples (:meth:`writing` without ``keep_held``), a
        commit, or the end of ``optimize()``: its staged writes reach the
        staging area then, as Hangar's own ``with column:`` does. Returns
        ``column``.
        """
        if self.optimizing and self._writer is not None and name not in self._held:
            self._held_stack.enter_context(column)
            self._held[name] = column
        return column

    def held_column(self, name: str, write: bool) -> Any | None:
        """The held writer column ``name``, when it may be used right now.

        None when none is held, or when anything needs the checks and errors
        of :meth:`writing` (``head.stock`` moved; for a ``write``, git HEAD
        detached too): callers then take the slow path, which raises or
        reopens what is needed. For writes and for reading this object's
        staged samples. (An expert's writer cannot be lent inside
        ``optimize()``, where alone columns are held.)
        """
        column = self._held.get(name)
        if column is None or self._writer_base != self.head() or (write and self._detached()):
            return None
        return column

    @contextlib.contextmanager
    def staged_column(self, name: str, write: bool) -> Iterator[Any | None]:
        """Outside ``optimize()``: the staging area's Hangar column ``name``
        alone, under the writer lock; for a ``write``, in its write context.

        A Hangar writer checkout loads the records of every staged column
        when it opens (a committed 60,000-sample column: half a second), so
        one tag written or read through it costs that much. This opens only
        the column asked for, with the checks :meth:`writing` makes, and
        commits its transactions at the end of the block, as Hangar's
        ``with column:`` does. Yields None when the column does not exist
        or anything needs the full writer (the staging area is based on
        another commit, a branch switch to recover): the caller then uses
        :meth:`writing` or :meth:`reading`.

        Hangar's own writer lock is not taken: every stockroom writer
        (an expert's checkout from ``get_hangar_checkout`` included) holds
        the stock writer lock, which excludes this block, and taking and
        releasing Hangar's would cost two synced LMDB commits per call.
        """
        if self._writer is not None or self.optimizing or self._lent_writer is not None:
            yield None
            return
        if write:
            self._check_can_write()
        self.lock.acquire()
        try:
            if write:
                self._fold_tags()  # the column's writes go after the logged tags
            column = self._open_staged_column(name)
        except BaseException:
            self.lock.release()
            raise
        if column is None:
            self.lock.release()
            yield None
            return
        try:
            with contextlib.ExitStack() as stack:
                if write:
                    self._touch_marker()
                    stack.enter_context(column)
                yield column
        finally:
            try:
                column._destruct()
            finally:
                self.lock.release()

    def _open_staged_column(self, name: str) -> Any | None:
        """Lock held: the staged column ``name``, or None (see :meth:`staged_column`)."""
        self._check_journal()
        if (self.root / HANGAR_DIR / SWITCH_MARKER).exists() or self._staging_base() != self.head():
            return None
        env = self.repo._env
        txnctx = ColumnTxn(env.stageenv, env.hashenv, env.stagehashenv)
        wanted = None
        for record, spec in RecordQuery(env.stageenv).schema_specs().items():
            if record.column == name and record.layout == "flat":
                wanted = spec
        if wanted is None:
            return None
        with txnctx.read() as ctx:
            raw_schema = ctx.hashTxn.get(schema_hash_db_key_from_digest(wanted.digest))
        schema = column_type_object_from_schema(schema_spec_from_db_val(raw_schema))
        # Write mode for reads too: only its file handles see staged data files.
        return generate_flat_column(
            txnctx=txnctx,
            column_name=name,
            path=self.repo._repo_path,
            schema=schema,
            mode="a",
        )

    def log_tags(self, ops: taglog.Ops) -> bool:
        """Outside ``optimize()``: stage tag writes (encoded key, encoded value
        or None to delete) in the staged tag log (:mod:`stockroom.taglog`),
        under the writer lock and with the checks :meth:`writing` makes.

        False, having written nothing, when the log cannot take them (inside
        ``optimize()``, an expert's writer open, the staging area based on
        another commit than ``head.stock`` names, a branch switch to recover):
        the caller then writes through Hangar, which raises or recovers.
        """
        if self._writer is not None or self.optimizing or self._lent_writer is not None:
            return False
        self._check_can_write()
        self.lock.acquire()
        try:
            self._check_journal()
            base = self.head()
            if os.path.exists(self._switch_path) or self._staging_base() != base:
                return False
            self._touch_marker()
            size = taglog.append(self._hangar_dir_str, base, ops)
            self.mark_dirty(TAG_COLUMN)  # staged now, whatever the fold below does
            if size > taglog.FOLD_AT:
                # Keeps reading the log cheap. The write is staged already: a
                # fold that fails leaves the log for the next writer to fold.
                with contextlib.suppress(Exception):
                    self._fold_tags()
        finally:
            self.lock.release()
        return True

    def _fold_tags(self) -> None:
        """Lock held: write the staged tag log into Hangar's tag column, then
        empty it (see :mod:`stockroom.taglog`). Nothing when there is no log.

        Called before anything opens Hangar's staging area, so Hangar's view
        of what is staged is always whole. A fold cut short leaves the log:
        folding it again gives the same staged tags (each key's last write
        wins, whatever was there).
        """
        hangar_dir = self._hangar_dir_str
        records = taglog.records(hangar_dir, fresh=True)
        if not records:
            taglog.clear(hangar_dir)  # nothing intact in it (or absent, or empty: nothing to do)
            return
        column = self._open_staged_column(TAG_COLUMN)
        writer = None
        try:
            if column is None:  # no tag column yet, or staging based elsewhere
                writer = self._checkout_writer(heads.get_staging_branch_head(self.repo._env.branchenv))
                if TAG_COLUMN not in writer.columns:
                    writer.add_str_column(TAG_COLUMN)
                column = writer.columns[TAG_COLUMN]
            with column:
                for _, ops in records:
                    for key, value in ops:
                        if value is not None:
                            column[key] = value
                        elif key in column:
                            del column[key]
        finally:
            if writer is not None:
                writer.close()
            elif column is not None:
                column._destruct()
        taglog.clear(hangar_dir)

    @staticmethod
    def put_sample(column: Any, key: str | int, value: Any) -> None:
        """Write one sample into a held column whose checks the caller made.

        Hangar's ``column[key] = value`` re-validates the key and the array
        against the schema; callers of this already did both (a key from
        ``stockroom.keys``, an array of the column's dtype and shape, C
        contiguous), so this goes straight to Hangar's write.
        """
        column._perform_set(key, value)

    def release_held(self) -> None:
        """Close the columns :meth:`hold_column` kept open (committing their
        LMDB transactions); nothing when none is held."""
        if self._held:
            stack, self._held_stack = self._held_stack, contextlib.ExitStack()
            self._held = {}
            stack.close()

    def _fast_counts(self) -> dict[str, dict[str, int]] | None:
        """:func:`commitrefs.staged_counts` under the writer lock, tags
        folded; None when the slow path must answer (inside ``optimize()``,
        an expert's writer, no commit yet, a branch switch to recover)."""
        if self._writer is not None or self.optimizing:
            return None
        self._check_not_lent()
        self.lock.acquire()
        try:
            self._fold_tags()
            if (self.root / HANGAR_DIR / SWITCH_MARKER).exists():
                return None
            return commitrefs.staged_counts(self.repo)
        finally:
            self.lock.release()

    def staged_status(self) -> str:
        """'DIRTY' when anything is staged in the repository, else 'CLEAN'."""
        counts = self._fast_counts()
        if counts is not None:
            return "DIRTY" if counts else "CLEAN"
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

        fast = self._fast_counts()
        if fast is not None:
            if not fast:
                self._clear_marker()
            return describe_changes(fast)
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
        if self._writer is None and not self.optimizing:
            digest = self._fast_commit(message, update_head)
            if digest is not None:
                self.clear_dirty()
                return digest
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
            self._cache_tags(writer, digest)
        if self._writer is not None:  # inside optimize()
            if update_head:
                self._writer_base = digest
            else:
                # The writer now sits on the new commit, which head.stock does
                # not name; the next write reopens it on what head.stock names.
                self._close_writer()
        self.clear_dirty()
        return digest

    def _fast_commit(self, message: str, update_head: bool) -> str | None:
        """Commit without opening a Hangar checkout (see
        :mod:`stockroom.store.commitrefs`): what the slow path does, at the
        cost of what changed. None when this case is left to the slow path
        (the staging area is based elsewhere than ``head.stock``, or a
        branch switch was interrupted): it words those cases."""
        self._check_not_lent()
        self.lock.acquire()
        try:
            self._check_journal()
            hangar_dir = self.root / HANGAR_DIR
            # As _checkout_writer does, before the fold opens the tag column: a
            # commit killed while Hangar re-created its staging directory left
            # it missing.
            for name in (DIR_DATA, DIR_DATA_STORE, DIR_DATA_STAGE, DIR_DATA_REMOTE):
                (hangar_dir / name).mkdir(exist_ok=True)
            self._fold_tags()
            if (hangar_dir / SWITCH_MARKER).exists() or self._staging_base() != self.head():
                return None
            if update_head:
                env = self.repo._env.branchenv
                journal.begin(hangar_dir, self._staging_base(), heads.get_staging_branch_head(env))
            digest = commitrefs.commit(self.repo, message)
            if digest is None:
                if update_head:
                    journal.clear(hangar_dir)
                raise StockroomError(
                    "nothing to commit: no stock writes since the last commit "
                    "(write to stock.data, stock.model or stock.tag first)"
                )
            if update_head:
                write_head(self.root, digest)
                journal.clear(hangar_dir)
            self._clear_marker()
            self._cache_tags_fast(digest)
            return digest
        finally:
            self.lock.release()

    def _cache_tags_fast(self, digest: str) -> None:
        """:meth:`_cache_tags` for a commit made without a checkout: opens
        the tag column alone (what it costs follows the tags, not the data)."""
        try:
            column = self._open_staged_column(TAG_COLUMN)
        except Exception:  # noqa: BLE001 - the commit succeeded; the cache is optional
            return
        if column is None:
            quickread.save_tags(self.root, digest, {})
            return
        try:
            if len(column) > _TAGS_CACHED_AT_COMMIT:
                return
            tags = {str(k): str(column[k]) for k in column.keys()}
        except Exception:  # noqa: BLE001
            return
        finally:
            column._destruct()
        quickread.save_tags(self.root, digest, tags)

    def _cache_tags(self, writer: Checkout, digest: str) -> None:
        """Write the tags of the new commit ``digest`` to quickread's cache, so a
        new process reads them without opening a checkout. Best effort: the
        commit is done, and a missing entry is written by the first read."""
        try:
            columns = writer.columns
            if TAG_COLUMN in columns:
                col = columns[TAG_COLUMN]
                if len(col) > _TAGS_CACHED_AT_COMMIT:
                    return  # left to the first read: a commit should not wait on it
                tags = {str(k): str(col[k]) for k in col.keys()}
            else:
                tags = {}
        except Exception:  # noqa: BLE001 - the commit succeeded; the cache is optional
            return
        quickread.save_tags(self.root, digest, tags)

    def reset_staging(self) -> bool:
        """Drop every staged write; False when there was nothing staged."""
        with self._staging_area() as writer:
            if writer.diff.status() == "CLEAN":
                self._clear_marker()
                return False
            with _quiet():
                writer.reset_staging_area()
            self._clear_marker()
        self.clear_dirty()
        return True
