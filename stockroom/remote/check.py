"""`stock fsck` and `stock push --repair`: find and mend what a remote lost.

:func:`check_remote` walks the stock commits named (and their ancestors) on
a remote and checks every object they need: each commit's manifest (its
records hash to the commit digest), and each pack and pack index its
manifest names (present, of the recorded size, hashing to its name and to
the digest the manifest records), and that the packs hold every sample the
commit names. :func:`check_local` does the same against ``.hangar``.

:func:`repair` uploads again, from this clone's data, whatever the check
finds missing or corrupt for the commits being pushed. A damaged pack whose
index is sound is rebuilt byte for byte (so every manifest naming it is
whole again); other damaged or missing data goes into new packs, and the
commit's manifest is written again to name them. Objects are replaced only
here: a normal push never overwrites anything.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockroom.errors import StockroomError
from stockroom.remote.objects import MAX_OBJECT, BadObject, ObjectMissing, ObjectStore, RemoteError

# Packs checked at once (each is read whole and hashed in its thread).
_WORKERS = 4


@dataclass
class Finding:
    """One object that is missing or corrupt, and a commit that needs it."""

    name: str
    problem: str  # "missing", "corrupt", "incomplete" (a manifest), "unreadable" (local)
    commit: str

    def __str__(self) -> str:
        return f"{self.problem}: {self.name} (needed by stock commit {self.commit})"


@dataclass
class Report:
    """What a check found."""

    findings: list[Finding] = field(default_factory=list)
    commits: int = 0
    objects: int = 0
    not_fetched: int = 0  # local check: samples recorded as on a remote (partial or lazy pull)
    cleaned: int = 0  # temporary files of interrupted pushes removed


@dataclass
class _PackState:
    index_ok: bool = False
    pack_ok: bool = False
    entries: list[list[Any]] | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Walk:
    order: list[str] = field(default_factory=list)  # commits, parents first
    manifests: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # None: missing/corrupt
    packs: dict[str, _PackState] = field(default_factory=dict)
    report: Report = field(default_factory=Report)


class _Fetched:
    """An object store that answers one ``get`` with bytes already read (so
    read_manifest's checks run on them without a second request)."""

    def __init__(self, label: str, raw: bytes) -> None:
        self.label = label
        self.raw = raw

    def get(self, name: str, limit: int = MAX_OBJECT) -> bytes:
        return self.raw


def _walk(root: Path, store: ObjectStore, targets: Iterable[str]) -> _Walk:
    from stockroom.store import transfer

    local = transfer._Local(root)
    walk = _Walk()
    report = walk.report
    stack: list[tuple[str, bool, str]] = [(t, False, t) for t in targets if t]
    seen: set[str] = set()
    while stack:
        digest, expanded, needed_by = stack.pop()
        if expanded:
            walk.order.append(digest)
            continue
        if digest in seen:
            continue
        seen.add(digest)
        name = transfer.commit_object(digest)
        manifest: dict[str, Any] | None = None
        try:
            raw = store.get(name)  # a network failure ends the check: it says nothing of the objects
            report.objects += 1
            try:
                manifest = transfer.read_manifest(_Fetched(store.label, raw), digest)  # type: ignore[arg-type]
            except RemoteError:
                report.findings.append(Finding(name, "corrupt", needed_by))
        except ObjectMissing:
            report.findings.append(Finding(name, "missing", needed_by))
        except BadObject:
            report.findings.append(Finding(name, "corrupt", needed_by))
        walk.manifests[digest] = manifest
        report.commits += 1
        if manifest is not None:
            parent_val = manifest["_records"][0]
        elif local.has_commit(digest):
            parent_val = local.commit(digest)[0]
        else:
            continue  # neither here nor readable there: its ancestors cannot be named
        stack.append((digest, True, needed_by))
        for parent in transfer._parents(parent_val):
            if parent not in seen:
                stack.append((parent, False, needed_by))

    # Every pack and index the readable manifests name, each checked once.
    todo: dict[str, tuple[dict[str, Any], str]] = {}
    for digest in walk.order:
        manifest = walk.manifests[digest]
        if manifest is not None:
            for sha, info in manifest["packs"].items():
                todo.setdefault(sha, (info, digest))

    def check(item: tuple[str, tuple[dict[str, Any], str]]) -> tuple[str, _PackState, list[Finding]]:
        sha, (info, needed_by) = item
        state = _PackState(info=info)
        found: list[Finding] = []
        index = transfer._RemoteIndex(store)
        try:
            raw_index: bytes | None = store.get(f"packs/{sha}.idx")  # a network failure ends the check
        except ObjectMissing:
            raw_index = None
            found.append(Finding(f"packs/{sha}.idx", "missing", needed_by))
        except BadObject:
            raw_index = None
            found.append(Finding(f"packs/{sha}.idx", "corrupt", needed_by))
        if raw_index is not None:
            try:
                index.load_pack(sha, info, raw_index)  # checks only: it makes no request
                state.index_ok = True
                state.entries = [index.entries[d] for d in index.where]
            except RemoteError:
                found.append(Finding(f"packs/{sha}.idx", "corrupt", needed_by))
        try:
            size = info.get("size")
            # No further than the size its checked index adds up to; longer is corrupt.
            limit = size if state.index_ok and isinstance(size, int) else MAX_OBJECT
            try:
                data = store.get(f"packs/{sha}", limit)
            except BadObject:
                data = b""  # longer than it can be, or not a file: corrupt
            state.pack_ok = len(data) == size and hashlib.sha256(data).hexdigest() == sha
            if not state.pack_ok:
                found.append(Finding(f"packs/{sha}", "corrupt", needed_by))
        except ObjectMissing:
            found.append(Finding(f"packs/{sha}", "missing", needed_by))
        return sha, state, found

    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="stock-fsck") as pool:
        for sha, state, found in pool.map(check, sorted(todo.items())):
            walk.packs[sha] = state
            report.objects += 2
            report.findings.extend(found)

    # Each manifest's packs hold every sample its commit names.
    for digest in walk.order:
        manifest = walk.manifests[digest]
        if manifest is None:
            continue
        inside: set[str] = set()
        for sha in manifest["packs"]:
            entries = walk.packs[sha].entries
            if entries is None:
                break  # an unreadable index is reported already
            inside.update(e[0] for e in entries)
        else:
            needed = {d for _, ds in transfer._columns(manifest["_records"][2]).values() for d in ds}
            if not needed <= inside:
                report.findings.append(Finding(transfer.commit_object(digest), "incomplete", digest))
    return walk


