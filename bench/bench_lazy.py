"""Benchmark: a lazy clone (`stock pull --lazy`) against a full `stock pull`, on S3.

    python bench/bench_lazy.py [--samples 2000] [--runs 3] [--batch 32]

One run, one process (plus two DataLoader workers and the S3 server). The
dataset: ``--samples`` images of 3x224x224 float32 (602 KB each; 2,000 is
1.2 GB) and an int64 label each, committed once and pushed to an
S3-protocol server (moto's threaded server, in its own process on
127.0.0.1, fake credentials). Every case starts from a fresh `git clone`
(the full one then deleted, to keep the disk in bounds), through the
functions the `stock pull` command calls. Timings are medians of ``runs``.

Cases (targets from issue 13):

* lazy clone (git clone + pull --lazy) to the first sample read, against
  git clone + full pull + the first read: under 1 s;
* first epoch, DataLoader(num_workers=2, shuffle) over a lazy clone with
  read-ahead, against a full pull followed by an epoch on the local copy:
  at most 1.2x;
* second epoch on the lazy clone against an epoch on the local copy: at
  most 1.05x;
* bytes fetched to read 10 random samples, against those samples' bytes:
  at most 2x;
* issue 21 #10: the first lazy epoch of a plain ``DataLoader(ds,
  shuffle=True)`` and of a ``Subset`` (80%) of it, no read-ahead asked for,
  against a full pull followed by the same epoch on the local copy: at most
  1.2x (``--only-plain``: these rows alone);
* read-ahead's effect: the first lazy epoch without it (``fetch_threads=0``,
  the plain sampler), with the batch fetched at once only, and with the
  read-ahead sampler as well; and the local epoch with ``fetch_threads=0``
  against the default (nothing lazy: it must cost nothing).
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
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

# Run as `python bench/bench_lazy.py`: this directory is on sys.path.
from bench_remote import git, timed  # the same helpers as the remote bench

import stockroom
from stockroom.core import ensure_store
from stockroom.remote import config, sync
from stockroom.store import lazy

BUCKET = "stock-lazy-bench"
SHAPE = (3, 224, 224)

SERVER = """
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


def make_repo(path: Path, n: int, url: str, endpoint: str = "") -> str:
    path.mkdir(parents=True)
    git("init", "-q", cwd=path)
    git("config", "user.email", "bench@example.com", cwd=path)
    git("config", "user.name", "bench", cwd=path)
    stockroom.init_repo(path=path)
    rng = np.random.default_rng(0)
    with stockroom.StockRoom(path) as stock:
        with stock.optimize():
            for i in range(n):
                stock.data["img"][i] = rng.standard_normal(SHAPE, dtype=np.float32)
                stock.data["label"][i] = np.array(i % 1000, dtype=np.int64)
        digest = stock.commit("bench")
    git("add", "-A", cwd=path)
    git("commit", "-q", "--no-verify", "-m", "bench", cwd=path)
    config.add_remote(path, "bench", url, local=True, endpoint=endpoint)
    sync.push(path, "bench", [digest])
    return digest


def clone(src: Path, where: Path, url: str, endpoint: str = "") -> Path:
    git("clone", "-q", str(src), str(where), cwd=src.parent)
    ensure_store(where)
    config.add_remote(where, "bench", url, local=True, endpoint=endpoint)
    return where


def first_read(root: Path) -> np.ndarray:
    with stockroom.StockRoom(root) as stock:
        return np.asarray(stock.data["img"][0])


