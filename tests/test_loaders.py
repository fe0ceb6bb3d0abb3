"""stockroom.loaders: StockDataset with real DataLoaders (0 and 2 workers), and tf.data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom.headfile import HANGAR_DIR
from stockroom.lock import WriterLock
from stockroom.storages import data as data_module

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from stockroom.loaders import StockDataset, tf_dataset  # noqa: E402

N = 150


def run_git(*args: str, cwd: Path) -> None:
    subprocess.run(("git", *args), cwd=cwd, check=True, capture_output=True, text=True)


def make_data(seed: int, n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (n, 4, 3), dtype=np.uint8),
        "label": rng.integers(0, 10, n, dtype=np.int64),
        "weight": rng.random((n, 2), dtype=np.float32),
    }


def write(stock: stockroom.StockRoom, arrays: dict[str, np.ndarray]) -> None:
    with stock.optimize():
        for column, values in arrays.items():
            stock.data[column].update(enumerate(values))


def commit_all(stock: stockroom.StockRoom, repo: Path, message: str) -> str:
    digest = stock.commit(message)
    run_git("add", "head.stock", cwd=repo)
    run_git("commit", "-q", "-m", message, cwd=repo)
    return digest


def epoch(dataset: StockDataset, workers: int, **kwargs: object) -> list[object]:
    loader = DataLoader(dataset, batch_size=16, shuffle=False, num_workers=workers, **kwargs)  # type: ignore[arg-type]
    return list(loader)


def concat(batches: list[object]) -> list[np.ndarray]:
    """Join the batches of a tuple-of-tensors DataLoader into numpy arrays."""
    columns = zip(*batches, strict=True)  # type: ignore[call-overload]
    return [torch.cat(list(parts)).numpy() for parts in columns]


@pytest.fixture
def filled(stock: stockroom.StockRoom, stock_repo: Path) -> dict[str, np.ndarray]:
    arrays = make_data(0)
    write(stock, arrays)
    commit_all(stock, stock_repo, "data")
    return arrays


# ---------------------------------------------------------------- basics
def test_items_are_the_stored_samples(filled: dict[str, np.ndarray], stock_repo: Path) -> None:
    ds = StockDataset(["image", "label"])
    assert len(ds) == N
    assert ds.keys() == list(range(N))
    image, label = ds[17]
    assert image.dtype == np.uint8 and np.array_equal(image, filled["image"][17])
    assert label.shape == () and int(label) == int(filled["label"][17])
    single = StockDataset("weight", path=stock_repo)
    assert np.array_equal(single[-1], filled["weight"][-1])
    with pytest.raises(IndexError):
        single[N]


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_over_several_columns(filled: dict[str, np.ndarray], workers: int) -> None:
    ds = StockDataset(["image", "label", "weight"])
    images, labels, weights = concat(epoch(ds, workers))
    assert images.dtype == np.uint8 and np.array_equal(images, filled["image"])
    assert labels.dtype == np.int64 and np.array_equal(labels, filled["label"])
    assert weights.dtype == np.float32 and np.array_equal(weights, filled["weight"])


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_shuffled_sees_every_sample_once(filled: dict[str, np.ndarray], workers: int) -> None:
    ds = StockDataset(["label", "image"])
    loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(1))
    pairs = sorted((int(lbl), img.numpy().tobytes()) for lbls, imgs in loader for lbl, img in zip(lbls, imgs, strict=True))
    want = sorted((int(lbl), img.tobytes()) for lbl, img in zip(filled["label"], filled["image"], strict=True))
    assert pairs == want


def test_keys_choose_and_order_items(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.data["x"].update({"b": np.array([2.0]), "a": np.array([1.0]), 10: np.array([10.0]), 2: np.array([3.0])})
    stock.data["y"].update({"a": np.array([5]), "b": np.array([6]), 2: np.array([7])})  # no key 10
    commit_all(stock, stock_repo, "keys")
    both = StockDataset(["x", "y"])
    assert both.keys() == [2, "a", "b"]  # shared keys only; ints first, then text
    chosen = StockDataset("x", keys=["b", 10, "b"])
    assert [float(v[0]) for v in chosen] == [2.0, 10.0, 2.0]
    with pytest.raises(KeyError, match="sample 10"):
        StockDataset(["x", "y"], keys=[10])


def test_missing_column_or_commit_is_a_clear_error(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    with pytest.raises(KeyError, match="nothing committed yet"):
        StockDataset("image")
    stock.data["image"][0] = np.zeros(2)
    commit_all(stock, stock_repo, "one")
    with pytest.raises(KeyError, match="'label' is not in stock commit"):
        StockDataset(["image", "label"])
    with pytest.raises(ValueError):
        StockDataset([])
    with pytest.raises(stockroom.StockroomError, match="not a stock repository"):
        StockDataset("image", path=stock_repo / "nowhere")


def test_transform_runs_on_each_item(filled: dict[str, np.ndarray]) -> None:
    ds = StockDataset(["image", "label"], transform=lambda item: (item[0].astype(np.float32) / 255, item[1]))
    (images, labels) = concat(epoch(ds, 2))
    assert images.dtype == np.float32
    assert np.allclose(images, filled["image"] / 255)


def test_dataset_accepts_a_stockroom(filled: dict[str, np.ndarray], stock: stockroom.StockRoom) -> None:
    ds = StockDataset("label", path=stock)
    assert [int(v) for v in ds] == filled["label"].tolist()


# ------------------------------------------------------ following head.stock
@pytest.fixture
def two_commits(stock: stockroom.StockRoom, stock_repo: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Branch main holds N samples, branch other holds N + 20 different ones."""
    first, second = make_data(1), make_data(2, N + 20)
    write(stock, first)
    commit_all(stock, stock_repo, "first")
    run_git("switch", "-q", "-c", "other", cwd=stock_repo)
    write(stock, second)
    commit_all(stock, stock_repo, "second")
    run_git("switch", "-q", "main", cwd=stock_repo)
    return first, second


