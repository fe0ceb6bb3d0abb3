"""On-demand data: a lazy clone reads samples from the remote when first read.

``stock pull --lazy`` writes the commit records and, for each sample, a
Hangar "on the remote" record (backend ``50``) whose text says where the
sample is: ``50:<schema>/<digest>/<pack sha>``. Hangar hands that record to
``REMOTE_50_Handler.read_data`` when a column read meets such a sample;
this module replaces that method, so every read path (``stock.data``,
models, tags, ``StockDataset``) fetches what it reads and the read API does
not change.

Local layout, under ``.hangar/stockroom-lazy/`` (nothing here needs the
stock writer lock, so DataLoader workers fetch in parallel)::

    remote            the remote name the lazy pull used
    packs/<sha>.idx   pack indexes, verified against their manifests
    schemas/<digest>  schema records, to decode and verify samples
    objects/<digest>  fetched samples, verified, written temp + rename
    locks/samples     sample locks (one byte each): one download at a time

A sample is fetched by byte range from its pack, checked against its
Hangar digest, and only then renamed into ``objects/``: a failed or
corrupt read leaves nothing behind. The cache is bounded by
``git config stock.cacheLimit`` (least recently read dropped first).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import struct
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hangar.columns.constructors import column_type_object_from_schema
from hangar.records import schema_spec_from_db_val

from stockroom.errors import StockroomError
from stockroom.git import config_value
from stockroom.layout import CACHE_LIMIT_KEY
from stockroom.remote.objects import BadObject, ObjectMissing, ObjectStore, RemoteError
from stockroom.store import samples

LAZY_DIR = samples.LAZY_DIR


@dataclass
class Stats:
    """What this process fetched lazily (for tests and benchmarks)."""

    requests: int = 0
    nbytes: int = 0
    waited: int = 0  # reads that found another process downloading the sample
    packs: int = 0  # whole packs downloaded (read-ahead over most of a pack)


stats = Stats()

# A sample's lock is one byte of one shared file, at an offset drawn from its
# digest, taken with an open-file-description lock (Linux): held per open
# descriptor, so threads of one process exclude each other too, and closing
# the descriptor drops it. A lock file per sample cost one file creation per
# sample read (about 1 ms on ext4 here: 3,000 of them in a first epoch of
# 2,000 samples); opening the shared file again costs microseconds. Where
# such locks are missing (not Linux, or a file system without them), each
# sample has a lock file of its own, locked with flock.
_OFD = hasattr(fcntl, "F_OFD_SETLK")
_BUSY = (errno.EAGAIN, errno.EACCES)
# What a file system without these locks answers, the same for every process:
# only then lock files instead (a process that switched alone on a passing
# error would no longer exclude the others).
_NO_OFD = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}
# Descriptors of sample locks this process holds or is taking: a forked child
# closes its copies (a lock it inherited would stay held until the child
# ended, and the child reading that sample would wait for itself). A
# descriptor joins the set before its lock is taken and leaves it as it is
# closed, under _LOCKS_GUARD, which a fork holds: the set is exact then.
_HELD_LOCKS: set[int] = set()
_LOCKS_GUARD = threading.Lock()


def _open_tracked(path: Path) -> int:
    with _LOCKS_GUARD:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        _HELD_LOCKS.add(fd)
    return fd


def unlock(fd: int) -> None:
    """Release a sample lock that :meth:`_Reader.lock` took."""
    with _LOCKS_GUARD:
        _HELD_LOCKS.discard(fd)
        os.close(fd)


def _drop_inherited_locks() -> None:
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)  # the child's copy only: the parent's lock stays
    _HELD_LOCKS.clear()
    _LOCKS_GUARD.release()  # taken before the fork (the child has this thread only)


# Registered when this module is imported, before loaders' own handler, so
# it runs last before a fork: that one may read, never takes a sample lock.
os.register_at_fork(
    before=_LOCKS_GUARD.acquire,
    after_in_parent=_LOCKS_GUARD.release,
    after_in_child=_drop_inherited_locks,
)


def _lock_offset(digest: str) -> int:
    # 56 bits: about 2**28 samples before two are likely to share a byte; two
    # that do wait for each other's download, no more.
    return int.from_bytes(hashlib.blake2b(digest.encode(), digest_size=7).digest(), "big")


def _flock(fd: int, wait: bool) -> bool:
    """Lock the whole of ``fd``'s file; False when another descriptor holds it (``wait=False``)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _ofd_lock(fd: int, digest: str, wait: bool) -> bool:
    """Take ``digest``'s byte of ``fd``; False when another descriptor holds it
    (``wait=False``). OSError when the file system has no such locks."""
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for these locks)
    arg = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, _lock_offset(digest), 1, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK, arg)
    except OSError as exc:
        if not wait and exc.errno in _BUSY:
            return False
        raise
    return True


