"""``RUN@STEP`` beside git revisions in ``stock log --tags`` and ``stock diff`` (SPEC 9)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from runs_helpers import Trainer

import stockroom


def stock_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        (sys.executable, "-m", "stockroom", *args), cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.fixture
def checkpoints(stock: stockroom.StockRoom) -> Path:
    """Run ``cnn`` with checkpoints at steps 0..3 (val_loss 4, 2, 3, 1); step 0 pruned."""
    t = Trainer(seed=11)
    run = stock.run("cnn", keep_last=3)
    for step, loss in enumerate([4.0, 2.0, 3.0, 1.0]):
        t.epoch(step)
        run.save(step, metrics={"val_loss": loss}, model=t.net, opt=t.opt)
    run.close()
    return stock.path


def test_log_tags_lists_a_runs_checkpoints(checkpoints: Path) -> None:
    out = stock_cli("log", "--tags", "run.cnn.val_loss", "cnn@2", cwd=checkpoints)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["commit", "date", "stock", "run.cnn.val_loss", "subject"]
    body = [line.split() for line in lines[1:]]
    assert [(r[0], r[3]) for r in body] == [("cnn@2", "3"), ("cnn@1", "2"), ("cnn@0", "4")]
    assert lines[3].endswith("(pruned)")  # its records and tags remain
    doc = json.loads(stock_cli("log", "--tags", "-n", "2", "--json", "cnn@latest", cwd=checkpoints).stdout)
    assert [(r["checkpoint"], r["commit"], r["tags"]["run.cnn.step"]) for r in doc] == [
        ("cnn@3", None, 3),
        ("cnn@2", None, 2),
    ]
    with stockroom.StockRoom(checkpoints) as stock:
        run = stock.run("cnn")
        assert doc[0]["stock"] == run.checkpoints[-1].commit
        run.close()
    # a git revision names where the table starts, as in `git log REV`
    out = stock_cli("log", "--tags", "--json", "HEAD", cwd=checkpoints)
    assert out.returncode == 0 and json.loads(out.stdout)[0]["subject"] == "stock init"


def test_log_tags_with_a_checkpoint_as_the_key_says_where_it_goes(checkpoints: Path) -> None:
    out = stock_cli("log", "--tags", "cnn@2", cwd=checkpoints)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "'cnn@2' is a run checkpoint" in out.stderr and "stock log cnn@2 --tags" in out.stderr
    out = stock_cli("log", "cnn@2", cwd=checkpoints)
    assert out.returncode == 1 and "go with --tags" in out.stderr
    out = stock_cli("log", "--tags", "cnn@9", cwd=checkpoints)
    assert out.returncode == 1 and "no checkpoint at step 9" in out.stderr


def test_diff_between_checkpoints(checkpoints: Path) -> None:
    out = stock_cli("diff", "cnn@1", "cnn@best", "--json", cwd=checkpoints)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    tags = {t["key"]: t for t in doc["tags"]}
    assert tags["run.cnn.val_loss"]["old"] == 2.0 and tags["run.cnn.val_loss"]["new"] == 1.0
    (model,) = doc["models"]
    assert model["model"] == "run.cnn" and model["status"] == "changed"
    names = {layer["name"] for layer in model["layers"]}
    assert "state['states']['model']['0.weight']" in names
    assert "state['states']['opt']['state'][0]['exp_avg']" in names
    text = stock_cli("diff", "cnn@1", "cnn@3", cwd=checkpoints)
    assert text.returncode == 0 and text.stdout.startswith("stock diff cnn@1 ")


def test_diff_with_a_pruned_checkpoint_says_it_was_pruned(checkpoints: Path) -> None:
    out = stock_cli("diff", "cnn@0", "cnn@3", cwd=checkpoints)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "pruned" in out.stderr and "Traceback" not in out.stderr
