"""StockRoom and init_repo (SPEC section 2): setup, root discovery, commits,
reads that follow head.stock, where writes build, optimize(), the expert
checkouts and closing. Real git repositories, real Hangar store, no hooks
(the hooks are tested on their own): git commits of head.stock are made by
hand here, as a user with no hooks installed would.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom import StockroomError
from stockroom.headfile import DIGEST_RE


def run_git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(("git", *args), cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc


def git_commit_head(repo: Path, message: str) -> None:
    """Record head.stock in git, as the pre-commit hook (not installed here) would."""
    run_git("add", "head.stock", cwd=repo)
    run_git("commit", "-q", "--allow-empty", "-m", message, cwd=repo)


def head_text(repo: Path) -> str:
    return (repo / "head.stock").read_text(encoding="ascii").strip()


def run_python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (another process) in ``cwd``."""
    full_env = {**os.environ, **env}
    return subprocess.run(
        (sys.executable, "-c", textwrap.dedent(code)),
        cwd=cwd, capture_output=True, text=True, env=full_env, timeout=120,
    )


# ------------------------------------------------------------------ init_repo
def test_init_repo_creates_store_head_and_gitignore(git_repo: Path) -> None:
    root = stockroom.init_repo(install_hooks=False)
    assert root == git_repo
    assert (git_repo / ".hangar").is_dir()
    assert (git_repo / "head.stock").read_bytes() == b""
    assert (git_repo / ".gitignore").read_text().splitlines() == [".hangar"]
    # git itself agrees that the store is ignored and head.stock is not.
    assert run_git("check-ignore", "-q", ".hangar", cwd=git_repo, check=False).returncode == 0
    assert run_git("check-ignore", "-q", "head.stock", cwd=git_repo, check=False).returncode == 1


def test_init_repo_takes_identity_from_git_config(git_repo: Path) -> None:
    stockroom.init_repo(install_hooks=False)
    with stockroom.StockRoom() as stock:
        stock.tag["x"] = 1
        stock.commit("first")
        entry = stock._store.log()[0]
    assert (entry["commit_user"], entry["commit_email"]) == ("Stock Tester", "tester@example.com")


def test_init_repo_explicit_identity_wins_over_git_config(git_repo: Path) -> None:
    stockroom.init_repo(name="Ada", email="ada@example.org", install_hooks=False)
    with stockroom.StockRoom() as stock:
        stock.tag["x"] = 1
        stock.commit("first")
        entry = stock._store.log()[0]
    assert (entry["commit_user"], entry["commit_email"]) == ("Ada", "ada@example.org")


@pytest.mark.parametrize("given", [{}, {"name": "Ada"}, {"email": "ada@example.org"}])
def test_init_repo_without_identity_is_a_value_error(git_repo: Path, given: dict[str, str]) -> None:
    Path(os.environ["GIT_CONFIG_GLOBAL"]).write_text("[init]\n\tdefaultBranch = main\n")
    with pytest.raises(ValueError, match="user.name and user.email"):
        stockroom.init_repo(install_hooks=False, **given)
    assert not (git_repo / ".hangar").exists()
    assert not (git_repo / "head.stock").exists()


def test_init_repo_outside_git_is_a_stockroom_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "not-git"
    plain.mkdir()
    monkeypatch.chdir(plain)
    with pytest.raises(StockroomError, match="not inside a git work tree.*git init"):
        stockroom.init_repo(install_hooks=False)
    with pytest.raises(StockroomError, match="not inside a git work tree"):
        stockroom.init_repo(path=plain, install_hooks=False)
    assert list(plain.iterdir()) == []


