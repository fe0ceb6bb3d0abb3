"""Benchmark: reading kept samples of a lazy clone against a full local copy.

The "second epoch" of issue 13 in isolation: once a lazy clone has read
every sample, how does reading them again compare with a clone that pulled
everything? Two clones of one pushed repository (a directory remote: kept
samples never touch the remote again, so the remote's kind does not
matter), the lazy one read whole first, then read in turns (local, lazy,
local, ...), each comparison against the pass just before it:

* one process, ``StockDataset.__getitems__`` over shuffled batches of 32
  (the data path alone: no worker start-up, no IPC);
* ``DataLoader(num_workers=2, batch_size=32)`` epochs in the same process;
* the same epochs, each in a fresh interpreter as bench_lazy runs them,
  with the time the workers spent in ``__getitems__`` (worker start-up and
  first lookups included) beside the wall time.

Run from the repository root::

    python bench/bench_kept.py                 # 2,000 x 3x224x224 float32, ~4 min
    python bench/bench_kept.py --samples 300   # quicker
    python bench/bench_kept.py --no-fresh      # without the fresh-interpreter epochs
    python bench/bench_kept.py --profile-workers   # and where the fresh epochs' workers spend it
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("STOCKROOM_PROGRESS", "0")

# Run as `python bench/bench_kept.py`: this directory is on sys.path.
from bench_lazy import clone, make_repo  # the lazy bench's repository: same data

from stockroom.loaders import StockDataset
from stockroom.remote import sync


def build(base: Path, n: int) -> dict[str, Path]:
    """A pushed repository and two clones of it: "local" (pulled) and "lazy"."""
    remote = base / "remote"
    remote.mkdir()
    src = base / "src"
    digest = make_repo(src, n, str(remote))
    roots = {}
    for kind in ("local", "lazy"):
        root = clone(src, base / kind, str(remote))
        sync.fetch(root, "bench", [digest], lazy=kind == "lazy")
        roots[kind] = root
    return roots


def one_pass(ds: StockDataset, batches: list[list[int]]) -> float:
    start = time.perf_counter()
    for batch in batches:
        ds.__getitems__(batch)
    return time.perf_counter() - start


def epoch(root: Path, seed: int) -> float:
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    ds = StockDataset(["img", "label"], path=root)
    loader = DataLoader(
        ds,
        batch_size=32,
        sampler=RandomSampler(ds, generator=torch.Generator().manual_seed(seed)),
        num_workers=2,
    )
    start = time.perf_counter()
    count = sum(len(imgs) for imgs, _ in loader)
    took = time.perf_counter() - start
    assert count == len(ds)
    ds.close()
    return took


class _Timed(StockDataset):
    """A dataset whose workers add up the time they spend in ``__getitems__``
    (one file per worker process under ``log``)."""

    log = ""
    profile = False
    _profiler: Any = None

    def __getitems__(self, indices: Any) -> list[Any]:
        profiler = None
        if self.profile:
            import cProfile

            if _Timed._profiler is None:
                _Timed._profiler = cProfile.Profile()
            profiler = _Timed._profiler
            profiler.enable()
        start = time.perf_counter()
        items = super().__getitems__(indices)
        took = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{self.log}.{os.getpid()}.prof")  # a worker never exits cleanly
        with open(f"{self.log}.{os.getpid()}", "a") as f:
            f.write(f"{took}\n")
        return items


def fresh_epoch_step(root: Path, seed: int, log: str) -> None:
    """``--epoch``: one DataLoader epoch in this (fresh) interpreter; prints JSON."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    _Timed.log = log
    _Timed.profile = bool(os.environ.get("BENCH_KEPT_PROFILE"))
    ds = _Timed(["img", "label"], path=root)
    loader = DataLoader(
        ds,
        batch_size=32,
        sampler=RandomSampler(ds, generator=torch.Generator().manual_seed(seed)),
        num_workers=2,
    )
    start = time.perf_counter()
    count = sum(len(imgs) for imgs, _ in loader)
    took = time.perf_counter() - start
    assert count == len(ds)
    ds.close()
    print(json.dumps({"epoch": took}))


