"""Transfer: stock commits to and from a remote, on Hangar's own records.

Hangar's raw commit records, schemas and data keep their digests across the
move (``hangar.remote.content``), so a pulled commit has the digest that
``head.stock`` names. The remote layout (all objects immutable)::

    commits/<commit digest>   manifest: the commit's raw records, its schemas,
                              and the packs that hold every sample it names
    packs/<sha256>            many samples of one schema, back to back
    packs/<sha256>.idx        the pack's index: digest -> (offset, length, shape)

A pack's name is the SHA-256 of its bytes and the manifest records the
SHA-256 of each index, so every object is verified before use; each sample
is checked again against its Hangar digest before it enters ``.hangar``.
The index lets a reader fetch one sample by byte range.

What the remote has is learned without listing it: a manifest is written
only after all its packs, parents first, so a commit present on the remote
implies its ancestors and their data are there. A push walks back from the
commits to send until it meets commits the remote has (one request each),
and reads only those commits' manifests and pack indexes to skip data the
remote has. Packs are built deterministically from the missing samples, so
a push re-run after an interruption finds the packs it had already sent.
"""

from __future__ import annotations

import array
import base64
import contextlib
import errno
import functools
import hashlib
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blosc
import lmdb
import numpy as np
from hangar.backends import BACKEND_ACCESSOR_MAP, backend_decoder
from hangar.backends.numpy_10 import COLLECTION_SIZE, numpy_10_encode
from hangar.columns.constructors import column_type_object_from_schema
from hangar.constants import DIR_DATA, DIR_DATA_REMOTE, DIR_DATA_STORE
from hangar.records import (
    commiting,
    hash_data_db_key_from_raw_key,
    parsing,
    schema_spec_from_db_val,
)
from hangar.remote.content import ContentReader, ContentWriter
from hangar.txnctx import TxnRegister
from numpy.lib.format import open_memmap
from xxhash import xxh64_hexdigest

from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR
from stockroom.lock import WriterLock
from stockroom.progress import Progress
from stockroom.remote.objects import MAX_OBJECT, ObjectStore, RemoteError, mend_advice
from stockroom.store import samples
from stockroom.store.repository import _quiet, open_repository
from stockroom.store.samples import (  # noqa: F401 - names kept here for their callers
    COMPLETE_FILE,
    complete_commits,
    forget_complete,
    mark_complete,
)

FORMAT = 1
# Samples of one schema are packed up to this size: few objects, each large
# enough to move at full speed, small enough to retry.
PACK_BYTES = 64 << 20
_COMMIT_RE = re.compile(r"^a=[0-9a-f]{40}$")
_SCHEMA_RE = re.compile(r"^[0-9]=[0-9a-f]{8,64}$")
_DATA_RE = re.compile(r"^[0-9]=[0-9a-f]{8,64}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_REMOTE_BACKEND = samples.REMOTE_BACKEND
# Hangar's hash-db key of a data digest (hash_data_db_key_from_raw_key).
_DATA_KEY_PREFIX = hash_data_db_key_from_raw_key("").decode()
# Downloads in flight at once: each is a whole pack (verified in its thread)
# or an index.
_FETCH_WORKERS = 4
# Backend files a push keeps open at once (each memmap holds a descriptor).
_OPEN_FILES = 128
# Caps on what a remote sends before its digest is checked (SPEC 6a: a
# hostile remote costs at most bounded memory). A manifest or an index is
# read no further than MAX_OBJECT bytes. A manifest's compressed records
# declare their size in blosc's header: that size is checked before they are
# expanded. Hangar's records compress a few times (4.5 for 20,000 samples,
# half of one value): a declared size past _MAX_RATIO times the compressed
# one, beyond a floor every ordinary commit fits, is a compression bomb.
_RECORDS_FLOOR = 16 << 20
_MAX_RATIO = 64
_MAX_RECORDS = 1 << 30
_MAX_SPEC = 16 << 20  # a commit's message, author, time
_MAX_PARENT = 1 << 10  # one or two commit digests
_MAX_SCHEMA = 64 << 10  # a schema: dtype, shape (at most 31 numbers), backend
# A str or bytes sample (a tag, a piece of a model) has no size in its schema.
_MAX_LOOSE_SAMPLE = MAX_OBJECT


def commit_object(digest: str) -> str:
    """The remote object name of a commit's manifest."""
    return f"commits/{digest}"


def _check(regex: re.Pattern[str], value: Any, what: str) -> str:
    if not isinstance(value, str) or not regex.match(value):
        raise RemoteError(f"the remote sent an invalid {what} ({str(value)[:60]!r}); the remote is damaged")
    return value


@dataclass
class Summary:
    """What a push or fetch did."""

    commits: int = 0
    objects: int = 0
    nbytes: int = 0
    samples: int = 0  # distinct sample contents sent (2,000 labels of 17 values: 17)
    data_samples: int = 0  # data samples (column, key) whose content was sent: what users count
    skipped_objects: int = 0
    names: list[str] = field(default_factory=list)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise RemoteError("a manifest on the remote is malformed; the remote is damaged")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise RemoteError("a manifest on the remote is malformed; the remote is damaged") from None


def _parents(parent_val: bytes) -> list[str]:
    spec = parsing.commit_parent_raw_val_from_db_val(parent_val).ancestor_spec
    return [p for p in (spec.master_ancestor, spec.dev_ancestor) if p]


_SCHEMA_RECORD_RE = re.compile(rb"(?:^|\$)s:([^:$ ]+):[fn] ([^$ ]+)")
_VALUE_RE = re.compile(rb" ([^$]+)")


@functools.lru_cache(maxsize=8)
def _columns_cached(ref_val: bytes) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    # A commit's ref value is Hangar's sorted records ``key value`` joined by
    # '$' (blosc-compressed): ``s:<column>:<layout>`` -> schema digest and
    # ``f:<column>:<sample>`` / ``n:<column>:<sample>:<sub>`` -> data digest.
    # Hangar's own parser also recomputes the ref digest (a blake2b per
    # record): that check belongs where records come from a remote
    # (read_manifest), not on every look at a local commit. Sorted keys put
    # a column's data records in one run, sliced out whole and scanned in C.
    raw = blosc.decompress(ref_val)
    out = []
    # Schema records sort after the data records ('s' > 'f', 'n').
    tail = 0 if raw.startswith(b"s:") else max(raw.rfind(b"$f:"), raw.rfind(b"$n:"), 0)
    for col, schema in _SCHEMA_RECORD_RE.findall(raw, tail):
        digests: set[bytes] = set()
        for layout in (b"f:", b"n:"):
            prefix = layout + col + b":"
            first = 0 if raw.startswith(prefix) else raw.find(b"$" + prefix)
            if first < 0:
                continue
            last = raw.rfind(b"$" + prefix)
            end = raw.find(b"$", max(first, last) + 1)
            digests.update(_VALUE_RE.findall(raw, first, len(raw) if end < 0 else end))
        out.append((col.decode(), schema.decode(), tuple(sorted(d.decode() for d in digests))))
    return tuple(out)


def _declared_size(val: bytes, cap: int) -> int:
    """The size blosc's header says ``val`` expands to, checked against
    ``cap`` and against the compressed size (``_MAX_RATIO``) before anything
    is expanded; ValueError when it is not a blosc buffer or exceeds them."""
    if len(val) < 16:
        raise ValueError("not a blosc buffer")
    nbytes, cbytes, _ = blosc.get_cbuffer_sizes(val)
    if cbytes != len(val) or nbytes > min(cap, max(_RECORDS_FLOOR, _MAX_RATIO * len(val))):
        raise ValueError("declared size out of bounds")
    return int(nbytes)


def _expand(val: bytes, cap: int) -> bytes:
    """``blosc.decompress(val)`` of a value from a remote, its size checked first."""
    nbytes = _declared_size(val, cap)
    raw = blosc.decompress(val)
    if len(raw) != nbytes:
        raise ValueError("blosc buffer expands to another size than it declares")
    return raw


# Records hashed per slice of the expanded ref value: the per-record digests
# of one slice are joined at a time, never a list for the whole commit.
_DIGEST_SLICE = 1 << 20


def _ref_digest(ref_val: bytes, cap: int = _MAX_RECORDS) -> str:
    """Hangar's digest of a commit's ref records (as
    ``parsing.commit_ref_raw_val_from_db_val(ref_val).digest``), without
    building the records: blake2b-160 of the joined blake2b-160 hex digests
    of each ``key value`` record. The declared size is checked first
    (``_expand``)."""
    raw = _expand(ref_val, cap)
    blake2b = hashlib.blake2b
    if not raw:
        return blake2b(b"", digest_size=20).hexdigest()
    outer = blake2b(digest_size=20)
    start, size = 0, len(raw)
    while start <= size:
        # A slice ends at a record boundary ('$') or at the end.
        cut = raw.find(b"$", min(start + _DIGEST_SLICE, size))
        end = size if cut < 0 else cut
        recs = raw[start:end].split(b"$")
        outer.update("".join([blake2b(rec, digest_size=20).hexdigest() for rec in recs]).encode())
        start = end + 1
    return outer.hexdigest()


_DATA_RECORD_RE = re.compile(rb"(?:^|\$)(f:data\.[^ $]*) ([^$]+)")


def _data_samples(ref_vals: Iterable[bytes], sent: set[str]) -> int:
    """How many data samples, (column, key) and content, of these commits
    name a content in ``sent``: 2,000 images and 2,000 labels are 4,000
    samples, however few distinct labels there are."""
    wanted = {d.encode() for d in sent}
    seen: set[tuple[bytes, bytes]] = set()
    for ref_val in ref_vals:
        seen.update(r for r in _DATA_RECORD_RE.findall(blosc.decompress(ref_val)) if r[1] in wanted)
    return len(seen)


def _columns(ref_val: bytes) -> dict[str, tuple[str, list[str]]]:
    """Hangar column name -> (schema digest, data digests) of a commit."""
    return {name: (schema, list(digests)) for name, schema, digests in _columns_cached(ref_val)}


def _encode(value: Any) -> tuple[bytes, list[int] | None]:
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value).tobytes(), list(value.shape)
    if isinstance(value, str):
        return value.encode("utf-8"), None
    return bytes(value), None


