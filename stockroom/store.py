"""The access layer: the only module that talks to Hangar.

It owns everything about the Hangar repository under a stock root: the
compatibility patches, opening the repository, the reader checkout that
follows ``head.stock``, the writer checkout and its lock, and commits.
Storages (``stock.data``, ``stock.tag``, ``stock.model``) ask it for a
checkout to read from or write to and know nothing else about Hangar.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stockroom import _compat, journal
from stockroom.errors import StockroomError
from stockroom.git import git_dir_of, head_is_detached
from stockroom.headfile import HANGAR_DIR, HEAD_FILE, read_head, write_head
from stockroom.lock import WriterLock

_compat.install()

import hangar  # noqa: E402  (after the compatibility patches, on purpose)
import lmdb  # noqa: E402
from hangar.constants import (  # noqa: E402
    CONFIG_USER_NAME,
    DIR_DATA,
    DIR_DATA_REMOTE,
    DIR_DATA_STAGE,
    DIR_DATA_STORE,
    LMDB_BRANCH_NAME,
    LMDB_HASH_NAME,
    LMDB_REF_NAME,
    LMDB_STAGE_HASH_NAME,
    LMDB_STAGE_REF_NAME,
)
from hangar.records import commiting, heads, vcompat  # noqa: E402

Checkout = Any  # hangar's ReaderCheckout / WriterCheckout (untyped library)

# One Repository per (process, path): LMDB forbids opening the same
# environment twice in one process, and a forked child must open its own.
_REPOS: dict[tuple[int, str], Any] = {}
# How many open Stores use each cached Repository: the last one to close
# closes it, so a process that opens many repositories (a test suite, a
# sweep over projects) does not keep every one's files open.
_USERS: dict[tuple[int, str], int] = {}


def release_repository(root: Path) -> None:
    """Close this process's cached Repository of ``root`` if no Store uses it."""
    key = (os.getpid(), str(root))
    if _USERS.get(key, 0) > 0:
        return
    _USERS.pop(key, None)
    repo = _REPOS.pop(key, None)
    if repo is not None and repo._env.repo_is_initialized:
        with contextlib.suppress(Exception):
            repo._env._close_environments()
        repo._env.cmtenv.clear()


BRANCH_PREFIX = "stock-"
# Present while stock writes may be staged; lets the git hooks skip
# importing hangar when it is absent (see Store.mark_dirty).
STAGED_MARKER = "stockroom-staged"
# Present while Hangar rebuilds its staging area for another branch.
SWITCH_MARKER = "stockroom-switching"
# A head.stock modified less than this long ago may be modified again
# without its stat changing (file timestamps are coarse): such a stat is not
# trusted for caching, and the file is read again on the next call.
_RACY_NS = 2_000_000_000

# Labels for Hangar column names in messages: storages register a whole
# column name, or a prefix ending in ".", and a function that turns the rest
# into what users call the column (``data.img`` -> "data column 'img'").
_COLUMN_LABELS: dict[str, Callable[[str], str]] = {}


def register_column_label(name: str, label: Callable[[str], str]) -> None:
    """Show the Hangar column ``name`` (or, for ``"prefix."``, the columns
    ``prefix.REST``) to users as ``label(REST)`` (``label("")`` for a name)."""
    _COLUMN_LABELS[name] = label


def column_label(hname: str) -> str:
    """What users call the Hangar column ``hname`` (its own name when unknown)."""
    if hname in _COLUMN_LABELS:
        return _COLUMN_LABELS[hname]("")
    prefix, dot, rest = hname.partition(".")
    label = _COLUMN_LABELS.get(prefix + dot) if dot else None
    if label is not None:
        try:
            return label(rest)
        except ValueError:  # a name stockroom did not encode
            pass
    return f"Hangar column {hname!r}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hangar prints progress to stdout; stockroom's users did not ask for it."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def init_hangar(root: Path, name: str, email: str, overwrite: bool) -> bool:
    """Create ``root/.hangar``; False when one exists and ``overwrite`` is off."""
    key = (os.getpid(), str(root))
    # Reuse this process's Repository: opening a second one on the same
    # files fails in py-lmdb ("already open in this process").
    repo = _REPOS.get(key)
    if repo is None:
        _clear_damaged(root, overwrite)
        with _quiet():
            repo = hangar.Repository(root, exists=False)
    if repo.initialized and not overwrite:
        _REPOS[key] = repo
        return False
    if not repo.initialized:
        with _quiet():
            repo.init(user_name=name, user_email=email)
        _REPOS[key] = repo
        return True
    # Starting over deletes the store: never under a live writer's feet.
    lock = WriterLock(root / HANGAR_DIR)
    lock.acquire()
    try:
        _REPOS.pop(key, None)
        # Close this process's handles on the old files before Hangar
        # deletes them and opens new ones at the same paths.
        repo._env._close_environments()
        repo._env.cmtenv.clear()
        with _quiet():
            repo.init(user_name=name, user_email=email, remove_old=True)
    finally:
        lock.release()
    _REPOS[key] = repo
    return True


