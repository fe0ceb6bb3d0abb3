"""A Hangar commit whose cost follows the staged change (part of the
compatibility layer: it writes Hangar 0.5.2's commit records itself).

Hangar's ``WriterCheckout.commit`` costs what the repository holds, several
times over: opening the writer checkout loads every sample key of every
column, ``diff.status()`` (run twice) decompresses the parent commit's record
list and hashes each record, and ``commit_records`` walks the staging area,
hashes each record again and compresses the whole list with zstd at level 8
(at 100,000 samples, 0.45 s of the commit). What a commit stores is fixed by
the format, and this module writes exactly that, byte for byte:

* the ``ref`` value: the staged records, each ``key + b" " + value``, sorted
  (the staging LMDB's order), joined by ``b"$"`` and compressed by blosc
  (zstd, clevel 8, typesize 1, no shuffle). Blosc compresses its input in
  independent blocks of 512 KiB (for inputs of at least that size), so the
  blocks that lie wholly before the first changed byte are the parent's
  compressed blocks, copied; only the rest is compressed again.
* the refs digest: blake2b (20 bytes) of the concatenated hex blake2b
  digests of each record. Per-record digests of records outside the changed
  range are the parent's (kept in memory and in a sidecar file per commit,
  ``.hangar/stockroom-refs/<digest>``), only the changed ones are hashed.
* spec and parent values, the commit digest, the branch head, the move
  of staged data files and clearing the staged hash records (which
  ``reset_staging_area`` would otherwise delete, committed or not):
  Hangar's own functions, in ``WriterCheckout.commit``'s order.

What stays proportional to the repository: one walk of the staging LMDB
(C-level cursor iteration), joining the records, comparing the byte strings
(memcmp) and one blake2b pass over 40 bytes per record; see
docs/scaling.md. :func:`check_format` fails when Hangar's format is not what
this relies on; tests/test_scale.py runs it and compares every commit made
here with the one Hangar would make.
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings
from hashlib import blake2b
from pathlib import Path
from typing import Any, NamedTuple
from uuid import uuid4

import blosc
from hangar.constants import CMT_DIGEST_JOIN_KEY, CMT_KV_JOIN_KEY, CMT_REC_JOIN_KEY
from hangar.records import commiting, hashs, heads, parsing
from hangar.txnctx import TxnRegister

from stockroom.layout import COMMIT_REFS_DIR

_REC = CMT_REC_JOIN_KEY  # b"$" between records
_KV = CMT_KV_JOIN_KEY  # b" " between a record's key and value
_DIGEST = 20  # blake2b digest_size Hangar uses for record and commit digests
_HEADER = 16  # blosc 1 frame header: version, versionlz, flags, typesize, nbytes, blocksize, cbytes
_MEMCPYED = 0x02  # blosc flag: stored uncompressed


class Refs(NamedTuple):
    """One commit's record list: the joined records and their binary digests."""

    packed: bytes  # records joined by b"$" (what the ref value compresses)
    digests: bytes  # 20-byte blake2b of each record, in order
    blob: bytes  # the compressed ref value as stored


# The last commit this process made or read, per repository: a training loop
# that commits each checkpoint finds its parent here and reads nothing back.
_LAST: dict[str, tuple[str, Refs]] = {}


def compress(packed: bytes) -> bytes:
    """Compress a joined record list exactly as Hangar's commit does."""
    return bytes(blosc.compress(packed, typesize=1, clevel=8, shuffle=blosc.NOSHUFFLE, cname="zstd"))


def refs_digest(digests: bytes) -> str:
    """Hangar's refs digest from the records' binary digests."""
    assert CMT_DIGEST_JOIN_KEY == ""  # the hex digests are concatenated (check_format)
    return blake2b(digests.hex().encode(), digest_size=_DIGEST).hexdigest()


def _record_digests(records: list[bytes]) -> bytes:
    return b"".join(blake2b(r, digest_size=_DIGEST).digest() for r in records)