def _decode(schema: Any, raw: bytes, shape: Any) -> Any:
    kind = schema.column_type
    if kind == "ndarray":
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise RemoteError("a pack index on the remote is malformed; the remote is damaged")
        arr = np.frombuffer(raw, dtype=np.dtype(schema.dtype))
        return arr.reshape(shape).copy()
    if kind == "str":
        return raw.decode("utf-8")
    return raw


class _Local:
    """Raw reads from the local Hangar repository."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = open_repository(root)
        self.env = self.repo._env
        self.reader = ContentReader(self.env)

    def has_commit(self, digest: str) -> bool:
        return bool(commiting.check_commit_hash_in_history(self.env.refenv, digest))

    def commit(self, digest: str) -> tuple[bytes, bytes, bytes]:
        raw = self.reader.commit(digest)
        if not raw:
            raise StockroomError(f"stock commit {digest} is not in {HANGAR_DIR}; nothing to push for it")
        return raw.cmtParentVal, raw.cmtSpecVal, raw.cmtRefVal

    def schema(self, digest: str) -> bytes:
        val = self.reader.schema(digest)
        if not val:
            raise StockroomError(f"schema {digest} is missing from {HANGAR_DIR}; run `stock repair`")
        return bytes(val)

    def data_backends(self, digests: Iterable[str]) -> dict[str, str | None]:
        """digest -> backend code of its local record (None: no record)."""
        out: dict[str, str | None] = {}
        txn = TxnRegister().begin_reader_txn(self.env.hashenv)
        try:
            for digest in digests:
                val = txn.get(hash_data_db_key_from_raw_key(digest), default=False)
                out[digest] = backend_decoder(val).backend if val else None
        finally:
            TxnRegister().abort_reader_txn(self.env.hashenv)
        return out

    @contextlib.contextmanager
    def sample_reader(self) -> Iterator[Callable[[list[str]], Iterator[tuple[str, Any, Any]]]]:
        """A function: digests -> (digest, raw bytes, shape or None), in that
        order, with every backend open for reading.

        Samples of numpy-memmap columns (backend 10) are sliced straight out
        of the backend's files, their checksums checked as Hangar's reader
        checks them; other backends read through Hangar's own handles.
        """
        handles: dict[str, Any] = {}
        for code, accessor in BACKEND_ACCESSOR_MAP.items():
            if accessor is not None:
                handles[code] = accessor(repo_path=self.env.repo_path, schema_shape=None, schema_dtype=None)
                handles[code].open(mode="r")
        files: dict[
            str, tuple[Any, memoryview, int, tuple[int, ...]]
        ] = {}  # uid -> memmap, its bytes, row size, shape
        data_dir = Path(self.env.repo_path, DIR_DATA, "10")
        txn = TxnRegister().begin_reader_txn(self.env.hashenv)

        def specs(digests: list[str]) -> Iterator[tuple[str, Any]]:
            keys = [f"{_DATA_KEY_PREFIX}{d}".encode() for d in digests]
            with txn.cursor() as cursor:
                found = dict(cursor.getmulti(keys))  # one call for the whole list
            for digest, key in zip(digests, keys, strict=True):
                val = found.get(key)
                if not val:
                    raise StockroomError(f"sample {digest} is missing from {HANGAR_DIR}; run `stock repair`")
                spec = backend_decoder(val)
                if spec.backend == _REMOTE_BACKEND:
                    raise StockroomError(
                        "part of this stock commit's data was never fetched here (a partial `stock pull`); "
                        "run `stock pull` to fetch all of it, then push again"
                    )
                yield digest, spec

        def memmap_file(uid: str) -> tuple[Any, memoryview, int, tuple[int, ...]]:
            if uid not in files:
                if len(files) >= _OPEN_FILES:  # bounded: each open memmap holds a descriptor
                    files.pop(next(iter(files)))
                arr = open_memmap(data_dir / f"{uid}.npy", mode="r")
                flat = memoryview(arr).cast("B")  # type: ignore[arg-type]  # a memmap is a buffer
                files[uid] = (arr, flat, arr[0].nbytes, arr.shape[1:])
            return files[uid]

        def read(digests: list[str]) -> Iterator[tuple[str, Any, Any]]:
            for digest, spec in specs(digests):
                if spec.backend == "10":
                    arr, buf, row, full = memmap_file(spec.uid)
                    idx = spec.collection_idx
                    if spec.shape == full:
                        raw: Any = buf[idx * row : (idx + 1) * row]
                    else:
                        raw = np.ascontiguousarray(arr[(idx, *[slice(0, n) for n in spec.shape])]).tobytes()
                    if xxh64_hexdigest(raw) != spec.checksum:
                        raise StockroomError(
                            f"sample {digest} in {HANGAR_DIR} fails its checksum (damaged on disk); "
                            "run `stock repair`"
                        )
                    yield digest, raw, list(spec.shape)
                else:
                    raw, shape = _encode(handles[spec.backend].read_data(spec))
                    yield digest, raw, shape

        try:
            yield read
        finally:
            TxnRegister().abort_reader_txn(self.env.hashenv)
            files.clear()
            for handle in handles.values():
                with contextlib.suppress(Exception):
                    handle.close()


# --------------------------------------------------------------------- push


def push(root: Path, store: ObjectStore, targets: Iterable[str]) -> Summary:
    """Upload the stock commits ``targets``, their ancestors and all their data.

    Only what the remote lacks is sent; manifests go last, parents first.
    """
    local = _Local(root)
    summary = Summary()
    order: list[str] = []  # commits to send, parents first
    frontier: set[str] = set()  # commits the remote has, next to ones it lacks
    seen: set[str] = set()
    records: dict[str, tuple[bytes, bytes, bytes]] = {}

    def visit(digest: str) -> None:
        # Iterative post-order walk (histories can be long).
        stack: list[tuple[str, bool]] = [(digest, False)]
        while stack:
            d, expanded = stack.pop()
            if expanded:
                order.append(d)
                continue
            if d in seen:
                continue
            seen.add(d)
            if store.exists(commit_object(d)):
                frontier.add(d)
                continue
            records[d] = local.commit(d)
            stack.append((d, True))
            for parent in _parents(records[d][0]):
                if parent not in seen:
                    stack.append((parent, False))

    for target in targets:
        if target:
            visit(target)
    if not order:
        return summary

    known = _RemoteIndex(store)
    for digest in frontier:
        known.add_commit(digest)

    # Every sample the commits name, by schema; what the remote lacks.
    commit_data: dict[str, list[str]] = {}
    schema_of: dict[str, str] = {}
    schemas: set[str] = set()
    for digest in order:
        names: list[str] = []
        for schema, digests in _columns(records[digest][2]).values():
            schemas.add(schema)
            for d in digests:
                schema_of[d] = schema
            names.extend(digests)
        commit_data[digest] = names
    missing: dict[str, list[str]] = defaultdict(list)
    for d in sorted(schema_of):
        if d not in known.where:
            missing[schema_of[d]].append(d)
    # Anything readable can be shared: samples to send that are not LOCAL here
    # (an ancestor's, recorded by a pull as on the remote; a lazy clone's) are
    # brought first from a stock remote that holds them.
    states = samples.states(local.env, [d for ds in missing.values() for d in ds])
    # A run's pruned checkpoints: their dropped samples are never sent; the
    # manifest lists them as pruned (stockroom.store.prune).
    pruned = {d for d, st in states.items() if st is samples.State.PRUNED}
    if pruned:
        missing = defaultdict(list, {s: [d for d in ds if d not in pruned] for s, ds in missing.items()})
    lacking = {d for d, st in states.items() if st not in (samples.State.LOCAL, samples.State.PRUNED)}
    if lacking:
        _bring_for_push(root, store, [c for c in order if not lacking.isdisjoint(commit_data[c])], lacking)

    # Packs are read and built here while the previous one uploads in a
    # worker (file writes, hashing and obstore release the GIL); at most two
    # packs are in memory.
    with (
        Progress(None, "pushing", unit="B", unit_scale=True) as bar,
        local.sample_reader() as read,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="stock-push") as uploader,
    ):
        pending: Future[None] | None = None
        try:
            for schema in sorted(missing):
                for pack in _build_packs(schema, missing[schema], read):
                    if pending is not None:
                        pending.result()
                    pending = uploader.submit(_upload_pack, store, pack, summary, bar)
                    known.add_pack(pack.sha, pack.index_sha, len(pack.data), pack.entries)
                    summary.samples += len(pack.entries)
            if pending is not None:
                pending.result()
        finally:
            if pending is not None:
                pending.cancel()

    schema_vals = {s: local.schema(s) for s in schemas}
    for digest in order:
        parent_val, spec_val, ref_val = records[digest]
        needed = commit_data[digest]
        packs: dict[str, dict[str, Any]] = {}
        cols = _columns(ref_val)
        gone = sorted({d for d in needed if d in pruned and d not in known.where})
        for d in needed:
            sha = known.where.get(d)
            if sha is None and d in pruned:
                continue
            if sha is None:
                raise StockroomError(
                    f"sample {d} of stock commit {digest} was not uploaded; run the push again"
                )
            packs[sha] = known.packs[sha]
        manifest = {
            "format": FORMAT,
            "commit": digest,
            "parent": _b64(parent_val),
            "spec": _b64(spec_val),
            "ref": _b64(ref_val),
            "schemas": {s: _b64(schema_vals[s]) for s, _ in cols.values()},
            "packs": packs,
        }
        if gone:
            manifest["pruned"] = gone
        data = json.dumps(manifest, sort_keys=True).encode()
        if store.put_new(commit_object(digest), data):
            summary.objects += 1
            summary.nbytes += len(data)
        summary.commits += 1
        summary.names.append(digest)
    sent = {d for digests in missing.values() for d in digests}
    summary.data_samples = _data_samples((records[d][2] for d in order), sent)
    return summary


def _bring_for_push(root: Path, dest: ObjectStore, commits: list[str], lacking: set[str]) -> None:
    """Fetch the data of ``commits`` that pushing them to ``dest`` needs and
    that is not here (``lacking``) from the other stock remotes: the one lazy
    reads use, the default, then the rest."""
    from stockroom.remote.config import get_remote, list_remotes
    from stockroom.remote.objects import open_store

    names: list[str] = []
    with contextlib.suppress(OSError, ValueError):
        names.append((root / HANGAR_DIR / samples.LAZY_DIR / "remote").read_text(encoding="utf-8").strip())
    with contextlib.suppress(StockroomError):
        names.append(get_remote(root, None).name)
    names += [remote.name for remote in list_remotes(root)]
    local = _Local(root)
    failed: list[str] = []
    for name in dict.fromkeys(n for n in names if n and n != dest.label):
        try:
            remote = get_remote(root, name)
            fetch(root, open_store(remote.parsed(root), remote.name, remote.endpoint), commits)
        except StockroomError as exc:
            failed.append(f"{name}: {exc}")
            continue
        states = samples.states(local.env, lacking)
        lacking = {d for d, st in states.items() if st is not samples.State.LOCAL}
        if not lacking:
            return
    tried = f" ({'; '.join(failed)})" if failed else ""
    raise StockroomError(
        f"part of the data of stock commit {commits[-1]} is neither here nor on stock remote {dest.label}, "
        f"and no other stock remote provided it{tried}; add the stock remote it came from "
        f"(`stock remote add NAME URL --local`), then push again"
    )


@dataclass
class _Pack:
    sha: str
    data: bytes
    index: bytes
    index_sha: str
    entries: list[list[Any]]


def _build_packs(schema: str, digests: list[str], read: Any) -> Iterator[_Pack]:
    """Packs of up to PACK_BYTES, samples in digest order (deterministic)."""
    chunks: list[Any] = []
    entries: list[list[Any]] = []
    size = 0

    def finish() -> _Pack:
        data = b"".join(chunks)
        sha = hashlib.sha256(data).hexdigest()
        index = json.dumps(
            {"format": FORMAT, "pack": sha, "samples": entries}, separators=(",", ":")
        ).encode()
        return _Pack(sha, data, index, hashlib.sha256(index).hexdigest(), list(entries))

    for digest, raw, shape in read(digests):
        entries.append([digest, schema, size, len(raw), shape])
        chunks.append(raw)
        size += len(raw)
        if size >= PACK_BYTES:
            yield finish()
            chunks, entries, size = [], [], 0
    if entries:
        yield finish()


def _upload_pack(store: ObjectStore, pack: _Pack, summary: Summary, bar: Progress) -> None:
    # The index is written after its pack: an index on the remote means its
    # pack is whole. Both are checked first, so a re-run sends nothing twice.
    for name, data in ((f"packs/{pack.sha}", pack.data), (f"packs/{pack.sha}.idx", pack.index)):
        if store.exists(name):
            summary.skipped_objects += 1
        elif store.put_new(name, data):
            summary.objects += 1
            summary.nbytes += len(data)
        bar.update(len(data))


class _RemoteIndex:
    """Where the remote keeps each sample, from the manifests and indexes read."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.where: dict[str, str] = {}  # sample digest -> pack sha
        self.packs: dict[str, dict[str, Any]] = {}  # pack sha -> {"index": sha, "size": n}
        self.entries: dict[str, list[Any]] = {}  # sample digest -> index entry
        self.raw: dict[str, bytes] = {}  # pack sha -> its verified index, as read (lazy pulls keep it)
        self.pack_entries: dict[str, list[list[Any]]] = {}  # pack sha -> its index entries

    def add_commit(self, digest: str) -> dict[str, Any]:
        manifest = read_manifest(self.store, digest)
        self.load_packs(manifest["packs"].items())
        return manifest

    def load_packs(self, packs: Iterable[tuple[str, Any]]) -> None:
        """``load_pack`` for each (sha, info), the indexes downloaded at once:
        on an object store each is a round trip."""
        todo = [(sha, info) for sha, info in packs if sha not in self.packs]
        for sha, _ in todo:
            _check(_SHA_RE, sha, "pack name")
        if len(todo) < 2:
            for sha, info in todo:
                self.load_pack(sha, info)
            return
        with ThreadPoolExecutor(max_workers=_FETCH_WORKERS, thread_name_prefix="stock-index") as pool:
            raws = list(pool.map(lambda item: self.store.get(f"packs/{item[0]}.idx"), todo))
        for (sha, info), raw in zip(todo, raws, strict=True):
            self.load_pack(sha, info, raw)

    def load_pack(self, sha: str, info: Any, raw: bytes | None = None) -> None:
        """Read and check pack ``sha``'s index (``raw``: already downloaded)."""
        if sha in self.packs:
            return
        _check(_SHA_RE, sha, "pack name")
        if not isinstance(info, dict):
            raise RemoteError("a manifest on the remote is malformed; the remote is damaged")
        index_sha = _check(_SHA_RE, info.get("index"), "index digest")
        size = info.get("size")
        if not isinstance(size, int) or size < 0:
            raise RemoteError("a manifest on the remote is malformed; the remote is damaged")
        name = f"packs/{sha}.idx"
        if raw is None:
            raw = self.store.get(name)
        if hashlib.sha256(raw).hexdigest() != index_sha:
            raise RemoteError(
                f"object {name} on stock remote {self.store.label} is corrupt (digest mismatch); "
                f"nothing was written; {mend_advice(self.store.label)}"
            )
        try:
            index = json.loads(raw)
            samples = index["samples"]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise RemoteError(f"object {name} on the remote is malformed; nothing was written") from None
        if not isinstance(samples, list):
            raise RemoteError(f"object {name} on the remote is malformed; nothing was written")
        # One pass, few calls per entry (an index can name 100,000 samples);
        # a schema digest is checked once however many samples name it.
        digest_ok = _DATA_RE.match
        schemas_ok: set[str] = set()
        # A pack is its samples back to back (_build_packs): each entry starts
        # where the one before ends and the last ends at the pack's size, so
        # the size the manifest gives (which the commit digest does not cover)
        # is no more than the samples' lengths, each checked against its
        # schema before anything is read (_check_entries).
        end = 0
        for entry in samples:
            if type(entry) is not list or len(entry) != 5:
                raise RemoteError(f"object {name} on the remote is malformed; nothing was written")
            digest, schema, offset, length, _shape = entry
            if type(digest) is not str or not digest_ok(digest):
                _check(_DATA_RE, digest, "sample digest")
            if type(schema) is not str or schema not in schemas_ok:
                schemas_ok.add(_check(_SCHEMA_RE, schema, "schema digest"))
            if not (type(offset) is int and type(length) is int and offset == end and length >= 0):
                raise RemoteError(f"object {name} on the remote is malformed; nothing was written")
            end += length
        if end != size:
            raise RemoteError(f"object {name} on the remote is malformed; nothing was written")
        entries = samples
        self.raw[sha] = raw
        self.add_pack(sha, index_sha, size, entries)

    def add_pack(self, sha: str, index_sha: str, size: int, entries: list[list[Any]]) -> None:
        self.packs[sha] = {"index": index_sha, "size": size}
        self.pack_entries[sha] = entries
        for entry in entries:
            self.where[entry[0]] = sha
            self.entries[entry[0]] = entry


