"""Peer row for issue 9: the MNIST-sized dataset through `dvc push`/`dvc pull`
beside `stock push`/`stock pull`, to the same remotes, in one run.

    python bench/bench_dvc_peer.py [--quick] [--runs 1] [--dvc PATH]

DVC is not a dependency of stockroom: install it anywhere (for example in a
virtualenv of its own with `pip install dvc dvc-s3`) and pass its `dvc`
executable with ``--dvc`` (default: `dvc` on PATH; without it the script
says so and exits 0).

The same samples (60,000 of 28x28 uint8 plus int64 labels; ``--quick``:
6,000) are stored two ways: with stockroom, one sample per key as the
README shows; for DVC as files, as DVC users keep such data: one ``.npy``
file per image and one file of all labels, tracked with `dvc add`. Each
tool pushes to an empty directory remote and to an empty prefix on an
S3-protocol server (moto's threaded server on 127.0.0.1, fake
credentials), then pulls into a fresh git clone with an empty cache.
Times are wall-clock medians of ``--runs`` runs; the ratio is DVC's time
over stockroom's (above 1: stockroom is faster).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import stockroom
from stockroom.core import ensure_store
from stockroom.remote import config, sync

BUCKET = "dvc-peer"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{done.stdout}{done.stderr}")


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def git_init(path: Path) -> None:
    path.mkdir(parents=True)
    run("git", "init", "-q", cwd=path)
    run("git", "config", "user.email", "bench@example.com", cwd=path)
    run("git", "config", "user.name", "bench", cwd=path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6,000 samples")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--dvc", default=shutil.which("dvc") or "", help="the dvc executable")
    args = parser.parse_args()
    if not args.dvc:
        print("dvc is not installed here: pass its executable with --dvc (pip install dvc dvc-s3)")
        return 0
    dvc = args.dvc
    n = 6_000 if args.quick else 60_000
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.int64)

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench-key", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_REGION="us-east-1"
    )
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")).read()
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    times: dict[tuple[str, str, str], list[float]] = {}

    def note(tool: str, kind: str, what: str, seconds: float) -> None:
        times.setdefault((tool, kind, what), []).append(seconds)

    tmp = Path(tempfile.mkdtemp(prefix="stock-bench-dvc-"))
    try:
        # stockroom: the README's way, one sample per key inside optimize().
        src = tmp / "stock-src"
        git_init(src)
        stockroom.init_repo(path=src)
        with stockroom.StockRoom(src) as stock:
            with stock.optimize():
                for i in range(n):
                    stock.data["img"][i] = images[i]
                    stock.data["label"][i] = labels[i]
            digest = stock.commit("data")
        run("git", "add", "-A", cwd=src)
        run("git", "commit", "-q", "--no-verify", "-m", "data", cwd=src)

        # DVC: the same samples as files.
        dsrc = tmp / "dvc-src"
        git_init(dsrc)
        run(dvc, "init", "-q", cwd=dsrc, env=env)
        (dsrc / "data" / "img").mkdir(parents=True)
        for i in range(n):
            np.save(dsrc / "data" / "img" / f"{i:05d}.npy", images[i])
        np.save(dsrc / "data" / "labels.npy", labels)
        run(dvc, "add", "-q", "data", cwd=dsrc, env=env)
        run("git", "add", "-A", cwd=dsrc)
        run("git", "commit", "-q", "-m", "data", cwd=dsrc)

        for r in range(args.runs):
            for kind in ("dir", "s3"):
                tag = f"{kind}{r}"
                if kind == "dir":
                    stock_url = str(tmp / f"stock-remote-{tag}")
                    dvc_url = str(tmp / f"dvc-remote-{tag}")
                    Path(stock_url).mkdir()
                    Path(dvc_url).mkdir()
                    stock_endpoint = ""
                else:
                    stock_url = f"s3://{BUCKET}/stock-{tag}"
                    dvc_url = f"s3://{BUCKET}/dvc-{tag}"
                    stock_endpoint = endpoint
                # stockroom push, then pull into a fresh clone.
                config.add_remote(src, tag, stock_url, local=True, endpoint=stock_endpoint)
                note("stockroom", kind, "push", timed(sync.push, src, tag, [digest]))
                clone = tmp / f"stock-clone-{tag}"
                run("git", "clone", "-q", str(src), str(clone), cwd=tmp)
                ensure_store(clone)
                config.add_remote(clone, "peer", stock_url, local=True, endpoint=stock_endpoint)
                note("stockroom", kind, "pull", timed(sync.fetch, clone, "peer", [digest]))
                shutil.rmtree(clone)
                # dvc push, then pull into a fresh clone with an empty cache.
                run(dvc, "remote", "add", "-f", tag, dvc_url, cwd=dsrc, env=env)
                if kind == "s3":
                    run(dvc, "remote", "modify", tag, "endpointurl", endpoint, cwd=dsrc, env=env)
                note("dvc", kind, "push", timed(run, dvc, "push", "-q", "-r", tag, cwd=dsrc, env=env))
                dclone = tmp / f"dvc-clone-{tag}"
                run("git", "clone", "-q", str(dsrc), str(dclone), cwd=tmp)
                # The remote was added to the source's .dvc/config, which git tracks
                # but was not committed: give the clone the same remote.
                run(dvc, "remote", "add", "-f", tag, dvc_url, cwd=dclone, env=env)
                if kind == "s3":
                    run(dvc, "remote", "modify", tag, "endpointurl", endpoint, cwd=dclone, env=env)
                note("dvc", kind, "pull", timed(run, dvc, "pull", "-q", "-r", tag, cwd=dclone, env=env))
                got = np.load(dclone / "data" / "img" / f"{n - 1:05d}.npy")
                assert np.array_equal(got, images[n - 1]), "dvc pulled other data"
                shutil.rmtree(dclone)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    print(f"bench_dvc_peer ({n:,} samples of 28x28 uint8 + labels; median of {args.runs} run(s))")
    print("| remote | step | stockroom | dvc (files) | dvc / stockroom |")
    print("|---|---|---:|---:|---:|")
    for kind in ("dir", "s3"):
        for what in ("push", "pull"):
            ours, theirs = med(times[("stockroom", kind, what)]), med(times[("dvc", kind, what)])
            print(f"| {kind} | {what} | {ours:.2f} s | {theirs:.2f} s | {theirs / ours:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