def test_init_repo_path_argument_and_subdirectory(git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = git_repo / "src" / "pkg"
    sub.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # not inside the repository
    assert stockroom.init_repo(path=sub, install_hooks=False) == git_repo
    assert (git_repo / "head.stock").is_file()
    assert not (sub / "head.stock").exists()


def test_init_repo_again_changes_nothing(stock_repo: Path) -> None:
    with stockroom.StockRoom() as stock:
        stock.tag["kept"] = "yes"
        stock.data["col"][0] = np.arange(4)
        digest = stock.commit("keep me")
        stock.tag["staged"] = 2  # staged, must survive too
    git_commit_head(stock_repo, "stock state")
    before = {p: (stock_repo / p).read_bytes() for p in ("head.stock", ".gitignore")}

    stockroom.init_repo(install_hooks=False)
    stockroom.init_repo(name="Someone", email="else@example.org", install_hooks=False)

    assert {p: (stock_repo / p).read_bytes() for p in before} == before
    assert run_git("status", "--porcelain", cwd=stock_repo).stdout == ""
    with stockroom.StockRoom() as stock:
        assert stock.head == digest
        assert stock.tag["kept"] == "yes"
        np.testing.assert_array_equal(stock.data["col"][0], np.arange(4))
        stock.commit("the staged write was kept")
        assert stock.tag["staged"] == 2


def test_init_repo_again_needs_no_identity(stock_repo: Path) -> None:
    """SPEC 2: running it again changes nothing that exists, so it asks for no
    name or email (a CI job, a teammate's machine without git identity)."""
    with stockroom.StockRoom() as stock:
        stock.tag["kept"] = "yes"
        digest = stock.commit("keep me")
    Path(os.environ["GIT_CONFIG_GLOBAL"]).write_text("[init]\n\tdefaultBranch = main\n")
    stockroom.init_repo(install_hooks=False)  # no ValueError
    assert run_git("status", "--porcelain", cwd=stock_repo).stdout == " M head.stock\n"
    with stockroom.StockRoom() as stock:
        assert stock.head == digest
        assert stock.tag["kept"] == "yes"
    # Starting over makes a store: that still needs one.
    with pytest.raises(ValueError, match="user.name and user.email"):
        stockroom.init_repo(overwrite=True, install_hooks=False)
    with stockroom.StockRoom() as stock:
        assert stock.tag["kept"] == "yes"


def test_gitignore_kept_and_line_never_duplicated(git_repo: Path) -> None:
    (git_repo / ".gitignore").write_text("*.pyc\nbuild/")  # no final newline
    stockroom.init_repo(install_hooks=False)
    stockroom.init_repo(install_hooks=False)
    assert (git_repo / ".gitignore").read_text() == "*.pyc\nbuild/\n.hangar\n"


@pytest.mark.parametrize("form", ["/.hangar/", ".hangar/", "  .hangar  "])
def test_gitignore_existing_forms_of_the_line_are_respected(git_repo: Path, form: str) -> None:
    (git_repo / ".gitignore").write_text(f"# mine\n{form}\n")
    stockroom.init_repo(install_hooks=False)
    assert (git_repo / ".gitignore").read_text() == f"# mine\n{form}\n"


def test_init_repo_overwrite_starts_the_store_over(stock_repo: Path) -> None:
    (stock_repo / ".gitignore").write_text(".hangar\nextra\n")
    with stockroom.StockRoom() as stock:
        stock.tag["old"] = 1
        stock.data["old"][0] = np.zeros(2)
        stock.commit("old state")
    stockroom.init_repo(overwrite=True, install_hooks=False)
    assert (stock_repo / "head.stock").read_bytes() == b""
    assert (stock_repo / ".gitignore").read_text() == ".hangar\nextra\n"
    with stockroom.StockRoom() as stock:
        assert dict(stock.tag) == {}
        assert list(stock.data) == []
        stock.tag["new"] = 2
        stock.commit("new store")
        assert dict(stock.tag) == {"new": 2}
        assert len(stock._store.log()) == 1


# -------------------------------------------------------------- finding root
def test_stockroom_finds_root_from_a_subdirectory(stock_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = stock_repo / "a" / "b" / "c"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    with stockroom.StockRoom() as stock:
        assert stock.path == stock_repo
        assert isinstance(stock.path, Path)
        assert stock.stockroot == stock.path
        # data and model are properties (opened on first use), tag an attribute.
        assert all(hasattr(stock, name) for name in ("data", "model", "tag"))


def test_stockroom_not_found_is_a_stockroom_error(git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StockroomError, match="stock init"):
        stockroom.StockRoom()  # a git repo, but not a stock repo
    with pytest.raises(StockroomError, match="stock init"):
        stockroom.StockRoom(git_repo)
    (git_repo / "head.stock").write_text("")  # head.stock alone is not enough
    with pytest.raises(StockroomError):
        stockroom.StockRoom()


def test_explicit_path_needs_no_git(stock_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with stockroom.StockRoom() as stock:
        stock.tag["a"] = 1
        stock.commit("one")
    copy = tmp_path / "copy-without-git"
    copy.mkdir()
    shutil.copytree(stock_repo / ".hangar", copy / ".hangar")
    shutil.copy(stock_repo / "head.stock", copy / "head.stock")
    monkeypatch.chdir(tmp_path)
    with stockroom.StockRoom(copy) as stock:
        assert stock.path == copy
        assert stock.tag["a"] == 1
        stock.tag["b"] = 2  # no git: no detached-HEAD check to fail
        stock.commit("two")
        assert dict(stock.tag) == {"a": 1, "b": 2}
    with stockroom.StockRoom(str(copy)) as stock:
        assert stock.tag["b"] == 2


# ------------------------------------------------------------------- commit
def test_commit_returns_digest_and_updates_head(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    assert stock.head == ""
    stock.tag["lr"] = 0.1
    digest = stock.commit("first")
    assert DIGEST_RE.fullmatch(digest)
    assert (stock_repo / "head.stock").read_text() == digest + "\n"
    assert stock.head == digest
    stock.tag["lr"] = 0.2
    second = stock.commit("second")
    assert second != digest
    assert head_text(stock_repo) == second
    assert [e["digest"] for e in stock._store.log()] == [second, digest]
    assert [e["commit_message"] for e in stock._store.log()] == ["second", "first"]


def test_commit_without_update_head(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["a"] = 1
    first = stock.commit("first")
    stock.tag["a"] = 2
    detached = stock.commit("not recorded", update_head=False)
    assert DIGEST_RE.fullmatch(detached) and detached != first
    assert head_text(stock_repo) == first
    assert stock._store.has_commit(detached)
    assert stock.tag["a"] == 1  # reads follow head.stock, not the last commit
    # Writes still build on what head.stock names.
    stock.tag["b"] = 3
    third = stock.commit("on first")
    assert dict(stock.tag) == {"a": 1, "b": 3}
    assert [e["digest"] for e in stock._store.log()] == [third, first]


def test_nothing_to_commit(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    with pytest.raises(StockroomError, match="nothing to commit"):
        stock.commit("empty store")
    stock.tag["a"] = 1
    digest = stock.commit("one")
    with pytest.raises(StockroomError, match="nothing to commit"):
        stock.commit("again")
    stock.tag["a"] = 1  # the same value again is no change
    with pytest.raises(StockroomError, match="nothing to commit"):
        stock.commit("same value")
    assert head_text(stock_repo) == digest


@pytest.mark.parametrize("message", ["", "   ", None])
def test_commit_needs_a_message(stock: stockroom.StockRoom, message: object) -> None:
    stock.tag["a"] = 1
    with pytest.raises(ValueError, match="message"):
        stock.commit(message)  # type: ignore[arg-type]
    assert stock.commit("now with a message")


def test_commit_of_a_delete(stock: stockroom.StockRoom) -> None:
    stock.tag["a"] = 1
    stock.tag["b"] = 2
    stock.commit("two tags")
    del stock.tag["a"]
    stock.commit("one tag")
    assert dict(stock.tag) == {"b": 2}


# ------------------------------------------- reads follow head.stock on disk
def _two_branches(repo: Path, stock: stockroom.StockRoom) -> tuple[str, str]:
    """main: tag v='main', column 'shared'; dev: v='dev', extra tag and column."""
    stock.tag["v"] = "main"
    stock.data["shared"][0] = np.zeros(3, dtype=np.float32)
    on_main = stock.commit("main state")
    git_commit_head(repo, "main")
    run_git("switch", "-q", "-c", "dev", cwd=repo)
    stock.tag["v"] = "dev"
    stock.tag["only_dev"] = True
    stock.data["shared"][0] = np.ones(3, dtype=np.float32)
    stock.data["dev_col"]["s"] = np.arange(5, dtype=np.int16)
    on_dev = stock.commit("dev state")
    git_commit_head(repo, "dev")
    return on_main, on_dev


def test_long_lived_stockroom_follows_git_checkout(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    on_main, on_dev = _two_branches(stock_repo, stock)
    for _ in range(2):
        run_git("checkout", "-q", "main", cwd=stock_repo)
        assert stock.head == on_main
        assert dict(stock.tag) == {"v": "main"}
        assert "only_dev" not in stock.tag
        assert sorted(stock.data) == ["shared"]
        np.testing.assert_array_equal(stock.data["shared"][0], np.zeros(3))
        with pytest.raises(KeyError):
            stock.data["dev_col"]["s"]

        run_git("checkout", "-q", "dev", cwd=stock_repo)
        assert stock.head == on_dev
        assert dict(stock.tag) == {"v": "dev", "only_dev": True}
        assert sorted(stock.data) == ["dev_col", "shared"]
        np.testing.assert_array_equal(stock.data["shared"][0], np.ones(3))
        np.testing.assert_array_equal(stock.data["dev_col"]["s"], np.arange(5))


def test_reads_follow_git_reset_hard(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["n"] = 1
    stock.commit("one")
    git_commit_head(stock_repo, "one")
    stock.tag["n"] = 2
    stock.commit("two")
    git_commit_head(stock_repo, "two")
    assert stock.tag["n"] == 2
    run_git("reset", "-q", "--hard", "HEAD~1", cwd=stock_repo)
    assert stock.tag["n"] == 1
    run_git("reset", "-q", "--hard", "HEAD@{1}", cwd=stock_repo)
    assert stock.tag["n"] == 2


def test_reads_follow_head_rewritten_in_place_within_one_clock_tick(
    stock: stockroom.StockRoom, stock_repo: Path
) -> None:
    """head.stock rewritten in place with same size, inode and mtime (a write
    within the file system's timestamp granularity) is still noticed."""
    stock.tag["n"] = 1
    first = stock.commit("one")
    stock.tag["n"] = 2
    second = stock.commit("two")
    head = stock_repo / "head.stock"
    with open(head, "r+b") as handle:
        handle.write((first + "\n").encode())
    stamp = head.stat()
    assert stock.tag["n"] == 1
    with open(head, "r+b") as handle:
        handle.write((second + "\n").encode())
    os.utime(head, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert head.stat().st_ino == stamp.st_ino and head.stat().st_size == stamp.st_size
    assert stock.tag["n"] == 2


def test_head_naming_a_missing_commit(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["a"] = 1
    stock.commit("one")
    missing = "a=" + "0" * 40
    (stock_repo / "head.stock").write_text(missing + "\n")
    with pytest.raises(StockroomError, match=f"{missing}.*does not have"):
        stock.tag["a"]
    with pytest.raises(StockroomError, match=missing):
        stock.tag["b"] = 2


def test_read_your_writes(stock: stockroom.StockRoom) -> None:
    stock.tag["a"] = 1
    stock.data["c"][0] = np.arange(3)
    assert stock.tag["a"] == 1
    assert "a" in stock.tag and len(stock.tag) == 1
    np.testing.assert_array_equal(stock.data["c"][0], np.arange(3))
    assert list(stock.data) == ["c"] and 0 in stock.data["c"]
    stock.commit("one")
    stock.tag["a"] = 2
    del stock.data["c"][0]
    stock.tag["b"] = "x"
    assert dict(stock.tag) == {"a": 2, "b": "x"}
    assert len(stock.data["c"]) == 0


OTHER_PROCESS_READ = """
    import json, stockroom
    with stockroom.StockRoom() as stock:
        print(json.dumps({"tags": dict(stock.tag), "columns": sorted(stock.data)}))
"""


def test_other_processes_see_committed_data_only(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["a"] = 1
    stock.data["c"][0] = np.zeros(2)
    proc = run_python(OTHER_PROCESS_READ, stock_repo)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"tags": {}, "columns": []}

    stock.commit("one")
    stock.tag["a"] = 2  # staged on top of the commit
    stock.tag["b"] = 3
    proc = run_python(OTHER_PROCESS_READ, stock_repo)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"tags": {"a": 1}, "columns": ["c"]}
    assert dict(stock.tag) == {"a": 2, "b": 3}  # while this object reads its own


def test_write_after_head_moved_with_nothing_staged_builds_on_new_head(
    stock: stockroom.StockRoom, stock_repo: Path
) -> None:
    on_main, on_dev = _two_branches(stock_repo, stock)
    run_git("checkout", "-q", "main", cwd=stock_repo)
    stock.tag["new"] = 1
    assert dict(stock.tag) == {"v": "main", "new": 1}
    digest = stock.commit("on main again")
    assert dict(stock.tag) == {"v": "main", "new": 1}
    assert sorted(stock.data) == ["shared"]
    history = [e["digest"] for e in stock._store.log()]
    assert history == [digest, on_main]
    # And back on dev, the dev line is untouched and extends from there.
    git_commit_head(stock_repo, "main 2")
    run_git("checkout", "-q", "dev", cwd=stock_repo)
    stock.tag["v"] = "dev2"
    dev2 = stock.commit("dev again")
    assert [e["digest"] for e in stock._store.log()][:2] == [dev2, on_dev]
    assert dict(stock.tag) == {"v": "dev2", "only_dev": True}


def test_write_with_staged_changes_after_head_moved_fails_and_keeps_them(
    stock: stockroom.StockRoom, stock_repo: Path
) -> None:
    on_main, on_dev = _two_branches(stock_repo, stock)
    run_git("checkout", "-q", "main", cwd=stock_repo)
    stock.tag["pending"] = 42
    stock.data["shared"][1] = np.full(3, 7, dtype=np.float32)
    run_git("checkout", "-q", "dev", cwd=stock_repo)
    # Reads show what dev's head.stock names; the staged writes are not on it.
    assert stock.tag["v"] == "dev" and "pending" not in stock.tag
    for attempt in (
        lambda: stock.tag.__setitem__("other", 1),
        lambda: stock.data["shared"].__setitem__(2, np.zeros(3, dtype=np.float32)),
        lambda: stock.commit("would mix two bases"),
    ):
        with pytest.raises(StockroomError) as info:
            attempt()
        message = str(info.value)
        assert on_main in message and on_dev in message
        assert "stock commit" in message and "stock reset" in message
    # Nothing staged was lost: back on main, commit them.
    run_git("checkout", "-q", "main", cwd=stock_repo)
    assert stock.tag["pending"] == 42
    digest = stock.commit("the pending writes")
    assert dict(stock.tag) == {"v": "main", "pending": 42}
    np.testing.assert_array_equal(stock.data["shared"][1], np.full(3, 7))
    assert [e["digest"] for e in stock._store.log()] == [digest, on_main]


def test_staged_writes_of_another_stockroom_also_block(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    on_main, on_dev = _two_branches(stock_repo, stock)
    run_git("checkout", "-q", "main", cwd=stock_repo)
    stock.tag["pending"] = 1
    stock.close()
    run_git("checkout", "-q", "dev", cwd=stock_repo)
    with stockroom.StockRoom() as other:
        with pytest.raises(StockroomError, match=on_main):
            other.tag["x"] = 2
        assert other.reset() is True
        other.tag["x"] = 2
        other.commit("on dev")
        assert dict(other.tag) == {"v": "dev", "only_dev": True, "x": 2}


def test_detached_head_reads_work_writes_fail(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["n"] = 1
    stock.data["c"][0] = np.arange(2)
    stock.commit("one")
    git_commit_head(stock_repo, "one")
    stock.tag["n"] = 2
    stock.commit("two")
    git_commit_head(stock_repo, "two")
    run_git("checkout", "-q", "--detach", "HEAD~1", cwd=stock_repo)
    assert stock.tag["n"] == 1
    np.testing.assert_array_equal(stock.data["c"][0], np.arange(2))
    for attempt in (
        lambda: stock.tag.__setitem__("n", 3),
        lambda: stock.tag.__delitem__("n"),
        lambda: stock.data["c"].__setitem__(1, np.arange(2)),
        lambda: stock.data["c"].__delitem__(0),
        lambda: stock.data.__delitem__("c"),
        lambda: stock.commit("detached"),
    ):
        with pytest.raises(StockroomError, match="check out a branch"):
            attempt()
    with pytest.raises(StockroomError, match="check out a branch"):
        stock.get_hangar_checkout(write=True)
    run_git("switch", "-q", "-c", "fix", cwd=stock_repo)
    stock.tag["n"] = 3
    stock.commit("on a branch again")
    assert stock.tag["n"] == 3


# ------------------------------------------------------------------ optimize
def test_optimize_bulk_writes_readable_inside(stock: stockroom.StockRoom) -> None:
    with stock.optimize():
        for i in range(50):
            stock.data["bulk"][i] = np.full(4, i, dtype=np.int32)
            stock.tag[f"t{i}"] = i
        assert len(stock.data["bulk"]) == 50
        assert stock.tag["t49"] == 49
        np.testing.assert_array_equal(stock.data["bulk"][17], np.full(4, 17))
        digest = stock.commit("bulk")
        stock.tag["after_commit"] = True
        assert stock.tag["after_commit"] is True
    assert stock.head == digest
    stock.commit("after")
    assert len(stock.tag) == 51


def test_optimize_holds_the_writer_for_its_duration(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    with stockroom.StockRoom(lock_timeout=0) as other:
        with stock.optimize():
            stock.tag["mine"] = 1
            with pytest.raises(StockroomError, match=f"pid {os.getpid()}"):
                other.tag["theirs"] = 2
        other.tag["theirs"] = 2  # released at the end of the block


def test_optimize_takes_the_writer_on_enter(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    """Issue 21 #23: held from the start of the block, not from its first write."""
    stock.tag["a"] = 1
    stock.commit("one")
    with stockroom.StockRoom(lock_timeout=0) as other:
        with stock.optimize():
            # Nothing written yet: the writer is this block's all the same.
            with pytest.raises(StockroomError, match=f"writer is held by pid {os.getpid()}"):
                with other.optimize():
                    pass  # pragma: no cover
            with pytest.raises(StockroomError, match=f"pid {os.getpid()}"):
                other.tag["theirs"] = 2
            with pytest.raises(StockroomError, match="optimize"):
                stock.get_hangar_checkout(write=True)
            assert stock.tag["a"] == 1
            stock.tag["b"] = 2
        with other.optimize():  # released at the end of the block
            other.tag["theirs"] = 2
    stock.commit("b, and theirs (one staging area)")
    assert dict(stock.tag) == {"a": 1, "b": 2, "theirs": 2}


def test_optimize_on_a_detached_head_opens_readers_only(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["a"] = 1
    stock.commit("one")
    git_commit_head(stock_repo, "one")
    run_git("checkout", "-q", "--detach", cwd=stock_repo)
    with stock.optimize():
        assert stock.tag["a"] == 1
        from stockroom.lock import WriterLock

        lock = WriterLock(stock_repo / ".hangar", timeout=0)
        lock.acquire()  # the block holds no writer lock: nothing may be written here
        lock.release()
        with pytest.raises(StockroomError, match="check out a branch"):
            stock.tag["b"] = 2


def test_optimize_nested_is_an_error(stock: stockroom.StockRoom) -> None:
    with stock.optimize():
        stock.tag["a"] = 1
        with pytest.raises(StockroomError, match="optimize"):
            with stock.optimize():
                pass  # pragma: no cover
        stock.tag["b"] = 2  # the outer block still works
    stock.commit("both")
    assert dict(stock.tag) == {"a": 1, "b": 2}
    with stock.optimize():  # and it can be entered again afterwards
        stock.tag["c"] = 3


def test_optimize_releases_on_error(stock: stockroom.StockRoom) -> None:
    with pytest.raises(KeyboardInterrupt):
        with stock.optimize():
            stock.tag["a"] = 1
            raise KeyboardInterrupt
    with stockroom.StockRoom(lock_timeout=0) as other:
        other.tag["b"] = 2
    stock.commit("both staged writes")
    assert dict(stock.tag) == {"a": 1, "b": 2}


# ------------------------------------------------------- get_hangar_checkout
def test_get_hangar_checkout_read_is_at_head(stock: stockroom.StockRoom) -> None:
    with pytest.raises(StockroomError, match="no stock commit"):
        stock.get_hangar_checkout()
    stock.tag["a"] = 1
    digest = stock.commit("one")
    stock.tag["a"] = 2  # staged writes are not in the read checkout
    co = stock.get_hangar_checkout()
    try:
        assert co.commit_hash == digest
        assert list(co.columns.keys()) == ["tag"]
    finally:
        co.close()


def test_get_hangar_checkout_write_is_the_staging_area(stock: stockroom.StockRoom) -> None:
    stock.tag["a"] = 1
    digest = stock.commit("one")
    co = stock.get_hangar_checkout(write=True)
    try:
        assert co.commit_hash == digest
        co.add_str_column("expert")
        co.columns["expert"]["k"] = "v"
        with pytest.raises(StockroomError, match="close it"):
            stock.tag["b"] = 2
        # Reading meanwhile goes through the lent checkout: it neither opens a
        # second writer (stealing Hangar's lock) nor drops the stock lock.
        assert stock.tag["a"] == 1
        assert co.columns["expert"]["k"] == "v"
        with stockroom.StockRoom(lock_timeout=0) as other:
            with pytest.raises(StockroomError, match="writer is held"):
                other.tag["c"] = 3
        with pytest.raises(StockroomError, match="close it"):
            stock.get_hangar_checkout(write=True)
    finally:
        co.close()
    stock.tag["b"] = 2
    second = stock.commit("expert column and a tag")
    co = stock.get_hangar_checkout()
    try:
        assert co.commit_hash == second
        assert co.columns["expert"]["k"] == "v"
    finally:
        co.close()


def test_checkout_conflicts_never_deadlock(stock: stockroom.StockRoom) -> None:
    stock._store.lock.timeout = 60.0  # a wait on the lock would show up as a slow test
    start = time.monotonic()
    with stock.optimize():
        stock.tag["a"] = 1
        with pytest.raises(StockroomError, match="optimize"):
            stock.get_hangar_checkout(write=True)
        stock.tag["b"] = 2  # stockroom still holds a usable writer
    co = stock.get_hangar_checkout(write=True)
    try:
        with pytest.raises(StockroomError, match="get_hangar_checkout"):
            with stock.optimize():
                stock.tag["c"] = 3
    finally:
        co.close()
    assert time.monotonic() - start < 20
    stock.commit("a and b")
    assert dict(stock.tag) == {"a": 1, "b": 2}


def test_lent_write_checkout_holds_the_writer_lock(stock: stockroom.StockRoom) -> None:
    co = stock.get_hangar_checkout(write=True)
    with stockroom.StockRoom(lock_timeout=0) as other:
        with pytest.raises(StockroomError, match="writer is held"):
            other.tag["x"] = 1
        co.close()
        other.tag["x"] = 1
    stock.commit("x")


# -------------------------------------------------------------------- close
def test_context_manager_closes_and_staged_writes_persist(stock_repo: Path) -> None:
    with stockroom.StockRoom() as first:
        first.tag["a"] = 1
        first.data["c"][0] = np.arange(3)
    first.close()  # closing twice is harmless
    with stockroom.StockRoom(lock_timeout=0) as second:
        second.tag["b"] = 2  # the writer was released
        second.commit("writes of both objects")
        assert dict(second.tag) == {"a": 1, "b": 2}
        np.testing.assert_array_equal(second.data["c"][0], np.arange(3))


def test_close_releases_a_lent_write_checkout(stock: stockroom.StockRoom) -> None:
    stock.get_hangar_checkout(write=True)
    stock.close()
    with stockroom.StockRoom(lock_timeout=0) as other:
        other.tag["x"] = 1
        other.commit("x")


def test_import_stockroom_is_light(tmp_path: Path) -> None:
    code = """
        import sys, stockroom
        heavy = {"torch", "tensorflow", "hangar", "numpy", "keras"} & set(sys.modules)
        print(sorted(heavy))
    """
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------ staged-writes marker
def test_staged_marker_exists_before_a_write_reaches_hangar(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    """The git hooks trust `.hangar/stockroom-staged` to know, without opening
    Hangar, whether writes may be staged: it must never be missing while they
    are, even if the process dies right after Hangar staged a write."""
    marker = stock_repo / ".hangar" / "stockroom-staged"
    assert not marker.exists()
    dict(stock.tag)  # reading never leaves it
    with pytest.raises(StockroomError, match="nothing to commit"):
        stock.commit("nothing")
    assert not marker.exists()
    with stock._store.writing() as co:  # the block every storage stages writes in
        assert marker.exists()
        co.add_str_column("tag")
        co.columns["tag"]["a"] = "s:x"
    stock._store.dirty = True
    assert stock.tag["a"] == "x"
    stock.commit("one")
    assert not marker.exists()
    spare = marker.with_name("stockroom-staged.idle")
    assert spare.exists()  # put aside for the next first write: a rename, not a file creation
    stock.tag["b"] = 1
    assert marker.exists() and not spare.exists()
    assert stock.reset() is True
    assert not marker.exists()


def test_write_on_a_branch_from_before_the_first_stock_commit(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    """head.stock is empty there. Writing "on nothing" would give Hangar a second
    root commit, which it treats as a corrupt history: refused, with a way out."""
    run_git("branch", "early", cwd=stock_repo)  # head.stock still empty here
    stock.tag["main"] = 1
    on_main = stock.commit("main")
    git_commit_head(stock_repo, "main")
    run_git("switch", "-q", "early", cwd=stock_repo)
    assert stock.head == "" and dict(stock.tag) == {} and list(stock.data) == []
    with pytest.raises(StockroomError, match="git checkout main -- head.stock"):
        stock.tag["early"] = 2
    run_git("checkout", "main", "--", "head.stock", cwd=stock_repo)  # the way out it names
    stock.tag["early"] = 2
    on_early = stock.commit("early")
    assert dict(stock.tag) == {"main": 1, "early": 2}
    assert [e["digest"] for e in stock._store.log()] == [on_early, on_main]
    with contextlib.redirect_stdout(io.StringIO()):
        assert stock._store.repo.verify_repo_integrity()


def test_closing_releases_the_repository_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that opens many stock repositories does not keep them all open."""

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def one_round(i: int) -> None:
        repo = tmp_path / f"p{i}"
        repo.mkdir()
        run_git("init", "-q", cwd=repo)
        stockroom.init_repo(path=repo, install_hooks=False)
        with stockroom.StockRoom(repo) as room:
            room.tag["i"] = i
            room.commit("one")
            assert room.tag["i"] == i

    one_round(0)
    before = open_fds()
    for i in range(1, 16):
        one_round(i)
    assert open_fds() <= before + 2


# ---------------------------------------------------------------- issue 14
def test_closed_stockroom_says_closed_not_damaged(stock_repo: Path) -> None:
    """Issue 14.1: a closed StockRoom is not a damaged store, and nothing suggests deleting it."""
    with stockroom.StockRoom() as s:
        s.tag["a"] = 1
        s.data["x"][0] = np.zeros(2)
        s.commit("x")
    attempts = [
        lambda: s.tag["a"],
        lambda: s.data["x"][0],
        lambda: s.tag.__setitem__("b", 2),
        lambda: s.data["x"].__setitem__(1, np.ones(2)),
        lambda: s.commit("again"),
        lambda: list(s.tag),
    ]
    for attempt in attempts:
        with pytest.raises(StockroomError, match="this StockRoom is closed; open a new one") as info:
            attempt()
        assert "overwrite" not in str(info.value) and "damaged" not in str(info.value)
    s.close()  # closing twice is fine
    with stockroom.StockRoom() as again:  # the store is fine
        assert again.tag["a"] == 1


# ------------------------------------------------------------- reader swap
def test_commit_moves_a_reading_objects_reader_to_the_new_commit(stock: stockroom.StockRoom) -> None:
    """After a commit, an object that was reading has its reader on the new
    commit already: the first read after a commit costs what later ones do."""
    stock.model["m"] = [np.arange(600_000, dtype=np.float32)]
    first = stock.commit("m")
    assert stock._store._reader is None  # nothing read yet: no reader opened for nothing
    assert stock.model["m"][0][5] == 5  # opens the reader on `first`
    assert stock._store._reader_digest == first
    stock.tag["lr"] = 0.1
    second = stock.commit("tag")
    assert stock._store._reader is not None and stock._store._reader_digest == second
    assert stock.model["m"][0][7] == 7 and stock.tag["lr"] == 0.1
    stock.tag["lr"] = 0.2
    stock.commit("not named by head.stock", update_head=False)
    assert stock._store._reader_digest == second == stock.head  # reads still follow head.stock
    assert stock.tag["lr"] == 0.1
