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


DROP_CHILD = textwrap.dedent(
    """
    import os, sys, torch
    import stockroom
    from torch import nn
    torch.manual_seed(0)
    net = nn.Linear(300, 300)  # each checkpoint's data in an LMDB file of its own
    with stockroom.StockRoom() as stock:
        run = stock.run("prune", keep_last=1)
        run.save(0, model=net)
        run.wait()
        with torch.no_grad():
            net.weight.add_(1.0)
        os.environ["STOCK_RUN_CRASH"] = sys.argv[1]
        run.save(1, model=net)  # prunes step 0: killed while dropping its data
        run.wait()
    print("survived")
    """
)


def _files(root: Path) -> set[str]:
    return {p.name for p in (root / ".hangar" / "data" / "31").iterdir() if p.is_dir()}


@pytest.mark.parametrize("point", ["before-drop", "prune-delete"])
def test_sigkill_while_dropping_pruned_data_is_finished_by_the_next_save(
    stock_repo: Path, point: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DROP_CHILD, point], cwd=stock_repo, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == -9, done.stderr
    left = _files(stock_repo)
    with stockroom.StockRoom() as stock:
        run = stock.run("prune", keep_last=1)
        assert [c.pruned for c in run.checkpoints] == [True, False]
        fresh = torch.nn.Linear(300, 300)
        assert run.restore(model=fresh) == 2  # the kept checkpoint is whole
        run.save(2, model=fresh)
        run.wait()
        assert [c.pruned for c in run.checkpoints] == [True, True, False]
        now = _files(stock_repo)
        assert (
            len(left) >= 2 and len(now) == 1
        )  # only step 2's file: step 0's (left by the crash) and 1's went
        assert not (stock_repo / ".hangar" / "stockroom-prune-pending").exists()
        assert torch.equal(stock.model["run.prune"]["states"]["model"]["weight"], fresh.weight)
        run.close()
