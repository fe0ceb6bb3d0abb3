"""What a new process asks first, answered without Hangar or numpy.

Importing Hangar (numpy, h5py and its gRPC client with it) takes about
0.3 s, and its reader checkout loads the record of every sample of a commit
(a committed 60,000-sample column: half a second) before one tag can be
read. ``stock status`` and a first ``stock.tag[key]`` need neither: this
module reads ``head.stock`` (cached by its stat), checks that ``.hangar``
is complete and written by a Hangar this stockroom understands, tells
whether a commit is in it (py-lmdb alone, on Hangar's own files), and keeps
the tags of each commit in ``.hangar/stockroom-tags/<digest>.json``.

A commit's digest names its content, so a file there never goes stale: it
is written once (atomically) by ``stock commit`` or by the first read that
had to open a checkout, and lives inside ``.hangar``, so it goes with the
store it describes. The names of Hangar's files and records below are
Hangar 0.5.2's; tests/test_compat.py checks that they agree with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR, HEAD_FILE, atomic_write, read_head

# The files Hangar's init creates are named once, in layout; kept here for their callers.
from stockroom.layout import (  # noqa: F401
    BRANCH_DB,
    CONFIG_USER,
    DATA_DIR,
    HANGAR_DIRS,
    HANGAR_FILES,
    HASH_DB,
    REF_DB,
    STAGE_HASH_DB,
    STAGE_REF_DB,
    STAGED_MARKER,
    STORE_DATA_DIR,
)

LMDB_OPTIONS: dict[str, Any] = {"map_size": 50_000_000_000, "meminit": False, "subdir": False, "lock": False}
# hangar.records.parsing: the branch database's key of the version that wrote the store.
VERSION_KEY = b"software_version"
# The Hangar release stockroom runs on (setup.cfg pins it): a store written
# by a newer minor release is refused, as Hangar 0.5.2 may corrupt it.
HANGAR_RELEASE = (0, 5)
# Attributes of Hangar's environment object for the files read here.
_ENV_ATTRS = {REF_DB: "refenv", BRANCH_DB: "branchenv"}

TEXTS_DIR = "stockroom-tags"
# A file modified less than this long ago may be modified again without its
# stat changing (its timestamp would be the same): such a stat is not trusted
# for caching, and the file is read again on the next call. File systems
# with whole-second timestamps (FAT: 2 s) need the long window; those with
# finer ones stamp files from the kernel's clock tick (1 to 10 ms), for
# which the short window leaves a wide margin. Without it, every write in
# the first 2 s after a commit or checkout re-read head.stock and .git/HEAD.
RACY_NS = 2_000_000_000
FINE_RACY_NS = 50_000_000


def racy(st: os.stat_result) -> bool:
    """Whether a file with stat ``st`` may change again without its stat changing."""
    mtime = st.st_mtime_ns
    window = RACY_NS if mtime % 1_000_000_000 == 0 else FINE_RACY_NS
    return time.time_ns() - mtime < window


def damaged(hangar_dir: Path, what: str) -> StockroomError:
    """The error for a ``.hangar`` that lost files or holds unreadable ones."""
    return StockroomError(
        f"{hangar_dir} is damaged ({what}); restore {HANGAR_DIR} from a backup or a "
        f"fresh clone of its data, or start over with `stock init --overwrite` (deletes all stock data)"
    )


def check_complete(hangar_dir: Path) -> None:
    """Refuse a ``.hangar`` missing a file Hangar's init creates (Hangar would
    quietly re-create it empty; an empty staging area reads as "delete everything")."""
    missing = [name for name in HANGAR_FILES if not (hangar_dir / name).is_file()]
    missing += [name + "/" for name in HANGAR_DIRS if not (hangar_dir / name).is_dir()]
    if missing:
        raise damaged(hangar_dir, f"missing {', '.join(missing)}")


class HeadWatch:
    """``head.stock`` of one stock root, read again only when its stat changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # A str, built once: head() stats it on every read.
        self._path = str(root / HEAD_FILE)
        self._key: tuple[int, int, int, int] | None = None
        self._head = ""

    def head(self) -> str:
        """The digest ``head.stock`` names now ('' before the first commit)."""
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return read_head(self.root)  # raises the explanatory error
        key = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
        if key != self._key:
            self._head = read_head(self.root)
            self._key = None if racy(st) else key
        return self._head


def _open_repository(root: Path) -> Any | None:
    """This process's open Hangar Repository of ``root``, if the access layer has one."""
    repository = sys.modules.get("stockroom.store.repository")
    if repository is None:
        return None
    return repository._REPOS.get((os.getpid(), str(root)))


