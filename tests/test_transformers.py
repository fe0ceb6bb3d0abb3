"""stockroom.transformers (SPEC 10): a real Trainer on a 2-layer GPT-2 built from a config (no download)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402
from frameworks.common import fresh_clone, resumed_from, script, with_remote  # noqa: E402

import stockroom  # noqa: E402

# 32 samples, batch 4: 8 steps an epoch, 24 in all; checkpoints every 5 steps


def same_weights(a: Path, b: Path) -> None:
    wa, wb = torch.load(a), torch.load(b)
    assert list(wa) == list(wb)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_kill_and_rerun_resumes_bit_identical_with_the_data_position(
    stock_repo: Path, tmp_path: Path
) -> None:
    with_remote(stock_repo, tmp_path)
    ref = tmp_path / "ref.pt"
    assert resumed_from(script("hf_train.py", "ref", str(ref), cwd=stock_repo)) == "None"
    with stockroom.StockRoom(stock_repo) as stock:
        run = stock.run("ref", monitor="eval_loss")
        assert [c.step for c in run.checkpoints] == [5, 10, 15, 20, 24]
        kept = [c for c in run.checkpoints if not c.pruned]
        best = min(
            (c for c in run.checkpoints if "eval_loss" in c.metrics), key=lambda c: c.metrics["eval_loss"]
        )
        assert {c.step for c in kept} == {best.step, 24}  # keep_best=1, keep_last=1
        states = stock.at("ref@latest").model["run.ref"]["states"]
        assert {"model", "optimizer", "scheduler", "rng", "trainer_state"} <= set(states)
        assert '"global_step": 24' in states["trainer_state"]
        steps = run.history("loss")[0].tolist()
        assert steps == list(range(1, 25))  # logging_steps=1
        run.close()

    # killed at step 13, in epoch 2, after the checkpoint at step 10
    killed = script("hf_train.py", "main", str(tmp_path / "x.pt"), cwd=stock_repo, env={"STOP_AT": "13"})
    assert killed.returncode == -9, killed.stderr[-2000:]

    # another machine: nothing but the stock remote has the checkpoint
    clone = fresh_clone(stock_repo, tmp_path / "clone")
    reads = tmp_path / "reads.txt"
    there = tmp_path / "there.pt"
    proc = script("hf_train.py", "main", str(there), cwd=clone, env={"READS": str(reads)})
    assert resumed_from(proc) == "10"
    same_weights(ref, there)
    # the data position: the 10 steps done (40 samples) were skipped in the sampler, not read
    assert len(reads.read_text().split()) == (24 - 10) * 4

    # the same clone, its Trainer folders gone (only the stock has the checkpoint): resumes too
    shutil.rmtree(stock_repo / "hf-out")
    here = tmp_path / "here.pt"
    assert resumed_from(script("hf_train.py", "main", str(here), cwd=stock_repo)) == "10"
    same_weights(ref, here)
    with stockroom.StockRoom(stock_repo) as stock:
        run = stock.run("main")
        assert run.history("loss")[0].tolist() == list(range(1, 25))  # no duplicate steps
        run.close()
    again = script("hf_train.py", "main", str(tmp_path / "y.pt"), cwd=stock_repo)
    assert again.returncode != 0 and "run 'main' is finished" in again.stderr