def read_manifest(store: ObjectStore, digest: str) -> dict[str, Any]:
    """A commit's manifest from the remote, its records checked against ``digest``.

    Nothing in it is expanded or parsed past a size cap before that check
    (the records' declared sizes, ``_expand``); the schemas, which the
    commit digest does not cover, are capped each (``_MAX_SCHEMA``) and must
    be exactly those the checked records name.
    """
    _check(_COMMIT_RE, digest, "commit digest")
    name = commit_object(digest)
    raw = store.get(name, MAX_OBJECT)

    def damaged(what: str = "malformed or truncated") -> RemoteError:
        return RemoteError(
            f"object {name} on stock remote {store.label} is {what}; nothing was written; "
            f"{mend_advice(store.label)}"
        )

    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        raise damaged() from None
    fields = ("parent", "spec", "ref")
    if not (
        isinstance(manifest, dict)
        and manifest.get("format") == FORMAT
        and manifest.get("commit") == digest
        and isinstance(manifest.get("schemas"), dict)
        and isinstance(manifest.get("packs"), dict)
        and all(isinstance(manifest.get(k), str) for k in fields)
    ):
        raise damaged()
    try:
        parent, spec, ref = (_unb64(manifest[k]) for k in fields)
    except RemoteError:
        raise damaged() from None
    blake2b = hashlib.blake2b
    try:
        # Hangar's digests of the three values (parsing.commit_*_raw_val_from_db_val),
        # each expanded only after its declared size is checked, none parsed.
        if len(parent) > _MAX_PARENT:
            raise ValueError("parent value too long")
        computed = parsing.cmt_final_digest(
            parent_digest=blake2b(parent, digest_size=20).hexdigest(),
            spec_digest=blake2b(_expand(spec, _MAX_SPEC), digest_size=20).hexdigest(),
            refs_digest=_ref_digest(ref),
        )
    except Exception:  # noqa: BLE001 - any decoding failure means a damaged object
        computed = ""
    if computed != digest:
        raise damaged("corrupt (digest mismatch)")
    try:
        _parents(parent)  # now known to be Hangar's own: parsed only to be sure
        named = {schema for _, schema, _ in _columns_cached(ref)}
    except Exception:  # noqa: BLE001
        raise damaged("corrupt") from None
    if set(manifest["schemas"]) != named:
        raise damaged("corrupt (its schemas are not those its commit names)")
    schemas: dict[str, bytes] = {}
    for schema, val in manifest["schemas"].items():
        _check(_SCHEMA_RE, schema, "schema digest")
        # Capped first: Hangar parses a schema with ast.literal_eval.
        ok = isinstance(val, str) and len(val) <= _MAX_SCHEMA * 4 // 3 + 4
        raw_val = _unb64(val) if ok else b""
        if ok and len(raw_val) <= _MAX_SCHEMA:
            try:
                obj = column_type_object_from_schema(schema_spec_from_db_val(raw_val))
                ok = obj.schema_hash_digest() == schema
            except Exception:  # noqa: BLE001 - RecursionError and MemoryError too
                ok = False
        else:
            ok = False
        if not ok:
            raise damaged(f"corrupt (schema {schema})")
        schemas[schema] = raw_val
    manifest["_records"] = (parent, spec, ref)
    manifest["_schemas"] = schemas
    return manifest


