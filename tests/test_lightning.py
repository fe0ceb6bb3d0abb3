"""stockroom.lightning (SPEC 10): a real Lightning Trainer on CPU, killed and re-run as a script."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightning")
import torch  # noqa: E402
from frameworks.common import fresh_clone, resumed_from, script, with_remote  # noqa: E402

import stockroom  # noqa: E402

SCORES = {"VAL_SCORES": "0.5,0.2,0.9"}  # val_loss per epoch: the best checkpoint is not the last


def same_weights(a: Path, b: Path) -> None:
    wa, wb = torch.load(a), torch.load(b)
    assert list(wa) == list(wb)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_kill_and_rerun_resumes_bit_identical_here_and_in_a_fresh_clone(
    stock_repo: Path, tmp_path: Path
) -> None:
    with_remote(stock_repo, tmp_path)
    ref = tmp_path / "ref.pt"
    assert resumed_from(script("lightning_train.py", "ref", str(ref), cwd=stock_repo, env=SCORES)) == "None"
    with stockroom.StockRoom(stock_repo) as stock:
        run = stock.run("ref", monitor="val_loss")
        # keep_last=1, keep_best=1 by val_loss: epoch 2 (0.2) and the last (epoch 3) stay
        assert [(c.step, c.pruned) for c in run.checkpoints] == [(8, True), (16, False), (24, False)]
        best = run.best()
        assert best is not None and best.step == 16
        ckpt = stock.at("ref@best").model["run.ref"]["states"]["lightning"]
        assert ckpt["global_step"] == 16 and ckpt["epoch"] == 1
        assert {"state_dict", "optimizer_states", "lr_schedulers", "loops", "callbacks"} <= set(ckpt)
        assert stock.tag["lr"] == 0.02 and stock.tag["hidden"] == 16  # hyper-parameters as tags
        run.close()

    killed = script(
        "lightning_train.py", "main", str(tmp_path / "x.pt"), cwd=stock_repo, env={**SCORES, "STOP_AT": "13"}
    )
    assert killed.returncode == -9, killed.stderr[-2000:]

    # another machine: a fresh clone resumes from the remote's latest checkpoint
    clone = fresh_clone(stock_repo, tmp_path / "clone")
    there = tmp_path / "there.pt"
    assert resumed_from(script("lightning_train.py", "main", str(there), cwd=clone, env=SCORES)) == "8"
    same_weights(ref, there)

    # the same clone: re-running the script resumes it too
    here = tmp_path / "here.pt"
    assert resumed_from(script("lightning_train.py", "main", str(here), cwd=stock_repo, env=SCORES)) == "8"
    same_weights(ref, here)
    with stockroom.StockRoom(stock_repo) as stock:
        run = stock.run("main")
        for metric in ("loss", "val_loss", "epoch"):
            steps = run.history(metric)[0].tolist()
            assert steps == sorted(set(steps)), metric  # no duplicate steps after the resume
        assert run.history("loss")[0].tolist() == list(range(24))
        run.close()

    # a finished run is not resumed: one clear error
    again = script("lightning_train.py", "main", str(tmp_path / "y.pt"), cwd=stock_repo, env=SCORES)
    assert again.returncode != 0
    assert "run 'main' is finished" in again.stderr and "name a new run" in again.stderr


def test_fit_ckpt_path_loads_a_stock_checkpoint(stock_repo: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref.pt"
    resumed_from(script("lightning_train.py", "ref", str(ref), cwd=stock_repo, env=SCORES))
    # a new run started from ref's best (step 16) goes on to the same end as ref
    tuned = tmp_path / "tuned.pt"
    proc = script(
        "lightning_train.py", "tuned", str(tuned), cwd=stock_repo, env={**SCORES, "CKPT": "stock://ref@best"}
    )
    assert resumed_from(proc) == "None"  # nothing of its own to resume: it loaded ckpt_path
    same_weights(ref, tuned)
    with stockroom.StockRoom(stock_repo) as stock:
        run = stock.run("tuned")
        assert [c.step for c in run.checkpoints] == [24]
        run.close()


def test_import_stockroom_imports_no_framework() -> None:
    """The extras stay optional: `import stockroom` (and the shared integration code) load none."""
    import subprocess
    import sys

    code = (
        "import sys, stockroom, stockroom.integrations._common\n"
        "print(sorted(m for m in ('torch', 'lightning', 'transformers', 'keras', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
