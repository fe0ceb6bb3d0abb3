"""A nested training state (optimizer, scheduler) under `git merge` and `stock diff` (SPEC 9).

The merge driver and `stock diff` treat a nested state's tensors as they
treat a model's layers: named by their path, counted and listed, and the
state merges whole (one side's, never tensors of both).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tests.conftest import run_git as git
from tests.test_merge import branches, conflicted, read, repo, stock_cli, write

__all__ = ["repo"]  # the fixture, used by name


def optimizer_state(steps: int) -> dict[str, Any]:
    """Adam's state after ``steps`` steps of a tiny seeded net (two parameters)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        net(torch.randn(3, 4)).pow(2).sum().backward()
        opt.step()
    return opt.state_dict()


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["param_groups"] != b["param_groups"] or a["state"].keys() != b["state"].keys():
        return False
    return all(torch.equal(v, b["state"][i][k]) for i, st in a["state"].items() for k, v in st.items())


def test_both_sides_train_the_optimizer_conflict_names_its_tensors(repo: Path) -> None:
    write(repo, "opt", model={"opt": optimizer_state(1)})  # type: ignore[dict-item]
    branches(repo, {"model": {"opt": optimizer_state(2)}}, {"model": {"opt": optimizer_state(3)}})
    proc = conflicted(repo)
    line = next(x for x in proc.stderr.splitlines() if "model:opt:" in x)
    # the four moment tensors (exp_avg, exp_avg_sq of weight and bias) and the two step
    # counters changed; the structure record is not a layer
    assert "ours 6 of 6 layers changed" in line, line
    assert "state['state'][0]['exp_avg']" in line and "(structure)" not in line
    assert stock_cli("merge", "--theirs", "model:opt", cwd=repo).returncode == 0
    git("commit", "-q", "-a", "--no-edit", cwd=repo)
    with read(repo) as stock:
        got = stock.model["opt"]
        assert same_state(got, optimizer_state(3))  # the whole state of one side
        fresh = torch.optim.Adam(torch.nn.Linear(4, 2).parameters(), lr=0.01)
        fresh.load_state_dict(got)


def test_one_side_trains_the_optimizer_the_other_tags_merges_clean(repo: Path) -> None:
    write(repo, "opt", model={"opt": optimizer_state(1)})  # type: ignore[dict-item]
    branches(repo, {"tags": {"note": "x"}}, {"model": {"opt": optimizer_state(4)}})
    proc = git("merge", "--no-edit", "side", cwd=repo, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with read(repo) as stock:
        assert same_state(stock.model["opt"], optimizer_state(4)) and stock.tag["note"] == "x"


def test_stock_diff_lists_a_nested_states_tensors_as_layers(repo: Path) -> None:
    write(repo, "opt", model={"opt": optimizer_state(1)})  # type: ignore[dict-item]
    write(repo, "opt2", model={"opt": optimizer_state(2)})  # type: ignore[dict-item]
    out = stock_cli("diff", "HEAD~1", "HEAD", "--json", cwd=repo)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    (model,) = [m for m in doc["models"] if m["model"] == "opt"]
    layers = {layer["name"]: layer for layer in model["layers"]}
    assert "state['state'][0]['exp_avg']" in layers, sorted(layers)
    assert layers["state['state'][0]['exp_avg']"]["status"] == "changed"