def test_follows_git_checkout_at_once_in_process(two_commits: tuple[dict, dict], stock_repo: Path) -> None:
    first, second = two_commits
    ds = StockDataset(["image", "label"])
    assert len(ds) == N and np.array_equal(ds[5][0], first["image"][5])
    run_git("switch", "-q", "other", cwd=stock_repo)
    assert len(ds) == N + 20
    assert np.array_equal(ds[5][0], second["image"][5])
    assert np.array_equal(concat(epoch(ds, 0))[1], second["label"])
    run_git("switch", "-q", "main", cwd=stock_repo)
    assert np.array_equal(concat(epoch(ds, 0))[1], first["label"])


def test_workers_read_the_commit_checked_out_when_the_pass_starts(two_commits: tuple[dict, dict], stock_repo: Path) -> None:
    first, second = two_commits
    ds = StockDataset(["image", "label"])  # created on main
    run_git("switch", "-q", "other", cwd=stock_repo)  # before any worker exists
    images, labels = concat(epoch(ds, 2))
    assert np.array_equal(images, second["image"]) and np.array_equal(labels, second["label"])
    run_git("switch", "-q", "main", cwd=stock_repo)
    images, labels = concat(epoch(ds, 2))
    assert np.array_equal(images, first["image"]) and np.array_equal(labels, first["label"])


def test_persistent_worker_refuses_a_moved_head(two_commits: tuple[dict, dict], stock_repo: Path) -> None:
    first, _ = two_commits
    ds = StockDataset("label")
    loader = DataLoader(ds, batch_size=16, num_workers=2, persistent_workers=True)
    assert torch.cat(list(loader)).numpy().tolist() == first["label"].tolist()
    run_git("switch", "-q", "other", cwd=stock_repo)
    with pytest.raises(stockroom.StockroomError, match="cannot reopen the stock store"):
        list(loader)  # the same worker processes: they say so instead of mixing commits


