"""`git merge` merges the stock: the head.stock merge driver, `stock merge`, real git and Hangar."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom.headfile import HEAD_FILE, MERGE_MARKER, read_head
from stockroom.install import ATTRIBUTE_LINE, DRIVER_SCRIPT, install, uninstall
from stockroom.store import open_repository
from tests.conftest import run_git as git


@pytest.fixture
def repo(git_repo: Path) -> Iterator[Path]:
    """A stock repository with hooks and the merge driver, one stock commit on main."""
    stockroom.init_repo()
    write(git_repo, "base", tags={"seed": 1}, data={"img": {0: 0.0, 1: 1.0}})
    yield git_repo


def stock_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        (sys.executable, "-m", "stockroom", *args),
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def write(
    root: Path,
    message: str,
    tags: dict[str, object] | None = None,
    data: dict[str, dict[object, float]] | None = None,
    model: dict[str, list[np.ndarray]] | None = None,
    drop: tuple[str, ...] = (),
) -> str:
    """A stock commit and the git commit recording it (through the installed hooks)."""
    with stockroom.StockRoom(root) as stock:
        for key, value in (tags or {}).items():
            stock.tag[key] = value  # type: ignore[assignment]
        for column, samples in (data or {}).items():
            for key, value in samples.items():
                stock.data[column][key] = np.full((3,), value, dtype=np.float32)  # type: ignore[index]
        for name, weights in (model or {}).items():
            stock.model[name] = weights
        for column in drop:
            del stock.data[column]
        digest = stock.commit(message)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", message, cwd=root)
    return digest


def read(root: Path) -> stockroom.StockRoom:
    return stockroom.StockRoom(root)


def branches(root: Path, ours: dict[str, object], theirs: dict[str, object]) -> None:
    """Branch `side` from main; both make one stock commit (keyword arguments of write)."""
    git("checkout", "-q", "-b", "side", cwd=root)
    write(root, "theirs", **theirs)  # type: ignore[arg-type]
    git("checkout", "-q", "main", cwd=root)
    write(root, "ours", **ours)  # type: ignore[arg-type]


def weights(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((64, 32)).astype(np.float32), rng.standard_normal(32).astype(np.float32)]


# ------------------------------------------------------------ install
def test_install_registers_the_driver_once_and_uninstall_removes_exactly_that(git_repo: Path) -> None:
    (git_repo / ".gitattributes").write_text("*.bin binary\n")
    stockroom.init_repo()
    install(git_repo)
    lines = (git_repo / ".gitattributes").read_text().splitlines()
    assert lines == ["*.bin binary", ATTRIBUTE_LINE]
    config = git("config", "--get", "merge.stock.driver", cwd=git_repo).stdout
    assert DRIVER_SCRIPT in config and "%O %A %B" in config
    script = (git_repo / ".git" / DRIVER_SCRIPT).read_text()
    assert sys.executable in script  # the interpreter is pinned, like the hooks
    uninstall(git_repo)
    assert (git_repo / ".gitattributes").read_text() == "*.bin binary\n"
    assert git("config", "--get-regexp", "merge", cwd=git_repo, check=False).stdout == ""
    assert not (git_repo / ".git" / DRIVER_SCRIPT).exists()
    uninstall(git_repo)  # twice: nothing left to remove, no error


# ------------------------------------------------------------- clean merges
def test_different_tags_merge(repo: Path) -> None:
    branches(repo, {"tags": {"lr": 0.1}}, {"tags": {"epochs": 3}})
    proc = git("merge", "-q", "--no-edit", "side", cwd=repo)
    assert proc.returncode == 0
    with read(repo) as stock:
        assert dict(stock.tag) == {"seed": 1, "lr": 0.1, "epochs": 3}
        assert stock.data["img"][1][0] == 1.0
    assert git("status", "--porcelain", cwd=repo).stdout == ""
    log = git("log", "--format=%s", "-1", cwd=repo).stdout
    assert "Merge" in log


def test_same_tag_same_value_is_not_a_conflict(repo: Path) -> None:
    branches(repo, {"tags": {"lr": 0.5, "a": 1}}, {"tags": {"lr": 0.5, "b": 2}})
    git("merge", "-q", "--no-edit", "side", cwd=repo)
    with read(repo) as stock:
        assert (stock.tag["lr"], stock.tag["a"], stock.tag["b"]) == (0.5, 1, 2)


def test_both_add_samples_to_one_column_and_change_different_samples(repo: Path) -> None:
    branches(
        repo, {"data": {"img": {2: 2.0, 0: 10.0}}}, {"data": {"img": {3: 3.0, 1: 11.0}, "lbl": {0: 5.0}}}
    )
    git("merge", "-q", "--no-edit", "side", cwd=repo)
    with read(repo) as stock:
        img = stock.data["img"]
        assert sorted(img.keys()) == [0, 1, 2, 3]
        assert [float(img[k][0]) for k in (0, 1, 2, 3)] == [10.0, 11.0, 2.0, 3.0]
        assert float(stock.data["lbl"][0][0]) == 5.0


def test_retrain_on_one_side_and_a_tag_on_the_other_is_clean(repo: Path) -> None:
    write(repo, "model", model={"net": weights(0)})
    branches(repo, {"model": {"net": weights(1)}}, {"tags": {"acc": 0.9}})
    git("merge", "-q", "--no-edit", "side", cwd=repo)
    with read(repo) as stock:
        assert all(np.array_equal(a, b) for a, b in zip(stock.model["net"], weights(1), strict=True))
        assert stock.tag["acc"] == 0.9


def test_both_train_identical_weights_is_not_a_conflict(repo: Path) -> None:
    branches(repo, {"model": {"net": weights(4)}}, {"model": {"net": weights(4)}, "tags": {"x": 1}})
    git("merge", "-q", "--no-edit", "side", cwd=repo)
    with read(repo) as stock:
        assert np.array_equal(stock.model["net"][0], weights(4)[0]) and stock.tag["x"] == 1


# --------------------------------------------------------------- conflicts
def conflicted(repo: Path) -> subprocess.CompletedProcess[str]:
    proc = git("merge", "--no-edit", "side", cwd=repo, check=False)
    assert proc.returncode != 0
    assert "CONFLICT" in proc.stdout
    text = (repo / HEAD_FILE).read_text()
    assert text.startswith(MERGE_MARKER)  # never one side's valid digest
    return proc


def test_different_tag_values_conflict_then_ours_then_theirs(repo: Path) -> None:
    branches(repo, {"tags": {"lr": 0.1, "a": 1}}, {"tags": {"lr": 0.2, "b": 2}})
    proc = conflicted(repo)
    assert "tag:lr: ours 0.1; theirs 0.2" in proc.stderr and "stock merge --ours" in proc.stderr
    # reads and commits refuse the conflicted head.stock, clearly
    with pytest.raises(stockroom.StockroomError, match="unfinished stock merge"):
        with read(repo) as stock:
            stock.tag["a"]
    status = stock_cli("status", cwd=repo)
    assert status.returncode == 0 and "tag:lr" in status.stdout and "unfinished stock merge" in status.stdout
    git("add", HEAD_FILE, cwd=repo)  # the hasty add
    proc = git("commit", "--no-edit", cwd=repo, check=False)
    assert proc.returncode == 1 and "unfinished stock merge" in proc.stderr
    # --ours: keep our lr, and everything else from both sides
    done = stock_cli("merge", "--ours", cwd=repo)
    assert done.returncode == 0, done.stderr
    git("add", HEAD_FILE, cwd=repo)
    git("commit", "-q", "--no-edit", cwd=repo)
    with read(repo) as stock:
        assert dict(stock.tag) == {"seed": 1, "lr": 0.1, "a": 1, "b": 2}
    # a fresh try, this time --theirs for the key by name
    git("reset", "-q", "--hard", "HEAD~1", cwd=repo)
    conflicted(repo)
    done = stock_cli("merge", "--theirs", "tag:lr", cwd=repo)
    assert done.returncode == 0, done.stderr
    git("add", HEAD_FILE, cwd=repo)
    git("commit", "-q", "--no-edit", cwd=repo)
    with read(repo) as stock:
        assert dict(stock.tag) == {"seed": 1, "lr": 0.2, "a": 1, "b": 2}


def test_both_change_one_sample(repo: Path) -> None:
    branches(repo, {"data": {"img": {0: 5.0, 7: 7.0}}}, {"data": {"img": {0: 6.0, 8: 8.0}}})
    proc = conflicted(repo)
    assert "data:img[0]" in proc.stderr and "float32 (3,)" in proc.stderr
    assert stock_cli("merge", "--theirs", "data:img[0]", cwd=repo).returncode == 0
    git("commit", "-q", "-a", "--no-edit", cwd=repo)
    with read(repo) as stock:
        img = stock.data["img"]
        assert float(img[0][0]) == 6.0 and 7 in img and 8 in img


def test_one_side_deletes_a_column_the_other_changed(repo: Path) -> None:
    branches(repo, {"drop": ("img",), "tags": {"a": 1}}, {"data": {"img": {5: 5.0}}})
    proc = conflicted(repo)
    assert "data:img: ours deleted; theirs column of 3 samples" in proc.stderr
    assert stock_cli("merge", "--ours", "img", cwd=repo).returncode == 0
    git("commit", "-q", "-a", "--no-edit", cwd=repo)
    with read(repo) as stock:
        assert "img" not in stock.data and stock.tag["a"] == 1


def test_both_retrain_the_same_model_conflict(repo: Path) -> None:
    write(repo, "model", model={"net": weights(0)})
    branches(repo, {"model": {"net": weights(1)}}, {"model": {"net": weights(2)}, "tags": {"t": 1}})
    proc = conflicted(repo)
    assert "model:net: ours 2 of 2 layers changed" in proc.stderr
    assert stock_cli("merge", "--theirs", "model:net", cwd=repo).returncode == 0
    git("commit", "-q", "-a", "--no-edit", cwd=repo)
    with read(repo) as stock:
        got = stock.model["net"]
        # the whole model of one side, never layers of both
        assert all(np.array_equal(a, b) for a, b in zip(got, weights(2), strict=True))
        assert stock.tag["t"] == 1


def test_abort_leaves_no_trace_and_a_second_merge_works(repo: Path) -> None:
    branches(repo, {"tags": {"lr": 0.1}}, {"tags": {"lr": 0.2}})
    ours = read_head(repo)
    conflicted(repo)
    git("merge", "--abort", cwd=repo)
    assert read_head(repo) == ours
    assert git("status", "--porcelain", cwd=repo).stdout == ""
    assert "unfinished" not in stock_cli("status", cwd=repo).stdout
    conflicted(repo)
    assert stock_cli("merge", "--theirs", cwd=repo).returncode == 0
    git("commit", "-q", "-a", "--no-edit", cwd=repo)
    with read(repo) as stock:
        assert stock.tag["lr"] == 0.2


# ------------------------------------------------- pull, rebase, cherry-pick
def test_pull_of_a_diverged_branch_from_a_bare_remote(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    git("remote", "add", "origin", str(bare), cwd=repo)
    git("push", "-q", "-u", "origin", "main", cwd=repo)
    write(repo, "upstream", tags={"up": 1})
    git("push", "-q", "origin", "main", cwd=repo)
    git("reset", "-q", "--hard", "HEAD~1", cwd=repo)  # diverge: the stock commit stays in .hangar
    write(repo, "local", tags={"local": 2}, data={"img": {9: 9.0}})
    proc = git("pull", "--no-rebase", "--no-edit", "-q", cwd=repo, check=False)
    assert proc.returncode == 0, proc.stderr
    with read(repo) as stock:
        assert stock.tag["up"] == 1 and stock.tag["local"] == 2 and 9 in stock.data["img"]


def test_rebase_keeps_both_sides(repo: Path) -> None:
    """The cure for issue 14's lost changes: a rebase replays each stock commit onto main's."""
    git("checkout", "-q", "-b", "side", cwd=repo)
    write(repo, "side 1", tags={"s1": 1})
    write(repo, "side 2", tags={"s2": 2}, data={"img": {4: 4.0}})
    git("checkout", "-q", "main", cwd=repo)
    write(repo, "main moved", tags={"m": 3})
    git("checkout", "-q", "side", cwd=repo)
    proc = git("rebase", "main", cwd=repo, check=False)
    assert proc.returncode == 0, proc.stderr
    with read(repo) as stock:
        assert (stock.tag["s1"], stock.tag["s2"], stock.tag["m"]) == (1, 2, 3)
        assert 4 in stock.data["img"]
    # the first replayed commit holds main's change and the first side commit only
    first = git("show", f"HEAD~1:{HEAD_FILE}", cwd=repo).stdout.strip()
    with open_repository(repo).checkout(commit=first) as co:
        assert sorted(co.columns["tag"].keys()) == ["m", "s1", "seed"]


def test_cherry_pick(repo: Path) -> None:
    git("checkout", "-q", "-b", "side", cwd=repo)
    write(repo, "side 1", tags={"skip": 1})
    write(repo, "side 2", tags={"pick": 2})
    git("checkout", "-q", "main", cwd=repo)
    write(repo, "main", tags={"m": 3})
    proc = git("cherry-pick", "side", cwd=repo, check=False)
    assert proc.returncode == 0, proc.stderr
    with read(repo) as stock:
        assert stock.tag["pick"] == 2 and stock.tag["m"] == 3 and "skip" not in stock.tag


# ------------------------------------------- without hooks, without stockroom
def test_merge_with_no_verify_and_committing_the_conflict_with_no_verify(repo: Path) -> None:
    branches(repo, {"tags": {"lr": 0.1, "a": 1}}, {"tags": {"lr": 0.2, "b": 2}})
    conflicted(repo)
    git("commit", "-q", "-a", "--no-verify", "--no-edit", cwd=repo)  # past every hook
    with pytest.raises(stockroom.StockroomError, match="unfinished stock merge"):
        with read(repo) as stock:
            stock.tag["lr"]
    # nothing was lost: the block names both sides, and stock merge finishes it
    assert stock_cli("merge", "--theirs", cwd=repo).returncode == 0
    git("commit", "-q", "-am", "finish the stock merge", cwd=repo)
    with read(repo) as stock:
        assert dict(stock.tag) == {"seed": 1, "lr": 0.2, "a": 1, "b": 2}
    # and a clean merge runs the driver with --no-verify too
    git("checkout", "-q", "-b", "other", "HEAD~2", cwd=repo)
    write(repo, "other", tags={"o": 5})
    git("checkout", "-q", "main", cwd=repo)
    git("merge", "-q", "--no-verify", "--no-edit", "other", cwd=repo)
    with read(repo) as stock:
        assert stock.tag["o"] == 5 and stock.tag["lr"] == 0.2


def test_plain_git_merge_without_stockroom_fails_clearly_and_loses_nothing(repo: Path) -> None:
    branches(repo, {"tags": {"a": 1}}, {"tags": {"b": 2}})
    script = repo / ".git" / DRIVER_SCRIPT
    script.write_text(script.read_text().replace(sys.executable, "/deleted/venv/bin/python"))
    dirs = [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "stock").exists()]
    env = dict(os.environ, PATH=os.pathsep.join(dirs))
    proc = git("merge", "--no-edit", "side", cwd=repo, env=env, check=False)
    assert proc.returncode != 0
    assert "is gone or no longer has stockroom" in proc.stderr and "git merge --abort" in proc.stderr
    text = (repo / HEAD_FILE).read_text()
    assert text.startswith(MERGE_MARKER)
    # with stockroom back, the merge finishes with both sides
    assert stock_cli("merge", cwd=repo).returncode == 0
    git("commit", "-q", "-a", "--no-edit", cwd=repo)
    with read(repo) as stock:
        assert stock.tag["a"] == 1 and stock.tag["b"] == 2


def test_the_other_sides_commit_missing_says_how_to_fetch(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(repo, clone)
    git("checkout", "-q", "-b", "side", cwd=clone)
    write(clone, "elsewhere", tags={"far": 1})  # a stock commit only the copy has
    git("fetch", "-q", str(clone), "side:side", cwd=repo)
    write(repo, "ours", tags={"near": 1})
    ours = read_head(repo)
    proc = git("merge", "--no-edit", "side", cwd=repo, check=False)
    assert proc.returncode != 0 and "stock fetch" in proc.stderr
    assert (repo / HEAD_FILE).read_text().startswith(MERGE_MARKER)
    git("merge", "--abort", cwd=repo)
    assert read_head(repo) == ours


def test_rebase_with_a_conflict_is_resolved_with_stock_merge(repo: Path) -> None:
    git("checkout", "-q", "-b", "side", cwd=repo)
    write(repo, "side", tags={"lr": 0.2, "s": 1})
    git("checkout", "-q", "main", cwd=repo)
    write(repo, "main", tags={"lr": 0.1, "m": 2})
    git("checkout", "-q", "side", cwd=repo)
    proc = git("rebase", "main", cwd=repo, check=False)
    assert proc.returncode != 0 and "tag:lr" in proc.stderr
    # during a rebase, --theirs is the commit being replayed, as in git
    assert stock_cli("merge", "--theirs", "lr", cwd=repo).returncode == 0
    git("add", HEAD_FILE, cwd=repo)
    env = dict(os.environ, GIT_EDITOR="true")
    git("rebase", "--continue", cwd=repo, env=env)
    with read(repo) as stock:
        assert dict(stock.tag) == {"seed": 1, "lr": 0.2, "s": 1, "m": 2}


def test_a_hasty_rebase_continue_commits_the_block_and_loses_nothing(repo: Path) -> None:
    """git runs no pre-commit hook when a rebase replays a commit: the block can reach
    history, where every read refuses it clearly and `stock merge` still finishes it."""
    git("checkout", "-q", "-b", "side", cwd=repo)
    write(repo, "side", tags={"lr": 0.2, "s": 1})
    git("checkout", "-q", "main", cwd=repo)
    write(repo, "main", tags={"lr": 0.1, "m": 2})
    git("checkout", "-q", "side", cwd=repo)
    assert git("rebase", "main", cwd=repo, check=False).returncode != 0
    git("add", HEAD_FILE, cwd=repo)
    git("rebase", "--continue", cwd=repo, env=dict(os.environ, GIT_EDITOR="true"))
    with pytest.raises(stockroom.StockroomError, match="unfinished stock merge"):
        with read(repo) as stock:
            stock.tag["lr"]
    # The pre-push hook keeps that commit from reaching teammates.
    bare = repo.parent / "origin.git"
    git("init", "-q", "--bare", str(bare), cwd=repo)
    pushed = git("push", "-q", str(bare), "side", cwd=repo, check=False)
    assert pushed.returncode != 0 and "push refused" in pushed.stderr
    assert "unfinished stock merge" in pushed.stderr and "Traceback" not in pushed.stderr
    assert git("ls-remote", str(bare), cwd=repo).stdout == ""
    assert stock_cli("merge", "--ours", cwd=repo).returncode == 0
    git("commit", "-q", "-a", "--amend", "--no-edit", cwd=repo)
    assert git("push", "-q", str(bare), "side", cwd=repo, check=False).returncode == 0
    with read(repo) as stock:
        assert dict(stock.tag) == {"seed": 1, "lr": 0.1, "s": 1, "m": 2}


def test_revert_undoes_one_stock_commit_and_keeps_later_ones(repo: Path) -> None:
    write(repo, "add a", tags={"a": 1})
    write(repo, "add b", tags={"b": 2})
    proc = git("revert", "--no-edit", "HEAD~1", cwd=repo, check=False)
    assert proc.returncode == 0, proc.stderr
    with read(repo) as stock:
        assert dict(stock.tag) == {"seed": 1, "b": 2}


def test_a_text_conflict_made_without_the_driver_is_resolved_from_gits_index(repo: Path) -> None:
    branches(repo, {"tags": {"a": 1, "lr": 0.1}}, {"tags": {"b": 2, "lr": 0.2}})
    git("config", "--remove-section", "merge.stock", cwd=repo)  # a clone that never ran `stock install`
    proc = git("merge", "--no-edit", "side", cwd=repo, check=False)
    assert proc.returncode != 0 and "<<<<<<<" in (repo / HEAD_FILE).read_text()
    listed = stock_cli("merge", cwd=repo)
    assert listed.returncode == 1 and "tag:lr" in listed.stdout
    assert stock_cli("merge", "--ours", cwd=repo).returncode == 0
    git("commit", "-q", "-a", "--no-edit", cwd=repo)
    with read(repo) as stock:
        assert dict(stock.tag) == {"seed": 1, "lr": 0.1, "a": 1, "b": 2}


def stock_and_git_commit(
    root: Path, message: str, samples: dict[str, dict[int, np.ndarray]], drop: tuple[str, ...] = ()
) -> None:
    with stockroom.StockRoom(root) as stock:
        for column in drop:
            del stock.data[column]
        for column, values in samples.items():
            for key, value in values.items():
                stock.data[column][key] = value
        stock.commit(message)
    git("commit", "-q", "-am", message, cwd=root)


def test_columns_created_or_recreated_merge_by_schema(repo: Path) -> None:
    """Both sides create one column alike: samples merge one by one. One side re-creates a
    column with another shape that the other side left alone: that side's column, whole."""
    git("checkout", "-q", "-b", "side", cwd=repo)
    stock_and_git_commit(repo, "theirs", {"fresh": {1: np.ones(2, np.int64)}})
    git("checkout", "-q", "main", cwd=repo)
    stock_and_git_commit(
        repo, "ours", {"fresh": {0: np.zeros(2, np.int64)}, "img": {7: np.ones(5, np.float32)}}, drop=("img",)
    )
    git("merge", "-q", "--no-edit", "side", cwd=repo)
    with read(repo) as stock:
        assert sorted(stock.data["fresh"].keys()) == [0, 1]
        assert list(stock.data["img"].keys()) == [7] and stock.data["img"][7].shape == (5,)


