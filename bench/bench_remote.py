"""Benchmark: `stock push`/`stock pull` against moving the same bytes as one object.

    python bench/bench_remote.py [--quick] [--runs 3]

One run, one process. Two remotes: a directory, and an S3-protocol server
(moto's threaded server on 127.0.0.1, fake credentials). Two payloads: an
MNIST-sized dataset (60,000 samples of 28x28 uint8 plus int64 labels;
``--quick``: 6,000) and a float32 model state (25 layers of 1024x1024,
105 MB; ``--quick``: 25 x 512x512, 26 MB).

Push and pull go through the functions the `stock push`/`stock pull`
commands call (``stockroom.remote.sync.push``/``fetch``), each run into an
empty remote (push) or a fresh clone (pull). The baseline moves the same
number of bytes as one object with the same client: ``cp`` of one file for
the directory, ``obstore.put``/``obstore.get`` for S3. Every timing is the
median of ``runs`` runs. The fixed cost (a push and a pull with nothing to
send) is reported on its own and not subtracted.

Targets (issue 9): push and pull within 1.5x of the one-object baseline;
a no-op push/pull at most 0.5 s; at most 100 objects on the remote for the
dataset; an incremental push after changing one layer within 1.1x of that
layer's bytes; `git push` with nothing new for the stock: the pre-push hook
adds at most 50 ms (median, interleaved runs against the same push without
hooks) and makes no request (the stock remote is moved away first).
"""

from __future__ import annotations

import argparse
import functools
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

BUCKET = "stock-bench"


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def make_repo(path: Path, fill: Callable[[Any], None]) -> str:
    """A git + stock repository at ``path`` whose one commit ``fill`` writes."""
    path.mkdir(parents=True)
    git("init", "-q", cwd=path)
    git("config", "user.email", "bench@example.com", cwd=path)
    git("config", "user.name", "bench", cwd=path)
    stockroom.init_repo(path=path)
    with stockroom.StockRoom(path) as stock:
        fill(stock)
        digest = stock.commit("bench")
    git("add", "-A", cwd=path)
    git("commit", "-q", "--no-verify", "-m", "bench", cwd=path)
    return digest


def dataset_fill(n: int) -> Callable[[Any], None]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.int64)

    def fill(stock: Any) -> None:
        with stock.optimize():
            for i in range(n):
                stock.data["img"][i] = images[i]
                stock.data["label"][i] = labels[i]

    return fill


def model_layers(layers: int, size: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((size, size), dtype=np.float32) for _ in range(layers)]


class Remotes:
    """Fresh, empty remotes of each kind, one per run."""

    def __init__(self, tmp: Path, endpoint: str) -> None:
        self.tmp = tmp
        self.endpoint = endpoint
        self.count = 0

    def new(self, kind: str) -> tuple[str, str]:
        """(url, endpoint) of an empty remote of ``kind``."""
        self.count += 1
        if kind == "dir":
            path = self.tmp / f"remote-{self.count}"
            path.mkdir()
            return str(path), ""
        return f"s3://{BUCKET}/r{self.count}", self.endpoint


def clone_for_pull(src: Path, where: Path, url: str, endpoint: str) -> Path:
    """A git clone of ``src`` with a stock store and the remote, but no stock data."""
    git("clone", "-q", str(src), str(where), cwd=src.parent)
    ensure_store(where)
    config.add_remote(where, "bench", url, local=True, endpoint=endpoint)
    return where


def object_store(endpoint: str) -> Any:
    from obstore.store import S3Store

    return S3Store(BUCKET, endpoint=endpoint, allow_http=True, region="us-east-1")


def baseline(kind: str, nbytes: int, tmp: Path, endpoint: str) -> tuple[float, float]:
    """(put, get) seconds to move ``nbytes`` as one object with the same client."""
    payload = os.urandom(nbytes)
    if kind == "dir":
        src = tmp / "one-src.bin"
        src.write_bytes(payload)
        dst_dir = tmp / f"one-remote-{time.monotonic_ns()}"
        dst_dir.mkdir()
        put, _ = timed(lambda: subprocess.run(["cp", str(src), str(dst_dir / "x")], check=True))
        get, _ = timed(
            lambda: subprocess.run(["cp", str(dst_dir / "x"), str(tmp / "one-back.bin")], check=True)
        )
        shutil.rmtree(dst_dir)
        return put, get
    import obstore

    store = object_store(endpoint)
    key = f"one/{time.monotonic_ns()}"
    put, _ = timed(lambda: obstore.put(store, key, payload, use_multipart=False))
    get, _ = timed(lambda: bytes(obstore.get(store, key).bytes()))
    obstore.delete(store, key)
    return put, get