def lazy_dir(hangar_dir: Path) -> Path:
    """The lazy cache directory of the store at ``hangar_dir``."""
    return hangar_dir / LAZY_DIR


# The record codec of a LAZY sample (its state is stockroom.store.samples').
placeholder = samples.lazy_record
parse_placeholder = samples.parse_lazy


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def keep_for_lazy(
    hangar_dir: Path, remote_name: str, indexes: dict[str, bytes], schemas: dict[str, bytes]
) -> None:
    """Keep what lazy reads need: the verified pack indexes, schemas, remote name."""
    base = lazy_dir(hangar_dir)
    for sha, raw in indexes.items():
        path = base / "packs" / f"{sha}.idx"
        if not path.exists():
            _atomic_write(path, raw)
    for digest, raw in schemas.items():
        path = base / "schemas" / digest
        if not path.exists():
            _atomic_write(path, raw)
    _atomic_write(base / "remote", remote_name.encode())


# ------------------------------------------------------------------ reading


class _Reader:
    """Per-process state of lazy reads in one store (indexes, schemas, remote)."""

    def __init__(self, hangar_dir: Path) -> None:
        self.hangar_dir = hangar_dir
        self.base = lazy_dir(hangar_dir)
        self.root = hangar_dir.parent
        self.pid = os.getpid()
        self._entries: dict[str, dict[str, list[Any]]] = {}
        self._schemas: dict[str, Any] = {}
        self._store: ObjectStore | None = None
        self._label = ""
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._cached_bytes: int | None = None
        # Lazy record text -> (dtype, shape, kept object's path) of an array
        # sample, or None for other kinds: read_kept's per-read lookups, once.
        self._kept_plans: dict[str, tuple[np.dtype[Any], tuple[int, ...], str] | None] = {}
        self._objects_prefix = str(self.base / "objects") + os.sep
        self._ofd = _OFD
        self._checked: set[str] = set()  # samples whose index entry fits its schema

    # -- metadata
    def entry(self, pack: str, digest: str) -> list[Any]:
        found = self.entries(pack).get(digest)
        if found is None:
            raise StockroomError(
                f"sample {digest} is not in its pack's index in {self.base}; run `stock pull --lazy` again"
            )
        if digest not in self._checked:
            self._check_entry(pack, found)
            self._checked.add(digest)
        return found

    def _check_entry(self, pack: str, entry: list[Any]) -> None:
        """An index entry's length and shape fit its schema: the index came from
        a remote, and its lengths are not covered by any digest, so nothing
        past what the schema allows is ever asked for (SPEC 6a)."""
        from stockroom.store.transfer import sample_nbytes

        ok = type(entry) is list and len(entry) == 5 and type(entry[1]) is str and type(entry[3]) is int
        if ok:
            obj = self.schema(entry[1])
            want = sample_nbytes(obj, entry[4])
            ok = want is not None and (entry[3] == want if obj.column_type == "ndarray" else entry[3] <= want)
            ok = ok and type(entry[2]) is int and entry[2] >= 0
        if not ok:
            raise StockroomError(
                f"the lazy-read index of pack {pack} in {self.base} names a sample its schema does not "
                f"allow (damaged, or from a tampered remote); run `stock pull --lazy` (or `stock pull`) again"
            )

    def entries(self, pack: str) -> dict[str, list[Any]]:
        """Digest -> index entry ``[digest, _, offset, length, shape]`` of every sample in ``pack``."""
        entries = self._entries.get(pack)
        if entries is None:
            try:
                raw = (self.base / "packs" / f"{pack}.idx").read_bytes()
                entries = {e[0]: e for e in json.loads(raw)["samples"]}
            except (OSError, ValueError, KeyError, TypeError):
                raise StockroomError(
                    f"the lazy-read index of pack {pack} is missing or damaged in {self.base}; "
                    f"run `stock pull --lazy` (or `stock pull`) again"
                ) from None
            self._entries[pack] = entries
        return entries

    def schema(self, digest: str) -> Any:
        obj = self._schemas.get(digest)
        if obj is None:
            try:
                raw = (self.base / "schemas" / digest).read_bytes()
            except OSError:
                raise StockroomError(
                    f"schema {digest} for lazy reads is missing from {self.base}; run `stock pull --lazy` again"
                ) from None
            obj = self._schemas[digest] = column_type_object_from_schema(schema_spec_from_db_val(raw))
        return obj

    def store(self) -> tuple[ObjectStore, str]:
        with self._lock:
            if self._store is None:
                from stockroom.remote.config import get_remote
                from stockroom.remote.objects import open_store

                try:
                    name = (self.base / "remote").read_text(encoding="utf-8").strip() or None
                except OSError:
                    name = None
                remote = get_remote(self.root, name)
                self._label = remote.name
                self._store = open_store(remote.parsed(self.root), remote.name, remote.endpoint)
            return self._store, self._label

    def inherit(self, parent: _Reader) -> None:
        """Start from ``parent``'s lookups (read from files, never written back)."""
        self._entries = dict(parent._entries)
        self._schemas = dict(parent._schemas)
        self._kept_plans = dict(parent._kept_plans)
        self._checked = set(parent._checked)
        # Not the cache limit: the user may have set it since the parent read it.

    def limit(self, again: bool = False) -> int | None:
        """``stock.cacheLimit`` in bytes (None: unbounded), looked up once per
        process, or ``again``. A limit lowered below what is kept now is
        applied as it is looked up: the least recently read samples are
        dropped down to it (they are on the remote)."""
        if self._limit is None or again:
            self._limit = cache_limit(self.root) or 0
            if self._limit:
                with self._lock:
                    self._cached_bytes = sum(size for _, size, _ in _objects(self.base))
                    if self._cached_bytes > self._limit:
                        self._cached_bytes = shrink(self.base, self._limit)
        return self._limit or None

    # -- objects
    def object_path(self, digest: str) -> Path:
        return Path(self._objects_prefix + digest)

    def read(self, schema: str, digest: str, pack: str) -> Any:
        self.limit()  # looked up (and applied) once per process: a bad value refused here
        entry = self.entry(pack, digest)
        obj = self.schema(schema)
        path = self.object_path(digest)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raw = self.fetch(obj, digest, pack, entry)
        else:
            if len(raw) == entry[3]:
                with contextlib.suppress(OSError):
                    os.utime(path)  # least recently read is dropped first
            else:
                # Cut short (a crash of the machine before write-back): it came
                # from the remote, so fetch it again; fetch looks again under the
                # sample's lock and replaces it (another reader may have already).
                raw = self.fetch(obj, digest, pack, entry)
        return _decode(obj, raw, entry[4])

    def fetch(self, obj: Any, digest: str, pack: str, entry: list[Any]) -> bytes:
        """Download one sample (once, whatever the number of readers), verify, keep."""
        path = self.object_path(digest)
        fd = self.try_lock(digest)
        if fd is None:
            stats.waited += 1
            fd = self.lock(digest)  # another reader downloads it: wait, then read theirs
        try:
            with contextlib.suppress(FileNotFoundError):
                raw = path.read_bytes()
                if len(raw) == entry[3]:
                    return raw  # the other reader's download
            raw = self.download(obj, digest, pack, entry)
            _atomic_write(path, raw)
            self.account(len(raw))
            return raw
        finally:
            unlock(fd)

    def lock(self, digest: str) -> int:
        """Take sample ``digest``'s lock, waiting for another reader's: the
        descriptor that holds it (:func:`unlock` releases it)."""
        fd = self._take(digest, wait=True)
        assert fd is not None  # a waiting lock returns its descriptor
        return fd

    def try_lock(self, digest: str) -> int | None:
        """Sample ``digest``'s lock, taken without waiting; None when another
        reader holds it."""
        return self._take(digest, wait=False)

    def pack_lock(self, pack: str, wait: bool) -> int | None:
        """Pack ``pack``'s lock, for downloading it whole on a dataset's miss
        (:func:`fetch_packs_whole`): held by one reader at a time, which never
        waits for a sample lock while it holds it. None when another reader
        holds it (``wait=False``)."""
        return self._take(pack, wait, "packs")

    def _take(self, digest: str, wait: bool, shared: str = "samples") -> int | None:
        while True:
            byte = self._ofd
            fd = self._open_lock(
                shared if byte else (digest if shared == "samples" else f"{shared}-{digest}")
            )
            try:
                taken = _ofd_lock(fd, digest, wait) if byte else _flock(fd, wait)
            except OSError as exc:
                unlock(fd)
                if byte and exc.errno in _NO_OFD:
                    self._ofd = False  # none on this file system: a lock file per sample
                    continue
                raise
            except BaseException:
                unlock(fd)
                raise
            if taken:
                return fd
            unlock(fd)
            return None

    def _open_lock(self, name: str) -> int:
        """An open descriptor of lock file ``name`` (tracked: see _HELD_LOCKS)."""
        path = self.base / "locks" / name
        try:
            return _open_tracked(path)
        except FileNotFoundError:  # made on first use (or removed since, with a re-pull)
            path.parent.mkdir(parents=True, exist_ok=True)
            return _open_tracked(path)

    def download(self, obj: Any, digest: str, pack: str, entry: list[Any]) -> bytes:
        store, _ = self.store()
        _, _, offset, length, _ = entry
        name = f"packs/{pack}"
        try:
            raw = store.get_range(name, offset, offset + length)
        except RemoteError as exc:
            raise _unreachable(exc) from None
        stats.requests += 1
        stats.nbytes += len(raw)
        self.check(obj, digest, pack, entry, raw)
        return raw

    def download_pack(self, pack: str) -> bytes:
        """All of pack ``pack``, with one request (read-ahead over most of it)."""
        store, _ = self.store()
        # No further than the pack's samples reach (the entries are checked).
        end = max((int(e[2]) + int(e[3]) for e in self.entries(pack).values()), default=0)
        try:
            raw = store.get(f"packs/{pack}", end)
        except RemoteError as exc:
            raise _unreachable(exc) from None
        stats.requests += 1
        stats.nbytes += len(raw)
        stats.packs += 1
        return raw

    def check(self, obj: Any, digest: str, pack: str, entry: list[Any], raw: bytes) -> None:
        """Sample ``digest`` as read from ``pack`` is whole and is what its digest says
        (RemoteError otherwise, and the caller keeps nothing)."""
        _, label = self.store()
        _, _, _, length, shape = entry
        name = f"packs/{pack}"
        if len(raw) != length:
            raise RemoteError(
                f"object {name} on stock remote {label} is truncated; nothing was kept. "
                f"Mend it from a clone that has it (`stock push --repair {label}`)"
            )
        value = _decode(obj, raw, shape)
        if obj.data_hash_digest(value) != digest:
            raise RemoteError(
                f"sample {digest} in {name} on stock remote {label} is corrupt; nothing was kept. "
                f"Mend it from a clone that has it (`stock push --repair {label}`)"
            )

    def keep_pack(self, pack: str, samples: list[tuple[str, str]], held: dict[str, int] | None = None) -> int:
        """Download ``pack`` whole and keep its samples ``samples`` ((schema, digest),
        in the order they will be read): each checked as :meth:`download` checks it,
        and written under its lock as :meth:`fetch` writes it. The locks of the first
        ones (and those in ``held``, digest -> descriptor, taken earlier by the
        caller) are held during the download, so a reader of one of them waits for
        it rather than downloading it again; they are released here. A sample that
        another reader is downloading, or that does not verify, is left to the
        per-sample path (whose error the reader gets). The number of samples kept."""
        held = {} if held is None else held
        busy: set[str] = set()
        try:
            for _, digest in samples[: _lock_budget()[0]]:
                if digest not in held:
                    fd = self.try_lock(digest)
                    if fd is None:
                        busy.add(digest)
                    else:
                        held[digest] = fd
            todo = [(s, d) for s, d in samples if d not in busy and not self.object_path(d).exists()]
            if not todo:
                return 0
            data = memoryview(self.download_pack(pack))
            kept = 0
            for schema, digest in todo:
                fd = held.pop(digest, -1)
                if fd < 0:
                    fd = self.lock(digest)
                try:
                    kept += self._keep_from(pack, data, schema, digest)
                finally:
                    unlock(fd)
            return kept
        finally:
            for _, digest in samples:
                fd = held.pop(digest, -1)
                if fd >= 0:
                    unlock(fd)

    def keep_whole(self, pack: str, samples: list[tuple[str, str]]) -> int:
        """Download ``pack`` whole and keep those of ``samples`` ((schema, digest))
        that are not kept yet, each checked as :meth:`download` checks it and
        written under its lock, taken without waiting (one another reader holds
        is that reader's to fetch; one that does not verify is left to the
        per-sample path, whose error the reader gets). Nothing is downloaded
        when all are kept already. The number kept."""
        need = [(s, d) for s, d in samples if not self.object_path(d).exists()]
        if not need:
            return 0
        data = memoryview(self.download_pack(pack))
        kept = 0
        for schema, digest in need:
            fd = self.try_lock(digest)
            if fd is None:
                continue
            try:
                kept += self._keep_from(pack, data, schema, digest)
            finally:
                unlock(fd)
        return kept

    def _keep_from(self, pack: str, data: Any, schema: str, digest: str) -> int:
        """Keep sample ``digest`` cut from ``data`` (the bytes of ``pack``), checked
        as :meth:`download` checks it; its lock is held. 1 when it was kept now,
        0 when it was kept already or does not verify (left to the per-sample
        path, whose error the reader gets)."""
        path = self.object_path(digest)
        if path.exists():
            return 0
        try:
            obj = self.schema(schema)
            entry = self.entry(pack, digest)
            offset, length = int(entry[2]), int(entry[3])
            raw = bytes(data[offset : offset + length])
            self.check(obj, digest, pack, entry, raw)
        except StockroomError:  # RemoteError too: the reader fetches it, and gets the error
            return 0
        _atomic_write(path, raw)
        self.account(len(raw))
        return 1

    def account(self, nbytes: int) -> None:
        limit = self.limit()
        if limit is None:
            return
        with self._lock:
            if self._cached_bytes is None:
                self._cached_bytes = sum(size for _, size, _ in _objects(self.base))
            self._cached_bytes += nbytes
            if self._cached_bytes <= limit:
                return
            self._cached_bytes = shrink(self.base, int(limit * 0.9))


