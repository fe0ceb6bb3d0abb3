"""SIGKILL during ``run.save``: the run's latest checkpoint is the last whole one (SPEC 9)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import stockroom
from stockroom.headfile import read_head

CHILD = textwrap.dedent(
    """
    import os, sys, torch
    import stockroom
    from torch import nn
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    with stockroom.StockRoom() as stock:
        run = stock.run("crash", keep_last=1)
        run.save(0, metrics={"loss": 1.0}, model=net)
        run.wait()
        run.log(1, loss=0.5)
        with torch.no_grad():
            net.weight.add_(1.0)
        os.environ["STOCK_RUN_CRASH"] = sys.argv[1]
        run.save(1, metrics={"loss": 0.5}, model=net)
        run.wait()
    print("survived")
    """
)


@pytest.mark.parametrize(("point", "latest"), [("before-commit", 0), ("after-commit", 1)])
def test_sigkill_during_save_leaves_the_last_whole_checkpoint(
    stock_repo: Path, point: str, latest: int
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, point], cwd=stock_repo, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == -9, done.stderr  # killed in the middle of the save
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    expected = net.weight.detach().clone() + (1.0 if latest == 1 else 0.0)
    with stockroom.StockRoom() as stock:
        run = stock.run("crash", keep_last=1)
        assert run.checkpoints[-1].step == latest
        assert read_head(stock.path) == run.checkpoints[-1].commit
        fresh = torch.nn.Linear(3, 2)
        assert run.restore(model=fresh) == latest + 1
        assert torch.equal(fresh.weight, expected)
        # nothing half-visible: the next save works and commits on top
        run.save(5, model=fresh)
        run.wait()
        assert stock.tag["run.crash.step"] == 5
        run.close()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=stock_repo, capture_output=True, text=True)
    assert {line[3:] for line in status.stdout.splitlines()} <= {"head.stock"}
    assert os.environ.get("STOCK_RUN_CRASH") is None
