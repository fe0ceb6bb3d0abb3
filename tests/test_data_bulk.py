"""Bulk reads and writes on stock.data columns, the backend they use, and the
per-sample read path that follows head.stock without reopening Hangar."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom.headfile import HANGAR_DIR
from stockroom.storages import data as data_module


def run_git(*args: str, cwd: Path) -> None:
    subprocess.run(("git", *args), cwd=cwd, check=True, capture_output=True, text=True)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 6, 5), dtype=np.uint8)


def commit_all(stock: stockroom.StockRoom, repo: Path, message: str) -> str:
    digest = stock.commit(message)
    run_git("add", "head.stock", cwd=repo)
    run_git("commit", "-q", "-m", message, cwd=repo)
    return digest


# ------------------------------------------------------------------ get_many
def test_get_many_returns_samples_in_the_order_asked(stock: stockroom.StockRoom) -> None:
    arr = images(20)
    stock.data["img"].update({**{i: arr[i] for i in range(10)}, **{f"k/{i}": arr[10 + i] for i in range(10)}})
    stock.commit("twenty")
    keys: list[int | str] = ["k/3", 7, 0, "k/9", 7]
    got = stock.data["img"].get_many(keys)
    want = [arr[13], arr[7], arr[0], arr[19], arr[7]]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape and np.array_equal(g, w)
    assert stock.data["img"].get_many([]) == []


def test_get_many_accepts_any_iterable(stock: stockroom.StockRoom) -> None:
    arr = images(5)
    stock.data["img"].update(enumerate(arr))
    stock.commit("five")
    got = stock.data["img"].get_many(k for k in range(5) if k % 2 == 0)
    assert [int(g[0, 0]) for g in got] == [int(arr[k][0, 0]) for k in (0, 2, 4)]


def test_get_many_missing_and_invalid_keys(stock: stockroom.StockRoom) -> None:
    stock.data["img"].update(enumerate(images(3)))
    stock.commit("three")
    with pytest.raises(KeyError) as info:
        stock.data["img"].get_many([0, 1, 99, 2])
    assert info.value.args == (99,)
    with pytest.raises(ValueError):
        stock.data["img"].get_many([0, ""])
    with pytest.raises(ValueError):
        stock.data["img"].get_many([0, -1])
    with pytest.raises(KeyError):
        stock.data["nothing"].get_many([0])


def test_get_many_reads_own_staged_writes(stock: stockroom.StockRoom) -> None:
    arr = images(4)
    stock.data["img"].update(enumerate(arr[:2]))
    stock.commit("two")
    stock.data["img"].update({2: arr[2], 0: arr[3]})  # staged, not committed
    got = stock.data["img"].get_many([0, 1, 2])
    assert np.array_equal(got[0], arr[3]) and np.array_equal(got[1], arr[1]) and np.array_equal(got[2], arr[2])


def test_get_batch_stacks_in_key_order(stock: stockroom.StockRoom) -> None:
    arr = images(8)
    stock.data["img"].update(enumerate(arr))
    stock.commit("eight")
    batch = stock.data["img"].get_batch([5, 1, 1, 7])
    assert batch.dtype == np.uint8 and batch.shape == (4, 6, 5)
    assert np.array_equal(batch, arr[[5, 1, 1, 7]])
    empty = stock.data["img"].get_batch([])
    assert empty.shape == (0, 6, 5) and empty.dtype == np.uint8


def test_get_batch_of_scalar_samples(stock: stockroom.StockRoom) -> None:
    labels = np.arange(10, dtype=np.int64) * 3
    stock.data["label"].update(enumerate(labels))  # numpy scalars become 0-dim samples
    stock.commit("labels")
    assert stock.data["label"][4].shape == ()
    batch = stock.data["label"].get_batch(range(10))
    assert batch.dtype == np.int64 and np.array_equal(batch, labels)


# ------------------------------------------------------- following head.stock
def test_bulk_and_per_sample_reads_follow_git_checkout(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    first, second = images(6, seed=1), images(6, seed=2)
    stock.data["img"].update(enumerate(first))
    commit_all(stock, stock_repo, "first")
    run_git("switch", "-q", "-c", "other", cwd=stock_repo)
    stock.data["img"].update(enumerate(second))
    commit_all(stock, stock_repo, "second")

    column = stock.data["img"]  # one handle, kept across checkouts
    assert np.array_equal(column[3], second[3])
    run_git("switch", "-q", "main", cwd=stock_repo)
    assert np.array_equal(column[3], first[3])  # at once, same handle
    assert np.array_equal(column.get_batch(range(6)), first)
    run_git("switch", "-q", "other", cwd=stock_repo)
    assert np.array_equal(column.get_batch(range(6)), second)
    assert [np.array_equal(a, b) for a, b in zip(column.get_many(range(6)), second, strict=True)] == [True] * 6


def test_reads_inside_optimize_follow_head_stock_too(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    first, second = images(3, seed=3), images(3, seed=4)
    stock.data["img"].update(enumerate(first))
    commit_all(stock, stock_repo, "first")
    run_git("switch", "-q", "-c", "other", cwd=stock_repo)
    stock.data["img"].update(enumerate(second))
    commit_all(stock, stock_repo, "second")
    with stock.optimize():
        assert np.array_equal(stock.data["img"][1], second[1])
        run_git("switch", "-q", "main", cwd=stock_repo)
        assert np.array_equal(stock.data["img"][1], first[1])


def test_column_appears_after_checkout_of_a_commit_that_has_it(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["x"] = 1
    commit_all(stock, stock_repo, "no data yet")
    column = stock.data["img"]
    with pytest.raises(KeyError):
        column[0]
    run_git("switch", "-q", "-c", "with-data", cwd=stock_repo)
    stock.data["img"][0] = images(1)[0]
    commit_all(stock, stock_repo, "data")
    assert np.array_equal(column[0], images(1)[0])
    run_git("switch", "-q", "main", cwd=stock_repo)
    with pytest.raises(KeyError):
        column[0]
    assert 0 not in column


def test_data_handles_are_reused(stock: stockroom.StockRoom) -> None:
    assert stock.data["img"] is stock.data["img"]
    assert stock.data["img"] is not stock.data["other"]
    with pytest.raises(ValueError):
        stock.data[""]
    with pytest.raises(ValueError):
        stock.data[3]  # type: ignore[index]


# ------------------------------------------------------------------- backend
def test_data_columns_use_the_numpy_memmap_backend(stock: stockroom.StockRoom) -> None:
    stock.data["img"].update(enumerate(images(3)))
    stock.data["label"][0] = np.int64(7)
    stock.data["big"][0] = np.zeros(1000, dtype=np.float32)  # Hangar alone would pick HDF5 "00"
    stock.commit("columns")
    co = stock.get_hangar_checkout()
    try:
        for name in ("img", "label", "big"):
            assert co.columns[f"data.{name}"].backend == data_module.MEMMAP_BACKEND == "10"
    finally:
        co.close()


def test_huge_samples_keep_hangars_backend(stock: stockroom.StockRoom, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_module, "MEMMAP_MAX_BYTES", 100)
    stock.data["small"][0] = np.zeros(25, dtype=np.float32)  # 100 bytes: memmap
    stock.data["huge"][0] = np.zeros((32, 32), dtype=np.float32)  # over the limit: Hangar decides
    stock.commit("sizes")
    co = stock.get_hangar_checkout()
    try:
        assert co.columns["data.small"].backend == "10"
        assert co.columns["data.huge"].backend == "01"
    finally:
        co.close()
    assert np.array_equal(stock.data["huge"][0], np.zeros((32, 32), dtype=np.float32))


# --------------------------------------------------------- bulk write, msync
def test_bulk_write_flushes_per_block_not_per_sample(stock: stockroom.StockRoom, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hangar's numpy backend msyncs after every sample; stockroom's compat
    layer leaves one flush per write block (and one per full 1000-sample file)."""
    flushes = []
    real_flush = np.memmap.flush

    def counting_flush(self: np.memmap) -> None:
        flushes.append(self.filename)
        real_flush(self)

    monkeypatch.setattr(np.memmap, "flush", counting_flush)
    arr = images(2500, seed=5)
    stock.data["img"].update(enumerate(arr))
    assert 3 <= len(flushes) <= 10, len(flushes)  # 3 files of 1000 slots, not 2500 msyncs
    assert len(set(flushes)) == 3
    stock.commit("bulk")
    assert np.array_equal(stock.data["img"].get_batch(range(2500)), arr)


