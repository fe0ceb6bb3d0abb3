"""stockroom end to end: train, store, git commit, branch, git checkout back,
then share it with a teammate: a stock remote, `stock push`, `git push`,
`git clone`, `stock pull`.

Runs in a fresh temporary git repository and prints every step. Exits
non-zero if the stock state did not follow ``git checkout`` or the clone
does not read the same weights, data and tags.
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
    team = Path(tempfile.mkdtemp(prefix="stockroom-team-"))
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
        main_loss = loss
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

        step("share it: a stock remote (a directory here: a shared drive, NFS, or s3://bucket/prefix)")
        stock_remote = team / "stock-remote"
        stock_remote.mkdir()
        sh("git", "switch", "-q", "main", cwd=repo)
        sh("stock", "remote", "add", "team", str(stock_remote), cwd=repo)
        sh("git", "add", ".stockremotes", cwd=repo)
        sh("git", "commit", "-q", "-m", "the team's stock remote", cwd=repo)
        sh("git", "switch", "-q", "experiment", cwd=repo)
        sh("git", "merge", "-q", "--no-edit", "main", cwd=repo)
        sh("stock", "push", "--all", cwd=repo)
        step("git push: the pre-push hook checks the stock is on the remote first (nothing new: no request)")
        code = team / "code.git"
        sh("git", "init", "-q", "--bare", "-b", "main", str(code), cwd=team)
        sh("git", "remote", "add", "origin", str(code), cwd=repo)
        sh("git", "push", "-q", "origin", "main", "experiment", cwd=repo)

        step("a teammate clones the code, then one command brings the stock")
        clone = team / "teammate"
        sh("git", "clone", "-q", str(code), str(clone), cwd=team)
        sh("git", "config", "user.name", "Teammate", cwd=clone)
        sh("git", "config", "user.email", "teammate@example.com", cwd=clone)
        sh("stock", "pull", cwd=clone)
        with stockroom.StockRoom(clone) as theirs:
            theirs.model.load_weights("net", loaded)
            checks["clone: main's weights, bit for bit"] = same_weights(loaded, baseline)
            checks["clone: main's tags"] = theirs.tag["lr"] == 0.1 and theirs.tag["loss"] == main_loss
            checks["clone: the same 64 samples"] = len(theirs.data["features"]) == 64 and np.array_equal(
                theirs.data["features"][5], x[5].numpy()
            )
            step("the teammate switches to the experiment: the hook fetches its stock")
            sh("git", "switch", "-q", "experiment", cwd=clone)
            theirs.model.load_weights("net", loaded)
            checks["clone: the experiment's weights after git switch"] = same_weights(loaded, experiment)
            checks["clone: the experiment's tags"] = theirs.tag["lr"] == 0.01

        step("did the stock state follow git checkout, and reach the clone?")
        for name, ok in checks.items():
            print(f"  [{'ok' if ok else 'FAILED'}] {name}")
        if all(checks.values()):
            print("\nOK: stock state followed every git checkout and reached the clone")
            return 0
        print("\nFAILED: stock state did not follow git checkout or did not reach the clone")
        return 1
    finally:
        os.chdir(Path.home())
        if keep:
            print(f"(repository kept in {repo}, remote and clone in {team})")
        else:
            shutil.rmtree(repo, ignore_errors=True)
            shutil.rmtree(team, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
