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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stockroom import _compat
from stockroom.errors import StockroomError
from stockroom.git import git_dir_of, head_is_detached
from stockroom.headfile import HANGAR_DIR, HEAD_FILE, read_head, write_head
from stockroom.lock import WriterLock

_compat.install()

import hangar  # noqa: E402  (after the compatibility patches, on purpose)
from hangar.records import commiting, heads  # noqa: E402

Checkout = Any  # hangar's ReaderCheckout / WriterCheckout (untyped library)

# One Repository per (process, path): LMDB forbids opening the same
# environment twice in one process, and a forked child must open its own.
_REPOS: dict[tuple[int, str], Any] = {}

BRANCH_PREFIX = "stock-"
# Present while stock writes may be staged; lets the git hooks skip
# importing hangar when it is absent (see Store.mark_dirty).
STAGED_MARKER = "stockroom-staged"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hangar prints progress to stdout; stockroom's users did not ask for it."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def init_hangar(root: Path, name: str, email: str, overwrite: bool) -> bool:
    """Create ``root/.hangar``; False when one exists and ``overwrite`` is off."""
    repo = hangar.Repository(root, exists=False)
    if repo.initialized and not overwrite:
        _REPOS.setdefault((os.getpid(), str(root)), repo)
        return False
    with _quiet():
        repo.init(user_name=name, user_email=email, remove_old=overwrite)
    _REPOS[(os.getpid(), str(root))] = repo
    return True


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
        try:
            with _quiet():
                repo = hangar.Repository(root, exists=True)
        except (OSError, RuntimeError, ValueError) as exc:
            raise StockroomError(
                f"{root / HANGAR_DIR} is not a readable stock repository ({exc}); "
                f"restore it from a backup or run `stock init --overwrite` to start over"
            ) from None
        _REPOS[key] = repo
    return repo


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
        self.lock = WriterLock(root / HANGAR_DIR, lock_timeout)
        self._git_dir = git_dir_of(root)
        self._head_key: tuple[int, int, int] | None = None
        self._head = ""
        self._reader: Checkout | None = None
        self._reader_digest = ""
        self._writer: Checkout | None = None
        self._writer_base = ""
        self._lent_writer: Checkout | None = None
        self.optimizing = False
        # This object staged writes since its last commit (read-your-writes).
        self.dirty = False

    # ------------------------------------------------------------ head.stock
    def head(self) -> str:
        """The digest ``head.stock`` names now ('' before the first commit)."""
        path = self.root / HEAD_FILE
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return read_head(self.root)  # raises the explanatory error
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._head_key:
            self._head = read_head(self.root)
            self._head_key = key
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

    @contextlib.contextmanager
    def reading(self) -> Iterator[Checkout | None]:
        """A checkout to read from: None when there is nothing to read yet."""
        if self.dirty and self._staging_base() == self.head():
            with self.writing(check_branch=False) as writer:
                yield writer
            return
        yield self._read_checkout()

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
            raise StockroomError(
                f"{HEAD_FILE} is empty but this stock repository already has commits; "
                f"check out a git commit whose {HEAD_FILE} names one to write"
            )
        self._require_commit(want)
        return self._checkout_writer(self._branch_at(want))

    def _checkout_writer(self, branch: str) -> Checkout:
        try:
            return self.repo.checkout(write=True, branch=branch)
        except PermissionError:
            # We hold the stock writer lock, so Hangar's lock was left by a
            # writer that died: release it (see stockroom.lock).
            self.repo.force_release_writer_lock()
            return self.repo.checkout(write=True, branch=branch)

    def _check_can_write(self) -> None:
        if self._lent_writer is not None:
            if hasattr(self._lent_writer, "_writer_lock"):
                raise StockroomError(
                    "a write checkout from get_hangar_checkout(write=True) is open; "
                    "close it before writing through stockroom"
                )
            self._lent_writer = None  # the expert closed it
            self.lock.release()
        if self._git_dir is not None and head_is_detached(self._git_dir):
            raise StockroomError(
                "git HEAD is detached (an old commit is checked out): reads work, but "
                "check out a branch to write (`git switch BRANCH` or `git switch -c NEW`)"
            )

    @contextlib.contextmanager
    def writing(self, check_branch: bool = True) -> Iterator[Checkout]:
        """The writer checkout, on the commit ``head.stock`` names.

        Outside ``optimize()`` the lock is taken for this block only.
        """
        if check_branch:
            self._check_can_write()
        if self._writer is not None:
            if self._writer_base != self.head():
                raise StockroomError(
                    f"{HEAD_FILE} moved to {self.head() or '(none)'} while stockroom "
                    f"held the writer on {self._writer_base or '(none)'}; leave "
                    f"optimize() before checking out another commit"
                )
            yield self._writer
            return
        self.lock.acquire()
        try:
            writer = self._open_writer()
        except BaseException:
            self.lock.release()
            raise
        self._writer = writer
        self._writer_base = self.head()
        try:
            yield writer
        finally:
            if not self.optimizing:
                self._close_writer()

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
        with self.writing(check_branch=False) as writer:
            return str(writer.diff.status())

    def staged_changes(self) -> list[str]:
        """One line per column with staged changes (empty when clean)."""
        with self.writing(check_branch=False) as writer:
            if writer.diff.status() == "CLEAN":
                self._clear_marker()
                return []
            diff = writer.diff.staged().diff
        counts: dict[str, dict[str, int]] = {}
        for kind in ("added", "deleted", "mutated"):
            changes = getattr(diff, kind)
            for key in changes.samples:
                column = getattr(key, "column", str(key))
                counts.setdefault(column, {}).setdefault(kind, 0)
                counts[column][kind] += 1
            for column in changes.schema:
                counts.setdefault(column, {}).setdefault(f"column {kind}", 1)
        return [
            f"{column}: " + ", ".join(f"{n} {kind}" if not kind.startswith("column") else kind for kind, n in sorted(kinds.items()))
            for column, kinds in sorted(counts.items())
        ]

    def commit(self, message: str, update_head: bool = True) -> str:
        """Commit the staging area; point ``head.stock`` at it when asked."""
        if not isinstance(message, str) or not message.strip():
            raise ValueError("a commit message is required: stock commit -m 'what changed'")
        with self.writing() as writer:
            if writer.diff.status() == "CLEAN":
                raise StockroomError(
                    "nothing to commit: no stock writes since the last commit "
                    "(write to stock.data, stock.model or stock.tag first)"
                )
            with _quiet():
                digest = str(writer.commit(message))
            if update_head:
                write_head(self.root, digest)
            self._clear_marker()
        self.dirty = False
        return digest

    def reset_staging(self) -> bool:
        """Drop every staged write; False when there was nothing staged."""
        with self.writing(check_branch=False) as writer:
            if writer.diff.status() == "CLEAN":
                return False
            with _quiet():
                writer.reset_staging_area()
            self._clear_marker()
        self.dirty = False
        return True

    def mark_dirty(self) -> None:
        """Record that this object staged writes (call after each write).

        Also leaves ``.hangar/stockroom-staged`` so the git hooks know that
        writes may be staged without opening Hangar. The marker may
        outlive the writes (a crash); it never is absent while writes are
        staged through stockroom.
        """
        self.dirty = True
        marker = self.root / HANGAR_DIR / STAGED_MARKER
        if not marker.exists():
            marker.touch()

    def _clear_marker(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / HANGAR_DIR / STAGED_MARKER).unlink()

    # ---------------------------------------------------------------- expert
    def hangar_checkout(self, write: bool) -> Checkout:
        if write:
            if self._writer is not None:
                raise StockroomError(
                    "stockroom holds the writer (inside optimize()); leave it before "
                    "asking for a write checkout"
                )
            self._check_can_write()
            self.lock.acquire()
            try:
                writer = self._open_writer()
            except BaseException:
                self.lock.release()
                raise
            self._lent_writer = writer
            self.mark_dirty()  # the expert may write through it
            return writer
        digest = self.head()
        if digest == "":
            raise StockroomError(
                f"{HEAD_FILE} is empty: there is no stock commit to read yet; write and "
                f"`stock commit` first"
            )
        self._require_commit(digest)
        with _quiet():
            return self.repo.checkout(commit=digest)

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