def test_both_create_one_column_with_different_shapes_conflict(repo: Path) -> None:
    git("checkout", "-q", "-b", "side", cwd=repo)
    stock_and_git_commit(repo, "theirs", {"fresh": {1: np.ones(2, np.int64)}})
    git("checkout", "-q", "main", cwd=repo)
    stock_and_git_commit(repo, "ours", {"fresh": {0: np.zeros(4, np.int64)}})
    proc = conflicted(repo)
    assert (
        "data:fresh: ours column of 1 samples (int64 (4,)); theirs column of 1 samples (int64 (2,))"
        in proc.stderr
    )
    assert stock_cli("merge", "--theirs", "fresh", cwd=repo).returncode == 0
    git("commit", "-q", "-a", "--no-edit", cwd=repo)
    with read(repo) as stock:
        assert list(stock.data["fresh"].keys()) == [1]


def test_a_clean_merge_reads_records_only_never_sample_data(repo: Path, tmp_path: Path) -> None:
    branches(
        repo, {"data": {"img": {5: 5.0}}, "tags": {"a": 1}}, {"data": {"img": {6: 6.0}}, "tags": {"b": 2}}
    )
    store = repo / ".hangar" / "data"
    aside = tmp_path / "aside"
    shutil.move(str(store), str(aside))  # no sample data anywhere: the merge must not need any
    store.mkdir()
    try:
        proc = git("merge", "--no-edit", "side", cwd=repo, check=False)
    finally:
        store.rmdir()
        shutil.move(str(aside), str(store))
    assert proc.returncode == 0, proc.stderr
    with read(repo) as stock:
        assert float(stock.data["img"][6][0]) == 6.0 and float(stock.data["img"][5][0]) == 5.0
    open_repository(repo).verify_repo_integrity()