def _lock_budget() -> tuple[int, int]:
    """Sample locks (one open file each) a read-ahead pass holds while downloading
    whole packs: (per pack, taken before its download; for the pass's first
    samples, taken before the first download), within the open-file limit."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 1 << 16
    return min(256, soft // 8), min(1024, soft // 4)


def _unreachable(exc: Exception) -> RemoteError:
    # The remote's error names it and says what to check already.
    return RemoteError(f"{exc} (while reading sample data on demand; `stock pull` keeps all of it here)")


def _decode(obj: Any, raw: bytes, shape: Any) -> Any:
    kind = obj.column_type
    if kind == "ndarray":
        return np.frombuffer(raw, dtype=np.dtype(obj.dtype)).reshape(shape).copy()
    if kind == "str":
        return raw.decode("utf-8")
    return raw


_READERS: dict[tuple[int, str], _Reader] = {}
_READERS_LOCK = threading.Lock()


def reader(hangar_dir: Path) -> _Reader:
    """This process's lazy reader of the store at ``hangar_dir`` (a forked
    worker gets its own: a remote client must not cross a fork)."""
    key = (os.getpid(), str(hangar_dir))
    with _READERS_LOCK:
        found = _READERS.get(key)
        if found is None:
            found = _READERS[key] = _Reader(hangar_dir)
            # A forked worker starts from what its parent looked up already
            # (indexes, schemas): never its remote client. Its parent's reader
            # first; else the newest other one (a worker of a worker).
            parent = _READERS.get((os.getppid(), key[1]))
            if parent is None:
                others = [r for (_, where), r in _READERS.items() if where == key[1] and r is not found]
                parent = others[-1] if others else None
            if parent is not None:
                found.inherit(parent)
        return found


def all_kept(hangar_dir: Path, texts: Iterable[str]) -> bool:
    """True when every lazy sample of ``texts`` is kept here and this process's
    reads drop none (no ``stock.cacheLimit``): a pass over them has nothing to
    fetch, and need not look. (``stock gc`` may drop some later: a read then
    fetches it, one at a time.)"""
    rd = reader(hangar_dir)
    if rd.limit(again=True) is not None:  # the user may have set it since this process looked
        return False
    try:
        names = set(os.listdir(rd.base / "objects"))
    except FileNotFoundError:
        return False
    for text in texts:
        parsed = parse_placeholder(text)
        if parsed is None or parsed[1] not in names:
            return False
    return True


def read_placeholder(hangar_dir: Path, text: str) -> Any:
    """The value of the lazy sample whose record text is ``text``."""
    parsed = parse_placeholder(text)
    if parsed is None:
        from stockroom.store.partial import read_error

        raise read_error(hangar_dir, text)  # names the column left out and the pull that fetches it
    return reader(hangar_dir).read(*parsed)


def prefetch(hangar_dir: Path, texts: Iterable[str], threads: int = 8) -> None:
    """Fetch the lazy samples ``texts`` that are not here yet, several at once
    (read-ahead for a batch); errors surface when the sample is read."""
    rd = reader(hangar_dir)
    todo = []
    for text in texts:
        parsed = parse_placeholder(text)
        if parsed is not None and not os.path.exists(rd._objects_prefix + parsed[1]):
            todo.append(parsed)
    if len(todo) < 2:
        return

    def one(item: tuple[str, str, str]) -> None:
        schema, digest, pack = item
        with contextlib.suppress(StockroomError):
            rd.fetch(rd.schema(schema), digest, pack, rd.entry(pack, digest))

    with ThreadPoolExecutor(min(threads, len(todo))) as pool:
        list(pool.map(one, todo))


@dataclass
class PackPlan:
    """A pack a read-ahead pass downloads whole, when it first needs one of its samples."""

    first: int  # position in the pass of the first sample it needs from the pack
    pack: str
    samples: list[tuple[str, str]]  # (schema, digest) the pass needs, not kept yet, in its order
    at: list[int]  # the position in the pass of each of samples


def plan_packs(hangar_dir: Path, texts: Iterable[tuple[int, str]]) -> list[PackPlan]:
    """The packs worth downloading whole for a pass that reads ``texts``
    ((position in the pass, lazy record text)): those whose samples that the
    pass reads and that are not kept here add up to at least half the pack's
    bytes, in the order the pass first needs each. None when ``stock.cacheLimit``
    is smaller than the data the pass reads (the pass fetches sample by sample,
    as it reads them, then)."""
    rd = reader(hangar_dir)
    wanted: dict[str, PackPlan] = {}
    seen: set[str] = set()
    total = 0
    for pos, text in texts:
        parsed = parse_placeholder(text)
        if parsed is None or parsed[1] in seen:
            continue
        schema, digest, pack = parsed
        seen.add(digest)
        try:
            total += int(rd.entry(pack, digest)[3])
        except StockroomError:
            continue  # the reader gets the error
        if rd.object_path(digest).exists():
            continue
        plan = wanted.get(pack)
        if plan is None:
            plan = wanted[pack] = PackPlan(pos, pack, [], [])
        plan.samples.append((schema, digest))
        plan.at.append(pos)
    limit = rd.limit()
    if limit is not None and limit < total:
        return []
    out = []
    for plan in wanted.values():
        entries = rd.entries(plan.pack)
        size = sum(int(e[3]) for e in entries.values())
        need = sum(int(entries[digest][3]) for _, digest in plan.samples)
        if size > 0 and 2 * need >= size:
            out.append(plan)
    return sorted(out, key=lambda plan: plan.first)


def fetch_packs_whole(hangar_dir: Path, plans: Iterable[PackPlan]) -> set[str]:
    """Download the packs of ``plans`` whole and keep the samples each plan
    names (a dataset's miss: see ``StockDataset``). Several readers (DataLoader
    workers) missing in the same packs share them out: each takes first the
    packs no other reader is downloading, then waits for the others' (and finds
    their samples kept). A failed download leaves its samples to the
    per-sample path, whose error the reader gets. The packs done (their
    samples kept, here or by another reader): a failed one may be tried again."""
    rd = reader(hangar_dir)
    todo = list(plans)
    done: set[str] = set()
    while todo:
        taken = None
        for plan in todo:
            fd = rd.pack_lock(plan.pack, wait=False)
            if fd is not None:
                taken = (plan, fd)
                break
        if taken is None:  # every one is being downloaded by another reader: wait for the first
            plan = todo[0]
            fd = rd.pack_lock(plan.pack, wait=True)
            assert fd is not None
            taken = (plan, fd)
        plan, fd = taken
        todo.remove(plan)
        try:
            rd.keep_whole(plan.pack, plan.samples)
            done.add(plan.pack)
        except StockroomError:
            pass  # the per-sample path reads them, and says what failed
        finally:
            unlock(fd)
    return done


def hold_first(hangar_dir: Path, plans: list[PackPlan]) -> dict[str, int]:
    """Take the locks of the samples the pass reads first from the packs of
    ``plans`` (those another reader holds are left out), before the first
    download: a reader of one waits for its pack rather than fetching it by
    range. Digest -> descriptor, for :func:`fetch_pack`."""
    rd = reader(hangar_dir)
    first = sorted(
        (pos, digest) for plan in plans for pos, (_, digest) in zip(plan.at, plan.samples, strict=True)
    )
    held: dict[str, int] = {}
    for _, digest in first[: _lock_budget()[1]]:
        if digest not in held:
            fd = rd.try_lock(digest)
            if fd is not None:
                held[digest] = fd
    return held


def fetch_pack(hangar_dir: Path, plan: PackPlan, held: dict[str, int] | None = None) -> int:
    """Download ``plan``'s pack whole and keep the samples it needs (see
    :meth:`_Reader.keep_pack`; ``held``: locks from :func:`hold_first`); the
    number kept."""
    return reader(hangar_dir).keep_pack(plan.pack, plan.samples, held)


def read_kept(hangar_dir: Path, text: str, touch: bool = True) -> Any | None:
    """The array of the lazy sample ``text`` when it is kept here, read
    straight into the array (no intermediate copy); None when it is not kept
    or not an array (read it through Hangar then, which fetches it).

    A zero-size array is returned without reading (its shape and dtype are
    all of it).

    An epoch over kept samples calls this per sample and column: the record
    is parsed and its schema and index entry looked up once per process.
    ``touch=False``: the caller knows no cache limit was set when it began
    (:func:`all_kept`), so the read-time clock of least-recently-read
    dropping need not be kept, nor the limit looked up."""
    rd = reader(hangar_dir)
    plans = rd._kept_plans
    if text in plans:
        plan = plans[text]
    else:
        parsed = parse_placeholder(text)
        plan = None
        if parsed is not None:
            schema, digest, pack = parsed
            obj = rd.schema(schema)
            if obj.column_type == "ndarray":
                plan = (np.dtype(obj.dtype), tuple(rd.entry(pack, digest)[4]), rd._objects_prefix + digest)
        plans[text] = plan
    if plan is None:
        return None
    dtype, shape, path = plan
    out = np.empty(shape, dtype=dtype)
    if out.nbytes == 0:
        return out  # nothing to read (and a zero-size buffer cannot be cast)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:  # os calls rather than a file object: this runs once per sample and column
        # One byte more than the array: a copy of the wrong length (cut short
        # by a crash, say) is not this sample; Hangar's read then fetches it again.
        if os.readv(fd, [out.data.cast("B"), bytearray(1)]) != out.nbytes:
            return None
    finally:
        os.close(fd)
    if touch and rd.limit() is not None:
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently read is dropped first
    return out


# -------------------------------------------------------------------- space


def _objects(base: Path) -> Iterator[tuple[Path, int, float]]:
    try:
        entries = list(os.scandir(base / "objects"))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        with contextlib.suppress(FileNotFoundError):
            st = entry.stat()
            yield Path(entry.path), st.st_size, st.st_mtime


def shrink(base: Path, target: int) -> int:
    """Drop least recently read cached samples until at most ``target`` bytes
    remain (all of them are on the remote); the bytes left."""
    items = sorted(_objects(base), key=lambda t: t[2])
    total = sum(size for _, size, _ in items)
    for path, size, _ in items:
        if total <= target:
            break
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            total -= size
    return total


def cached(hangar_dir: Path) -> dict[str, int]:
    """Digest -> size of every sample kept by lazy reads."""
    return {path.name: size for path, size, _ in _objects(lazy_dir(hangar_dir))}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``20G``, ``512M``, ``1000`` (StockroomError if not one)."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    scale = units.get(value[-1:], 1)
    if value[-1:] in units:
        value = value[:-1]
    try:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
    except ValueError:
        raise StockroomError(
            f"stock.cacheLimit {text!r} is not a size; set it like `git config stock.cacheLimit 20G`"
        ) from None
    if number < 0:
        raise StockroomError(f"stock.cacheLimit {text!r} is negative; set a size such as 20G")
    return int(number * scale)


def cache_limit(root: Path) -> int | None:
    """``git config stock.cacheLimit`` in bytes (None: unbounded); a value that
    is not a size is refused (StockroomError, one line) wherever it is read."""
    text = (config_value(CACHE_LIMIT_KEY, root) or "").strip()
    return parse_size(text) if text else None


def lazy_enabled(root: Path) -> bool:
    """Fetches nobody asked data of bring lazy records (:func:`samples.lazy_clone`)."""
    return samples.lazy_clone(root)


# ------------------------------------------------------------ gc and status


def _head_records(root: Path, head: str) -> dict[str, bytes]:
    """Sample digest -> its local Hangar record, for every sample commit ``head`` names."""
    from stockroom.store.transfer import _columns, _Local

    local = _Local(root)
    return samples.records(local.env, {d for _, ds in _columns(local.commit(head)[2]).values() for d in ds})


_lazy_text = samples.lazy_text


@dataclass
class Where:
    """How much of a stock commit's data is here and how much only on the remote."""

    samples: int = 0
    local: int = 0  # samples stored in .hangar (pulled, or written here)
    fetched: int = 0  # samples read on demand and kept
    fetched_bytes: int = 0
    remote_only: int = 0
    remote_only_bytes: int = 0
    unfetched: int = 0  # on the remote, not readable on demand (a partial non-lazy pull)