def test_bulk_write_is_complete_for_another_process(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    arr = images(2100, seed=6)
    with stock.optimize():
        stock.data["img"].update(enumerate(arr[:1500]))
        stock.data["img"].update(enumerate(arr[1500:], start=1500))
        stock.commit("bulk")
    np.save(stock_repo / "want.npy", arr)
    code = textwrap.dedent("""
        import numpy as np, stockroom
        want = np.load("want.npy")
        with stockroom.StockRoom() as stock:
            got = stock.data["img"].get_batch(range(len(want)))
        print(bool(np.array_equal(got, want)))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=stock_repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_bulk_write_converts_every_kind_of_sample(stock: stockroom.StockRoom) -> None:
    base = np.arange(6, dtype=np.int32).reshape(2, 3)
    samples: dict[int, object] = {
        0: base,
        1: base.astype(">i4"),  # big-endian
        2: np.ascontiguousarray(base.T).T,  # not C-contiguous
        3: np.asfortranarray(base),  # Fortran order
        4: np.int32(5) + base,  # computed array
    }
    torch = pytest.importorskip("torch")
    samples[5] = torch.from_numpy(base.copy())
    stock.data["m"].update(samples)
    stock.data["s"].update({i: np.int32(i) for i in range(3)})  # numpy scalars: 0-dim samples
    stock.data["l"].update({0: [[1, 2], [3, 4]], 1: [[5, 6], [7, 8]]})  # lists: numpy's int64
    stock.commit("kinds")
    for key in range(6):
        got = stock.data["m"][key]
        assert got.dtype == np.int32 and got.dtype.byteorder in "=|"
        assert np.array_equal(got, base + (5 if key == 4 else 0))
    assert [stock.data["s"][i].shape for i in range(3)] == [()] * 3
    assert stock.data["l"][1].dtype == np.int64 and stock.data["l"][1].tolist() == [[5, 6], [7, 8]]


def test_failed_bulk_write_stores_nothing(stock: stockroom.StockRoom) -> None:
    arr = images(5)
    bad = {**{i: arr[i] for i in range(4)}, 4: arr[4].astype(np.float32)}
    with pytest.raises(TypeError, match="uint8"):
        stock.data["img"].update(bad)
    with pytest.raises(TypeError, match="sample 3"):
        stock.data["img"].update({**{i: arr[i] for i in range(3)}, 3: np.zeros(2, dtype=np.complex64)})
    with pytest.raises(ValueError, match="shape"):
        stock.data["img"].update({0: arr[0], 1: arr[1][:2]})
    assert "img" not in stock.data and len(stock.data["img"]) == 0


# ------------------------------------------------------------- damaged store
def test_per_sample_read_of_a_deleted_data_file_says_what_to_do(stock_repo: Path) -> None:
    with stockroom.StockRoom() as stock:
        stock.data["img"].update(enumerate(images(4)))
        stock.commit("four")
    for path in (stock_repo / HANGAR_DIR / "data").rglob("*.npy"):
        path.unlink()
    with stockroom.StockRoom() as stock:
        with pytest.raises(stockroom.StockroomError, match="damaged"):
            stock.data["img"][0]
        with pytest.raises(stockroom.StockroomError, match="damaged"):
            stock.data["img"].get_many([1, 2])