def _clear_damaged(root: Path, overwrite: bool) -> None:
    """Before (re-)initialising: refuse to open a damaged ``.hangar`` (Hangar
    would quietly re-create parts of it empty), unless told to start over or
    it never held a commit (an interrupted ``stock init``)."""
    hangar_dir = root / HANGAR_DIR
    if not hangar_dir.is_dir():
        return
    try:
        _check_complete(hangar_dir)
        return
    except StockroomError:
        never_used = (
            not (hangar_dir / LMDB_BRANCH_NAME).exists() and not (hangar_dir / LMDB_REF_NAME).exists()
        )
        if not (overwrite or never_used):
            raise
    lock = WriterLock(hangar_dir)
    lock.acquire()
    try:
        shutil.rmtree(hangar_dir)
    finally:
        lock.release()


def open_repository(root: Path) -> Any:
    """The Hangar repository of the stock root ``root`` (cached per process)."""
    key = (os.getpid(), str(root))
    repo = _REPOS.get(key)
    if repo is None:
        if not (root / HANGAR_DIR).is_dir():
            raise StockroomError(
                f"{root / HANGAR_DIR} is missing; run `stock init` to create it "
                f"(or clone/copy the stock data there)"
            )
        _check_complete(root / HANGAR_DIR)
        try:
            with _quiet():
                repo = hangar.Repository(root, exists=True)
        except (OSError, RuntimeError, ValueError) as exc:
            raise StockroomError(
                f"{root / HANGAR_DIR} is not a readable stock repository ({exc}); "
                f"restore it from a backup or run `stock init --overwrite` to start over"
            ) from None
        _check_version(repo, root / HANGAR_DIR)
        _REPOS[key] = repo
    return repo


# What Hangar's init creates. Hangar re-creates a missing LMDB file empty
# when it opens the repository (an empty staging area reads as "delete
# everything"), so their absence must be caught before it opens.
_HANGAR_FILES = (
    LMDB_BRANCH_NAME,
    LMDB_REF_NAME,
    LMDB_HASH_NAME,
    LMDB_STAGE_REF_NAME,
    LMDB_STAGE_HASH_NAME,
    CONFIG_USER_NAME,
)
_HANGAR_DIRS = (DIR_DATA, DIR_DATA_STORE)


def damaged(hangar_dir: Path, what: str) -> StockroomError:
    """The error for a ``.hangar`` that lost files or holds unreadable ones."""
    return StockroomError(
        f"{hangar_dir} is damaged ({what}); restore {HANGAR_DIR} from a backup or a "
        f"fresh clone of its data, or start over with `stock init --overwrite` (deletes all stock data)"
    )


def _check_complete(hangar_dir: Path) -> None:
    missing = [name for name in _HANGAR_FILES if not (hangar_dir / name).is_file()]
    missing += [name + "/" for name in _HANGAR_DIRS if not (hangar_dir / name).is_dir()]
    if missing:
        raise damaged(hangar_dir, f"missing {', '.join(missing)}")


def _check_version(repo: Any, hangar_dir: Path) -> None:
    """Refuse a store written by a newer Hangar: 0.5.2 would open it, and may
    corrupt what it does not understand."""
    try:
        written = vcompat.get_repository_software_version_spec(repo._env.branchenv)
    except KeyError:
        raise damaged(hangar_dir, "no Hangar version record") from None
    running = vcompat.repo_version_raw_spec_from_raw_string(v_str=hangar.__version__)
    if written.release[:2] > running.release[:2]:
        raise StockroomError(
            f"{hangar_dir} was written by Hangar {written}, newer than the Hangar {running} "
            f"this stockroom uses; upgrade stockroom, or use the tool that wrote it"
        )