def epoch(
    root: Path, batch: int, fetch_threads: int = 8, read_ahead: int = 0, seed: int = 0, how: str = "sampler"
) -> float:
    """Seconds for one pass of DataLoader(num_workers=2) over ``root``'s data.

    ``how``: "sampler", a RandomSampler (wrapped with ``ds.read_ahead`` when
    ``read_ahead``); "shuffle", a plain ``DataLoader(ds, shuffle=True)``;
    "subset", a plain ``DataLoader(Subset(ds, 80% of it), shuffle=True)`` (a
    train split). The last two make no call for read-ahead (issue 21 #10)."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler, Subset

    from stockroom.loaders import StockDataset

    ds = StockDataset(["img", "label"], path=root, fetch_threads=fetch_threads)
    generator = torch.Generator().manual_seed(seed)
    source: Any = ds
    if how == "sampler":
        sampler: Any = RandomSampler(ds, generator=generator)
        if read_ahead:
            sampler = ds.read_ahead(sampler, samples=read_ahead)
        loader = DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=2)
    else:
        if how == "subset":
            source = Subset(ds, subset_indices(len(ds)))
        loader = DataLoader(source, batch_size=batch, shuffle=True, generator=generator, num_workers=2)
    start = time.perf_counter()
    count = 0
    for imgs, _ in loader:
        count += len(imgs)
    took = time.perf_counter() - start
    assert count == len(source)
    ds.close()
    return took


def subset_indices(n: int) -> list[int]:
    """A fixed 80% train split of ``n`` samples (every fifth one left for validation)."""
    return [i for i in range(n) if i % 5 != 4]


def range_cost(endpoint: str, big: int) -> float:
    """Median seconds of a 602 KB read from the server: a range of a ``big``-byte
    object, or (``big`` 0) a whole object of that size."""
    import obstore
    from obstore.store import S3Store

    store = S3Store(BUCKET, endpoint=endpoint, allow_http=True, region="us-east-1")
    size = int(np.prod(SHAPE)) * 4
    key = f"probe/{big}"
    obstore.put(store, key, os.urandom(big or size), use_multipart=False)
    took = []
    for i in range(10):
        start = (i * size) % max(big - size, 1)
        took.append(timed(lambda: bytes(obstore.get_range(store, key, start=start, end=start + size)))[0])  # noqa: B023
    obstore.delete(store, key)
    return statistics.median(took)


def step(argv: list[str]) -> None:
    """One step, in a fresh interpreter (see below); prints its result as JSON."""
    kind, where, src, url, endpoint, digest, *rest = argv
    root = Path(where)
    out: dict[str, float] = {}
    if kind in ("full", "lazy"):
        lazy_pull = kind == "lazy"
        out["pull"], _ = timed(
            lambda: sync.fetch(clone(Path(src), root, url, endpoint), "bench", [digest], lazy=lazy_pull)
        )
    elif kind == "read":
        out["read"], _ = timed(lambda: first_read(root))
    elif kind == "ten":
        samples, seed = int(rest[0]), int(rest[1])
        picks = np.random.default_rng(seed).choice(np.arange(1, samples), size=10, replace=False)
        with stockroom.StockRoom(root) as stock:
            for i in picks:
                stock.data["img"][int(i)]
        out["ratio"] = lazy.stats.nbytes / (10 * int(np.prod(SHAPE)) * 4)
    elif kind == "epoch":
        batch, threads, ahead, seed = (int(x) for x in rest[:4])
        how = str(rest[4]) if len(rest) > 4 else "sampler"
        out["epoch"] = epoch(root, batch, fetch_threads=threads, read_ahead=ahead, seed=seed, how=how)
    print(json.dumps(out))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--step":
        step(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--ahead", type=int, default=256, help="read-ahead window, samples")
    parser.add_argument(
        "--pairs",
        type=int,
        default=11,
        help="local/lazy second-epoch pairs per run (epochs of about 1 s spread by +-20%% here)",
    )
    parser.add_argument(
        "--only-plain",
        action="store_true",
        help="only the rows of issue 21 #10 (plain shuffle=True DataLoader, a Subset) and their baselines",
    )
    parser.add_argument(
        "--skip-contrasts",
        action="store_true",
        help="leave out the first epochs without read-ahead (about 100 s each per run here)",
    )
    args = parser.parse_args()

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench-key", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_REGION="us-east-1"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    port = int(server.stdout.readline())
    endpoint = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")).read()
    url = f"s3://{BUCKET}/data"

    tmp = Path(tempfile.mkdtemp(prefix="stock-bench-lazy-"))
    src = tmp / "src"
    times: dict[str, list[float]] = {}
    digest = ""

    def run_step(kind: str, where: Path, *rest: object) -> dict[str, float]:
        # Each step in its own interpreter: a process that used the S3 client
        # (obstore) cannot fork DataLoader workers that use it (the client's
        # runtime does not survive a fork), so pulls, reads in the main
        # process and epochs run apart, as `stock pull` and a training script would.
        cmd = [sys.executable, __file__, "--step", kind, str(where), str(src), url, endpoint, digest]
        done = subprocess.run([*cmd, *map(str, rest)], capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"step {kind} failed: {done.stderr[-3000:]}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    def note(key: str, value: float) -> None:
        times.setdefault(key, []).append(value)
        print(f"  {key}: {value:.3f}", file=sys.stderr, flush=True)

    count = 0

    def fresh(kind: str) -> Path:
        nonlocal count
        count += 1
        return tmp / f"{kind}-{count}"

    try:
        t, digest = timed(lambda: make_repo(src, args.samples, url, endpoint))
        print(f"built and pushed {args.samples} samples in {t:.1f} s", file=sys.stderr, flush=True)
        b = args.batch
        for run in range(args.runs):
            # Full: git clone + stock pull + first read, then epochs on the local copy.
            where = fresh("full")
            note("full clone+pull", run_step("full", where)["pull"])
            note("full first read", run_step("read", where)["read"])
            note("local epoch", run_step("epoch", where, b, 8, 0, run)["epoch"])
            # The baselines of the plain DataLoaders (issue 21 #10), shuffle=True and a Subset.
            note("local epoch, shuffle=True", run_step("epoch", where, b, 8, 0, run, "shuffle")["epoch"])
            note("local epoch, Subset", run_step("epoch", where, b, 8, 0, run, "subset")["epoch"])
            full = where
            # First lazy epochs of a plain DataLoader: no read-ahead asked for.
            for label, how in (
                ("lazy epoch 1, plain shuffle=True", "shuffle"),
                ("lazy epoch 1, Subset", "subset"),
            ):
                where = fresh("lazy")
                run_step("lazy", where)
                note(label, run_step("epoch", where, b, 8, 0, run, how)["epoch"])
                shutil.rmtree(where)
            if args.only_plain:
                shutil.rmtree(full)
                continue
            note("local epoch, fetch_threads=0", run_step("epoch", full, b, 0, 0, run)["epoch"])
            # Lazy: git clone + stock pull --lazy + first read; then 10 random samples.
            where = fresh("lazy")
            note("lazy clone+pull", run_step("lazy", where)["pull"])
            note("lazy first read", run_step("read", where)["read"])
            note("bytes for 10 samples", run_step("ten", where, args.samples, run)["ratio"])
            shutil.rmtree(where)
            # First lazy epoch with read-ahead, then the second epoch.
            where = fresh("lazy")
            run_step("lazy", where)
            note("lazy epoch 1, read-ahead", run_step("epoch", where, b, 8, args.ahead, run)["epoch"])
            # The second epoch against a local epoch measured beside it, in
            # pairs: both read data the page cache holds, and each lazy epoch
            # is compared with the local epoch next to it (the machine's load
            # drifts less between the two than between steps minutes apart).
            # Which side goes first alternates from pair to pair: the second
            # of two back-to-back epochs runs beside the first one's exit.
            # The writes of the first epoch are flushed first, for neither
            # side to run beside the disk writing them back.
            os.sync()
            for pair in range(args.pairs):
                took = {}
                for clone_dir in (full, where) if pair % 2 == 0 else (where, full):
                    took[clone_dir] = run_step("epoch", clone_dir, b, 8, 0, run + 100)["epoch"]
                local, again = took[full], took[where]
                note("local epoch, beside lazy epoch 2", local)
                note("lazy epoch 2", again)
                note("lazy epoch 2 / local epoch beside it", again / local)
            shutil.rmtree(where)
            shutil.rmtree(full)
            # Read-ahead's effect: the batch at once only, then nothing at all.
            contrasts = (
                ()
                if args.skip_contrasts
                else (
                    ("lazy epoch 1, batch at once only", 8),
                    ("lazy epoch 1, no read-ahead", 0),
                )
            )
            for label, threads in contrasts:
                where = fresh("lazy")
                run_step("lazy", where)
                note(label, run_step("epoch", where, b, threads, 0, run)["epoch"])
                shutil.rmtree(where)
        if not args.only_plain:
            note("range GET from a 64 MB object", range_cost(endpoint, 64 << 20))
            note("GET of a 602 KB object", range_cost(endpoint, 0))
    finally:
        server.stdin.close()
        server.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)

    sample_bytes = int(np.prod(SHAPE)) * 4
    med = {k: statistics.median(v) for k, v in times.items()}
    plain_rows = [
        [
            f"first epoch, lazy, plain {what} (no read-ahead call)",
            f"{med[lazy_key] / (med['full clone+pull'] + med[local_key]):.2f}x",
            "<= 1.2x",
            f"{med[lazy_key]:.2f} s vs pull + local epoch {med['full clone+pull'] + med[local_key]:.2f} s",
        ]
        for what, lazy_key, local_key in (
            ("DataLoader(shuffle=True)", "lazy epoch 1, plain shuffle=True", "local epoch, shuffle=True"),
            ("Subset (80%), shuffle=True", "lazy epoch 1, Subset", "local epoch, Subset"),
        )
    ]
    if args.only_plain:
        _table(args, plain_rows)
        return 0
    full_first = med["full clone+pull"] + med["full first read"]
    lazy_first = med["lazy clone+pull"] + med["lazy first read"]
    full_epoch = med["full clone+pull"] + med["local epoch"]
    q2 = statistics.quantiles(times["lazy epoch 2 / local epoch beside it"], n=4)
    rows = [
        [
            "lazy clone to first sample read",
            f"{lazy_first:.3f} s",
            "< 1 s",
            f"full clone + pull + read {full_first:.2f} s",
        ],
        [
            "first epoch, lazy with read-ahead",
            f"{med['lazy epoch 1, read-ahead'] / full_epoch:.2f}x",
            "<= 1.2x",
            f"{med['lazy epoch 1, read-ahead']:.2f} s vs pull + local epoch {full_epoch:.2f} s",
        ],
        [
            "second epoch, lazy",
            f"{med['lazy epoch 2 / local epoch beside it']:.2f}x",
            "<= 1.05x",
            f"median of {len(times['lazy epoch 2'])} pairs in turns (quartiles {q2[0]:.2f}x-{q2[2]:.2f}x): "
            f"lazy {med['lazy epoch 2']:.2f} s, local {med['local epoch, beside lazy epoch 2']:.2f} s "
            f"({med['lazy epoch 2'] / med['local epoch, beside lazy epoch 2']:.2f}x)",
        ],
        [
            "bytes fetched, 10 random samples",
            f"{med['bytes for 10 samples']:.2f}x",
            "<= 2x",
            f"the samples' bytes ({10 * sample_bytes / 1e6:.1f} MB)",
        ],
    ]
    rows += plain_rows
    if not args.skip_contrasts:
        contrast_rows = [
            [
                "first epoch, batch at once only",
                f"{med['lazy epoch 1, batch at once only'] / full_epoch:.2f}x",
                "",
                f"{med['lazy epoch 1, batch at once only']:.2f} s vs pull + local epoch",
            ],
            [
                "first epoch, no read-ahead",
                f"{med['lazy epoch 1, no read-ahead'] / full_epoch:.2f}x",
                "",
                f"{med['lazy epoch 1, no read-ahead']:.2f} s vs pull + local epoch",
            ],
        ]
        rows += contrast_rows
    rows += [
        [
            "server: 602 KB range of a 64 MB pack",
            f"{med['range GET from a 64 MB object'] * 1000:.1f} ms",
            "",
            f"GET of a 602 KB object {med['GET of a 602 KB object'] * 1000:.1f} ms (moto reads the whole object per range)",
        ],
        [
            "local epoch, default vs fetch_threads=0",
            f"{med['local epoch'] / med['local epoch, fetch_threads=0']:.2f}x",
            "~1.0x",
            f"{med['local epoch']:.2f} s vs {med['local epoch, fetch_threads=0']:.2f} s",
        ],
    ]
    _table(args, rows)
    return 0


def _table(args: argparse.Namespace, rows: list[list[str]]) -> None:
    print(
        f"bench_lazy: {args.samples:,} x 3x224x224 float32 on S3 (moto, 127.0.0.1), batch {args.batch}, "
        f"num_workers=2, read-ahead {args.ahead} samples, median of {args.runs} runs"
    )
    print("| case | value | target | against |")
    print("|------|-------|--------|---------|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    sys.exit(main())
