"""What one operation costs as the repository grows (issue 26), in one run.

    python bench/bench_scale.py [--runs 5] [--full] [--sizes 1000,10000,100000]

Repositories of 1,000 / 10,000 / 100,000 committed 28x28 uint8 samples
(1,000,000 with ``--full``: about 10 minutes to build) are built once with
the bulk API (``stock.data[col].update`` inside ``optimize()``) and cached
under the temporary directory (``$TMPDIR/stockroom-bench-scale``), so a
second run starts at once. For each size, medians of ``--runs``:

* tag-only commit: ``stock.tag[...] = v`` then ``stock.commit()`` timed,
  in-process, with commitrefs' in-memory parent forgotten first (what a new
  process pays: the parent's record digests come from their sidecar file);
* model save + commit of a 105 MB state (25 x 1024x1024 float32) beside the
  column, against ``torch.save`` + fsync of the same state (the ratio row);
* ``stock status`` and ``stock diff HEAD`` (new processes) with one tag staged;
* the pre-commit hook with one tag staged (``git commit``, refused);
* ``stock push`` of one new commit to a directory remote that has the rest,
  and ``stock pull`` of it into a clone that has the rest
  (``stockroom.remote.sync.push``/``fetch``, what the commands call);
* peak RSS of the process making the tag commits.

The last column is each row's largest over smallest size: issue 26 asks
for at most 2 (model save + commit: within 1.5x of torch.save + fsync).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import stockroom

CACHE = Path(tempfile.gettempdir()) / "stockroom-bench-scale"
VERSION = "v1"  # bump when what a cached repository holds changes


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True)


def build(n: int) -> Path:
    """The cached repository of ``n`` committed samples (built when missing)."""
    path = CACHE / f"{VERSION}-{n}"
    if (path / ".built").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    git("init", "-q", cwd=path)
    git("config", "user.email", "bench@example.com", cwd=path)
    git("config", "user.name", "bench", cwd=path)
    stockroom.init_repo(path=path)
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    with stockroom.StockRoom(path) as stock:
        chunk = 100_000  # bounded memory for the 1M build
        with stock.optimize():
            for lo in range(0, n, chunk):
                hi = min(n, lo + chunk)
                images = rng.integers(0, 256, size=(hi - lo, 28, 28), dtype=np.uint8)
                stock.data["img"].update(zip(range(lo, hi), images, strict=True))
            stock.tag["step"] = 0
        stock.commit("dataset")
    git("add", "-A", cwd=path)
    git("commit", "-q", "--no-verify", "-m", "dataset", cwd=path)
    (path / ".built").write_text(f"{time.perf_counter() - start:.1f}s\n")
    return path


def timed_cli(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - start


def state(layers: int = 25, size: int = 1024) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(1)
    return {f"layer{i}.weight": torch.randn(size, size, generator=gen) for i in range(layers)}


def torch_save_fsync(weights: dict[str, Any], where: Path) -> float:
    import torch

    start = time.perf_counter()
    with open(where, "wb") as f:
        torch.save(weights, f)
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - start


def measure(n: int, runs: int, weights: dict[str, Any], tmp: Path) -> dict[str, float]:
    from stockroom.core import ensure_store
    from stockroom.remote import config, sync
    from stockroom.store import commitrefs

    path = build(n)
    stock_cli = [sys.executable, "-m", "stockroom"]
    out: dict[str, list[float]] = {k: [] for k in ROWS}
    with stockroom.StockRoom(path) as stock:
        # Remote and clone for push/pull (each run pushes and pulls one more commit).
        remote = CACHE / f"{VERSION}-{n}-remote"
        clone = CACHE / f"{VERSION}-{n}-clone"
        if not (clone / ".built").exists():
            shutil.rmtree(remote, ignore_errors=True)
            shutil.rmtree(clone, ignore_errors=True)
            remote.mkdir()
            config.add_remote(path, "bench", str(remote), local=True)
            sync.push(path, "bench", [_head(path)])
            git("clone", "-q", str(path), str(clone), cwd=path.parent)
            ensure_store(clone)
            config.add_remote(clone, "bench", str(remote), local=True)
            sync.fetch(clone, "bench", [_head(path)])
            (clone / ".built").write_text("")
        for i in range(runs):
            stock.tag["step"] = time.time_ns()
            # status, diff and the hook with one tag staged
            out["stock status"].append(timed_cli([*stock_cli, "status"], path))
            out["stock diff HEAD"].append(timed_cli([*stock_cli, "diff", "HEAD"], path))
            out["pre-commit hook, a tag staged"].append(timed_cli(["git", "commit", "-q", "-m", "x"], path))
            commitrefs._LAST.clear()
            start = time.perf_counter()
            digest = stock.commit(f"tag {i}")
            out["tag-only commit"].append(time.perf_counter() - start)
            start = time.perf_counter()
            sync.push(path, "bench", [digest])
            out["push of one new commit"].append(time.perf_counter() - start)
            start = time.perf_counter()
            sync.fetch(clone, "bench", [digest])
            out["pull of one new commit"].append(time.perf_counter() - start)
            for tensor in weights.values():  # a new checkpoint: every tensor new
                tensor.add_(1.0)
            base = torch_save_fsync(weights, tmp / "state.pt")
            start = time.perf_counter()
            stock.model["net"] = weights
            stock.commit(f"model {i}")
            out["model save + commit / torch.save + fsync"].append((time.perf_counter() - start) / base)
            # head.stock into git, so the next round starts clean
            git("add", "-A", cwd=path)
            git("commit", "-q", "--no-verify", "-m", f"round {i}", cwd=path)
    med = {k: statistics.median(v) for k, v in out.items()}
    med["peak RSS (MB)"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return med


def _head(path: Path) -> str:
    return (path / "head.stock").read_text().strip()


ROWS = (
    "tag-only commit",
    "model save + commit / torch.save + fsync",
    "stock status",
    "stock diff HEAD",
    "pre-commit hook, a tag staged",
    "push of one new commit",
    "pull of one new commit",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--full", action="store_true", help="add the 1,000,000-sample repository")
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] + ([1_000_000] if args.full else [])
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            # One process per size: peak RSS is that size's own.
            proc = subprocess.run(
                [sys.executable, __file__, "--one", str(n), "--runs", str(args.runs), "--tmp", tmp],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise SystemExit(f"size {n} failed:\n{proc.stdout}{proc.stderr}")
            results[n] = {
                k: float(v)
                for k, v in (line.split("\t") for line in proc.stdout.splitlines() if "\t" in line)
            }
    cols = [f"{n:,}" for n in sizes]
    print(f"medians of {args.runs} runs; seconds unless named; last column: largest / smallest size")
    print(f"| measurement | {' | '.join(cols)} | max/min |")
    print(f"|---|{'---:|' * len(cols)}---:|")
    for row in (*ROWS, "peak RSS (MB)"):
        vals = [results[n][row] for n in sizes]
        ratio = max(vals) / min(vals)
        print(f"| {row} | {' | '.join(f'{v:.3g}' for v in vals)} | {ratio:.2f} |")


def one(n: int, runs: int, tmp: str) -> None:
    for key, value in measure(n, runs, state(), Path(tmp)).items():
        print(f"{key}\t{value}")


if __name__ == "__main__":
    if "--one" in sys.argv:
        i = sys.argv.index("--one")
        one(
            int(sys.argv[i + 1]),
            int(sys.argv[sys.argv.index("--runs") + 1]),
            sys.argv[sys.argv.index("--tmp") + 1],
        )
    else:
        main()
