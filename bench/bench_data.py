"""Benchmark: stock.data and the DataLoader path against raw Hangar and numpy.

Run from the repository root::

    python bench/bench_data.py            # MNIST-sized + large-sample data, ~5-10 min
    python bench/bench_data.py --quick    # a tenth of the samples, ~1-2 min
    python bench/bench_data.py --backends # Hangar's backends side by side (raw Hangar)
    python bench/bench_data.py --per-sample  # only the per-sample rows, ~1 min

Two synthetic datasets: MNIST-sized (60,000 x 28x28 uint8 images plus int64
labels) and large samples (2,000 x 3x224x224 float32). For each, in one run:

* write and read throughput through ``stock.data`` inside ``optimize()``
  against raw Hangar on the same layout (same columns, same backend);
* per-sample reads ``stock.data[c][k]`` outside ``optimize()`` against
  inside, and inside against raw Hangar's ``column[k]``;
* a full epoch through a PyTorch ``DataLoader`` (batches of 64, shuffled,
  0 and 2 workers) over ``stockroom.loaders.StockDataset`` against Hangar's
  own ``make_torch_dataset`` and a ``numpy.load(mmap_mode="r")`` dataset;
* disk used in ``.hangar/`` against the raw bytes of the samples;
* per-sample writes ``stock.data[c][k] = a`` in a loop inside ``optimize()``
  against raw Hangar per-sample writes into a column held open with
  ``with col:`` (backend ``10`` on both sides), and per-sample reads
  ``stock.data[c][k]`` inside ``optimize()`` against raw Hangar's
  ``column[k]``, for 28x28 uint8 and 3x224x224 float32 samples.

Every time is the median of ``--runs`` runs (default 3; reads, which are
cheap, get three times as many, and epochs two more); the sides of a
comparison take turns going first. Raw Hangar runs with stockroom's
compatibility patches in place (Hangar 0.5.2 does not import on today's
numpy/protobuf without them), so both sides share the one that skips the
per-sample msync; one extra row measures Hangar's writes as shipped.
Reads are warm (the data was just written, so it sits in the page cache).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("STOCKROOM_PROGRESS", "0")  # keep bars out of the table

import stockroom  # noqa: E402
from stockroom.storages.data import backend_options  # noqa: E402
from stockroom.store import _quiet, hangar  # noqa: E402

WORKERS = (0, 2)
RACY_WAIT_S = 2.1


# ------------------------------------------------------------------ helpers
def median_time(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def disk_used(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (sparse files count what they use)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def new_stock(path: Path) -> stockroom.StockRoom:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    stockroom.init_repo(name="bench", email="bench@example.com", path=path, install_hooks=False)
    return stockroom.StockRoom(path)


def new_raw(path: Path) -> Any:
    path.mkdir(parents=True)
    with _quiet():
        repo = hangar.Repository(path, exists=False)
        repo.init(user_name="bench", user_email="bench@example.com")
    return repo


class Dataset:
    """One synthetic dataset: named columns of samples."""

    def __init__(self, name: str, columns: dict[str, np.ndarray], batch: int) -> None:
        self.name = name
        self.columns = columns
        self.batch = batch
        self.n = len(next(iter(columns.values())))
        # Raw Hangar wants ndarrays (a label is a numpy scalar): converted up
        # front, outside the timings (stockroom does it inside its own).
        self.samples = {c: [np.asarray(x) for x in a] for c, a in columns.items()}

    @property
    def raw_bytes(self) -> int:
        return sum(a.nbytes for a in self.columns.values())


def make_datasets(quick: bool) -> list[Dataset]:
    rng = np.random.default_rng(0)
    n_small, n_large = (6_000, 200) if quick else (60_000, 2_000)
    small = Dataset(
        f"MNIST-sized ({n_small:,} x 28x28 uint8 + int64 label)",
        {
            "image": rng.integers(0, 256, (n_small, 28, 28), dtype=np.uint8),
            "label": rng.integers(0, 10, n_small, dtype=np.int64),
        },
        batch=64,
    )
    large = Dataset(
        f"large samples ({n_large:,} x 3x224x224 float32)",
        {"image": rng.standard_normal((n_large, 3, 224, 224), dtype=np.float32)},
        batch=64,
    )
    return [small, large]


# ------------------------------------------------------------------ writing
def write_stock(stock: stockroom.StockRoom, ds: Dataset) -> None:
    with stock.optimize():
        for column, arrays in ds.columns.items():
            stock.data[column].update(zip(range(ds.n), arrays, strict=True))


def write_raw(repo: Any, ds: Dataset) -> None:
    co = repo.checkout(write=True)
    try:
        for column, samples in ds.samples.items():
            col = co.add_ndarray_column(column, prototype=samples[0], **backend_options(samples[0]))
            with col:
                for key, sample in enumerate(samples):
                    col[key] = sample
    finally:
        co.close()


def commit_raw(repo: Any) -> None:
    co = repo.checkout(write=True)
    try:
        with _quiet():
            co.commit("bench")
    finally:
        co.close()


def msync_rows(workdir: Path, images: np.ndarray, runs: int) -> Row:
    """Raw Hangar writes with stockroom's flush-per-block patch vs as shipped
    (an msync after every sample)."""
    from hangar.backends import numpy_10

    handles = numpy_10.NUMPY_10_FileHandles
    patched = handles.write_data
    shipped = getattr(patched, "__wrapped__", patched)
    ds = Dataset("", {"image": images}, 1)
    times: dict[Any, list[float]] = {patched: [], shipped: []}
    for run in range(runs):
        for variant in (patched, shipped) if run % 2 == 0 else (shipped, patched):
            where = workdir / f"msync-{run}-{len(times[variant])}-{variant is patched}"
            repo = new_raw(where)
            handles.write_data = variant
            try:
                gc.collect()
                start = time.perf_counter()
                write_raw(repo, ds)
                times[variant].append(time.perf_counter() - start)
            finally:
                handles.write_data = patched
            shutil.rmtree(where, ignore_errors=True)
    per = 1e6 / len(images)
    return (
        f"{len(images):,} MNIST-sized images",
        "raw Hangar write: msync per block (stockroom) vs per sample (shipped)",
        statistics.median(times[patched]) * per,
        statistics.median(times[shipped]) * per,
        "us/sample",
        None,
    )


# -------------------------------------------------------------- per sample
def write_stock_per_sample(stock: stockroom.StockRoom, samples: list[np.ndarray]) -> None:
    with stock.optimize():
        column = stock.data["x"]
        for key, sample in enumerate(samples):
            column[key] = sample


def per_sample_rows(workdir: Path, label: str, arrays: np.ndarray, runs: int) -> list[Row]:
    """The documented loop of one-sample writes inside ``optimize()``, and
    one-sample reads, against raw Hangar per sample on the same backend."""
    ds = Dataset(label, {"x": arrays}, 1)
    samples = ds.samples["x"]
    writes: dict[str, list[float]] = {"stock": [], "raw": []}
    stock = raw = None
    for run in range(runs):
        if stock is not None:
            stock.close()
        stock_dir, raw_dir = workdir / f"ps-stock-{run}", workdir / f"ps-raw-{run}"
        stock, raw = new_stock(stock_dir), new_raw(raw_dir)
        sides: list[tuple[str, Callable[[], None]]] = [
            ("stock", lambda s=stock: write_stock_per_sample(s, samples)),
            ("raw", lambda r=raw: write_raw(r, ds)),
        ]
        for side, fn in sides if run % 2 == 0 else sides[::-1]:
            writes[side].append(median_time(fn, 1))
        if run < runs - 1:
            shutil.rmtree(stock_dir, ignore_errors=True)
            shutil.rmtree(raw_dir, ignore_errors=True)
    assert stock is not None and raw is not None
    stock.commit("bench")
    commit_raw(raw)
    time.sleep(RACY_WAIT_S)  # past head.stock's racy window, as in bench_dataset
    raw_co = raw.checkout()
    raw_col = raw_co.columns["x"]
    keys = range(ds.n)
    with stock.optimize():
        column = stock.data["x"]
        assert np.array_equal(column[3], arrays[3]) and np.array_equal(raw_col[3], arrays[3])

        def ours() -> None:
            for k in keys:
                column[k]

        def theirs() -> None:
            for k in keys:
                raw_col[k]

        reads: dict[str, list[float]] = {"stock": [], "raw": []}
        pair = [("stock", ours), ("raw", theirs)]
        for run in range(3 * runs):
            for side, fn in pair if run % 2 == 0 else pair[::-1]:
                reads[side].append(median_time(fn, 1))
    raw_co.close()
    stock.close()
    per = 1e6 / ds.n
    return [
        (
            label,
            "per-sample write loop, inside optimize() vs raw Hangar `with col:`",
            statistics.median(writes["stock"]) * per,
            statistics.median(writes["raw"]) * per,
            "us/sample",
            1.15,
        ),
        (
            label,
            "per-sample read, inside optimize() vs raw Hangar",
            statistics.median(reads["stock"]) * per,
            statistics.median(reads["raw"]) * per,
            "us/sample",
            1.15,
        ),
    ]


def per_sample_cases(quick: bool, full: bool) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(2)
    n_small = 60_000 if full else (1_000 if quick else 10_000)
    n_large = 1_000 if full else (30 if quick else 200)
    return [
        (f"{n_small:,} x 28x28 uint8", rng.integers(0, 256, (n_small, 28, 28), dtype=np.uint8)),
        (f"{n_large:,} x 3x224x224 float32", rng.standard_normal((n_large, 3, 224, 224), dtype=np.float32)),
    ]


# ------------------------------------------------------------------ loaders
class NumpyMmapDataset:
    """The baseline: samples from .npy files opened with mmap_mode='r'."""

    def __init__(self, paths: list[Path]) -> None:
        self.arrays = [np.load(p, mmap_mode="r") for p in paths]

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int) -> Any:
        items = tuple(np.array(a[index]) for a in self.arrays)
        return items[0] if len(items) == 1 else items


def epoch(dataset: Any, batch: int, workers: int) -> int:
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
    )
    seen = 0
    for batch_items in loader:
        first = batch_items[0] if isinstance(batch_items, (tuple, list)) else batch_items
        seen += len(first)
    return seen


# -------------------------------------------------------------------- bench
Row = tuple[str, str, float, float, str, float | None]  # dataset, what, ours, base, unit, target


def bench_dataset(ds: Dataset, workdir: Path, runs: int, rows: list[Row]) -> None:
    print(f"== {ds.name}", file=sys.stderr, flush=True)
    n_samples = ds.n * len(ds.columns)

    # Writes: a fresh store per run (Hangar would skip data it already has).
    stock_times, raw_times = [], []
    stock = raw = None
    for run in range(runs):
        if stock is not None:
            stock.close()
        stock_dir, raw_dir = workdir / f"stock-{run}", workdir / f"raw-{run}"
        stock, raw = new_stock(stock_dir), new_raw(raw_dir)
        sides = [("stock", stock), ("raw", raw)]
        for side, target in sides if run % 2 == 0 else sides[::-1]:
            gc.collect()
            start = time.perf_counter()
            if side == "stock":
                write_stock(target, ds)
                stock_times.append(time.perf_counter() - start)
            else:
                write_raw(target, ds)
                raw_times.append(time.perf_counter() - start)
        if run < runs - 1:  # keep only the last run's stores
            shutil.rmtree(stock_dir, ignore_errors=True)
            shutil.rmtree(raw_dir, ignore_errors=True)
    assert stock is not None and raw is not None
    rows.append(
        (
            ds.name,
            "write, inside optimize()",
            statistics.median(stock_times),
            statistics.median(raw_times),
            f"s/{n_samples:,} samples",
            1.15,
        )
    )
    stock.commit("bench")
    commit_raw(raw)
    # head.stock was just written: for 2 s stockroom re-reads it on every read
    # instead of trusting its stat (coarse timestamps). Measure the steady state.
    time.sleep(RACY_WAIT_S)
    print("   writes done", file=sys.stderr, flush=True)

    # Bulk reads inside optimize(): cheap, so more runs than the writes.
    read_runs = 3 * runs
    raw_co = raw.checkout()
    raw_cols = {c: raw_co.columns[c] for c in ds.columns}
    keys = list(range(ds.n))
    stock_times, raw_times = [], []
    with stock.optimize():
        columns = {c: stock.data[c] for c in ds.columns}
        for c in ds.columns:  # same values on both sides
            assert np.array_equal(columns[c].get_batch(keys[:50]), ds.columns[c][:50])
            assert np.array_equal(raw_cols[c][7], ds.columns[c][7])
        for run in range(read_runs):
            pair = [
                (stock_times, lambda: [columns[c].get_many(keys) for c in ds.columns]),
                (raw_times, lambda: [[raw_cols[c][k] for k in keys] for c in ds.columns]),
            ]
            for times, fn in pair if run % 2 == 0 else pair[::-1]:
                gc.collect()
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
    rows.append(
        (
            ds.name,
            "read (get_many), inside optimize()",
            statistics.median(stock_times),
            statistics.median(raw_times),
            f"s/{n_samples:,} samples",
            1.15,
        )
    )

    # Per-sample reads of the first column: outside vs inside optimize(), and vs raw.
    first = next(iter(ds.columns))
    some = keys[: min(ds.n, 20_000)]
    raw_col = raw_cols[first]

    def per_item() -> None:
        for k in some:
            stock.data[first][k]

    def raw_item() -> None:
        for k in some:
            raw_col[k]

    def inside_optimize() -> None:
        with stock.optimize():
            per_item()

    timed: list[tuple[list[float], Callable[[], None]]] = [
        ([], per_item),
        ([], inside_optimize),
        ([], raw_item),
    ]
    for run in range(read_runs):
        for times, fn in timed if run % 2 == 0 else timed[::-1]:
            times.append(median_time(fn, 1))
    outside, inside, raw_t = (times for times, _ in timed)
    per = 1e6 / len(some)
    rows.append(
        (
            ds.name,
            "per-sample read: outside vs inside optimize()",
            statistics.median(outside) * per,
            statistics.median(inside) * per,
            "us/sample",
            2.0,
        )
    )
    rows.append(
        (
            ds.name,
            "per-sample read: inside optimize() vs raw Hangar",
            statistics.median(inside) * per,
            statistics.median(raw_t) * per,
            "us/sample",
            None,
        )
    )
    print("   reads done", file=sys.stderr, flush=True)

    # DataLoader epochs.
    from stockroom.loaders import StockDataset

    names = list(ds.columns)
    ours = StockDataset(names[0] if len(names) == 1 else names, path=stock.path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Dataloaders are experimental"
        theirs = hangar.make_torch_dataset([raw_cols[c] for c in names], field_names=names)
    npy_paths = []
    for c, arr in ds.columns.items():
        npy_paths.append(workdir / f"{c}.npy")
        np.save(npy_paths[-1], arr)
    baseline = NumpyMmapDataset(npy_paths)
    for workers in WORKERS:
        times: dict[str, list[float]] = {"ours": [], "raw": [], "npy": []}
        systems = [("ours", ours), ("raw", theirs), ("npy", baseline)]
        for run in range(runs + 2):  # epochs swing with the allocator's state: two more runs
            for label, dataset in systems[run % 3 :] + systems[: run % 3]:  # each one first in turn
                gc.collect()
                start = time.perf_counter()
                assert epoch(dataset, ds.batch, workers) == ds.n
                times[label].append(time.perf_counter() - start)
        med = {label: statistics.median(t) for label, t in times.items()}
        rows.append(
            (
                ds.name,
                f"DataLoader epoch, {workers} workers: vs raw Hangar",
                med["ours"],
                med["raw"],
                "s",
                1.25,
            )
        )
        rows.append(
            (
                ds.name,
                f"DataLoader epoch, {workers} workers: vs numpy mmap",
                med["ours"],
                med["npy"],
                "s",
                None,
            )
        )
    print("   epochs done", file=sys.stderr, flush=True)

    # Disk.
    stock_disk = disk_used(stock.path / ".hangar")
    raw_disk = disk_used(workdir / f"raw-{runs - 1}" / ".hangar")
    rows.append(
        (ds.name, "disk: .hangar vs raw bytes", stock_disk / 2**20, ds.raw_bytes / 2**20, "MiB", None)
    )
    rows.append((ds.name, "disk: .hangar vs raw Hangar's", stock_disk / 2**20, raw_disk / 2**20, "MiB", None))
    ours.close()
    raw_co.close()
    stock.close()


def bench_backends(workdir: Path, quick: bool, runs: int) -> None:
    """Raw Hangar, per backend: how stockroom chose the one for data columns."""
    rng = np.random.default_rng(1)
    cases = [
        ("28x28 uint8", rng.integers(0, 256, (1_000 if quick else 5_000, 28, 28), dtype=np.uint8)),
        ("3x224x224 float32", rng.standard_normal((30 if quick else 200, 3, 224, 224), dtype=np.float32)),
    ]
    print("| sample | backend | write us/sample | read us/sample | disk / raw bytes |")
    print("|---|---|---:|---:|---:|")
    for label, arrays in cases:
        ds = Dataset(label, {"x": arrays}, 1)
        for backend in ("10", "00", "01"):
            writes, reads, disk = [], [], 0
            for run in range(runs):
                where = workdir / f"backend-{backend}-{run}"
                repo = new_raw(where)
                co = repo.checkout(write=True)
                col = co.add_ndarray_column("x", prototype=arrays[0], backend=backend)
                gc.collect()
                start = time.perf_counter()
                with col:
                    for key, sample in enumerate(ds.samples["x"]):
                        col[key] = sample
                writes.append((time.perf_counter() - start) / ds.n)
                with _quiet():
                    co.commit("backend")
                co.close()
                reader = repo.checkout()
                rcol = reader.columns["x"]
                gc.collect()
                start = time.perf_counter()
                for key in range(ds.n):
                    rcol[key]
                reads.append((time.perf_counter() - start) / ds.n)
                reader.close()
                disk = disk_used(where / ".hangar")
                shutil.rmtree(where, ignore_errors=True)
            print(
                f"| {label} | {backend} | {statistics.median(writes) * 1e6:.0f} | "
                f"{statistics.median(reads) * 1e6:.1f} | {disk / ds.raw_bytes:.2f} |",
                flush=True,
            )


def print_table(rows: list[Row]) -> None:
    print()
    print("| dataset | measurement | stockroom | baseline | unit | ratio | target |")
    print("|---|---|---:|---:|---|---:|---|")
    for name, what, ours, base, unit, target in rows:
        ratio = ours / base if base else float("nan")
        verdict = "" if target is None else f"<= {target:g}x {'ok' if ratio <= target else 'MISSED'}"
        print(f"| {name} | {what} | {number(ours)} | {number(base)} | {unit} | {ratio:.2f}x | {verdict} |")


def number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the samples")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median), default 3")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to put the stores (default: a temp dir)"
    )
    parser.add_argument(
        "--backends", action="store_true", help="only compare Hangar's backends for data columns (raw Hangar)"
    )
    parser.add_argument(
        "--per-sample", action="store_true", help="only the per-sample write and read rows (stockroom vs raw)"
    )
    parser.add_argument(
        "--mnist",
        action="store_true",
        help="per-sample rows with all 60,000 MNIST-sized samples (default 10,000; --quick 1,000)",
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench_data_", dir=args.workdir))
    if args.backends:
        try:
            bench_backends(workdir, args.quick, args.runs)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    rows: list[Row] = []
    if args.per_sample:
        try:
            for i, (label, arrays) in enumerate(per_sample_cases(args.quick, args.mnist)):
                print(f"== per sample: {label}", file=sys.stderr, flush=True)
                rows += per_sample_rows(workdir / f"p{i}", label, arrays, args.runs)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print_table(rows)
        print(
            f"\n{sys.platform}, {os.cpu_count()} CPUs, hangar {hangar.__version__}; "
            f"medians of {args.runs} runs (reads {3 * args.runs}); whole run {time.perf_counter() - began:.0f} s"
        )
        return 0
    try:
        datasets = make_datasets(args.quick)
        for i, ds in enumerate(datasets):
            bench_dataset(ds, workdir / f"d{i}", args.runs, rows)
        images = datasets[0].columns["image"][: 300 if args.quick else 2_000]
        rows.append(msync_rows(workdir, images, args.runs))
        for i, (label, arrays) in enumerate(per_sample_cases(args.quick, args.mnist)):
            rows += per_sample_rows(workdir / f"p{i}", label, arrays, args.runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    print(
        f"\n{sys.platform}, {os.cpu_count()} CPUs, numpy {np.__version__}, hangar {hangar.__version__}; "
        f"medians of {args.runs} runs; whole run {time.perf_counter() - began:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