def fresh_epoch(root: Path, seed: int, base: Path, profiles: list[str] | None = None) -> tuple[float, float]:
    """Wall seconds of an epoch in a fresh interpreter, and the seconds its
    workers spent reading (``__getitems__``, summed over both). With
    ``profiles``, the workers profile their reads; the files go there."""
    log = base / f"workers-{root.name}-{seed}"
    env = dict(os.environ, BENCH_KEPT_PROFILE="1" if profiles is not None else "")
    proc = subprocess.run(
        [sys.executable, __file__, "--epoch", str(root), str(seed), str(log)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    took = float(json.loads(proc.stdout.strip().splitlines()[-1])["epoch"])
    reading = 0.0
    for part in base.glob(log.name + ".*"):
        if part.name.endswith(".prof"):
            if profiles is not None:
                profiles.append(str(part))
            continue
        reading += sum(float(line) for line in part.read_text().split())
        part.unlink()
    return took, reading


def print_profiles(kind: str, files: list[str]) -> None:
    """The top of the workers' profiles of ``kind``'s fresh epochs, all turns together."""
    import pstats

    stats = pstats.Stats(*files, stream=sys.stdout)
    print(f"\n{kind}: fresh-interpreter epochs, the workers' __getitems__, {len(files)} profiles")
    stats.sort_stats("tottime").print_stats(6)


def paired(times: dict[str, list[float]]) -> tuple[float, float, float]:
    ratios = [lazy / local for lazy, local in zip(times["lazy"], times["local"], strict=True)]
    return statistics.median(times["lazy"]), statistics.median(times["local"]), statistics.median(ratios)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=7)
    parser.add_argument("--no-fresh", action="store_true", help="leave out the fresh-interpreter epochs")
    parser.add_argument(
        "--profile-workers", action="store_true", help="profile the fresh epochs' workers (slows them)"
    )
    parser.add_argument("--epoch", nargs=3, metavar=("ROOT", "SEED", "LOG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epoch:
        fresh_epoch_step(Path(args.epoch[0]), int(args.epoch[1]), args.epoch[2])
        return 0
    base = Path(tempfile.mkdtemp(prefix="stock-bench-kept-"))
    try:
        roots = build(base, args.samples)
        dss = {kind: StockDataset(["img", "label"], path=root) for kind, root in roots.items()}
        order = np.random.default_rng(1).permutation(args.samples).tolist()
        batches = [order[i : i + 32] for i in range(0, len(order), 32)]
        one_pass(dss["lazy"], batches)  # fetches and keeps every sample
        check_all_kept(roots["lazy"])
        one_pass(dss["local"], batches)
        os.sync()  # neither side reads beside the write-back of the kept samples
        inproc: dict[str, list[float]] = {"local": [], "lazy": []}
        epochs: dict[str, list[float]] = {"local": [], "lazy": []}
        fresh: dict[str, list[float]] = {"local": [], "lazy": []}
        reading: dict[str, list[float]] = {"local": [], "lazy": []}
        profiles: dict[str, list[str]] = {"local": [], "lazy": []}
        for turn in range(args.turns):
            for kind in ("local", "lazy"):
                inproc[kind].append(one_pass(dss[kind], batches))
            for kind in ("local", "lazy"):
                epochs[kind].append(epoch(roots[kind], seed=turn))
            line = (
                f"  turn {turn}: in process {inproc['lazy'][-1] / inproc['local'][-1]:.2f}x, "
                f"epoch {epochs['lazy'][-1] / epochs['local'][-1]:.2f}x"
            )
            if not args.no_fresh:
                for kind in ("local", "lazy"):
                    took, read = fresh_epoch(
                        roots[kind], turn, base, profiles[kind] if args.profile_workers else None
                    )
                    fresh[kind].append(took)
                    reading[kind].append(read)
                line += (
                    f", fresh-interpreter epoch {fresh['lazy'][-1] / fresh['local'][-1]:.2f}x "
                    f"(workers reading {reading['lazy'][-1] / reading['local'][-1]:.2f}x)"
                )
            print(line, file=sys.stderr, flush=True)
        for ds in dss.values():
            ds.close()
        for kind, files in profiles.items():
            if files:
                print_profiles(kind, files)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    n = args.samples
    rows: list[tuple[str, Any, Any, Any]] = []
    cases = [
        ("one process, __getitems__ batches of 32", inproc),
        ("DataLoader(num_workers=2), batch 32", epochs),
    ]
    if not args.no_fresh:
        cases += [
            ("the same, each epoch in a fresh interpreter (wall)", fresh),
            ("  its workers' time in __getitems__ (both summed)", reading),
        ]
    for label, times in cases:
        lazy, local, ratio = paired(times)
        rows.append((label, f"{lazy:.2f} s", f"{local:.2f} s", f"{ratio:.2f}x"))
    print(
        f"bench_kept: {n:,} x 3x224x224 float32 + int64 label, kept samples of a lazy clone vs a "
        f"pulled clone, {args.turns} turns (median of each side; ratio: median of per-turn ratios)"
    )
    print("| pass over every sample | lazy, kept | local | lazy / local |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    return 0


def check_all_kept(root: Path) -> None:
    """The lazy clone holds every sample, read on demand (none local from a pull)."""
    from stockroom.headfile import read_head
    from stockroom.store import lazy

    found = lazy.where(root, read_head(root))
    assert found.remote_only == 0 and found.local == 0 and found.fetched == found.samples, found


if __name__ == "__main__":
    sys.exit(main())