def check_remote(root: Path, store: ObjectStore, targets: Iterable[str]) -> Report:
    """Every object that ``targets`` and their ancestors need on ``store``,
    checked; temporary files of interrupted pushes are removed."""
    report = _walk(root, store, targets).report
    report.cleaned = store.clean_incoming()
    return report


def check_local(root: Path, targets: Iterable[str]) -> Report:
    """The commits ``targets``, their ancestors, and every sample they hold
    in ``.hangar``, each checked against its digest."""
    from hangar.columns.constructors import column_type_object_from_schema
    from hangar.records import schema_spec_from_db_val

    from stockroom.headfile import HANGAR_DIR
    from stockroom.store import transfer

    local = transfer._Local(root)
    report = Report()
    order: list[str] = []
    stack = [(t, t) for t in targets if t]
    seen: set[str] = set()
    while stack:
        digest, needed_by = stack.pop()
        if digest in seen:
            continue
        seen.add(digest)
        report.commits += 1
        if not local.has_commit(digest):
            report.findings.append(Finding(f"{HANGAR_DIR} commit {digest}", "missing", needed_by))
            continue
        order.append(digest)
        stack.extend((p, needed_by) for p in transfer._parents(local.commit(digest)[0]) if p not in seen)

    samples: dict[str, tuple[str, str]] = {}  # digest -> (schema, commit)
    for digest in order:
        for schema, digests in transfer._columns(local.commit(digest)[2]).values():
            for d in digests:
                samples.setdefault(d, (schema, digest))
    checkers: dict[str, Any] = {}
    for schema, commit in dict(samples.values()).items():
        try:
            obj = column_type_object_from_schema(schema_spec_from_db_val(local.schema(schema)))
            checkers[schema] = transfer._sample_checker(obj)
        except StockroomError:
            report.findings.append(Finding(f"{HANGAR_DIR} schema {schema}", "missing", commit))
    backends = local.data_backends(list(samples))
    with local.sample_reader() as read:
        for d, (schema, needed_by) in sorted(samples.items()):
            report.objects += 1
            if backends[d] is None:
                report.findings.append(Finding(f"{HANGAR_DIR} sample {d}", "missing", needed_by))
                continue
            if backends[d] == transfer._REMOTE_BACKEND:
                report.not_fetched += 1
                continue
            check = checkers.get(schema)
            try:
                _, raw, shape = next(iter(read([d])))
                ok = check is not None and check(memoryview(bytes(raw)), shape or [], d) is not None
            except Exception:  # noqa: BLE001 - any failure to read it back is damage
                ok = False
            if not ok:
                report.findings.append(Finding(f"{HANGAR_DIR} sample {d}", "unreadable", needed_by))
    return report