# -------------------------------------------------------------------- fetch


def sample_nbytes(obj: Any, shape: Any) -> int | None:
    """The byte length a sample of schema ``obj`` with index shape ``shape``
    has (for str and bytes samples: the most it may have), or None when
    ``shape`` cannot be one of that schema's (wrong rank, past the schema's
    shape, not a list of sizes)."""
    if obj.column_type != "ndarray":
        return _MAX_LOOSE_SAMPLE if shape is None else None
    if type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape):
        return None
    limit = tuple(obj.shape)
    if len(shape) != len(limit):
        return None
    if obj.schema_type == "fixed_shape":
        if tuple(shape) != limit:
            return None
    elif not all(n <= m for n, m in zip(shape, limit, strict=True)):
        return None
    return math.prod(shape) * np.dtype(obj.dtype).itemsize


def _check_entries(index: _RemoteIndex, shas: Iterable[str], schema_objs: dict[str, Any], label: str) -> None:
    """Every sample of packs ``shas`` names a schema of the commits and has
    the length and shape that schema allows (the index is checked against the
    manifest's digest, but the manifest's pack list is not the commit's):
    nothing past that length is then ever asked for."""
    for sha in shas:
        bad = False
        # Samples of a pack mostly share one schema and shape: each pair is
        # worked out once (an index can name 100,000 samples).
        known: dict[tuple[Any, str], tuple[int | None, bool]] = {}
        for entry in index.pack_entries.get(sha, ()):
            shape = entry[4]
            key = (entry[1], repr(shape))  # any JSON value: repr is hashable
            found = known.get(key)
            if found is None:
                obj = schema_objs.get(entry[1])
                found = known[key] = (
                    (None, False)
                    if obj is None
                    else (sample_nbytes(obj, shape), obj.column_type == "ndarray")
                )
            want, exact = found
            if want is None or (entry[3] != want if exact else entry[3] > want):
                bad = True
                break
        if bad:
            raise RemoteError(
                f"object packs/{sha}.idx on stock remote {label} names samples its commit's schemas "
                f"do not allow; nothing was written; {mend_advice(label)}"
            )


