"""A commit costs what changed (issue 26): stockroom's own commit path
(stockroom/store/commitrefs.py) writes what Hangar's commit would, and fails
loudly when Hangar's format is not what it relies on."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom.store import commitrefs
from stockroom.store.repository import open_repository


def test_hangar_format_is_what_commitrefs_writes() -> None:
    """Fails when Hangar's separators, compression or digest change."""
    commitrefs.check_format()


def _packed(records: list[tuple[bytes, bytes]]) -> bytes:
    return b"$".join(k + b" " + v for k, v in records)


@pytest.mark.parametrize("seed", range(12))
def test_build_matches_hangar_for_random_edits(seed: int) -> None:
    """Edits anywhere (front, middle, end; adds, deletes, changes; small and
    over one blosc block) give Hangar's digest and its compressed blocks."""
    from hangar.records import parsing

    rng = random.Random(seed)
    n = rng.choice([0, 1, 3, 200, 30_000])
    keys = sorted({b"f:c:#%d" % rng.randrange(10**6) for _ in range(n)})
    old = [(k, b"0=%040x" % rng.randrange(16**40)) for k in keys]
    parent = commitrefs.build(None, _packed(old))
    new = dict(old)
    for _ in range(rng.choice([1, 2, 50])):
        op = rng.random()
        if op < 0.3 and new:
            new.pop(rng.choice(sorted(new)))
        elif op < 0.6 and new:
            new[rng.choice(sorted(new))] = b"0=%040x" % rng.randrange(16**40)
        else:
            new[rng.choice([b"a:x%d", b"f:c:#%d", b"s:z%d"]) % rng.randrange(10**6)] = b"0=" + b"e" * 40
    records = sorted(new.items())
    ours = commitrefs.build(parent, _packed(records))
    theirs = parsing.commit_ref_db_val_from_raw_val(records)
    assert commitrefs.refs_digest(ours.digests) == theirs.digest
    assert commitrefs._blocks(ours.blob) == commitrefs._blocks(theirs.raw)
    back = parsing.commit_ref_raw_val_from_db_val(ours.blob)
    assert back.digest == theirs.digest
    assert back.db_kvs == tuple(records)


def _room(tmp_path: Path) -> stockroom.StockRoom:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    stockroom.init_repo(name="t", email="t@example.com", path=tmp_path, install_hooks=False)
    return stockroom.StockRoom(tmp_path)


def test_fast_commit_is_a_hangar_commit(tmp_path: Path) -> None:
    """Commits made without a checkout read back through Hangar (which checks
    each commit's digest against its records), through stock.at, and leave
    the commits before them as they were."""
    stock = _room(tmp_path)
    images = np.arange(3000 * 16, dtype=np.uint8).reshape(3000, 16)
    with stock.optimize():
        stock.data["img"].update(enumerate(images))
    first = stock.commit("data")
    digests = [first]
    for i in range(3):
        stock.tag["step"] = i
        stock.data["img"][5000 + i] = images[i]
        digests.append(stock.commit(f"step {i}"))
    del stock.data["img"][0]
    digests.append(stock.commit("delete"))
    with pytest.raises(stockroom.StockroomError, match="nothing to commit"):
        stock.commit("again")
    repo = open_repository(tmp_path)
    from hangar.records.commiting import get_commit_ref

    for digest in digests:
        get_commit_ref(repo._env.refenv, digest)  # raises on a digest that does not match
    repo.verify_repo_integrity()
    assert 0 not in stock.data["img"] and len(stock.data["img"]) == 3002
    for digest, n, step in zip(
        digests, (3000, 3001, 3002, 3003, 3002), (None, "0", "1", "2", "2"), strict=True
    ):
        co = repo.checkout(commit=digest)
        try:
            assert len(co.columns["data.img"]) == n
            assert co.columns["data.img"][7].tolist() == images[7].tolist()
            if step is not None:
                assert co.columns["tag"]["step"] == f"i:{step}"
        finally:
            co.close()


def test_fast_commit_equals_hangar_commit(tmp_path: Path) -> None:
    """The same staged records committed by Hangar in a copy give the same
    refs digest and records."""
    import shutil

    from hangar.records.commiting import get_commit_ref

    stock = _room(tmp_path / "a")
    with stock.optimize():
        stock.data["img"].update((i, np.full(4, i, np.uint8)) for i in range(200))
    stock.commit("data")
    stock.tag["lr"] = 0.5
    stock.data["img"][999] = np.zeros(4, np.uint8)
    stock.close()
    shutil.copytree(tmp_path / "a", tmp_path / "b", symlinks=True)
    ours = stockroom.StockRoom(tmp_path / "a").commit("x")
    other = stockroom.StockRoom(tmp_path / "b")
    with other._store.writing(check_branch=False) as writer:
        theirs = writer.commit("x")
    a = get_commit_ref(open_repository(tmp_path / "a")._env.refenv, ours)
    b = get_commit_ref(open_repository(tmp_path / "b")._env.refenv, theirs)
    assert a == b