def test_resolving_some_keys_keeps_the_rest_open(repo: Path) -> None:
    branches(repo, {"tags": {"lr": 0.1, "wd": 1}}, {"tags": {"lr": 0.2, "wd": 2}})
    conflicted(repo)
    wrong = stock_cli("merge", "--ours", "nope", cwd=repo)
    assert (
        wrong.returncode == 1 and "'nope' is not among the conflicting keys: tag:lr, tag:wd" in wrong.stderr
    )
    part = stock_cli("merge", "--ours", "lr", cwd=repo)
    assert part.returncode == 0 and "1 stock conflict" in part.stdout and "tag:wd" in part.stdout
    assert "tag:lr" not in part.stdout
    assert (repo / HEAD_FILE).read_text().startswith(MERGE_MARKER)  # still unfinished
    status = stock_cli("status", cwd=repo)
    assert "tag:wd" in status.stdout and "tag:lr" not in status.stdout
    assert stock_cli("merge", "--theirs", "tag:wd", cwd=repo).returncode == 0
    git("commit", "-q", "-a", "--no-edit", cwd=repo)
    with read(repo) as stock:
        assert (stock.tag["lr"], stock.tag["wd"]) == (0.1, 2)


def test_ours_and_theirs_together_are_refused(repo: Path) -> None:
    """Issue 21 defect 3: both flags at once was accepted and the last one won."""
    branches(repo, {"tags": {"lr": 0.1}}, {"tags": {"lr": 0.2}})
    conflicted(repo)
    block = (repo / HEAD_FILE).read_text()
    for flags in (("--ours", "--theirs"), ("--theirs", "--ours", "lr")):
        proc = stock_cli("merge", *flags, cwd=repo)
        assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "--ours and --theirs together" in proc.stderr and "Traceback" not in proc.stderr
        assert (repo / HEAD_FILE).read_text() == block  # nothing chosen, still unfinished
    assert stock_cli("merge", "--theirs", cwd=repo).returncode == 0  # one flag still works
    git("commit", "-q", "-a", "--no-edit", cwd=repo)
    with read(repo) as stock:
        assert stock.tag["lr"] == 0.2


def test_merge_with_staged_stock_writes_keeps_them(repo: Path) -> None:
    branches(repo, {"tags": {"a": 1}}, {"tags": {"b": 2}})
    ours = read_head(repo)
    with stockroom.StockRoom(repo) as stock:
        stock.tag["pending"] = 7  # staged, not committed
    git("merge", "-q", "--no-edit", "side", cwd=repo)
    with read(repo) as stock:
        assert stock.tag["b"] == 2 and "pending" not in stock.tag
    status = stock_cli("status", cwd=repo)
    assert f"based on stock commit {ours}" in status.stdout and "tags" in status.stdout