# ------------------------------------------------------------- no writer lock
def test_reads_committed_data_only_and_never_takes_the_writer(
    filled: dict[str, np.ndarray], stock: stockroom.StockRoom, stock_repo: Path
) -> None:
    stock.data["label"][0] = np.int64(99)  # staged in this process, not committed
    ds = StockDataset("label", path=stock)
    assert int(ds[0]) == int(filled["label"][0])
    stock.commit("staged label")  # the writer lock is free for this process's own writes
    hangar_dir = stock_repo / HANGAR_DIR
    loader = DataLoader(ds, batch_size=8, num_workers=2)
    batches = iter(loader)
    next(batches)  # workers are up and reading
    probe = WriterLock(hangar_dir, timeout=0)
    probe.acquire()  # would raise if the dataset or a worker held it
    probe.release()
    # Another process writes and commits while the workers read.
    code = (
        "import numpy as np, stockroom\n"
        "with stockroom.StockRoom(lock_timeout=0) as s:\n"
        "    s.data['other'][0] = np.zeros(3)\n"
        "    s.commit('written beside a DataLoader', update_head=False)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=stock_repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rest = list(batches)
    assert sum(len(b) for b in rest) == N - 8


def collate_with_worker_state(batch: list[object]) -> tuple[object, tuple[int, bool, int, bool, frozenset[int]]]:
    """Runs in the worker: the batch, and how the worker's dataset reads."""
    from torch.utils.data import default_collate, get_worker_info

    from stockroom import store

    info = get_worker_info()
    assert info is not None
    view = info.dataset._view
    pid = os.getpid()
    opened_repository = any(key[0] == pid for key in store._REPOS)
    handles = frozenset(id(files) for col in view.columns for files in col._be_fs.values())
    return default_collate(batch), (pid, view.forked, view.pid, opened_repository, handles)


def test_forked_workers_use_their_own_handles_and_no_lmdb(filled: dict[str, np.ndarray]) -> None:
    ds = StockDataset(["image", "label"])
    loader = DataLoader(ds, batch_size=16, num_workers=2, collate_fn=collate_with_worker_state)
    states = set()
    labels = []
    for (_, batch_labels), state in loader:
        states.add(state)
        labels.append(batch_labels)
    assert torch.cat(labels).numpy().tolist() == filled["label"].tolist()
    worker_pids = {pid for pid, *_ in states}
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    # Addresses survive fork: a worker using the parent's file handles would report these.
    parent_handles = {id(files) for col in ds._view.columns for files in col._be_fs.values()}
    for pid, forked, view_pid, opened_repository, handles in states:
        assert forked and view_pid == pid
        assert handles and not handles & parent_handles  # data files reopened in the worker
        assert not opened_repository  # and no LMDB environment opened there


def test_spawned_workers_open_the_store_themselves(filled: dict[str, np.ndarray]) -> None:
    ds = StockDataset(["label", "weight"])
    labels, weights = concat(epoch(ds, 1, multiprocessing_context="spawn"))
    assert np.array_equal(labels, filled["label"]) and np.array_equal(weights, filled["weight"])


def test_workers_read_hdf5_columns_with_their_own_files(
    stock: stockroom.StockRoom, stock_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Columns Hangar keeps in HDF5 (samples over MEMMAP_MAX_BYTES) work in workers too:
    an HDF5 file opened by the parent must not be shared with forked children."""
    monkeypatch.setattr(data_module, "MEMMAP_MAX_BYTES", 0)
    arrays = make_data(3)
    write(stock, arrays)
    commit_all(stock, stock_repo, "hdf5")
    co = stock.get_hangar_checkout()
    try:
        assert co.columns["data.image"].backend != "10"
    finally:
        co.close()
    ds = StockDataset(["image", "weight"])
    ds[0]  # the parent has its HDF5 files open before the workers fork
    for _ in range(2):
        images, weights = concat(epoch(ds, 2))
        assert np.array_equal(images, arrays["image"]) and np.array_equal(weights, arrays["weight"])


# ------------------------------------------------------------------ tf.data
def test_tf_dataset_yields_the_same_items(filled: dict[str, np.ndarray]) -> None:
    tf = pytest.importorskip("tensorflow")
    source = tf_dataset(["image", "label"])
    assert source.element_spec[0].shape == (4, 3) and source.element_spec[0].dtype == tf.uint8
    batches = list(source.batch(64).as_numpy_iterator())
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert np.array_equal(images, filled["image"]) and np.array_equal(labels, filled["label"])
    single = list(tf_dataset("weight").take(2).as_numpy_iterator())
    assert np.array_equal(single[1], filled["weight"][1])