class Store:
    """A stock root's Hangar repository, as one ``StockRoom`` object sees it.

    Reads go to a reader checkout at the commit ``head.stock`` names, kept
    open and reopened only when ``head.stock`` changes; or, when this object
    has staged writes on that commit, to the writer checkout (read your
    writes). Writes take the writer lock for as long as they need it: one
    operation, or the whole ``optimize()`` block.
    """

    def __init__(self, root: Path, lock_timeout: float | None = None) -> None:
        self.root = root
        self.repo = open_repository(root)
        self._repo_key = (os.getpid(), str(root))
        _USERS[self._repo_key] = _USERS.get(self._repo_key, 0) + 1
        self._released = False
        self.lock = WriterLock(root / HANGAR_DIR, lock_timeout)
        self._git_dir = git_dir_of(root)
        self._head_key: tuple[int, int, int, int] | None = None
        # A str, built once: head() stats it on every read.
        self._head_path = str(root / HEAD_FILE)
        self._head = ""
        self._reader: Checkout | None = None
        self._reader_digest = ""
        self._writer: Checkout | None = None
        self._writer_base = ""
        self._lent_writer: Checkout | None = None
        self.optimizing = False
        # This object staged writes since its last commit (read-your-writes).
        self.dirty = False
        if journal.exists(root / HANGAR_DIR):
            self._warn_if_interrupted()

    # ------------------------------------------------------------ head.stock
    def head(self) -> str:
        """The digest ``head.stock`` names now ('' before the first commit)."""
        path = self._head_path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return read_head(self.root)  # raises the explanatory error
        key = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
        if key != self._head_key:
            self._head = read_head(self.root)
            recent = time.time_ns() - st.st_mtime_ns < _RACY_NS
            self._head_key = None if recent else key
        return self._head

    def has_commit(self, digest: str) -> bool:
        return bool(commiting.check_commit_hash_in_history(self.repo._env.refenv, digest))

    def _require_commit(self, digest: str) -> None:
        if not self.has_commit(digest):
            raise StockroomError(
                f"{HEAD_FILE} names stock commit {digest}, which {HANGAR_DIR} does not "
                f"have; fetch the stock data that belongs to this git commit, or check "
                f"out a git commit whose stock data is here"
            )

    # --------------------------------------------------------------- reading
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
    def reading(self) -> Iterator[Checkout | None]:
        """A checkout to read from: None when there is nothing to read yet."""
        try:
            if self.dirty and self._staging_base() == self.head():
                lent = self._lent_writer
                if lent is not None and hasattr(lent, "_writer_lock"):
                    yield lent  # an expert's open write checkout holds our writes
                    return
                with self.writing(check_branch=False) as writer:
                    yield writer
                return
            yield self._read_checkout()
        except (lmdb.Error, OSError) as exc:
            if isinstance(exc, PermissionError):
                raise  # says what is wrong already (and Hangar's lock errors are these)
            # A data file under .hangar/data is gone or unreadable.
            raise damaged(self.root / HANGAR_DIR, f"reading failed: {exc}") from exc

    # --------------------------------------------------------------- writing
    def _staging_base(self) -> str:
        env = self.repo._env.branchenv
        return str(heads.get_branch_head_commit(env, heads.get_staging_branch_head(env)))

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

        For example ``data column 'img': 3 added, 1 deleted`` or
        ``tags: new, 2 added``.
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
        lines = []
        for column, kinds in sorted(counts.items(), key=lambda item: column_label(item[0])):
            parts: list[str] = [k for k in ("new column", "column deleted", "column changed") if k in kinds]
            parts += [
                f"{kinds[k]} {shown}"
                for k, shown in (("added", "added"), ("mutated", "changed"), ("deleted", "deleted"))
                if kinds.get(k)
            ]
            lines.append(f"{column_label(column)}: {', '.join(parts)}")
        return lines

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

    def mark_dirty(self) -> None:
        """Record that this object staged writes (call after each write).

        Reads then come from the staging area (read your writes). The
        ``.hangar/stockroom-staged`` marker that tells the git hooks, without
        opening Hangar, that writes may be staged is left by
        :meth:`writing` before the write; this only makes sure of it.
        """
        self.dirty = True
        self._touch_marker()

    def _touch_marker(self) -> None:
        # Before any staged write reaches Hangar, so that a crash cannot leave
        # staged writes without it. It may outlive them (a failed write).
        marker = self.root / HANGAR_DIR / STAGED_MARKER
        if not marker.exists():
            marker.touch()

    def _clear_marker(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / HANGAR_DIR / STAGED_MARKER).unlink()

    # ---------------------------------------------------- interrupted commits
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
        hangar_dir = self.root / HANGAR_DIR
        if not journal.exists(hangar_dir):
            return
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
        env = self.repo._env.branchenv
        writer = self._checkout_writer(heads.get_staging_branch_head(env))
        try:
            if writer.diff.status() == "CLEAN":
                self._clear_marker()
        finally:
            writer.close()

    # ---------------------------------------------------------------- expert
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

    # --------------------------------------------------------------- closing
    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                reader.close()

    def close(self) -> None:
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