def where(root: Path, head: str) -> Where:
    """What of commit ``head``'s data is local and what is remote-only."""
    hangar_dir = root / ".hangar"
    out = Where()
    kept = cached(hangar_dir)
    rd = reader(hangar_dir)
    for digest, record in _head_records(root, head).items():
        out.samples += 1
        state = samples.state_of(record, digest in kept)
        if state is samples.State.LOCAL:
            out.local += 1
        elif state in (samples.State.REMOTE, samples.State.ABSENT):
            out.unfetched += 1
        elif state is samples.State.KEPT:
            out.fetched += 1
            out.fetched_bytes += kept[digest]
        else:
            out.remote_only += 1
            parsed = parse_placeholder(record[3:].decode("utf-8", "replace"))
            assert parsed is not None
            with contextlib.suppress(StockroomError):
                out.remote_only_bytes += int(rd.entry(parsed[2], digest)[3])
    return out


@dataclass
class GcPlan:
    """Cached samples ``stock gc`` may drop."""

    drop: dict[str, int]  # digest -> bytes
    kept_needed: int
    over_limit: int = 0  # of drop: samples commit ``head`` reads, past ``stock.cacheLimit``
    limit: int | None = None  # ``stock.cacheLimit`` in bytes


def gc_plan(root: Path, head: str) -> GcPlan:
    """Cached samples that commit ``head`` does not read on demand and that the
    remote holds (checked now: each read back whole); and, where what would
    stay is more than ``stock.cacheLimit``, the least recently read of those
    it does read, down to the limit."""
    hangar_dir = root / ".hangar"
    limit = cache_limit(root)  # a bad value refused before anything is looked at
    objects = sorted(_objects(lazy_dir(hangar_dir)), key=lambda t: t[2])  # least recently read first
    kept = {path.name: size for path, size, _ in objects}
    records = _head_records(root, head) if head else {}
    needed = {d for d, rec in records.items() if _lazy_text(rec) is not None}
    drop = {d: size for d, size in kept.items() if d not in needed}
    over: set[str] = set()
    if limit is not None:
        staying = sum(kept.values()) - sum(drop.values())
        for path, size, _ in objects:
            if staying <= limit:
                break
            if path.name not in drop:
                over.add(path.name)
                drop[path.name] = size
                staying -= size
    if not drop:
        return GcPlan({}, len(kept), limit=limit)
    # Which pack holds each: the kept indexes. A sample found in none is kept.
    packs: dict[str, str] = {}
    schemas: dict[str, str] = {}
    for idx in (lazy_dir(hangar_dir) / "packs").glob("*.idx"):
        sha = idx.name[: -len(".idx")]
        try:
            entries = json.loads(idx.read_bytes())["samples"]
            for entry in entries:
                if entry[0] in drop:
                    packs[entry[0]] = sha
                    schemas[entry[0]] = entry[1]
        except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError):
            continue
    rd = reader(hangar_dir)
    store, label = rd.store()
    # Only what the remote proves it holds is dropped: each sample is read
    # back (its index length, checked against its schema) and must have the
    # digest the commit records name. A one-byte probe would let a hostile
    # remote make gc drop the only good copy.
    final: dict[str, int] = {}
    for digest, sha in packs.items():
        try:
            if _holds(rd, store, sha, schemas[digest], digest):
                final[digest] = drop[digest]
        except RemoteError as exc:
            raise RemoteError(
                f"stock gc checks that stock remote {label} holds what it drops, and cannot reach it "
                f"({exc}); nothing was dropped. Run it again when the remote is reachable"
            ) from None
    return GcPlan(final, len(kept) - len(final), len(over.intersection(final)), limit)


def _holds(rd: _Reader, store: ObjectStore, pack: str, schema: str, digest: str) -> bool:
    """The remote's pack ``pack`` holds sample ``digest`` whole and unaltered."""
    try:
        entry = rd.entry(pack, digest)  # its length checked against its schema
        obj = rd.schema(schema)
        offset, length = int(entry[2]), int(entry[3])
    except StockroomError:
        return False  # its index entry is damaged here: keep the copy
    try:
        raw = store.get_range(f"packs/{pack}", offset, offset + length)
    except (ObjectMissing, BadObject):
        return False
    if len(raw) != length:
        return False
    try:
        return bool(obj.data_hash_digest(_decode(obj, raw, entry[4])) == digest)
    except (ValueError, TypeError, UnicodeDecodeError):
        return False


def gc_drop(root: Path, digests: Iterable[str]) -> int:
    """Drop the cached samples ``digests``; the bytes freed."""
    freed = 0
    objects = lazy_dir(root / ".hangar") / "objects"
    for digest in digests:
        path = objects / digest
        with contextlib.suppress(FileNotFoundError):
            size = path.stat().st_size
            path.unlink()
            freed += size
    return freed
