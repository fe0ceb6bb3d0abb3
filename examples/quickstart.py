"""stockroom end to end: train, store, git commit, branch, git checkout back.

Runs in a fresh temporary git repository and prints every step. Exits
non-zero if the stock state did not follow ``git checkout``.
Usage: python examples/quickstart.py [--keep]   (--keep leaves the repo)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import stockroom


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def sh(*cmd: str, cwd: Path) -> None:
    """Run a command as a user would type it, showing it and its output."""
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def train(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, steps: int) -> float:
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    return float(loss.detach())


def make_net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def main() -> int:
    keep = "--keep" in sys.argv
    repo = Path(tempfile.mkdtemp(prefix="stockroom-quickstart-"))
    os.chdir(repo)
    torch.manual_seed(0)
    try:
        step(f"a fresh git repository in {repo}")
        sh("git", "init", "-q", "-b", "main", cwd=repo)
        sh("git", "config", "user.name", "Quickstart", cwd=repo)
        sh("git", "config", "user.email", "quickstart@example.com", cwd=repo)
        (repo / "train.py").write_text("# the training code lives in git\nLR = 0.1\n")

        step("stock init: creates .hangar (git-ignored), head.stock, and the git hooks")
        sh("stock", "init", cwd=repo)
        sh("git", "add", "-A", cwd=repo)
        sh("git", "commit", "-q", "-m", "project with stockroom", cwd=repo)

        step("train a small torch model; store its weights, the data and the tags")
        x = torch.randn(64, 8)
        y = torch.randint(0, 3, (64,))
        net = make_net()
        loss = train(net, x, y, lr=0.1, steps=20)
        stock = stockroom.StockRoom()
        stock.data["features"].update({i: x[i] for i in range(len(x))})
        stock.data["labels"].update({i: y[i] for i in range(len(y))})
        stock.model.save_weights("net", net)
        stock.tag["lr"] = 0.1
        stock.tag["loss"] = loss
        print(f"stored {len(stock.data['features'])} samples, weights of 'net', tags {dict(stock.tag)}")
        baseline = make_net()
        baseline.load_state_dict(net.state_dict())
        stock.commit("baseline model")
        sh("git", "commit", "-q", "-am", "baseline: lr 0.1", cwd=repo)
        sh("git", "log", "--oneline", "-1", cwd=repo)
        sh("stock", "log", cwd=repo)

        step("an experiment on a new branch: other lr, more training, more data")
        sh("git", "switch", "-q", "-c", "experiment", cwd=repo)
        (repo / "train.py").write_text("# the training code lives in git\nLR = 0.01\n")
        loss = train(net, x, y, lr=0.01, steps=50)
        stock.model.save_weights("net", net)
        stock.tag["lr"] = 0.01
        stock.tag["loss"] = loss
        stock.data["features"][64] = torch.zeros(8)
        stock.data["labels"][64] = torch.tensor(0)
        step("git commit before `stock commit`: the pre-commit hook refuses")
        print("$ git commit -am 'experiment: lr 0.01'", flush=True)
        refused = subprocess.run(("git", "commit", "-q", "-am", "experiment: lr 0.01"), cwd=repo)
        print(f"(git commit exited {refused.returncode}: nothing was committed)")
        if refused.returncode == 0:
            print("FAILED: the pre-commit hook let uncommitted stock writes through")
            return 1
        stock.commit("experiment: lr 0.01")
        sh("git", "commit", "-q", "-am", "experiment: lr 0.01", cwd=repo)
        experiment = make_net()
        experiment.load_state_dict(net.state_dict())
        print(f"on experiment: tags {dict(stock.tag)}, {len(stock.data['features'])} samples")

        step("git checkout main: the same StockRoom object now reads main's stock")
        sh("git", "checkout", "-q", "main", cwd=repo)
        loaded = make_net()
        stock.model.load_weights("net", loaded)
        checks = {
            "lr tag is main's (0.1)": stock.tag["lr"] == 0.1,
            "64 samples, as committed on main": len(stock.data["features"]) == 64,
            "weights equal the baseline, bit for bit": same_weights(loaded, baseline),
            "first sample intact": np.array_equal(stock.data["features"][0], x[0].numpy()),
        }

        step("git checkout experiment: and back again")
        sh("git", "checkout", "-q", "experiment", cwd=repo)
        stock.model.load_weights("net", loaded)
        checks["lr tag is the experiment's (0.01)"] = stock.tag["lr"] == 0.01
        checks["65 samples on the experiment"] = len(stock.data["features"]) == 65
        checks["weights equal the experiment's"] = same_weights(loaded, experiment)

        step("compare: stock diff, the experiment table, and main's stock without a checkout")
        sh("stock", "diff", "main", "experiment", cwd=repo)
        sh("stock", "log", "--tags", "--branches", cwd=repo)
        with stock.at("main") as main:
            print(f"stock.at('main').tag['lr'] = {main.tag['lr']} (checked out: experiment, lr {stock.tag['lr']})")
            checks["stock.at('main') reads main's tags"] = main.tag["lr"] == 0.1
        stock.close()

        step("did the stock state follow git checkout?")
        for name, ok in checks.items():
            print(f"  [{'ok' if ok else 'FAILED'}] {name}")
        if all(checks.values()):
            print("\nOK: stock state followed every git checkout")
            return 0
        print("\nFAILED: stock state did not follow git checkout")
        return 1
    finally:
        os.chdir(Path.home())
        if keep:
            print(f"(repository kept in {repo})")
        else:
            shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
