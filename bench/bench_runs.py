"""Benchmark of training runs (SPEC 9): one run, ratios. ``python bench/bench_runs.py [--params N]``.

Rows: run.log points/s; 1M-point read (100 runs x 10,000 steps) and a
downsampled read; save stall against a host copy (deep copy of the state
dict) for a model with Adam state; background write against torch.save +
fsync of the same state; disk for 10 checkpoints with keep_last=2,
keep_best=1 against 10 torch.save files.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import stockroom
from stockroom.runs.metrics import MetricLog
from stockroom.runs.run import history


def du(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=int, default=10_000_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    repo = tmp / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    os.chdir(repo)
    stockroom.init_repo(name="b", email="b@x", install_hooks=False)
    rows: list[tuple[str, str]] = []
    with stockroom.StockRoom() as stock:
        run = stock.run("bench")
        n = 1_000_000
        t0 = time.perf_counter()
        for step in range(n):
            run.log(step, loss=0.5)
        run.flush()
        rate = n / (time.perf_counter() - t0)
        rows.append(("run.log points/s (1 metric, 1M calls, flushed)", f"{rate:,.0f} (target >= 100,000)"))
        run.close()
        for i in range(100):
            log = MetricLog(stockroom.runs.records.run_dir(stock.path, f"r{i}") / "metrics")
            log.log(0, {})
            steps = np.arange(10_000)
            log.replace({"loss": (steps, np.random.rand(10_000))})
        t0 = time.perf_counter()
        total = sum(history(stock.path, f"r{i}", "loss")[0].size for i in range(100))
        full = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(100):
            history(stock.path, f"r{i}", "loss", points=500)
        down = time.perf_counter() - t0
        rows.append(
            (f"read 100 runs x 10,000 steps ({total:,} points), one metric", f"{full:.3f} s (target < 1 s)")
        )
        rows.append(("same, downsampled to 500 points per run (min/max kept)", f"{down:.3f} s"))

        width = int((args.params / 2) ** 0.5)
        net = nn.Sequential(nn.Linear(width, width), nn.Linear(width, width))
        opt = torch.optim.Adam(net.parameters())
        net(torch.randn(2, width)).sum().backward()
        opt.step()
        nparams = sum(p.numel() for p in net.parameters())
        t0 = time.perf_counter()
        copy.deepcopy({"model": net.state_dict(), "opt": opt.state_dict()})
        host = time.perf_counter() - t0
        run = stock.run("big", keep_last=2, keep_best=1, monitor="loss")
        stalls, writes = [], []
        for i in range(10):
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(0.01)
            t0 = time.perf_counter()
            run.save(i, metrics={"loss": float(10 - i if i != 3 else 0)}, model=net, opt=opt)
            stalls.append(time.perf_counter() - t0)
            run.wait()
            writes.append(time.perf_counter() - t0)
        run.close()
        nbytes = nparams * 4 * 3
        rows.append(
            (
                f"save stall / host copy ({nparams / 1e6:.1f}M params + Adam, {nbytes / 1e9:.2f} GB)",
                f"{np.median(stalls):.3f} s / {host:.3f} s = {np.median(stalls) / host:.2f}x (target <= 1.2x)",
            )
        )
        t0 = time.perf_counter()
        sizes = 0
        for i in range(10):
            path = tmp / f"ck{i}.pt"
            with open(path, "wb") as f:
                torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, f)
                f.flush()
                os.fsync(f.fileno())
            sizes += path.stat().st_size
        tsave = (time.perf_counter() - t0) / 10
        rows.append(
            (
                "background write / torch.save+fsync (throughput ratio)",
                f"{np.median(writes):.2f} s vs {tsave:.2f} s = {tsave / np.median(writes):.2f} (target >= 0.8)",
            )
        )
        rows.append(
            (
                "disk, 10 checkpoints keep_last=2 keep_best=1 / 10 torch.save files",
                f"{du(stock.path / '.hangar') / 1e6:.0f} MB / {sizes / 1e6:.0f} MB (pruned data is not dropped yet)",
            )
        )
    print(f"bench_runs ({sys.platform}, {os.cpu_count()} CPUs, torch {torch.__version__})")
    print("| measure | result |\n|---|---|")
    for a, b in rows:
        print(f"| {a} | {b} |")


if __name__ == "__main__":
    main()