def repair(root: Path, store: ObjectStore, targets: Iterable[str]) -> Report:
    """Upload again, from this clone, whatever of ``targets`` (and their
    ancestors) is missing or corrupt on ``store``; what it found."""
    from stockroom.store import transfer

    targets = [t for t in targets if t]
    walk = _walk(root, store, targets)
    if not walk.report.findings:
        return walk.report
    local = transfer._Local(root)
    here = [d for d in walk.order if local.has_commit(d)]
    lost = [d for d, m in walk.manifests.items() if m is None and not local.has_commit(d)]
    if lost:
        raise StockroomError(
            f"cannot repair stock commit {lost[0]} on stock remote {store.label}: it is not in this "
            f"clone; run `stock push --repair {store.label}` in a clone that has it"
        )
    where: dict[str, str] = {}  # sample digest -> a sound pack holding it
    for sha, state in walk.packs.items():
        if state.index_ok and state.entries is not None and state.pack_ok:
            for entry in state.entries:
                where.setdefault(entry[0], sha)

    with local.sample_reader() as read:
        # A damaged pack whose index is sound: the same bytes again, from here.
        for sha, state in sorted(walk.packs.items()):
            if state.pack_ok or not state.index_ok or state.entries is None:
                continue
            entries = sorted(state.entries, key=lambda e: e[2])
            try:
                data = b"".join(bytes(raw) for _, raw, _ in read([e[0] for e in entries]))
            except StockroomError:
                continue  # not all of it here: its samples go into new packs below
            if hashlib.sha256(data).hexdigest() == sha and len(data) == state.info.get("size"):
                store.replace(f"packs/{sha}", data)
                state.pack_ok = True
                for entry in entries:
                    where.setdefault(entry[0], sha)

        # Whatever the commits name that no sound pack holds: new packs.
        records = {d: local.commit(d) for d in here}
        uncovered: dict[str, list[str]] = defaultdict(list)
        for d in here:
            for schema, digests in transfer._columns(records[d][2]).values():
                uncovered[schema].extend(x for x in digests if x not in where)
        packs: dict[str, dict[str, Any]] = {
            sha: {"index": s.info["index"], "size": s.info["size"]}
            for sha, s in walk.packs.items()
            if s.pack_ok and s.index_ok
        }
        for schema in sorted(uncovered):
            digests = sorted(set(uncovered[schema]))
            for pack in transfer._build_packs(schema, digests, read):
                state = walk.packs.get(pack.sha, _PackState())
                for name, data, ok in (
                    (f"packs/{pack.sha}", pack.data, state.pack_ok),
                    (f"packs/{pack.sha}.idx", pack.index, state.index_ok),
                ):
                    if not ok and not store.put_new(name, data):
                        store.replace(name, data)
                packs[pack.sha] = {"index": pack.index_sha, "size": len(pack.data)}
                for entry in pack.entries:
                    where[entry[0]] = pack.sha

    # Manifests, parents first: every one that was missing, corrupt, or named
    # a pack that was not sound, written again.
    sound = {sha for sha, s in walk.packs.items() if s.pack_ok and s.index_ok}
    schema_vals: dict[str, bytes] = {}
    for d in here:
        manifest = walk.manifests.get(d)
        needed = [x for _, ds in transfer._columns(records[d][2]).values() for x in ds]
        if manifest is not None and set(manifest["packs"]) <= sound:
            held = {e[0] for sha in manifest["packs"] for e in (walk.packs[sha].entries or [])}
            if set(needed) <= held:
                continue
        parent_val, spec_val, ref_val = records[d]
        cols = transfer._columns(ref_val)
        for schema, _ in cols.values():
            if schema not in schema_vals:
                schema_vals[schema] = local.schema(schema)
        data = json.dumps(
            {
                "format": transfer.FORMAT,
                "commit": d,
                "parent": transfer._b64(parent_val),
                "spec": transfer._b64(spec_val),
                "ref": transfer._b64(ref_val),
                "schemas": {s: transfer._b64(schema_vals[s]) for s, _ in cols.values()},
                "packs": {where[x]: packs[where[x]] for x in needed},
            },
            sort_keys=True,
        ).encode()
        store.replace(transfer.commit_object(d), data)
    return walk.report
