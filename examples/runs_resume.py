"""Kill a training run mid-way, resume it in a fresh clone from the stock remote (SPEC 9).

A child process trains a small net, checkpointing each epoch with
``run.save``; it is SIGKILLed in the middle of epoch 3. A fresh ``git
clone`` (with ``stock pull --lazy``: records only) calls ``run.restore()``,
which finds the run's latest checkpoint on the remote, and trains to the
end. The weights and Adam state equal those of an uninterrupted run with
the same seed, bit for bit.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

EPOCHS, BATCHES = 5, 4


def trainer(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    return net, torch.optim.Adam(net.parameters(), lr=1e-2)


def epoch(net: nn.Module, opt: torch.optim.Optimizer, e: int, run: object = None, die: bool = False) -> None:
    for b in range(BATCHES):
        if die and b == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # the machine goes away mid-epoch
        x = torch.randn(8, 6) + random.random()
        opt.zero_grad()
        loss = (net(x) - x.sum(1, keepdim=True)).pow(2).mean()
        loss.backward()
        opt.step()
        if run is not None:
            run.log(e * BATCHES + b, loss=loss)  # type: ignore[attr-defined]


def child() -> None:
    import stockroom

    net, opt = trainer(0)
    with stockroom.StockRoom() as stock:
        run = stock.run("demo")
        for e in range(EPOCHS):
            epoch(net, opt, e, run, die=(e == 3))
            run.save((e + 1) * BATCHES - 1, model=net, opt=opt)
            run.wait()  # pushed before the next epoch (so the kill finds it on the remote)


def sh(*cmd: str, cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    import stockroom

    base = Path(tempfile.mkdtemp(prefix="stock-runs-demo-"))
    try:
        repo, remote, clone = base / "repo", base / "remote", base / "clone"
        repo.mkdir()
        remote.mkdir()
        sh("git", "init", "-q", cwd=repo)
        sh("git", "config", "user.name", "demo", cwd=repo)
        sh("git", "config", "user.email", "demo@example.com", cwd=repo)
        stockroom.init_repo(path=repo)
        sh("stock", "remote", "add", "team", str(remote), cwd=repo)
        sh("git", "add", "-A", cwd=repo)
        sh("git", "commit", "-q", "-m", "start", cwd=repo)
        print("== training in a child process, checkpoint each epoch; SIGKILL in epoch 3")
        done = subprocess.run([sys.executable, __file__, "--child"], cwd=repo)
        print(f"   child exited with {done.returncode} (-9: killed)")
        print("== a fresh clone of the branch, records only (stock pull --lazy), run.restore()")
        sh("git", "clone", "-q", str(repo), str(clone), cwd=base)
        sh("git", "config", "user.name", "teammate", cwd=clone)
        sh("git", "config", "user.email", "teammate@example.com", cwd=clone)
        sh("stock", "pull", "--lazy", cwd=clone)
        net, opt = trainer(123)  # other seed: restore must put everything back
        with stockroom.StockRoom(clone) as stock:
            run = stock.run("demo")
            start = run.restore(model=net, opt=opt)
            print(f"   resuming at step {start} (epoch {start // BATCHES if start else None})")
            for e in range((start or 0) // BATCHES, EPOCHS):
                epoch(net, opt, e, run)
                run.save((e + 1) * BATCHES - 1, model=net, opt=opt)
            run.finish()
        ref, ref_opt = trainer(0)
        for e in range(EPOCHS):
            epoch(ref, ref_opt, e)
        same = all(
            torch.equal(a, b)
            for a, b in zip(net.state_dict().values(), ref.state_dict().values(), strict=True)
        )
        sa, sb = opt.state_dict()["state"], ref_opt.state_dict()["state"]
        same = same and all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
        print(
            f"  [{'ok' if same else 'FAILED'}] resumed run == uninterrupted run (weights and Adam state, bit for bit)"
        )
        return 0 if same and done.returncode == -9 else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child()
        sys.exit(0)
    sys.exit(main())
