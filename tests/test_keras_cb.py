"""stockroom.keras (SPEC 10): a real Keras 3 fit on CPU, killed and re-run as a script."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("keras")
import numpy as np  # noqa: E402
from frameworks.common import fresh_clone, resumed_from, script, with_remote  # noqa: E402

import stockroom  # noqa: E402

SCORES = {"VAL_SCORES": "0.5,0.2,0.9"}  # the ranked metric per epoch: the best is not the last
# 48 training samples (validation_split=0.25), batch 8: 6 batches an epoch


def same_weights(a: Path, b: Path) -> None:
    wa, wb = np.load(a), np.load(b)
    assert list(wa) == list(wb)
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), k


def test_kill_and_rerun_resumes_bit_identical(stock_repo: Path, tmp_path: Path) -> None:
    with_remote(stock_repo, tmp_path)
    ref = tmp_path / "ref.npz"
    assert resumed_from(script("keras_train.py", "ref", str(ref), cwd=stock_repo, env=SCORES)) == "None"
    with stockroom.StockRoom(stock_repo) as stock:
        run = stock.run("ref", monitor="score")
        assert [(c.step, c.pruned) for c in run.checkpoints] == [(6, True), (12, False), (18, False)]
        best = run.best()
        assert best is not None and best.step == 12
        assert stock.at("ref@best").model["run.ref"]["states"]["epoch"] == 2
        assert run.history("loss")[0].tolist() == [6, 12, 18]  # per epoch
        assert run.history("batch_loss")[0].tolist() == list(range(2, 19, 2))  # every 2 batches
        run.close()

    killed = script(
        "keras_train.py", "main", str(tmp_path / "x.npz"), cwd=stock_repo, env={**SCORES, "STOP_AT": "1,3"}
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    clone = fresh_clone(stock_repo, tmp_path / "clone")
    there = tmp_path / "there.npz"
    assert resumed_from(script("keras_train.py", "main", str(there), cwd=clone, env=SCORES)) == "1"
    same_weights(ref, there)
    here = tmp_path / "here.npz"
    assert resumed_from(script("keras_train.py", "main", str(here), cwd=stock_repo, env=SCORES)) == "1"
    same_weights(ref, here)
    with stockroom.StockRoom(stock_repo) as stock:
        run = stock.run("main")
        assert run.history("loss")[0].tolist() == [6, 12, 18]
        assert run.history("batch_loss")[0].tolist() == list(range(2, 19, 2))  # no duplicate steps
        run.close()
    again = script("keras_train.py", "main", str(tmp_path / "y.npz"), cwd=stock_repo, env=SCORES)
    assert again.returncode != 0 and "run 'main' is finished" in again.stderr