def bench_payload(
    name: str,
    src: Path,
    digest: str,
    kind: str,
    remotes: Remotes,
    runs: int,
    tmp: Path,
    rows: list[list[str]],
) -> tuple[str, str]:
    """Push/pull ``src``'s commit ``runs`` times; returns the last remote (url, endpoint)."""
    pushes, pulls, base_put, base_get, noop_push, noop_pull = [], [], [], [], [], []
    nbytes = 0
    url = endpoint = ""
    for _ in range(runs):
        url, endpoint = remotes.new(kind)
        rname = f"b{remotes.count}"
        config.add_remote(src, rname, url, local=True, endpoint=endpoint)
        push = functools.partial(sync.push, src, rname, [digest])
        t, (_, summary) = timed(push)
        pushes.append(t)
        nbytes = summary.nbytes
        noop_push.append(timed(push)[0])
        where = clone_for_pull(src, tmp / f"clone-{remotes.count}", url, endpoint)
        pull = functools.partial(sync.fetch, where, "bench", [digest])
        pulls.append(timed(pull)[0])
        noop_pull.append(timed(pull)[0])
        shutil.rmtree(where)
        put, get = baseline(kind, nbytes, tmp, endpoint)
        base_put.append(put)
        base_get.append(get)
    med = statistics.median
    one = "cp one file" if kind == "dir" else "obstore put/get"
    rows.append(
        [
            f"{kind}: push {name} ({nbytes / 1e6:.1f} MB)",
            f"{med(pushes) / med(base_put):.2f}x",
            f"{one} ({med(pushes):.3f} s vs {med(base_put):.3f} s)",
        ]
    )
    rows.append(
        [
            f"{kind}: pull {name}",
            f"{med(pulls) / med(base_get):.2f}x",
            f"{one} ({med(pulls):.3f} s vs {med(base_get):.3f} s)",
        ]
    )
    rows.append(
        [f"{kind}: no-op push / pull {name}", f"{med(noop_push):.3f} s / {med(noop_pull):.3f} s", "seconds"]
    )
    return url, endpoint


def bench_git_push(tmp: Path, runs: int, rows: list[list[str]]) -> None:
    """`git push` of a code-only commit (nothing new for the stock) with the
    hooks against the same push without them; the stock remote is made
    unreachable first, so any request the pre-push hook made would fail it."""
    repo = tmp / "hooked"
    digest = make_repo(repo, lambda stock: stock.tag.__setitem__("lr", 0.1))
    stock_remote = tmp / "hooked-remote"
    stock_remote.mkdir()
    config.add_remote(repo, "origin", str(stock_remote), local=True)
    sync.push(repo, "origin", [digest])
    stock_remote.rename(tmp / "hooked-remote-gone")
    bare = tmp / "hooked-code.git"
    git("init", "-q", "--bare", str(bare), cwd=tmp)
    git("remote", "add", "origin", str(bare), cwd=repo)
    git("push", "-q", "origin", "HEAD:main", cwd=repo)
    no_hooks = tmp / "no-hooks"
    no_hooks.mkdir()
    times: dict[str, list[float]] = {"hooks": [], "none": []}
    for i in range(runs):
        for mode in ("hooks", "none"):  # interleaved: load on the machine hits both alike
            (repo / "code.txt").write_text(f"{i} {mode}\n")
            git("add", "code.txt", cwd=repo)
            git("commit", "-q", "--no-verify", "-m", f"code {i} {mode}", cwd=repo)
            extra = [] if mode == "hooks" else ["-c", f"core.hooksPath={no_hooks}"]
            start = time.perf_counter()
            git(*extra, "push", "-q", "origin", "HEAD:main", cwd=repo)
            times[mode].append(time.perf_counter() - start)
    med = statistics.median
    added = med(times["hooks"]) - med(times["none"])
    rows.append(
        [
            "git push, nothing new for the stock: pre-push adds",
            f"{added * 1000:.0f} ms",
            f"median of {runs}, over the push without hooks ({med(times['none']) * 1000:.0f} ms); "
            "stock remote unreachable: no request made",
        ]
    )