@contextlib.contextmanager
def _reading(root: Path, name: str) -> Iterator[Any]:
    """A read transaction on Hangar's database ``name`` of ``root``.

    LMDB refuses to open an environment twice in one process, so when the
    access layer has the repository open its handle is used (with Hangar's
    transaction register, as Hangar shares them); otherwise the file is
    opened read-only for this one read and closed again.
    """
    repo = _open_repository(root)
    if repo is not None:
        from hangar.txnctx import TxnRegister

        env = getattr(repo._env, _ENV_ATTRS[name])
        txn = TxnRegister().begin_reader_txn(env)
        try:
            yield txn
        finally:
            TxnRegister().abort_reader_txn(env)
        return
    import lmdb

    hangar_dir = root / HANGAR_DIR
    try:
        env = lmdb.open(str(hangar_dir / name), readonly=True, **LMDB_OPTIONS)
    except PermissionError as exc:
        # Not damage: never advise deleting a store that only needs its permissions fixed.
        # (An unreadable file raises lmdb.Error, as opening the store did.)
        raise StockroomError(f"cannot open {hangar_dir}: {exc}; check its permissions") from None
    try:
        with env.begin() as txn:
            yield txn
    finally:
        env.close()


def check_version(root: Path) -> None:
    """Refuse a store written by a newer Hangar than the one stockroom runs on."""
    with _reading(root, BRANCH_DB) as txn:
        raw = txn.get(VERSION_KEY)
        raw = None if raw is None else bytes(raw)
    if raw is None:
        raise damaged(root / HANGAR_DIR, "no Hangar version record")
    written = raw.decode("utf-8", "replace")
    try:
        release = tuple(int(part) for part in written.split(".")[:2])
    except ValueError:
        raise damaged(root / HANGAR_DIR, f"unreadable Hangar version record {written!r}") from None
    if release < HANGAR_RELEASE:
        # Hangar itself refuses these (vcompat: incompatible before 0.5).
        raise StockroomError(
            f"{root / HANGAR_DIR} is not a readable stock repository (written by Hangar {written}, "
            f"which Hangar {'.'.join(map(str, HANGAR_RELEASE))} cannot read); restore it from a "
            f"backup or run `stock init --overwrite` to start over"
        )
    if release > HANGAR_RELEASE:
        running = ".".join(map(str, HANGAR_RELEASE))
        raise StockroomError(
            f"{root / HANGAR_DIR} was written by Hangar {written}, newer than the Hangar {running} "
            f"this stockroom uses; upgrade stockroom, or use the tool that wrote it"
        )


def has_commit(root: Path, digest: str) -> bool:
    """Whether ``.hangar`` holds the stock commit ``digest`` (Hangar's parent record)."""
    try:
        key = digest.encode("ascii")
    except UnicodeEncodeError:
        return False
    if not key or len(key) > 500:  # LMDB's key size limit
        return False
    with _reading(root, REF_DB) as txn:
        return txn.get(key) is not None


# hangar.constants.SEP_CMT: between the two parents of a merge commit's parent record.
PARENT_SEP = b" << "


def parents(root: Path, digest: str) -> list[str] | None:
    """The parent stock commits of ``digest`` ([] for a first commit; None
    when ``.hangar`` lacks it), from Hangar's parent record."""
    with _reading(root, REF_DB) as txn:
        raw = txn.get(digest.encode("ascii"))
    if raw is None:
        return None
    return [p.decode("ascii") for p in bytes(raw).split(PARENT_SEP) if p]


def maybe_staged(root: Path) -> bool:
    """False when nothing can be staged: the marker is left before any staged write."""
    return (root / HANGAR_DIR / STAGED_MARKER).exists()


def _texts_path(root: Path, digest: str) -> Path:
    return root / HANGAR_DIR / TEXTS_DIR / f"{digest}.json"


def read_tags(root: Path, digest: str) -> dict[str, str] | None:
    """The tags of stock commit ``digest`` as Hangar stores them (encoded key:
    encoded value); None when not cached (or the cache file is unreadable)."""
    try:
        data = json.loads(_texts_path(root, digest).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return None
    return data


def save_tags(root: Path, digest: str, tags: dict[str, str]) -> None:
    """Cache the tags of commit ``digest`` (best effort: a read-only store is fine)."""
    path = _texts_path(root, digest)
    with contextlib.suppress(OSError):
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, json.dumps(tags, ensure_ascii=False).encode("utf-8"))


CLOSED_MESSAGE = "this StockRoom is closed; open a new one (`with StockRoom() as stock:`)"


class LazyStore:
    """A stock root's :class:`stockroom.store.Store`, opened on first use.

    Until then ``head()`` and the reads of this module answer without
    importing Hangar. Storages hold one of these; ``of(store)`` wraps a store
    that is open already (a view's).
    """

    def __init__(self, root: Path, lock_timeout: float | None = None) -> None:
        self.root = root
        self.lock_timeout = lock_timeout
        self.headwatch = HeadWatch(root)
        self.store: Any = None
        self.closed = False

    @classmethod
    def of(cls, store: Any) -> LazyStore:
        lazy = cls(store.root)
        lazy.store = store
        return lazy

    def open(self) -> Any:
        """The Store, opened now if it was not (refused once closed)."""
        store = self.store
        if store is None:
            if self.closed:
                raise StockroomError(CLOSED_MESSAGE)
            from stockroom.store import Store

            store = self.store = Store(self.root, self.lock_timeout, self.headwatch)
        return store

    def head(self) -> str:
        """The digest ``head.stock`` names now."""
        store = self.store
        return self.headwatch.head() if store is None else str(store.head())

    def is_closed(self) -> bool:
        return self.closed or (self.store is not None and bool(self.store.closed))

    def close(self) -> None:
        self.closed = True
        if self.store is not None:
            self.store.close()