def _sample_checker(obj: Any) -> Callable[[memoryview, Any, str], tuple[int, ...] | None]:
    """A test that raw bytes from a pack are the sample with Hangar digest
    ``digest``: the sample's shape (ints) when they are, else None."""
    blake2b = hashlib.blake2b
    if obj.column_type == "bytes":

        def bytes_digest(raw: memoryview, shape: Any, digest: str) -> tuple[int, ...] | None:
            # Hangar's bytes digest (hashmachine.pybytes_hasher_tcode_3), on
            # the pack's bytes without a copy.
            return () if "3=" + blake2b(raw, digest_size=20).hexdigest() == digest else None

        return bytes_digest
    if obj.column_type != "ndarray":

        def decoded(raw: memoryview, shape: Any, digest: str) -> tuple[int, ...] | None:
            return () if obj.data_hash_digest(_decode(obj, bytes(raw), shape)) == digest else None

        return decoded
    dtype = np.dtype(obj.dtype)
    num, itemsize = dtype.num, dtype.itemsize
    # shape -> (its ints, byte length, the digest's tail); samples of a
    # column mostly share one shape, checked and packed once.
    known: dict[tuple[Any, ...], tuple[tuple[int, ...], int, bytes]] = {}

    def array_digest(raw: memoryview, shape: Any, digest: str) -> tuple[int, ...] | None:
        # Hangar's ndarray digest (hashmachine.ndarray_hasher_tcode_0) without
        # building the array: blake2b-160 of the C-order bytes, then of the
        # shape and the dtype number as C ints.
        try:
            ints, length, tail = known[tuple(shape)]
        except KeyError:
            if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
                return None
            try:
                packed = array.array("i", [*shape, num]).tobytes()
            except OverflowError:
                return None
            ints, length, tail = known.setdefault(
                tuple(shape), (tuple(shape), int(np.prod(shape, dtype=np.int64)) * itemsize, packed)
            )
        except TypeError:  # not a list of numbers
            return None
        if len(raw) != length or type(shape) is not list:
            return None
        hasher = blake2b(raw, digest_size=20)
        hasher.update(tail)
        return ints if "0=" + hasher.hexdigest() == digest else None

    return array_digest


