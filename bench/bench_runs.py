"""Benchmark of training runs (SPEC 9): one run, ratios. ``python bench/bench_runs.py [--params N]``.

Rows: run.log points/s; 1M-point read (100 runs x 10,000 steps) and a
downsampled read; save stall against a host copy (deep copy of the state
dict) for a model with Adam state; the background part of a save against
torch.save + fsync of the same state (a real Adam step between saves: every
byte changes); disk for 10 checkpoints with keep_last=2, keep_best=1 against
10 torch.save files; resume in a fresh lazy clone (to the first training
step) against git clone + full ``stock pull`` + ``torch.load``.
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
from typing import Any

import numpy as np
import torch
from torch import nn

import stockroom
from stockroom.runs.metrics import MetricLog
from stockroom.runs.run import history


def du(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _stock(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "stockroom", *args], cwd=cwd, check=True, capture_output=True)


def resume_row(tmp: Path, repo: Path, net: nn.Module, opt: Any, train_step: Any) -> tuple[str, str]:
    """Resume in a fresh lazy clone (to the first training step) against clone + full pull + torch.load."""
    remote = tmp / "remote"
    remote.mkdir()
    _stock("remote", "add", "origin", str(remote), cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-qm", "bench", cwd=repo)
    with stockroom.StockRoom(repo) as stock:
        run = stock.run("res", keep_last=2)
        for i in range(3):  # pushed in the background, the latest recorded on the remote
            train_step()
            run.save(i, model=net, opt=opt)
        run.close()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, tmp / "res.pt")
    ours, theirs = [], []
    for n in range(3):
        clone = tmp / f"lazy{n}"
        t0 = time.perf_counter()
        _git("clone", "-q", str(repo), str(clone), cwd=tmp)
        _stock("pull", "--lazy", cwd=clone)
        with stockroom.StockRoom(clone) as stock:
            run = stock.run("res")
            assert run.restore(model=net, opt=opt) == 3
            train_step()
            ours.append(time.perf_counter() - t0)
            run.close()
        clone = tmp / f"full{n}"
        t0 = time.perf_counter()
        _git("clone", "-q", str(repo), str(clone), cwd=tmp)
        _stock("pull", cwd=clone)
        state = torch.load(tmp / "res.pt", weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        train_step()
        theirs.append(time.perf_counter() - t0)
    a, b = float(np.median(ours)), float(np.median(theirs))
    return (
        "resume in a fresh lazy clone, to the first step / git clone + full stock pull + torch.load",
        f"{a:.2f} s / {b:.2f} s = {a / b:.2f}x",
    )


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
        x = torch.randn(2, width)

        def train_step() -> None:
            # a real step: the weights and both Adam moments change, so no
            # checkpoint dedups against the previous one (the same bytes as torch.save)
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()

        train_step()
        nparams = sum(p.numel() for p in net.parameters())
        hosts = []
        for _ in range(3):
            t0 = time.perf_counter()
            copy.deepcopy({"model": net.state_dict(), "opt": opt.state_dict()})
            hosts.append(time.perf_counter() - t0)
        host = float(np.median(hosts))
        run = stock.run("big", keep_last=2, keep_best=1, monitor="loss", push=False)
        stalls, writes, tsaves = [], [], []
        sizes = 0
        for i in range(10):
            train_step()
            t0 = time.perf_counter()
            run.save(i, metrics={"loss": float(10 - i if i != 3 else 0)}, model=net, opt=opt)
            t1 = time.perf_counter()
            run.wait()
            stalls.append(t1 - t0)
            writes.append(time.perf_counter() - t1)  # the background part: hash, write, commit
            # the baseline right after, under the same load: the same state to one file
            path = tmp / f"ck{i}.pt"
            t0 = time.perf_counter()
            with open(path, "wb") as f:
                torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, f)
                f.flush()
                os.fsync(f.fileno())
            tsaves.append(time.perf_counter() - t0)
            sizes += path.stat().st_size
        run.close()
        nbytes = path.stat().st_size
        rows.append(
            (
                f"save stall / host copy ({nparams / 1e6:.1f}M params + Adam, {nbytes / 1e9:.2f} GB)",
                f"{np.median(stalls):.3f} s / {host:.3f} s = {np.median(stalls) / host:.2f}x (target <= 1.2x)",
            )
        )
        bg, ts = float(np.median(writes)), float(np.median(tsaves))
        rows.append(
            (
                "background write / torch.save+fsync (throughput ratio, every byte changed)",
                f"{nbytes / bg / 1e6:.0f} MB/s vs {nbytes / ts / 1e6:.0f} MB/s = {ts / bg:.2f} (target >= 0.8)",
            )
        )
        rows.append(
            (
                "disk, 10 checkpoints keep_last=2 keep_best=1 / 10 torch.save files",
                f"{du(stock.path / '.hangar') / 1e6:.0f} MB / {sizes / 1e6:.0f} MB",
            )
        )
        for path in tmp.glob("ck*.pt"):
            if path.name != "ck9.pt":
                path.unlink()
    rows.append(resume_row(tmp, repo, net, opt, train_step))
    print(f"bench_runs ({sys.platform}, {os.cpu_count()} CPUs, torch {torch.__version__})")
    print("| measure | result |\n|---|---|")
    for a, b in rows:
        print(f"| {a} | {b} |")


if __name__ == "__main__":
    main()