def count_objects(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file() and not p.name.startswith(".incoming-"))


def boto3_vs_obstore(endpoint: str, nbytes: int, runs: int, rows: list[list[str]]) -> None:
    import boto3
    import obstore

    payload = os.urandom(nbytes)
    store = object_store(endpoint)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    ob_put, ob_get, b3_put, b3_get = [], [], [], []
    for run in range(runs):
        ob, b3 = f"cmp/o{run}", f"cmp/b{run}"
        ob_put.append(timed(functools.partial(obstore.put, store, ob, payload, use_multipart=False))[0])
        ob_get.append(timed(lambda key=ob: bytes(obstore.get(store, key).bytes()))[0])
        b3_put.append(timed(functools.partial(client.put_object, Bucket=BUCKET, Key=b3, Body=payload))[0])
        b3_get.append(timed(lambda key=b3: client.get_object(Bucket=BUCKET, Key=key)["Body"].read())[0])
    med = statistics.median
    mb = f"{nbytes / 1e6:.0f} MB"
    rows.append([f"s3: boto3 / obstore put {mb}", f"{med(b3_put) / med(ob_put):.2f}x", "> 1: obstore faster"])
    rows.append([f"s3: boto3 / obstore get {mb}", f"{med(b3_get) / med(ob_get):.2f}x", "> 1: obstore faster"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6,000 samples and a 26 MB model")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    samples = 6_000 if args.quick else 60_000
    layers, size = (25, 512) if args.quick else (25, 1024)
    cmp_bytes = (20 if args.quick else 100) * 1_000_000

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench-key", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_REGION="us-east-1"
    )
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")).read()

    rows: list[list[str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="stock-bench-remote-"))
    try:
        remotes = Remotes(tmp, endpoint)
        data_repo = tmp / "data"
        data_digest = make_repo(data_repo, dataset_fill(samples))
        state = model_layers(layers, size)
        model_repo = tmp / "model"
        model_digest = make_repo(model_repo, lambda stock: stock.model.__setitem__("net", state))
        for kind in ("dir", "s3"):
            url, _ = bench_payload(
                f"{samples:,} samples", data_repo, data_digest, kind, remotes, args.runs, tmp, rows
            )
            if kind == "dir":
                rows.append(
                    [
                        f"dir: objects on the remote, {samples:,} samples",
                        str(count_objects(Path(url))),
                        "count",
                    ]
                )
            bench_payload(
                f"model {layers}x{size}x{size}", model_repo, model_digest, kind, remotes, args.runs, tmp, rows
            )
        # Incremental: change one layer, commit, push onto a remote that has the first commit.
        url, _ = remotes.new("dir")
        config.add_remote(model_repo, "incr", url, local=True)
        sync.push(model_repo, "incr", [model_digest])
        with stockroom.StockRoom(model_repo) as stock:
            changed = list(state)
            changed[3] = changed[3] + 1.0
            stock.model["net"] = changed
            second = stock.commit("one layer changed")
        _, summary = sync.push(model_repo, "incr", [second])
        layer = state[3].nbytes
        rows.append(
            [
                f"dir: incremental push, one layer ({layer / 1e6:.1f} MB) changed",
                f"{summary.nbytes / layer:.3f}x",
                "bytes sent / layer bytes",
            ]
        )
        boto3_vs_obstore(endpoint, cmp_bytes, args.runs, rows)
        bench_git_push(tmp, max(11, 4 * args.runs), rows)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"bench_remote ({'quick' if args.quick else 'full'} sizes, median of {args.runs} runs)")
    print(f"| {'case'.ljust(width)} | ratio / value | against |")
    print(f"|{'-' * (width + 2)}|---------------|---------|")
    for case, value, against in rows:
        print(f"| {case.ljust(width)} | {value.ljust(13)} | {against} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
