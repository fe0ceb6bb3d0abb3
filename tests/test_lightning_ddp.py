"""stockroom.lightning under DDP on CPU (SPEC 10): 2 processes, gloo; rank 0 writes, every rank restores."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightning")
import torch  # noqa: E402
from frameworks.common import resumed_from, script  # noqa: E402

import stockroom  # noqa: E402


def test_ddp_stopped_and_rerun_resumes_every_rank_bit_identical(stock_repo: Path, tmp_path: Path) -> None:
    ref, out = tmp_path / "ref.pt", tmp_path / "out.pt"
    assert (
        resumed_from(script("lightning_train.py", "ref", str(ref), "ddp", cwd=stock_repo, timeout=400))
        == "None"
    )
    # 4 steps an epoch per process: both processes fail at step 6, in epoch 2
    stopped = script(
        "lightning_train.py", "ddp", str(out), "ddp", cwd=stock_repo, env={"STOP_AT": "6"}, timeout=400
    )
    assert stopped.returncode != 0 and "stopped on purpose" in stopped.stderr, stopped.stderr[-2000:]
    with stockroom.StockRoom(stock_repo) as stock:
        run = stock.run("ddp")
        assert [c.step for c in run.checkpoints] == [4]  # one writer: one checkpoint per save
        run.close()
    assert (
        resumed_from(script("lightning_train.py", "ddp", str(out), "ddp", cwd=stock_repo, timeout=400)) == "4"
    )
    wa, wb = torch.load(ref), torch.load(out)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    with stockroom.StockRoom(stock_repo) as stock:
        run = stock.run("ddp")
        assert [c.step for c in run.checkpoints] == [4, 8, 12]
        assert run.history("loss")[0].tolist() == list(range(12))
        run.close()
