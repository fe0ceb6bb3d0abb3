"""Resume anywhere on an S3 stock remote (moto's S3 server on 127.0.0.1), SPEC 9.

A run that saves to an S3 default remote (each checkpoint pushed in the
background, its pointer written with a create-only put) is resumed in a
fresh lazy clone, bit for bit, with no git commit recording a checkpoint.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from runs_helpers import EPOCHS, Trainer

import stockroom
from stockroom.headfile import read_head
from tests.conftest import run_git
from tests.test_remote_s3 import KEY_ID, s3

__all__ = ["s3"]  # the fixture, used by name

pytest.importorskip("obstore")


@pytest.fixture
def project(tmp_path: Path, s3: tuple[str, object]) -> Iterator[tuple[Path, str]]:
    endpoint, _ = s3
    proj = tmp_path / "alice"
    proj.mkdir()
    run_git("init", "-q", cwd=proj)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(proj)
        stockroom.init_repo(install_hooks=False)
    subprocess.run(
        ["stock", "remote", "add", "origin", "s3://stock-team/runs", "--endpoint", endpoint],
        check=True,
        cwd=proj,
        capture_output=True,
    )
    run_git("add", "-A", cwd=proj)
    run_git("commit", "-q", "-m", "stock init, remote", cwd=proj)
    yield proj, endpoint


def _objects(endpoint: str) -> dict[str, int]:
    from obstore.store import S3Store

    store = S3Store("stock-team", endpoint=endpoint, allow_http=True, region="us-east-1")
    return {o["path"]: o["size"] for batch in store.list() for o in batch}


def test_resume_in_a_fresh_clone_from_s3(project: tuple[Path, str], tmp_path: Path) -> None:
    proj, endpoint = project
    reference = Trainer(seed=21)
    for epoch in range(EPOCHS):
        reference.epoch(epoch)
    with stockroom.StockRoom(proj) as stock:
        first = Trainer(seed=21)
        run = stock.run("s3run", keep_last=1)
        for epoch in range(3):
            first.epoch(epoch, run)
            step = (epoch + 1) * Trainer.BATCHES - 1
            run.save(step, metrics={"loss": 1.0}, model=first.net, opt=first.opt, sched=first.sched)
        run.close()
        latest = run.checkpoints[-1]
    objects = _objects(endpoint)
    pointers = sorted(p for p in objects if p.startswith("runs/runs/"))
    assert len(pointers) == 3  # one create-only pointer per checkpoint
    assert KEY_ID not in json.dumps(list(objects))
    clone = tmp_path / "bob"
    run_git("clone", "-q", str(proj), str(clone), cwd=tmp_path)
    subprocess.run(["stock", "pull", "--lazy"], check=True, cwd=clone, capture_output=True)
    with stockroom.StockRoom(clone) as stock:
        second = Trainer(seed=0)
        run = stock.run("s3run")
        start = run.restore(model=second.net, opt=second.opt, sched=second.sched)
        assert start == 3 * Trainer.BATCHES and read_head(clone) == latest.commit
        for epoch in range(start // Trainer.BATCHES, EPOCHS):
            second.epoch(epoch, run)
        second.assert_same(reference)  # bit for bit
        run.close()