def test_reset_after_fast_commit_keeps_committed_data(tmp_path: Path) -> None:
    """A reset after a commit drops only what was staged since: the commit's
    own data stays readable (Hangar's commit clears the staged hash records;
    this one must too)."""
    stock = _room(tmp_path)
    stock.data["c"][0] = np.arange(3)
    stock.tag["t"] = 1
    stock.commit("one")
    stock.data["c"][1] = np.arange(3) + 1
    assert stock.reset() is True
    np.testing.assert_array_equal(stock.data["c"][0], np.arange(3))
    assert 1 not in stock.data["c"]
    stock.close()
    again = stockroom.StockRoom(tmp_path)
    np.testing.assert_array_equal(again.data["c"][0], np.arange(3))
    assert again.tag["t"] == 1


def test_staged_changes_without_a_checkout_match_hangars_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stock status` and the pre-commit hook's listing, read from the
    records that differ, say what Hangar's staged diff says."""
    stock = _room(tmp_path)
    with stock.optimize():
        stock.data["img"].update((i, np.full(4, i % 256, np.uint8)) for i in range(500))
        stock.data["old"][0] = np.zeros(2)
        stock.tag["a"] = 1
        stock.tag["b"] = 2
    stock.commit("base")
    store = stock._store
    assert store.staged_changes() == [] and store.staged_status() == "CLEAN"
    stock.tag["a"] = 5
    del stock.tag["b"]
    stock.tag["c"] = 3
    stock.data["img"][3] = np.zeros(4, np.uint8)
    stock.data["img"][9999] = np.zeros(4, np.uint8)
    del stock.data["img"][0]
    stock.data["new"]["k"] = np.ones(3)
    with stock.optimize():
        import torch

        stock.model["net"] = {"w": torch.ones(2, 2)}
    fast = store.staged_changes()
    assert store.staged_status() == "DIRTY"
    monkeypatch.setattr(type(store), "_fast_counts", lambda self: None)
    slow = store.staged_changes()
    assert fast == slow and len(fast) >= 4


def test_commit_after_a_writer_died_holding_hangars_lock(tmp_path: Path) -> None:
    """A writer killed mid-commit leaves Hangar's lock record; the next
    commit (holding stockroom's lock, so no writer is alive) takes it over."""
    from hangar.records import heads

    stock = _room(tmp_path)
    stock.tag["a"] = 1
    stock.commit("one")
    heads.acquire_writer_lock(open_repository(tmp_path)._env.branchenv, "dead-writer")
    stock.tag["a"] = 2
    stock.commit("two")
    assert stockroom.StockRoom(tmp_path).tag["a"] == 2


def test_one_column_of_the_work_tree_matches_the_snapshot(tmp_path: Path) -> None:
    """`stock status`'s staged-tag line reads the tag column alone; it says
    what the full snapshot of the work tree says."""
    from stockroom.store.view import (
        ColumnRecords,
        column_of_commit,
        column_of_work_tree,
        commit_records,
        snapshot_of_work_tree,
    )

    stock = _room(tmp_path)
    stock.data["img"][0] = np.zeros(2)
    stock.tag["a"] = 1
    stock.tag["b"] = 2
    head = stock.commit("one")
    store = stock._store
    assert column_of_commit(store, head, "tag") == commit_records(store, head)["tag"].samples
    assert column_of_work_tree(store, "tag") == commit_records(store, head)["tag"].samples
    stock.tag["a"] = 3
    stock.tag["c"] = 4
    del stock.tag["b"]
    fast = column_of_work_tree(store, "tag")
    with snapshot_of_work_tree(store) as snap:
        assert fast == snap.records.get("tag", ColumnRecords()).samples
    assert sorted(fast) == ["a", "c"]
    assert column_of_commit(store, "", "tag") == {}
    assert column_of_commit(store, head, "nothing") == {}


def test_a_wrong_sidecar_is_not_trusted(tmp_path: Path) -> None:
    """Record digests kept for a commit that do not give its digest (a file
    a power cut left unwritten) are hashed again, not used."""
    stock = _room(tmp_path)
    stock.data["c"].update((i, np.full(2, i)) for i in range(50))
    first = stock.commit("one")
    sidecar = tmp_path / ".hangar" / "stockroom-refs" / first
    sidecar.write_bytes(bytes(len(sidecar.read_bytes())))  # same length, zeros
    commitrefs._LAST.clear()
    stock.tag["t"] = 1
    second = stock.commit("two")
    from hangar.records.commiting import get_commit_ref

    get_commit_ref(open_repository(tmp_path)._env.refenv, second)  # raises on a wrong digest


def test_commit_after_a_crash_left_no_staging_directory(tmp_path: Path) -> None:
    """Hangar empties its staging directory by deleting and re-creating it; a
    commit killed in between leaves none, and the next commit (which folds
    staged tags into a column first) re-creates it."""
    import shutil

    stock = _room(tmp_path)
    stock.tag["a"] = 1
    stock.commit("one")
    stock.close()
    shutil.rmtree(tmp_path / ".hangar" / "stage_data")
    again = stockroom.StockRoom(tmp_path)
    again.tag["a"] = 2
    again.commit("two")
    assert stockroom.StockRoom(tmp_path).tag["a"] == 2