_Sample = tuple[str, memoryview, Any]  # digest, raw bytes in its pack, shape (checked ints)


def _write_numpy10(
    repo_path: Path, obj: Any, items: list[_Sample], written: list[Path]
) -> list[tuple[bytes, bytes]]:
    """Write samples of a numpy-memmap (backend 10) column as Hangar's backend
    would, a file of COLLECTION_SIZE at a time; their hash records come back
    and the files written are added to ``written``, not yet synced.

    Hangar's ``write_data`` costs a Python call, a slice assignment and a
    checksum per sample; here a file's samples land in one copy when they
    have the column's full shape. The files and records are the backend's
    own (same layout, same checksums), so reads do not know the difference.
    """
    shape = tuple(obj.shape)
    dtype = np.dtype(obj.dtype)
    handles = BACKEND_ACCESSOR_MAP["10"](repo_path=repo_path, schema_shape=shape, schema_dtype=dtype)
    handles.open(mode="a", remote_operation=True)
    kvs: list[tuple[bytes, bytes]] = []
    try:
        for start in range(0, len(items), COLLECTION_SIZE):
            chunk = items[start : start + COLLECTION_SIZE]
            handles._create_schema(remote_operation=True)
            uid = handles.w_uid
            # Taken from the handles: closing them would msync it, one file
            # at a time; the caller syncs all files at once (_sync_files).
            block = handles.wFp.pop(uid)
            handles.w_uid = None
            written.append(Path(repo_path, DIR_DATA, "10", f"{uid}.npy"))
            _preallocate(written[-1], block.offset, len(chunk) * int(block[0].nbytes))
            try:
                if all(s == shape for _, _, s in chunk):
                    joined = b"".join(raw for _, raw, _ in chunk)
                    block[: len(chunk)] = np.frombuffer(joined, dtype=dtype).reshape(len(chunk), *shape)
                else:
                    for i, (_, raw, s) in enumerate(chunk):
                        block[(i, *[slice(0, n) for n in s])] = np.frombuffer(raw, dtype=dtype).reshape(s)
            except ValueError:
                raise RemoteError(
                    "a sample on the remote does not fit its column's shape; the remote is damaged"
                ) from None
            del block
            full = numpy_10_encode(uid, "{}", 0, shape).decode().replace(":0:", ":{}:", 1)
            if full.format("c", 7).encode() != numpy_10_encode(uid, "c", 7, shape):
                full = ""  # not the layout expected: Hangar's function for every record
            for i, (digest, raw, s) in enumerate(chunk):
                # Hangar's record, numpy_10_encode(uid, checksum, i, shape), with
                # the full-shape case formatted from a template.
                val = (
                    full.format(xxh64_hexdigest(raw), i).encode()
                    if s == shape and full
                    else numpy_10_encode(uid, xxh64_hexdigest(raw), i, s)
                )
                kvs.append((f"{_DATA_KEY_PREFIX}{digest}".encode(), val))
    finally:
        handles.close()
    return kvs


def _data_files(repo_path: Path) -> set[Path]:
    """The files of the store's data folders (to remove those a failed pull made)."""
    found: set[Path] = set()
    for folder in (DIR_DATA, DIR_DATA_REMOTE, DIR_DATA_STORE):
        with contextlib.suppress(OSError):
            found.update(p for p in Path(repo_path, folder).rglob("*") if not p.is_dir())
    return found


def _records(local: _Local, digests: list[str]) -> dict[bytes, bytes]:
    """The hash records of ``digests`` as they are now (key -> value)."""
    if not digests:
        return {}
    txn = TxnRegister().begin_reader_txn(local.env.hashenv)
    try:
        with txn.cursor() as cursor:
            return dict(cursor.getmulti([hash_data_db_key_from_raw_key(d) for d in digests]))
    finally:
        TxnRegister().abort_reader_txn(local.env.hashenv)


def _out_of_space(
    exc: BaseException, local: _Local, before: set[Path], wanted: list[str], prior: dict[bytes, bytes]
) -> None:
    """A full disk while writing a pull: remove the files it made and the
    records of the samples it wrote (as they were before), then one line
    saying so; any other failure is left to the caller."""
    full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc)
    if not full:
        return
    repo_path = Path(local.env.repo_path)
    for path in _data_files(repo_path) - before:  # first: it frees the space the records need
        with contextlib.suppress(OSError):
            path.unlink()
    with contextlib.suppress(Exception):
        txn = TxnRegister().begin_writer_txn(local.env.hashenv)
        try:
            for digest in wanted:
                key = hash_data_db_key_from_raw_key(digest)
                if key in prior:
                    txn.put(key, prior[key])
                else:
                    txn.delete(key)
        finally:
            TxnRegister().commit_writer_txn(local.env.hashenv)
    raise StockroomError(
        f"no space left on the disk of {repo_path} while writing the pulled data; nothing of it "
        f"was kept: free some space there, then run the command again"
    ) from None


