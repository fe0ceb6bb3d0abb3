"""The fast paths of push and pull agree with Hangar's own, and stay safe.

Push and pull parse commit records, compute sample digests and write
numpy-memmap files without going through Hangar's per-sample calls; these
tests hold each shortcut to Hangar's result, check that a hostile remote is
still caught by the per-sample digests, and that a no-op pull is cheap
without hiding data that a partial pull left out.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import lmdb
import numpy as np
import pytest

import stockroom
from stockroom.remote.objects import DirectoryStore, RemoteError
from stockroom.store import transfer
from tests.conftest import run_git
from tests.test_remote import clone, make_project, stock_cli


def _hangar_columns(ref_val: bytes) -> dict[str, tuple[str, list[str]]]:
    """Hangar's answer: the records loaded into LMDB and read with its queries."""
    from hangar.constants import LMDB_SETTINGS
    from hangar.records import parsing, queries

    kvs = parsing.commit_ref_raw_val_from_db_val(ref_val).db_kvs
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = lmdb.open(str(Path(tmp, "refs.lmdb")), sync=False, **LMDB_SETTINGS)
        try:
            with db.begin(write=True) as txn, txn.cursor() as cursor:
                cursor.putmulti(kvs, append=True)
            query = queries.RecordQuery(db)
            schemas = {k.column: v.digest for k, v in query.schema_specs().items()}
            for name in query.column_names():
                out[name] = (schemas[name], sorted({h.digest for h in query.column_data_hashes(name)}))
        finally:
            db.close()
    return out


def test_commit_records_parse_as_hangar_does(tmp_path: Path) -> None:
    from hangar.records import parsing

    proj = tmp_path / "p"
    first = make_project(proj, n=30)
    with stockroom.StockRoom(proj) as stock:
        del stock.data["img"][3]
        stock.tag["other"] = "x"
        second = stock.commit("second")
    local = transfer._Local(proj)
    for digest in (first, second):
        ref = local.commit(digest)[2]
        assert transfer._columns(ref) == _hangar_columns(ref)
        assert transfer._ref_digest(ref) == parsing.commit_ref_raw_val_from_db_val(ref).digest
    assert len(transfer._columns(local.commit(second)[2])["data.img"][1]) == 29


def test_sample_digests_match_hangar() -> None:
    from hangar.records.hashmachine import ndarray_hasher_tcode_0, pybytes_hasher_tcode_3

    rng = np.random.default_rng(3)
    for arr in (
        rng.integers(0, 255, (5, 7), dtype=np.uint8),
        np.array(7, dtype=np.int64),
        rng.standard_normal((2, 3, 4)).astype(np.float32),
        np.zeros((0, 3), np.float64),
    ):
        check = transfer._sample_checker(SimpleNamespace(column_type="ndarray", dtype=arr.dtype))
        raw = memoryview(arr.tobytes())
        digest = ndarray_hasher_tcode_0(arr)
        assert check(raw, list(arr.shape), digest) == arr.shape
        assert (
            check(raw, list(arr.shape), digest[:-1] + "0" if digest[-1] != "0" else digest[:-1] + "1") is None
        )
        assert check(raw, [*arr.shape, 1], digest) is None  # another shape
        assert check(raw, "bad", digest) is None and check(raw, None, digest) is None
    check = transfer._sample_checker(SimpleNamespace(column_type="bytes"))
    assert check(memoryview(b"model bytes"), None, pybytes_hasher_tcode_3(b"model bytes")) == ()
    assert check(memoryview(b"model bytez"), None, pybytes_hasher_tcode_3(b"model bytes")) is None


