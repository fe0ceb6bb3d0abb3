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

import base64
import contextlib
import hashlib
import json
import re
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import numpy as np
from hangar.backends import BACKEND_ACCESSOR_MAP, backend_decoder
from hangar.backends.remote_50 import REMOTE_50_Handler
from hangar.columns.constructors import column_type_object_from_schema
from hangar.constants import LMDB_SETTINGS
from hangar.records import (
    commiting,
    hash_data_db_key_from_raw_key,
    parsing,
    queries,
    schema_spec_from_db_val,
)
from hangar.remote.content import ContentReader, ContentWriter
from hangar.txnctx import TxnRegister

from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR
from stockroom.lock import WriterLock
from stockroom.progress import Progress
from stockroom.remote.objects import ObjectStore, RemoteError
from stockroom.store.repository import _quiet, open_repository

FORMAT = 1
# Samples of one schema are packed up to this size: few objects, each large
# enough to move at full speed, small enough to retry.
PACK_BYTES = 64 << 20
_COMMIT_RE = re.compile(r"^a=[0-9a-f]{40}$")
_SCHEMA_RE = re.compile(r"^[0-9]=[0-9a-f]{8,64}$")
_DATA_RE = re.compile(r"^[0-9]=[0-9a-f]{8,64}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_REMOTE_BACKEND = "50"


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
    samples: int = 0
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


@contextlib.contextmanager
def _commit_query(ref_val: bytes) -> Iterator[queries.RecordQuery]:
    """The records of a commit, from its raw ref value, for queries."""
    kvs = parsing.commit_ref_raw_val_from_db_val(ref_val).db_kvs
    with tempfile.TemporaryDirectory() as tmp:
        db = lmdb.open(str(Path(tmp, "refs.lmdb")), sync=False, writemap=True, **LMDB_SETTINGS)
        try:
            with db.begin(write=True) as txn, txn.cursor() as cursor:
                cursor.putmulti(kvs, append=True)
            yield queries.RecordQuery(db)
        finally:
            db.close()


def _columns(ref_val: bytes) -> dict[str, tuple[str, list[str]]]:
    """Hangar column name -> (schema digest, data digests) of a commit."""
    out: dict[str, tuple[str, list[str]]] = {}
    with _commit_query(ref_val) as query:
        schemas = {k.column: v.digest for k, v in query.schema_specs().items()}
        for name in query.column_names():
            out[name] = (schemas[name], sorted({h.digest for h in query.column_data_hashes(name)}))
    return out


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
    def sample_reader(self) -> Iterator[Any]:
        """A function digest -> stored value, with every backend open for reading."""
        handles: dict[str, Any] = {}
        for code, accessor in BACKEND_ACCESSOR_MAP.items():
            if accessor is not None:
                handles[code] = accessor(repo_path=self.env.repo_path, schema_shape=None, schema_dtype=None)
                handles[code].open(mode="r")
        txn = TxnRegister().begin_reader_txn(self.env.hashenv)

        def read(digest: str) -> Any:
            val = txn.get(hash_data_db_key_from_raw_key(digest), default=False)
            if not val:
                raise StockroomError(f"sample {digest} is missing from {HANGAR_DIR}; run `stock repair`")
            spec = backend_decoder(val)
            if spec.backend == _REMOTE_BACKEND:
                raise StockroomError(
                    "part of this stock commit's data was never fetched here (a partial `stock pull`); "
                    "run `stock pull` to fetch all of it, then push again"
                )
            return handles[spec.backend].read_data(spec)

        try:
            yield read
        finally:
            TxnRegister().abort_reader_txn(self.env.hashenv)
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

    total = sum(len(v) for v in missing.values())
    with Progress(total, "pushing samples", unit="sample") as bar, local.sample_reader() as read:
        for schema in sorted(missing):
            for pack in _build_packs(schema, missing[schema], read, bar):
                _upload_pack(store, pack, summary)
                known.add_pack(pack.sha, pack.index_sha, len(pack.data), pack.entries)
                summary.samples += len(pack.entries)

    schema_vals = {s: local.schema(s) for s in schemas}
    for digest in order:
        parent_val, spec_val, ref_val = records[digest]
        needed = commit_data[digest]
        packs: dict[str, dict[str, Any]] = {}
        cols = _columns(ref_val)
        for d in needed:
            sha = known.where.get(d)
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
        data = json.dumps(manifest, sort_keys=True).encode()
        if store.put_new(commit_object(digest), data):
            summary.objects += 1
            summary.nbytes += len(data)
        summary.commits += 1
        summary.names.append(digest)
    return summary


@dataclass
class _Pack:
    sha: str
    data: bytes
    index: bytes
    index_sha: str
    entries: list[list[Any]]


def _build_packs(schema: str, digests: list[str], read: Any, bar: Progress) -> Iterator[_Pack]:
    """Packs of up to PACK_BYTES, samples in digest order (deterministic)."""
    chunks: list[bytes] = []
    entries: list[list[Any]] = []
    size = 0

    def finish() -> _Pack:
        data = b"".join(chunks)
        sha = hashlib.sha256(data).hexdigest()
        index = json.dumps(
            {"format": FORMAT, "pack": sha, "samples": entries}, separators=(",", ":")
        ).encode()
        return _Pack(sha, data, index, hashlib.sha256(index).hexdigest(), list(entries))

    for digest in digests:
        raw, shape = _encode(read(digest))
        entries.append([digest, schema, size, len(raw), shape])
        chunks.append(raw)
        size += len(raw)
        bar.update(1)
        if size >= PACK_BYTES:
            yield finish()
            chunks, entries, size = [], [], 0
    if entries:
        yield finish()


def _upload_pack(store: ObjectStore, pack: _Pack, summary: Summary) -> None:
    # The index is written after its pack: an index on the remote means its
    # pack is whole. Both are checked first, so a re-run sends nothing twice.
    for name, data in ((f"packs/{pack.sha}", pack.data), (f"packs/{pack.sha}.idx", pack.index)):
        if store.exists(name):
            summary.skipped_objects += 1
            continue
        if store.put_new(name, data):
            summary.objects += 1
            summary.nbytes += len(data)


class _RemoteIndex:
    """Where the remote keeps each sample, from the manifests and indexes read."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.where: dict[str, str] = {}  # sample digest -> pack sha
        self.packs: dict[str, dict[str, Any]] = {}  # pack sha -> {"index": sha, "size": n}
        self.entries: dict[str, list[Any]] = {}  # sample digest -> index entry
        self.raw: dict[str, bytes] = {}  # pack sha -> its verified index, as read (lazy pulls keep it)

    def add_commit(self, digest: str) -> dict[str, Any]:
        manifest = read_manifest(self.store, digest)
        for sha, info in manifest["packs"].items():
            self.load_pack(sha, info)
        return manifest

    def load_pack(self, sha: str, info: Any) -> None:
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
        raw = self.store.get(name)
        if hashlib.sha256(raw).hexdigest() != index_sha:
            raise RemoteError(
                f"object {name} on the remote is corrupt (digest mismatch); nothing was written"
            )
        try:
            index = json.loads(raw)
            samples = index["samples"]
        except (ValueError, KeyError, TypeError):
            raise RemoteError(f"object {name} on the remote is malformed; nothing was written") from None
        entries = []
        for entry in samples:
            if not isinstance(entry, list) or len(entry) != 5:
                raise RemoteError(f"object {name} on the remote is malformed; nothing was written")
            digest, schema, offset, length, _shape = entry
            _check(_DATA_RE, digest, "sample digest")
            _check(_SCHEMA_RE, schema, "schema digest")
            if not (
                isinstance(offset, int) and isinstance(length, int) and 0 <= offset <= offset + length <= size
            ):
                raise RemoteError(f"object {name} on the remote is malformed; nothing was written")
            entries.append(entry)
        self.raw[sha] = raw
        self.add_pack(sha, index_sha, size, entries)

    def add_pack(self, sha: str, index_sha: str, size: int, entries: list[list[Any]]) -> None:
        self.packs[sha] = {"index": index_sha, "size": size}
        for entry in entries:
            self.where[entry[0]] = sha
            self.entries[entry[0]] = entry


def read_manifest(store: ObjectStore, digest: str) -> dict[str, Any]:
    """A commit's manifest from the remote, its records checked against ``digest``."""
    _check(_COMMIT_RE, digest, "commit digest")
    name = commit_object(digest)
    raw = store.get(name)
    try:
        manifest = json.loads(raw)
        ok = (
            isinstance(manifest, dict)
            and manifest.get("format") == FORMAT
            and manifest.get("commit") == digest
        )
        ok = ok and isinstance(manifest.get("schemas"), dict) and isinstance(manifest.get("packs"), dict)
    except ValueError:
        ok = False
    if not ok:
        raise RemoteError(f"object {name} on the remote is malformed or truncated; nothing was written")
    parent, spec, ref = (_unb64(manifest[k]) for k in ("parent", "spec", "ref"))
    try:
        computed = parsing.cmt_final_digest(
            parent_digest=parsing.commit_parent_raw_val_from_db_val(parent).digest,
            spec_digest=parsing.commit_spec_raw_val_from_db_val(spec).digest,
            refs_digest=parsing.commit_ref_raw_val_from_db_val(ref).digest,
        )
    except Exception:  # noqa: BLE001 - any decoding failure means a damaged object
        computed = ""
    if computed != digest:
        raise RemoteError(f"object {name} on the remote is corrupt (digest mismatch); nothing was written")
    schemas: dict[str, bytes] = {}
    for schema, val in manifest["schemas"].items():
        _check(_SCHEMA_RE, schema, "schema digest")
        raw_val = _unb64(val)
        try:
            obj = column_type_object_from_schema(schema_spec_from_db_val(raw_val))
            ok = obj.schema_hash_digest() == schema
        except Exception:  # noqa: BLE001
            ok = False
        if not ok:
            raise RemoteError(
                f"object {name} on the remote is corrupt (schema {schema}); nothing was written"
            )
        schemas[schema] = raw_val
    manifest["_records"] = (parent, spec, ref)
    manifest["_schemas"] = schemas
    return manifest


# -------------------------------------------------------------------- fetch


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

    Everything is downloaded and verified before anything is written; then
    schemas, data, placeholders for samples not fetched, and commit records
    last, under the stock writer lock.
    """
    local = _Local(root)
    summary = Summary()
    manifests: dict[str, dict[str, Any]] = {}
    order: list[str] = []  # commits whose records to write, parents first
    wanted: dict[str, str] = {}  # sample digest -> schema, to download
    placeholders: dict[str, str] = {}  # sample digest -> schema, recorded as "on the remote"
    index = _RemoteIndex(store)

    targets = [t for t in targets if t]
    for target in targets:
        _check(_COMMIT_RE, target, "commit digest")
    data_targets = []
    for target in targets:
        if local.has_commit(target):
            cols = _columns(local.commit(target)[2])
            digests = [d for name, (_, ds) in cols.items() if columns is None or name in columns for d in ds]
            backends = local.data_backends(digests)
            if all(b not in (None, _REMOTE_BACKEND) for b in backends.values()):
                continue  # here already, with its data
            if lazy and all(b is not None for b in backends.values()):
                continue  # here already, readable on demand
        data_targets.append(target)
    if not data_targets:
        return summary

    # Manifests: the targets, and ancestors that are not here (records only).
    stack = list(data_targets)
    seen: set[str] = set()
    post: list[tuple[str, bool]] = [(t, False) for t in reversed(stack)]
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
        manifests[d] = read_manifest(store, d)
        summary.objects += 1
        post.append((d, True))
        for parent in _parents(manifests[d]["_records"][0]):
            if parent not in seen:
                post.append((parent, False))

    for d in order:
        cols = _columns(manifests[d]["_records"][2])
        for name, (schema, digests) in cols.items():
            take = d in data_targets and (columns is None or name in columns)
            for digest in digests:
                (wanted if take else placeholders)[digest] = schema
    for d in wanted:
        placeholders.pop(d, None)
    have = local.data_backends(list(wanted) + list(placeholders))
    wanted = {d: s for d, s in wanted.items() if have[d] in (None, _REMOTE_BACKEND)}
    placeholders = {d: s for d, s in placeholders.items() if have[d] is None}

    # Where each wanted sample is: the targets' pack indexes.
    for d in data_targets:
        for sha, info in manifests[d]["packs"].items():
            index.load_pack(sha, info)
            summary.objects += 1
    by_pack: dict[str, list[str]] = defaultdict(list)
    for digest in wanted:
        sha = index.where.get(digest)
        if sha is None:
            raise RemoteError(
                f"the remote lacks sample {digest} that its manifest names; the remote is damaged"
            )
        by_pack[sha].append(digest)

    schemas: dict[str, bytes] = {}
    for d in order:
        schemas.update(manifests[d]["_schemas"])
    lazy_specs: dict[str, str] = {}  # sample digest -> its lazy record's text
    if lazy:
        # Every sample recorded here, the ancestors' too (a later checkout of
        # one reads them), says where it is.
        from stockroom.store import lazy as lazy_reads

        for d in order:
            for sha, info in manifests[d]["packs"].items():
                index.load_pack(sha, info)
        placeholders.update(wanted)
        used: set[str] = set()
        for digest, schema in placeholders.items():
            sha = index.where.get(digest)
            if sha is not None:
                lazy_specs[digest] = lazy_reads.placeholder(schema, digest, sha)
                used.add(sha)
        lazy_reads.keep_for_lazy(
            root / HANGAR_DIR, store.label, {sha: index.raw[sha] for sha in used}, schemas
        )
        wanted, by_pack = {}, defaultdict(list)
    schema_objs = {s: column_type_object_from_schema(schema_spec_from_db_val(v)) for s, v in schemas.items()}

    received: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    total = sum(index.packs[sha]["size"] for sha in by_pack)
    with Progress(total, "pulling", unit="B", unit_scale=True) as bar:
        for sha, digests in sorted(by_pack.items()):
            name = f"packs/{sha}"
            data = store.get(name)
            if len(data) != index.packs[sha]["size"] or hashlib.sha256(data).hexdigest() != sha:
                raise RemoteError(
                    f"object {name} on the remote is corrupt or truncated (digest mismatch); nothing was written"
                )
            summary.objects += 1
            summary.nbytes += len(data)
            bar.update(len(data))
            view = memoryview(data)
            for digest in digests:
                _, schema, offset, length, shape = index.entries[digest]
                obj = schema_objs.get(schema)
                if obj is None or wanted[digest] != schema:
                    raise RemoteError(f"object {name}.idx on the remote is inconsistent; nothing was written")
                value = _decode(obj, bytes(view[offset : offset + length]), shape)
                if obj.data_hash_digest(value) != digest:
                    raise RemoteError(
                        f"sample {digest} in {name} on the remote is corrupt; nothing was written"
                    )
                received[schema].append((digest, value))

    lock = WriterLock(root / HANGAR_DIR)
    lock.acquire()
    try:
        writer = ContentWriter(local.env)
        with _quiet():
            for schema, val in schemas.items():
                writer.schema(schema, val)
            for schema, items in received.items():
                # The schema's own backend: numpy-memmap columns stay backend 10.
                writer.data(schema, items)
                summary.samples += len(items)
            commiting.move_process_data_to_store(local.env.repo_path, remote_operation=True)
            grouped: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for digest, schema in placeholders.items():
                grouped[schema].append((digest, lazy_specs.get(digest, schema)))
            for schema, items in grouped.items():
                writer.data(schema, items, backend=_REMOTE_BACKEND)
            for d in order:
                if not local.has_commit(d):
                    parent, spec, ref = manifests[d]["_records"]
                    writer.commit(d, parent, spec, ref)
                    summary.commits += 1
                    summary.names.append(d)
    finally:
        lock.release()
    return summary


def missing_commits(root: Path, digests: Iterable[str]) -> list[str]:
    """Those of ``digests`` that the local repository lacks."""
    local = _Local(root)
    return [d for d in digests if d and not local.has_commit(d)]


def _unfetched(self: Any, hashVal: Any) -> Any:  # noqa: N803 - Hangar's signature
    # A lazy record is read from the remote; a plain one says what to pull.
    from stockroom.store import lazy as lazy_reads

    return lazy_reads.read_placeholder(Path(self.repo_path), hashVal.schema_hash)


# Hangar's own messages name commands Hangar has and stockroom does not;
# stockroom's error above says what to run when such a sample is read.
warnings.filterwarnings("ignore", message=r"Column: .* contains `reference-only` samples")
REMOTE_50_Handler.read_data = _unfetched