def _preallocate(path: Path, offset: int, length: int) -> None:
    """Reserve the disk blocks a memmap write will fill: written through the
    map into a sparse file on a full disk, they would end the process with a
    bus error (SIGBUS); reserved first, a full disk is an OSError (ENOSPC)."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, offset, length)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        # EOPNOTSUPP/EINVAL: a file system without it; its writes are then plain ones.
    finally:
        os.close(fd)


def _sync_files(paths: list[Path]) -> None:
    """fsync ``paths`` (pages written through a shared memmap included), in
    parallel: fsync releases the GIL and the file system batches them."""

    def sync(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="stock-sync") as pool:
        list(pool.map(sync, paths))


def fetch(
    root: Path,
    store: ObjectStore,
    targets: Iterable[str],
    columns: set[str] | None = None,
    lazy: bool = False,
) -> Summary:
    """Bring the stock commits ``targets`` (their data: only ``columns``, Hangar
    names, when given) and their ancestors' records from the remote.

    ``lazy``: no data is downloaded; each sample is recorded with where the
    remote keeps it, and fetched when first read (``stockroom.store.lazy``).
    A target that is here but not on the remote (a merge made here) gets the
    data it lacks from the packs of its nearest ancestors the remote has.
    What each sample becomes is :mod:`stockroom.store.samples`'s rule.

    Everything is downloaded and verified before anything is written; then
    schemas, data, records of samples not fetched, and commit records last,
    under the stock writer lock.
    """
    local = _Local(root)
    summary = Summary()
    manifests: dict[str, dict[str, Any]] = {}
    order: list[str] = []  # commits whose records to write, parents first
    wanted: dict[str, str] = {}  # sample digest -> schema, to download
    placeholders: dict[str, str] = {}  # sample digest -> schema, recorded as on the remote
    index = _RemoteIndex(store)

    targets = [t for t in targets if t]
    for target in targets:
        _check(_COMMIT_RE, target, "commit digest")
    complete = complete_commits(root)
    data_targets = []
    found_complete = []
    for target in targets:
        if target in complete:
            continue  # every sample here: nothing to look at
        if local.has_commit(target):
            cols = _columns(local.commit(target)[2])
            digests = [d for name, (_, ds) in cols.items() if columns is None or name in columns for d in ds]
            states = samples.states(local.env, digests).values()
            if all(st is samples.State.LOCAL for st in states):
                if columns is None:
                    found_complete.append(target)
                continue  # here already, with its data
            if lazy and all(st in samples.READABLE for st in states):
                continue  # here already, readable on demand
        data_targets.append(target)
    mark_complete(root, found_complete)
    if not data_targets:
        return summary

    # Manifests: the targets, and ancestors that are not here (records only).
    # A target made here (a merge) has none: its records are here, and the
    # remote's commits nearest to it say where its data is.
    made_here: dict[str, tuple[bytes, bytes, bytes]] = {}
    seen: set[str] = set()
    post: list[tuple[str, bool]] = [(t, False) for t in reversed(data_targets)]
    while post:
        d, expanded = post.pop()
        if expanded:
            order.append(d)
            continue
        if d in seen:
            continue
        seen.add(d)
        if local.has_commit(d) and d not in data_targets:
            continue
        if d in data_targets and local.has_commit(d) and not store.exists(commit_object(d)):
            made_here[d] = local.commit(d)
            continue
        manifests[d] = read_manifest(store, d)
        summary.objects += 1
        post.append((d, True))
        for parent in _parents(manifests[d]["_records"][0]):
            if parent not in seen:
                post.append((parent, False))
    sources = {a: index.add_commit(a) for a in _nearest_on_remote(local, store, list(made_here))}
    summary.objects += len(sources)

    target_samples: dict[str, list[str]] = {}
    ref_vals = [(d, manifests[d]["_records"][2]) for d in order]
    ref_vals += [(d, records[2]) for d, records in made_here.items()]
    for d, ref_val in ref_vals:
        cols = _columns(ref_val)
        if d in data_targets:
            target_samples[d] = [digest for _, digests in cols.values() for digest in digests]
        for name, (schema, digests) in cols.items():
            take = d in data_targets and (columns is None or name in columns)
            for digest in digests:
                (wanted if take else placeholders)[digest] = schema
    for d in wanted:
        placeholders.pop(d, None)
    have = samples.states(local.env, list(wanted) + list(placeholders))
    wanted = {d: s for d, s in wanted.items() if samples.to_download(have[d])}
    placeholders = {d: s for d, s in placeholders.items() if samples.to_record(have[d], lazy)}

    # Where each wanted sample is: the targets' pack indexes (and, for a
    # target made here, those of the remote's commits nearest to it).
    for d in data_targets:
        if d in manifests:
            index.load_packs(manifests[d]["packs"].items())
            summary.objects += len(manifests[d]["packs"])
    gone = {d for m in manifests.values() for d in m.get("pruned", ()) if isinstance(d, str)}
    for digest in [d for d in wanted if d in gone and d not in index.where]:
        schema = wanted.pop(digest)  # dropped by a run's retention where it was pushed from
        if samples.to_record(have[digest], lazy):
            placeholders[digest] = schema
    by_pack: dict[str, list[str]] = defaultdict(list)
    for digest in wanted:
        sha = index.where.get(digest)
        if sha is None:
            if made_here:
                raise RemoteError(
                    f"stock remote {store.label} lacks sample {digest} of stock commit "
                    f"{', '.join(made_here)}, which was made here; push it from the clone that wrote "
                    f"it, or pull from a stock remote that has it (`stock pull REMOTE`)"
                )
            raise RemoteError(
                f"the remote lacks sample {digest} that its manifest names; the remote is damaged"
            )
        by_pack[sha].append(digest)

    schemas: dict[str, bytes] = {}
    for d in order:
        schemas.update(manifests[d]["_schemas"])
    for manifest in sources.values():
        schemas.update(manifest["_schemas"])
    lazy_specs: dict[str, str] = {}  # sample digest -> its lazy record's text
    schema_objs = {s: column_type_object_from_schema(schema_spec_from_db_val(v)) for s, v in schemas.items()}
    if lazy:
        # Every sample recorded here, the ancestors' too (a later checkout of
        # one reads them), says where it is.
        from stockroom.store import lazy as lazy_reads

        for d in order:
            for sha, info in manifests[d]["packs"].items():
                index.load_pack(sha, info)
        placeholders.update({d: s for d, s in wanted.items() if samples.to_record(have[d], lazy)})
        used: set[str] = set()
        for digest, schema in placeholders.items():
            sha = index.where.get(digest)
            if sha is not None:
                lazy_specs[digest] = samples.lazy_record(schema, digest, sha)
                used.add(sha)
        # Lazy reads trust these indexes' lengths and shapes: checked here.
        _check_entries(index, used, schema_objs, store.label)
        lazy_reads.keep_for_lazy(
            root / HANGAR_DIR, store.label, {sha: index.raw[sha] for sha in used}, schemas
        )
        wanted, by_pack = {}, defaultdict(list)
    _check_entries(index, by_pack, schema_objs, store.label)
    checkers = {s: _sample_checker(obj) for s, obj in schema_objs.items()}

    def download(sha: str, digests: list[str]) -> tuple[bytes, dict[str, list[_Sample]]]:
        # Runs in a worker: reading and hashing release the GIL, so packs
        # download while others are checked.
        name = f"packs/{sha}"
        # No further than the size the index adds up to (plus one byte, to see more).
        data = store.get(name, index.packs[sha]["size"])
        if len(data) != index.packs[sha]["size"] or hashlib.sha256(data).hexdigest() != sha:
            raise RemoteError(
                f"object {name} on stock remote {store.label} is corrupt or truncated (digest mismatch); "
                f"nothing was written; {mend_advice(store.label)}"
            )
        # The pack's digest is not in the commit's: each sample is checked
        # against the Hangar digest the commit records name.
        view = memoryview(data)
        out: dict[str, list[_Sample]] = defaultdict(list)
        for digest in digests:
            _, schema, offset, length, shape = index.entries[digest]
            check = checkers.get(schema)
            if check is None or wanted[digest] != schema:
                raise RemoteError(
                    f"object {name}.idx on stock remote {store.label} is inconsistent; nothing was written; "
                    f"{mend_advice(store.label)}"
                )
            raw = view[offset : offset + length]
            ints = check(raw, shape, digest)
            if ints is None:
                raise RemoteError(
                    f"sample {digest} in {name} on stock remote {store.label} is corrupt; nothing was "
                    f"written; {mend_advice(store.label)}"
                )
            out[schema].append((digest, raw, ints))
        return data, out

    received: dict[str, list[_Sample]] = defaultdict(list)
    total = sum(index.packs[sha]["size"] for sha in by_pack)
    with Progress(total, "pulling", unit="B", unit_scale=True) as bar:
        with ThreadPoolExecutor(max_workers=_FETCH_WORKERS, thread_name_prefix="stock-fetch") as pool:
            futures: list[Future[tuple[bytes, dict[str, list[_Sample]]]]] = [
                pool.submit(download, sha, digests) for sha, digests in sorted(by_pack.items())
            ]
            try:
                for future in futures:
                    data, got = future.result()
                    summary.objects += 1
                    summary.nbytes += len(data)
                    bar.update(len(data))
                    for schema, items in got.items():
                        received[schema].extend(items)
            finally:
                for future in futures:
                    future.cancel()

    lock = WriterLock(root / HANGAR_DIR)
    lock.acquire()
    before = _data_files(Path(local.env.repo_path))
    prior = _records(local, [d for d in wanted if have[d] == _REMOTE_BACKEND])  # put back if the disk fills
    try:
        writer = ContentWriter(local.env)
        written: set[str] = set()
        with _quiet():
            for schema, val in schemas.items():
                writer.schema(schema, val)
            records: list[tuple[bytes, bytes]] = []
            files: list[Path] = []
            for schema, items in received.items():
                obj = schema_objs[schema]
                # The schema's own backend: numpy-memmap columns stay backend 10.
                if obj.column_type == "ndarray" and obj.backend == "10":
                    records.extend(_write_numpy10(Path(local.env.repo_path), obj, items, files))
                elif obj.column_type == "bytes":
                    # The backends take any buffer: no copy of large samples.
                    writer.data(schema, [(d, raw) for d, raw, _ in items])
                else:
                    writer.data(schema, [(d, _decode(obj, bytes(raw), shape)) for d, raw, shape in items])
                written.update(d for d, _, _ in items)
                summary.samples += len(items)
            # The data is on disk before any record names it.
            _sync_files(files)
            if records:
                records.sort()
                txn = TxnRegister().begin_writer_txn(local.env.hashenv)
                try:
                    with txn.cursor() as cursor:
                        cursor.putmulti(records)
                finally:
                    TxnRegister().commit_writer_txn(local.env.hashenv)
            commiting.move_process_data_to_store(local.env.repo_path, remote_operation=True)
            grouped: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for digest, schema in placeholders.items():
                if digest in gone and digest not in lazy_specs:
                    # the PRUNED record (written as Hangar's remote record "50:pruned")
                    grouped[schema].append((digest, samples.PRUNED_TEXT))
                    continue
                grouped[schema].append((digest, lazy_specs.get(digest, schema)))
            if grouped:
                forget_complete(root)
            for schema, refs in grouped.items():
                writer.data(schema, refs, backend=_REMOTE_BACKEND)
            for d in order:
                if not local.has_commit(d):
                    parent, spec, ref = manifests[d]["_records"]
                    writer.commit(d, parent, spec, ref)
                    summary.commits += 1
                    summary.names.append(d)
        mark_complete(
            root,
            [
                d
                for d, digests in target_samples.items()
                if all(x in written or have.get(x) is samples.State.LOCAL for x in digests)
            ],
        )
    except (OSError, lmdb.Error) as exc:
        _out_of_space(exc, local, before, list(wanted), prior)
        raise
    finally:
        lock.release()
    target_refs = dict(ref_vals)  # a target made here has no manifest: its records are local
    summary.data_samples = _data_samples((target_refs[d] for d in data_targets if d in target_refs), written)
    return summary


def _nearest_on_remote(local: _Local, store: ObjectStore, commits: list[str]) -> list[str]:
    """The ancestors of ``commits`` (here) that the remote has and whose
    children on the way are here only: where the data they name is."""
    found: list[str] = []
    seen = set(commits)
    stack = [p for d in commits for p in _parents(local.commit(d)[0])]
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        if store.exists(commit_object(d)):
            found.append(d)
        elif local.has_commit(d):
            stack.extend(_parents(local.commit(d)[0]))
    return found


def missing_commits(root: Path, digests: Iterable[str]) -> list[str]:
    """Those of ``digests`` that the local repository lacks."""
    local = _Local(root)
    return [d for d in digests if d and not local.has_commit(d)]


# Hangar's reads and writes follow the sample states (stockroom.store.samples).
samples.install()