def _count(packed: bytes) -> int:
    return packed.count(_REC) + 1 if packed else 0


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the longest common prefix. Compares copied slices (memcmp):
    a memoryview compares element by element, ten times slower."""
    lo, hi = 0, min(len(a), len(b))
    step = 1 << 16
    while step >= 1:
        while lo + step <= hi and a[lo : lo + step] == b[lo : lo + step]:
            lo += step
        step //= 2
    return lo


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    """Length of the longest common suffix, at most ``limit``."""
    n = 0
    la, lb = len(a), len(b)
    step = 1 << 16
    while step >= 1:
        while n + step <= limit and a[la - n - step : la - n] == b[lb - n - step : lb - n]:
            n += step
        step //= 2
    return n


def _seps(data: bytes, start: int, end: int, total: int) -> int:
    """Separators in ``data[start:end]``, counting the smaller side (``total``
    is the count in all of ``data``)."""
    if end - start <= len(data) // 2:
        return data.count(_REC, start, end)
    return total - data.count(_REC, 0, start) - data.count(_REC, end)


def _blocks(blob: bytes) -> tuple[int, int, int, list[bytes]]:
    """(flags, nbytes, blocksize, each block's compressed bytes in block
    order) of a blosc 1 frame; no blocks when it is stored uncompressed.

    Blosc's threads write blocks in the order they finish, so the block
    starts are not sorted (Hangar's own commits differ in layout from run to
    run); a block ends where the next block in the frame begins.
    """
    _, _, flags, _, nbytes, blocksize, cbytes = struct.unpack_from("<BBBBiii", blob)
    if flags & _MEMCPYED or blocksize <= 0:
        return flags, nbytes, blocksize, []
    nblocks = -(-nbytes // blocksize)
    starts = struct.unpack_from(f"<{nblocks}i", blob, _HEADER)
    ends = dict(zip(sorted(starts), [*sorted(starts)[1:], cbytes], strict=True))
    return flags, nbytes, blocksize, [blob[s : ends[s]] for s in starts]


def join_blocks(header: bytes, nbytes: int, blocksize: int, blocks: list[bytes]) -> bytes:
    """A blosc 1 frame of ``blocks`` in order (what one thread writes)."""
    offset = _HEADER + 4 * len(blocks)
    starts = []
    for block in blocks:
        starts.append(offset)
        offset += len(block)
    head = bytearray(header[:_HEADER])
    struct.pack_into("<iii", head, 4, nbytes, blocksize, offset)
    return bytes(head) + struct.pack(f"<{len(blocks)}i", *starts) + b"".join(blocks)


def splice(parent: Refs, packed: bytes, prefix: int) -> bytes:
    """The compressed value of ``packed``, reusing ``parent``'s compressed
    blocks that lie wholly inside the first ``prefix`` bytes (the same bytes
    in both): the same blocks as :func:`compress` of ``packed`` gives."""
    if not parent.blob or len(packed) < 2 * (1 << 19):
        return compress(packed)
    flags, _, blocksize, blocks = _blocks(parent.blob)
    nblocks = -(-len(packed) // blocksize) if blocks else 0
    keep = min(prefix // blocksize, nblocks - 1, len(blocks)) if blocks else 0
    if keep <= 0:
        return compress(packed)
    tail = compress(packed[keep * blocksize :])
    tflags, tbytes, tblock, tblocks = _blocks(tail)
    # The tail frame must cut the same blocks (blocksize, or one last block)
    # with the same codec flags; otherwise compress it all (never guess).
    if not tblocks or tflags != flags or tblock != min(blocksize, tbytes):
        return compress(packed)
    return join_blocks(parent.blob, len(packed), blocksize, blocks[:keep] + tblocks)


def build(parent: Refs | None, packed: bytes) -> Refs:
    """The new commit's :class:`Refs` from its joined records, reusing what
    ``parent`` shares with it."""
    if parent is None or not parent.packed or not packed:
        records = packed.split(_REC) if packed else []
        return Refs(packed, _record_digests(records), compress(packed))
    old = parent.packed
    prefix = _common_prefix(packed, old)
    suffix = _common_suffix(packed, old, min(len(packed), len(old)) - prefix)
    # Records that end before the first difference, and those that start
    # after a separator inside the common suffix, are the parent's records
    # at the same index from either end (an underestimate is still right).
    n_old = len(parent.digests) // _DIGEST
    # The first ``prefix`` bytes are the same in both: count in the parent.
    head = _seps(old, 0, prefix, n_old - 1)
    tail = _seps(old, len(old) - suffix, len(old), n_old - 1) if suffix else 0
    start = packed.rfind(_REC, 0, prefix) + 1 if head else 0
    end = packed.find(_REC, len(packed) - suffix) if tail else len(packed)
    middle = packed[start:end].split(_REC) if start <= end else []
    digests = (
        parent.digests[: head * _DIGEST]
        + _record_digests(middle)
        + parent.digests[(n_old - tail) * _DIGEST :]
    )
    return Refs(packed, digests, splice(parent, packed, prefix))


def staged_packed(stageenv: Any) -> bytes:
    """The staging area's records, joined as a commit's ref value holds them."""
    txn = TxnRegister().begin_reader_txn(stageenv)
    try:
        with txn.cursor() as cursor:
            return _REC.join(map(_KV.join, cursor.iternext(keys=True, values=True)))
    finally:
        TxnRegister().abort_reader_txn(stageenv)


def changed(parent: Refs, packed: bytes) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """(parent's records, staged records) in the range where the two differ,
    each as key -> value: every record outside it is the same in both."""
    old = parent.packed
    prefix = _common_prefix(packed, old)
    suffix = _common_suffix(packed, old, min(len(packed), len(old)) - prefix)

    def middle(data: bytes) -> dict[bytes, bytes]:
        if not data:
            return {}
        start = data.rfind(_REC, 0, prefix) + 1
        end = data.find(_REC, len(data) - suffix) if suffix else len(data)
        if end < 0:
            end = len(data)
        if start > end:
            return {}
        return dict(rec.split(_KV, 1) for rec in data[start:end].split(_REC) if rec)

    return middle(old), middle(packed)


def staged_counts(repo: Any) -> dict[str, dict[str, int]] | None:
    """What is staged against the staging branch's head, per column: added,
    deleted, mutated samples; new column, column deleted, column changed (as
    Hangar's ``diff.staged()`` reports them). Empty when nothing is staged;
    None before the first commit (nothing to compare with)."""
    env = repo._env
    branch = heads.get_staging_branch_head(env.branchenv)
    parent = load(Path(env.repo_path), env.refenv, str(heads.get_branch_head_commit(env.branchenv, branch)))
    if parent is None:
        return None
    packed = staged_packed(env.stageenv)
    if packed == parent.packed:
        return {}
    before, after = changed(parent, packed)
    counts: dict[str, dict[str, int]] = {}
    schema_kinds = {"added": "new column", "deleted": "column deleted", "mutated": "column changed"}
    for key in before.keys() | after.keys():
        if before.get(key) == after.get(key):
            continue
        kind = "added" if key not in before else "deleted" if key not in after else "mutated"
        parts = key.decode().split(":")
        if parts[0] == "s":
            kind = schema_kinds[kind]
        elif parts[0] not in ("f", "n"):
            continue
        kinds = counts.setdefault(parts[1], {})
        kinds[kind] = kinds.get(kind, 0) + 1
    return counts


def _column_range(records: Any, prefix: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for key, value in records:
        if not key.startswith(prefix):
            break
        out.append((key, value))
    return out


def staged_column(repo: Any, column: str) -> list[tuple[bytes, bytes]]:
    """The staging area's records of flat column ``column``: a range scan of
    the sorted staging LMDB, so it costs that column's records only."""
    prefix = f"f:{column}:".encode()
    env = repo._env
    txn = TxnRegister().begin_reader_txn(env.stageenv)
    try:
        with txn.cursor() as cursor:
            if not cursor.set_range(prefix):
                return []
            return _column_range(cursor.iternext(keys=True, values=True), prefix)
    finally:
        TxnRegister().abort_reader_txn(env.stageenv)


def committed_column(repo: Any, digest: str, column: str) -> list[tuple[bytes, bytes]]:
    """Commit ``digest``'s records of flat column ``column`` (decompressing
    its record list, hashing nothing: Hangar's reader checks each record's
    digest, which a listing of one column does not need)."""
    env = repo._env
    cached = _LAST.get(str(env.repo_path))
    if cached is not None and cached[0] == digest:
        packed = cached[1].packed
    else:
        txn = TxnRegister().begin_reader_txn(env.refenv)
        try:
            blob = txn.get(parsing.commit_ref_db_key_from_raw_key(digest))
        finally:
            TxnRegister().abort_reader_txn(env.refenv)
        if blob is None:
            raise ValueError(f"No commit exists with the hash: {digest}")
        packed = bytes(blosc.decompress(bytes(blob)))
    prefix = f"f:{column}:".encode()
    start = 0 if packed.startswith(prefix) else packed.find(_REC + prefix) + 1
    if start == 0 and not packed.startswith(prefix):
        return []

    def records() -> Any:
        pos = start
        while pos < len(packed):
            end = packed.find(_REC, pos)
            end = len(packed) if end < 0 else end
            key, _, value = packed[pos:end].partition(_KV)
            yield key, value
            pos = end + 1

    return _column_range(records(), prefix)


def _sidecar(repo_path: Path, digest: str) -> Path:
    return repo_path / COMMIT_REFS_DIR / digest


def load(repo_path: Path, refenv: Any, digest: str) -> Refs | None:
    """The stored commit ``digest``'s :class:`Refs` (None before the first commit)."""
    if not digest:
        return None
    cached = _LAST.get(str(repo_path))
    if cached is not None and cached[0] == digest:
        return cached[1]
    txn = TxnRegister().begin_reader_txn(refenv)
    try:
        blob = txn.get(parsing.commit_ref_db_key_from_raw_key(digest))
    finally:
        TxnRegister().abort_reader_txn(refenv)
    if blob is None:
        raise ValueError(f"No commit exists with the hash: {digest}")
    blob = bytes(blob)
    packed = bytes(blosc.decompress(blob))
    n = _count(packed)
    digests = b""
    with contextlib.suppress(OSError):
        digests = _sidecar(repo_path, digest).read_bytes()
    if len(digests) != n * _DIGEST or not _names(refenv, digest, digests):
        # None kept, or not this commit's (a power cut can leave a renamed
        # file unwritten): hash the records again, once.
        digests = _record_digests(packed.split(_REC) if packed else [])
    return Refs(packed, digests, blob)


def _names(refenv: Any, digest: str, digests: bytes) -> bool:
    """Whether ``digests`` give commit ``digest`` with its stored spec and parent."""
    txn = TxnRegister().begin_reader_txn(refenv)
    try:
        spec = txn.get(parsing.commit_spec_db_key_from_raw_key(digest))
        parent = txn.get(parsing.commit_parent_db_key_from_raw_key(digest))
    finally:
        TxnRegister().abort_reader_txn(refenv)
    if spec is None or parent is None:
        return False
    found = parsing.cmt_final_digest(
        parent_digest=parsing.commit_parent_raw_val_from_db_val(bytes(parent)).digest,
        spec_digest=parsing.commit_spec_raw_val_from_db_val(bytes(spec)).digest,
        refs_digest=refs_digest(digests),
    )
    return bool(found == digest)


def _keep(repo_path: Path, digest: str, refs: Refs, parent: str) -> None:
    """Remember the new commit's digests (memory, and its sidecar file); the
    parent's sidecar goes: only branch heads are worth keeping."""
    _LAST[str(repo_path)] = (digest, refs)
    folder = repo_path / COMMIT_REFS_DIR
    with contextlib.suppress(OSError):
        folder.mkdir(exist_ok=True)
        tmp = folder / f".{digest}.{os.getpid()}.tmp"
        tmp.write_bytes(refs.digests)
        os.replace(tmp, folder / digest)  # never seen torn (a torn one is only re-hashed)
        if parent:
            _sidecar(repo_path, parent).unlink(missing_ok=True)


def commit(repo: Any, message: str) -> str | None:
    """Commit Hangar's staging area on its staging branch, as
    ``WriterCheckout.commit`` would (same records, same digest); None when
    nothing is staged. The caller holds stockroom's writer lock; Hangar's is
    taken here, so no Hangar writer checkout may be open."""
    env = repo._env
    repo_path = Path(env.repo_path)
    lock = str(uuid4())
    try:
        heads.acquire_writer_lock(env.branchenv, lock)
    except PermissionError:
        # The caller holds stockroom's writer lock, so Hangar's was left by a
        # writer that died (store.base._hangar_writer does the same).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            repo.force_release_writer_lock()
        heads.acquire_writer_lock(env.branchenv, lock)
    try:
        branch = heads.get_staging_branch_head(env.branchenv)
        parent_digest = str(heads.get_branch_head_commit(env.branchenv, branch))
        parent = load(repo_path, env.refenv, parent_digest)
        packed = staged_packed(env.stageenv)
        if parent is not None and packed == parent.packed:
            return None
        if parent is None and not packed:
            return None
        refs = build(parent, packed)
        digest = _write(repo, refs, message, branch)
        _keep(repo_path, digest, refs, parent_digest)
        return digest
    finally:
        heads.release_writer_lock(env.branchenv, lock)


def _write(repo: Any, refs: Refs, message: str, branch: str) -> str:
    """Hangar's commit_records with the ref value and digest given."""
    env = repo._env
    repo_path = Path(env.repo_path)
    parent = commiting._commit_ancestors(branchenv=env.branchenv)
    cfg = commiting.configparser.ConfigParser()
    cfg.read(Path(repo_path, commiting.CONFIG_USER_NAME))
    spec = commiting._commit_spec(message=message, user=cfg["USER"]["name"], email=cfg["USER"]["email"])
    digest = str(
        parsing.cmt_final_digest(
            parent_digest=parent.digest, spec_digest=spec.digest, refs_digest=refs_digest(refs.digests)
        )
    )
    txn = TxnRegister().begin_writer_txn(env.refenv)
    try:
        txn.put(parsing.commit_spec_db_key_from_raw_key(digest), spec.raw, overwrite=False)
        txn.put(parsing.commit_parent_db_key_from_raw_key(digest), parent.raw, overwrite=False)
        txn.put(parsing.commit_ref_db_key_from_raw_key(digest), refs.blob, overwrite=False)
    finally:
        TxnRegister().commit_writer_txn(env.refenv)
    commiting.move_process_data_to_store(repo_path)
    heads.set_branch_head_commit(env.branchenv, branch, digest)
    # As WriterCheckout.commit: the hash records staged so far are committed
    # now; a later reset removes only those staged after this commit.
    hashs.clear_stage_hash_records(env.stagehashenv)
    return digest


def check_format() -> None:
    """Raise AssertionError when Hangar's commit format is not what this
    module writes: the separators, the ref value's compression and digest,
    checked against Hangar's own functions."""
    assert (_REC, _KV, CMT_DIGEST_JOIN_KEY) == (b"$", b" ", ""), "Hangar's record separators changed"
    records = [(b"f:col:#%d" % i, b"0=%040x" % (i * 7919)) for i in range(30_000)]
    packed = _REC.join(map(_KV.join, records))
    theirs = parsing.commit_ref_db_val_from_raw_val(records)
    ours = build(None, packed)
    assert _blocks(ours.blob) == _blocks(theirs.raw), "Hangar compresses a commit's records differently"
    assert refs_digest(ours.digests) == theirs.digest, "Hangar digests a commit's records differently"
    back = parsing.commit_ref_raw_val_from_db_val(ours.blob)
    assert back.digest == theirs.digest and back.db_kvs == tuple(records)
    changed = list(records)
    changed[-3] = (changed[-3][0], b"0=" + b"f" * 40)
    changed.append((b"s:zz:f", b"abc"))
    packed2 = _REC.join(map(_KV.join, changed))
    theirs2 = parsing.commit_ref_db_val_from_raw_val(changed)
    ours2 = build(ours, packed2)
    assert _blocks(ours2.blob) == _blocks(theirs2.raw), "blosc's blocks are no longer independent"
    assert refs_digest(ours2.digests) == theirs2.digest
