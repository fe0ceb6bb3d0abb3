"""``stock.at(REV)`` (SPEC section 8): the stock of any git revision, read-only,
beside the live object, in real git repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom import StockroomError


def run_git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(("git", *args), cwd=cwd, check=True, capture_output=True, text=True)


def git_commit(repo: Path, message: str) -> str:
    run_git("add", "-A", cwd=repo)
    run_git("commit", "-q", "--allow-empty", "-m", message, cwd=repo)
    return run_git("rev-parse", "HEAD", cwd=repo).stdout.strip()


def stock_and_git_commit(stock: stockroom.StockRoom, repo: Path, message: str) -> str:
    stock.commit(message)
    return git_commit(repo, message)


@pytest.fixture
def history(stock: stockroom.StockRoom, stock_repo: Path) -> dict[str, str]:
    """Three git commits on main with lr 0.1, 0.2, 0.3; a branch `exp` with lr 0.9; tag v1 on the first."""
    shas = {}
    for i, lr in enumerate((0.1, 0.2, 0.3)):
        stock.tag["lr"] = lr
        stock.tag["step"] = i
        stock.data["x"][i] = np.full(4, i, dtype=np.int32)
        shas[f"c{i}"] = stock_and_git_commit(stock, stock_repo, f"lr {lr}")
    run_git("tag", "v1", shas["c0"], cwd=stock_repo)
    run_git("switch", "-q", "-c", "exp", cwd=stock_repo)
    stock.tag["lr"] = 0.9
    stock.tag["branch"] = "exp"
    shas["exp"] = stock_and_git_commit(stock, stock_repo, "exp")
    run_git("switch", "-q", "main", cwd=stock_repo)
    return shas


def test_at_branch_tag_relative_and_sha(stock: stockroom.StockRoom, history: dict[str, str]) -> None:
    assert stock.tag["lr"] == 0.3  # main, as checked out
    with stock.at("exp") as exp:
        assert exp.tag["lr"] == 0.9 and exp.tag["branch"] == "exp"
    with stock.at("v1") as v1:
        assert v1.tag["lr"] == 0.1 and v1.tag["step"] == 0
        assert list(v1.data["x"]) == [0]
        assert "branch" not in v1.tag
    with stock.at("HEAD~2") as old:
        assert old.tag["lr"] == 0.1
    with stock.at(history["c1"][:10]) as mid:
        assert mid.tag["lr"] == 0.2
        assert sorted(mid.data["x"]) == [0, 1]
        np.testing.assert_array_equal(mid.data["x"][1], np.full(4, 1, dtype=np.int32))
        assert mid.commit == history["c1"]


def test_views_side_by_side_with_live_object(stock: stockroom.StockRoom, history: dict[str, str]) -> None:
    a, b = stock.at("v1"), stock.at("exp")
    # Interleaved reads of two revisions and the live stock.
    assert (a.tag["lr"], b.tag["lr"], stock.tag["lr"]) == (0.1, 0.9, 0.3)
    # The live object still writes and reads its own writes; the views do not see them.
    stock.tag["lr"] = 0.5
    assert stock.tag["lr"] == 0.5 and a.tag["lr"] == 0.1 and b.tag["lr"] == 0.9
    stock.commit("after views")
    assert dict(a.tag) == {"lr": 0.1, "step": 0}
    stock.close()
    assert a.closed and b.closed
    with pytest.raises(StockroomError, match="closed"):
        a.tag["lr"]


def test_detached_head_reads_and_views(
    stock: stockroom.StockRoom, stock_repo: Path, history: dict[str, str]
) -> None:
    run_git("checkout", "-q", history["c1"], cwd=stock_repo)
    assert stock.tag["lr"] == 0.2
    with stock.at("main") as main:
        assert main.tag["lr"] == 0.3
    with stock.at("HEAD") as here:
        assert here.tag["lr"] == 0.2


def test_writes_to_a_view_raise(stock: stockroom.StockRoom, history: dict[str, str]) -> None:
    with stock.at("v1") as view:
        attempts = [
            lambda: view.tag.__setitem__("lr", 1.0),
            lambda: view.tag.__delitem__("lr"),
            lambda: view.data["x"].__setitem__(9, np.zeros(4, np.int32)),
            lambda: view.data.__setitem__("x", {}),
            lambda: view.data["x"].__delitem__(0),
            lambda: view.model.__setitem__("net", []),
            lambda: view._store.commit("no"),
        ]
        for attempt in attempts:
            with pytest.raises(StockroomError, match="read-only view"):
                attempt()
        assert view.tag["lr"] == 0.1
    assert stock.tag["lr"] == 0.3
    assert stock._store.staged_changes() == []  # nothing was staged by the attempts


def test_model_through_a_view(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(3, 2)
    stock.model.save_weights("net", net)
    first = {k: v.clone() for k, v in net.state_dict().items()}
    stock_and_git_commit(stock, stock_repo, "first")
    with torch.no_grad():
        net.weight.add_(1.0)
    stock.model.save_weights("net", net)
    stock_and_git_commit(stock, stock_repo, "second")
    other = torch.nn.Linear(3, 2)
    with stock.at("HEAD~1") as view:
        view.model.load_weights("net", other)
        assert list(view.model) == ["net"]
        state = view.model["net"]
    for key, value in first.items():
        assert torch.equal(other.state_dict()[key], value)
        assert torch.equal(state[key], value)
    assert torch.equal(stock.model["net"]["weight"], net.weight.detach())


def test_revision_before_stock_init(git_repo: Path) -> None:
    (git_repo / "code.py").write_text("print(1)\n")
    git_commit(git_repo, "code before stock")
    stockroom.init_repo(install_hooks=False)
    git_commit(git_repo, "stock init")  # head.stock empty
    with stockroom.StockRoom() as stock:
        stock.tag["a"] = 1
        stock.commit("first")
        git_commit(git_repo, "first stock")
        with pytest.raises(StockroomError, match="predates `stock init`"):
            stock.at("HEAD~2")
        with pytest.raises(StockroomError, match="empty head.stock"):
            stock.at("HEAD~1")
        with pytest.raises(StockroomError, match="unknown git revision 'nope'"):
            stock.at("nope")
        assert stock.at("HEAD").tag["a"] == 1


def test_stock_commit_not_here(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    (stock_repo / "head.stock").write_text("a=" + "0" * 40 + "\n")
    git_commit(stock_repo, "names a stock commit from elsewhere")
    with pytest.raises(StockroomError, match="stock fetch"):
        stock.at("HEAD")