def test_bulk_memmap_write_reads_back_through_hangar(stock_repo: Path) -> None:
    """Full-shape and smaller samples, over more than one backend file."""
    repo_path = stock_repo / ".hangar"
    obj = SimpleNamespace(shape=(4, 5), dtype=np.int16)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(-99, 99, (4, 5), dtype=np.int16) for _ in range(transfer.COLLECTION_SIZE + 3)]
    arrays[5] = arrays[5][:2, :3].copy()
    items = [(f"0={i:040x}", memoryview(a.tobytes()), a.shape) for i, a in enumerate(arrays)]
    files: list[Path] = []
    kvs = transfer._write_numpy10(repo_path, obj, items, files)
    transfer._sync_files(files)
    transfer.commiting.move_process_data_to_store(repo_path, remote_operation=True)
    assert len(files) == 2 and len(kvs) == len(arrays)
    handles = transfer.BACKEND_ACCESSOR_MAP["10"](repo_path=repo_path, schema_shape=None, schema_dtype=None)
    handles.open(mode="r")
    try:
        for (key, val), (digest, _, _), arr in zip(kvs, items, arrays, strict=True):
            assert key == f"h:{digest}".encode()
            got = handles.read_data(transfer.backend_decoder(val))  # checks Hangar's checksum too
            np.testing.assert_array_equal(got, arr)
    finally:
        handles.close()


def _push_and_clone(tmp_path: Path) -> tuple[Path, Path, Path, str]:
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    proj = tmp_path / "alice"
    digest = make_project(proj, remote, n=40)
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=proj)
    assert stock_cli("push", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    return proj, remote, clone(bare, tmp_path / "bob"), digest


def test_consistent_pack_with_a_wrong_sample_is_refused(tmp_path: Path) -> None:
    """A remote that rewrites a pack, its index and the manifest's pack list
    consistently (the pack digests check out) is caught by the sample digests,
    which the commit's digest covers."""
    _, remote, bob, digest = _push_and_clone(tmp_path)
    manifest_path = remote / "commits" / digest
    manifest = json.loads(manifest_path.read_bytes())
    sha = max(manifest["packs"], key=lambda s: manifest["packs"][s]["size"])
    data = bytearray((remote / "packs" / sha).read_bytes())
    index = json.loads((remote / "packs" / f"{sha}.idx").read_bytes())
    _, _, offset, _, _ = index["samples"][7]
    data[offset] ^= 0x01
    new_sha = hashlib.sha256(bytes(data)).hexdigest()
    index["pack"] = new_sha
    raw_index = json.dumps(index).encode()
    (remote / "packs" / new_sha).write_bytes(bytes(data))
    (remote / "packs" / f"{new_sha}.idx").write_bytes(raw_index)
    info = manifest["packs"].pop(sha)
    manifest["packs"][new_sha] = {**info, "index": hashlib.sha256(raw_index).hexdigest()}
    manifest_path.chmod(0o644)
    manifest_path.write_text(json.dumps(manifest))
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 1, out.stdout
    assert "corrupt" in out.stderr and "Traceback" not in out.stderr
    assert not transfer._Local(bob).has_commit(digest)
    assert not any(p.is_file() and p.stat().st_size for p in (bob / ".hangar" / "data").rglob("*"))


def test_noop_pull_is_cheap_and_partial_pull_is_completed(tmp_path: Path) -> None:
    _, remote, bob, digest = _push_and_clone(tmp_path)
    complete = bob / ".hangar" / transfer.COMPLETE_FILE
    assert stock_cli("pull", "--column", "img", cwd=bob).returncode == 0
    assert not complete.exists() or digest not in complete.read_text().split()
    # The full pull still fetches what the partial one left out, then notes it.
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert digest in complete.read_text().split()
    with stockroom.StockRoom(bob) as stock:
        assert int(stock.data["label"][13]) == 3
        assert stock.model["net"][1].tolist() == [1.0, 1.0, 1.0]
    # With the note, a pull of that commit asks the remote nothing at all.
    shutil.rmtree(remote)
    remote.mkdir()
    summary = transfer.fetch(bob, DirectoryStore(remote, "origin"), [digest])
    assert summary.objects == 0 and summary.samples == 0
    # Without it, the records are looked at (and the note comes back).
    complete.unlink()
    assert transfer.fetch(bob, DirectoryStore(remote, "origin"), [digest]).objects == 0
    assert digest in complete.read_text().split()


def test_noop_pull_without_note_still_fetches_missing_data(tmp_path: Path) -> None:
    """A note never written for a partial pull: the missing column is fetched."""
    _, remote, bob, digest = _push_and_clone(tmp_path)
    assert stock_cli("pull", "--column", "img", cwd=bob).returncode == 0
    with pytest.raises(RemoteError):
        # The remote is gone: the pull must want it, not take the shortcut.
        transfer.fetch(bob, DirectoryStore(tmp_path / "nowhere", "origin"), [digest])
