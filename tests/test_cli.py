"""The `stock` command line (SPEC section 3): init, commit, status, log and
reset, run as the installed console script in real git repositories."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import stockroom

STOCK = shutil.which("stock", path=str(Path(sys.executable).parent)) or shutil.which("stock")
DIGEST = r"a=[0-9a-f]{40}"

pytestmark = pytest.mark.skipif(STOCK is None, reason="the stock console script is not installed")


def stock_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert STOCK is not None
    return subprocess.run((STOCK, *args), cwd=cwd, capture_output=True, text=True, timeout=120)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(("git", *args), cwd=cwd, check=True, capture_output=True, text=True).stdout


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def user_error(proc: subprocess.CompletedProcess[str]) -> str:
    """A user error: exit 1, exactly one line on stderr, no traceback."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("stock: error: ")
    assert "Traceback" not in proc.stderr
    return lines[0]


def write_stock(repo: Path, **tags: object) -> None:
    with stockroom.StockRoom(repo) as stock:
        for key, value in tags.items():
            stock.tag[key] = value  # type: ignore[assignment]


# ------------------------------------------------------------------- init
def test_init(git_repo: Path) -> None:
    out = ok(stock_cli("init", "--no-hooks", cwd=git_repo))
    assert out.splitlines() == [f"stock repository ready in {git_repo}"]
    assert (git_repo / ".hangar").is_dir() and (git_repo / "head.stock").read_bytes() == b""
    assert (git_repo / ".gitignore").read_text() == ".hangar\n"
    # Again: safe, and says so the same way.
    assert ok(stock_cli("init", "--no-hooks", cwd=git_repo)).splitlines() == [f"stock repository ready in {git_repo}"]
    assert (git_repo / ".gitignore").read_text() == ".hangar\n"


def test_init_identity_options_and_overwrite(git_repo: Path) -> None:
    ok(stock_cli("init", "--no-hooks", "--name", "Ada", "--email", "ada@example.org", cwd=git_repo))
    write_stock(git_repo, a=1)
    ok(stock_cli("commit", "-m", "by ada", cwd=git_repo))
    with stockroom.StockRoom(git_repo) as stock:
        entry = stock._store.log()[0]
    assert (entry["commit_user"], entry["commit_email"]) == ("Ada", "ada@example.org")
    ok(stock_cli("init", "--no-hooks", "--overwrite", cwd=git_repo))
    assert (git_repo / "head.stock").read_bytes() == b""
    with stockroom.StockRoom(git_repo) as stock:
        assert dict(stock.tag) == {}


def test_init_from_a_subdirectory_initialises_the_top(git_repo: Path) -> None:
    sub = git_repo / "src"
    sub.mkdir()
    ok(stock_cli("init", "--no-hooks", cwd=sub))
    assert (git_repo / "head.stock").exists() and not (sub / "head.stock").exists()


def test_init_outside_git_is_a_user_error(tmp_path: Path) -> None:
    line = user_error(stock_cli("init", "--no-hooks", cwd=tmp_path))
    assert "not inside a git work tree" in line and "git init" in line
    assert list(tmp_path.iterdir()) == []


def test_init_without_identity_is_a_user_error(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    Path(os.environ["GIT_CONFIG_GLOBAL"]).write_text("")
    line = user_error(stock_cli("init", "--no-hooks", cwd=git_repo))
    assert "--name" in line and "user.email" in line


# ----------------------------------------------------------------- commit
def test_commit(stock_repo: Path) -> None:
    write_stock(stock_repo, lr=0.1)
    out = ok(stock_cli("commit", "-m", "first", cwd=stock_repo))
    digest = (stock_repo / "head.stock").read_text().strip()
    assert re.fullmatch(DIGEST, digest)
    assert out.splitlines() == [f"stock commit {digest}; head.stock updated (git commit records it)"]
    with stockroom.StockRoom(stock_repo) as stock:
        assert stock._store.log()[0]["commit_message"] == "first"
        assert stock.tag["lr"] == 0.1


def test_commit_user_errors(stock_repo: Path) -> None:
    line = user_error(stock_cli("commit", "-m", "nothing", cwd=stock_repo))
    assert "nothing to commit" in line
    line = user_error(stock_cli("commit", cwd=stock_repo))
    assert "-m" in line and "stock commit --help" in line
    write_stock(stock_repo, a=1)
    line = user_error(stock_cli("commit", "-m", "", cwd=stock_repo))
    assert "message" in line
    ok(stock_cli("commit", "-m", "now", cwd=stock_repo))


def test_unknown_command_and_bad_option_are_one_line_errors(stock_repo: Path) -> None:
    assert "No such command" in user_error(stock_cli("bogus", cwd=stock_repo))
    assert "max-count" in user_error(stock_cli("log", "-n", "many", cwd=stock_repo))
    assert "Usage" in ok(stock_cli(cwd=stock_repo))
    assert "commit" in ok(stock_cli("--help", cwd=stock_repo))


def test_outside_a_stock_repository(git_repo: Path, tmp_path: Path) -> None:
    for command in (("status",), ("commit", "-m", "x"), ("reset",)):
        line = user_error(stock_cli(*command, cwd=git_repo))
        assert "stock init" in line
    # stock log reads only git's history: it needs no stock repository.
    assert ok(stock_cli("log", cwd=git_repo)).strip() == "no git commits yet"


def test_corrupt_head_stock_is_a_user_error(stock_repo: Path) -> None:
    write_stock(stock_repo, a=1)
    ok(stock_cli("commit", "-m", "one", cwd=stock_repo))
    (stock_repo / "head.stock").write_text("<<<<<<< HEAD\na=1\n=======\na=2\n>>>>>>> dev\n")
    line = user_error(stock_cli("commit", "-m", "x", cwd=stock_repo))
    assert "head.stock has merge-conflict markers" in line and "git checkout MERGE_HEAD -- head.stock" in line
    # stock status shows it (issue 14.14) instead of failing
    line = ok(stock_cli("status", cwd=stock_repo)).splitlines()[0]
    assert "head.stock has merge-conflict markers" in line and "git checkout MERGE_HEAD -- head.stock" in line
    (stock_repo / "head.stock").write_text("a=" + "0" * 40 + "\n")
    write_stock_error = stock_cli("commit", "-m", "x", cwd=stock_repo)
    assert "does not have" in user_error(write_stock_error)


def test_missing_hangar_is_a_user_error(stock_repo: Path) -> None:
    shutil.rmtree(stock_repo / ".hangar")
    for command in (("status",), ("commit", "-m", "x"), ("reset",)):
        line = user_error(stock_cli(*command, cwd=stock_repo))
        assert ".hangar" in line and "stock init" in line  # head.stock names no commit yet: init is right
    ok(stock_cli("init", "--no-hooks", cwd=stock_repo))
    write_stock(stock_repo, a=1)
    ok(stock_cli("commit", "-m", "one", cwd=stock_repo))
    shutil.rmtree(stock_repo / ".hangar")
    for command in (("status",), ("commit", "-m", "x"), ("reset",)):
        line = user_error(stock_cli(*command, cwd=stock_repo))
        # Issue 14.6: head.stock names a commit, so an empty store would not help.
        assert "stock pull" in line and "cp -a OTHER/.hangar .hangar" in line and "stock init" not in line


# ----------------------------------------------------------------- status
def test_status_reports_head_staged_writes_and_git_state(stock_repo: Path) -> None:
    out = ok(stock_cli("status", cwd=stock_repo)).splitlines()
    assert out == [
        "stock head: (no stock commit yet)",
        "staged writes: none",
        "head.stock: in sync with git (committed)",
    ]
    with stockroom.StockRoom(stock_repo) as stock:
        stock.tag["a"] = 1
        stock.tag["b"] = 2
        stock.data["img"].update({0: np.zeros(2), 1: np.ones(2)})
        stock.data["a/b"][0] = np.zeros(1)
    out = ok(stock_cli("status", cwd=stock_repo)).splitlines()
    assert out == [
        "stock head: (no stock commit yet)",
        "staged writes (run `stock commit -m MSG`):",
        "  data column 'a/b': new, 1 sample added",
        "  data column 'img': new, 2 samples added",
        "  tags: 2 added",
        "head.stock: in sync with git (committed)",
    ]
    ok(stock_cli("commit", "-m", "one", cwd=stock_repo))
    digest = (stock_repo / "head.stock").read_text().strip()
    out = ok(stock_cli("status", cwd=stock_repo)).splitlines()
    assert out == [
        f"stock head: {digest}",
        "staged writes: none",
        "head.stock: changed, not staged: run `git add head.stock` (the pre-commit hook does it)",
    ]
    with stockroom.StockRoom(stock_repo) as stock:
        stock.tag["a"] = 10
        del stock.tag["b"]
        stock.tag["c"] = 3
        del stock.data["img"]
        stock.data["a/b"][1] = np.ones(1)
    git("add", "head.stock", cwd=stock_repo)
    out = ok(stock_cli("status", cwd=stock_repo)).splitlines()
    assert out == [
        f"stock head: {digest}",
        "staged writes (run `stock commit -m MSG`):",
        "  data column 'a/b': 1 sample added",
        "  data column 'img': column deleted, 2 samples deleted",
        "  tags: 1 added, 1 changed, 1 deleted",
        "head.stock: staged in git's index, not committed yet",
    ]
    git("commit", "-q", "-m", "record stock", cwd=stock_repo)
    assert ok(stock_cli("status", cwd=stock_repo)).splitlines()[-1] == "head.stock: in sync with git (committed)"


def test_status_of_staged_writes_left_on_another_commit(stock_repo: Path) -> None:
    write_stock(stock_repo, v="main")
    ok(stock_cli("commit", "-m", "main", cwd=stock_repo))
    git("add", "head.stock", cwd=stock_repo)
    git("commit", "-q", "-m", "main", cwd=stock_repo)
    main_digest = (stock_repo / "head.stock").read_text().strip()
    git("switch", "-q", "-c", "dev", cwd=stock_repo)
    write_stock(stock_repo, v="dev")
    ok(stock_cli("commit", "-m", "dev", cwd=stock_repo))
    git("commit", "-q", "-am", "dev", cwd=stock_repo)
    git("switch", "-q", "main", cwd=stock_repo)
    write_stock(stock_repo, pending=1)
    git("switch", "-q", "dev", cwd=stock_repo)
    out = ok(stock_cli("status", cwd=stock_repo))
    assert f"staged writes, based on stock commit {main_digest}" in out and "stock reset" in out
    assert "  tags: 1 added" in out
    # The commit is refused with both digests; reset drops the writes.
    assert main_digest in user_error(stock_cli("commit", "-m", "mixed", cwd=stock_repo))
    assert ok(stock_cli("reset", cwd=stock_repo)).strip() == "uncommitted stock writes dropped"
    assert "staged writes: none" in ok(stock_cli("status", cwd=stock_repo))


# -------------------------------------------------------------------- log
def test_log_lists_git_commits_beside_their_stock_digest(stock_repo: Path) -> None:
    write_stock(stock_repo, a=1)
    ok(stock_cli("commit", "-m", "s1", cwd=stock_repo))
    first = (stock_repo / "head.stock").read_text().strip()
    git("commit", "-q", "-am", "code with s1", cwd=stock_repo)
    (stock_repo / "code.py").write_text("x = 1\n")
    git("add", "code.py", cwd=stock_repo)
    git("commit", "-q", "-m", "code only", cwd=stock_repo)
    write_stock(stock_repo, a=2)
    ok(stock_cli("commit", "-m", "s2", cwd=stock_repo))
    second = (stock_repo / "head.stock").read_text().strip()
    git("commit", "-q", "-am", "code with s2", cwd=stock_repo)
    shas = git("log", "--format=%h", cwd=stock_repo).split()
    out = ok(stock_cli("log", cwd=stock_repo)).splitlines()
    assert [line.split()[:2] for line in out] == [
        [shas[0], second], [shas[1], first], [shas[2], first], [shas[3], "(empty)"],
    ]
    assert [line.split(None, 2)[2] for line in out] == ["code with s2", "code only", "code with s1", "stock init"]
    assert len(ok(stock_cli("log", "-n", "2", cwd=stock_repo)).splitlines()) == 2


def test_log_without_git_commits_and_without_head_in_old_commits(git_repo: Path) -> None:
    (git_repo / "README").write_text("before stockroom\n")
    ok(stock_cli("init", "--no-hooks", cwd=git_repo))
    assert ok(stock_cli("log", cwd=git_repo)).strip() == "no git commits yet"
    git("add", "README", cwd=git_repo)
    git("commit", "-q", "-m", "before stockroom", cwd=git_repo)
    git("add", "-A", cwd=git_repo)
    git("commit", "-q", "-m", "stock init", cwd=git_repo)
    out = ok(stock_cli("log", cwd=git_repo)).splitlines()
    assert [line.split()[1] for line in out] == ["(empty)", "(no"]
    assert out[1].split(None, 1)[1].startswith("(no head.stock)")


# ------------------------------------------------------------------ reset
def test_reset(stock_repo: Path) -> None:
    assert ok(stock_cli("reset", cwd=stock_repo)).strip() == "nothing staged; nothing to drop"
    write_stock(stock_repo, a=1)
    ok(stock_cli("commit", "-m", "one", cwd=stock_repo))
    write_stock(stock_repo, a=2, b=3)
    assert ok(stock_cli("reset", cwd=stock_repo)).strip() == "uncommitted stock writes dropped"
    with stockroom.StockRoom(stock_repo) as stock:
        assert dict(stock.tag) == {"a": 1}
    assert "nothing to commit" in user_error(stock_cli("commit", "-m", "x", cwd=stock_repo))
    assert not (stock_repo / ".hangar" / "stockroom-staged").exists()


# ---------------------------------------------------------------- issue 14
@pytest.mark.parametrize("args", [("status",), ("log", "-n", "1000")])
def test_output_to_a_closed_pipe_exits_quietly(stock_repo: Path, args: tuple[str, ...]) -> None:
    """Issue 14.2: `stock status | head -1` stops quietly, as git does (no error line)."""
    write_stock(stock_repo, a=1)
    assert STOCK is not None
    proc = subprocess.Popen((STOCK, *args), cwd=stock_repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written (stock starts slower)
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert err == ""
    assert code == 141  # what a shell shows for git killed by SIGPIPE


def test_status_lists_models_by_their_names_not_hangar_internals(stock_repo: Path) -> None:
    """Issue 14.9: a model is listed as `model 'a/b': new`, not its encoded column and unit count."""
    write_stock(stock_repo, a=1)
    with stockroom.StockRoom(stock_repo) as stock:
        stock.commit("tags")
        stock.model["a/b"] = [np.zeros((150, 3), dtype=np.float32) for _ in range(150)]
        stock.model["gone"] = [np.zeros(2)]
        stock.commit("models")
        stock.model["a/b"] = [np.ones((150, 3), dtype=np.float32) for _ in range(150)]
        del stock.model["gone"]
        stock.model["c"] = [np.ones(3)]
    out = ok(stock_cli("status", cwd=stock_repo))
    assert "Hangar" not in out and "model." not in out
    assert "  model 'a/b': changed\n" in out
    assert "  model 'c': new\n" in out
    assert "  model 'gone': deleted\n" in out


def test_deleted_head_stock_names_the_git_restore(stock_repo: Path) -> None:
    """Issue 14.10: after `git rm head.stock` the advice is `git checkout HEAD -- head.stock`,
    `stock log` still works, `stock init` restores it, and git states are said in words."""
    write_stock(stock_repo, a=1)
    ok(stock_cli("commit", "-m", "one", cwd=stock_repo))
    git("commit", "-q", "-am", "stock one", cwd=stock_repo)
    digest = (stock_repo / "head.stock").read_text().strip()
    git("rm", "-q", "head.stock", cwd=stock_repo)
    for command in (("status",), ("commit", "-m", "x")):
        line = user_error(stock_cli(*command, cwd=stock_repo))
        assert "head.stock is missing (.hangar is there); restore it with `git checkout HEAD -- head.stock`" in line
        assert "stock init" not in line
    with pytest.raises(stockroom.StockroomError, match=r"git checkout HEAD -- head\.stock"):
        stockroom.StockRoom()
    assert digest in ok(stock_cli("log", cwd=stock_repo))  # only git history needed
    # Following the old advice (`stock init`) now restores the file instead of emptying it.
    proc = stock_cli("init", "--no-hooks", cwd=stock_repo)
    assert proc.returncode == 0 and "restored it from git's HEAD" in proc.stderr
    assert (stock_repo / "head.stock").read_text().strip() == digest
    assert ok(stock_cli("status", cwd=stock_repo)).splitlines()[0] == f"stock head: {digest}"
    # States that used to show as raw porcelain codes.
    git("rm", "-q", "--cached", "head.stock", cwd=stock_repo)
    (stock_repo / "head.stock").write_text("")
    out = ok(stock_cli("status", cwd=stock_repo)).splitlines()
    assert out[0] == (
        f"stock head: (none: head.stock is empty, but git's HEAD records stock commit {digest}; "
        "restore it with `git checkout HEAD -- head.stock`)"
    )
    assert out[-1].startswith("head.stock: deleted in git's index (`git rm`)")
    assert "'D '" not in "\n".join(out)


@pytest.mark.parametrize("operation", ["merge", "rebase"])
def test_status_shows_status_during_a_conflicted_merge_or_rebase(stock_repo: Path, operation: str) -> None:
    """Issue 14.14: `stock status` shows the conflict instead of failing with exit 1."""
    def stock_commit(value: int) -> None:
        write_stock(stock_repo, lr=value)
        ok(stock_cli("commit", "-m", f"lr {value}", cwd=stock_repo))
        git("commit", "-q", "-am", f"lr {value}", cwd=stock_repo)

    stock_commit(1)
    git("checkout", "-q", "-b", "feature", cwd=stock_repo)
    stock_commit(2)
    git("checkout", "-q", "main", cwd=stock_repo)
    stock_commit(3)
    if operation == "rebase":
        git("checkout", "-q", "feature", cwd=stock_repo)
    proc = subprocess.run(("git", operation, "feature" if operation == "merge" else "main"), cwd=stock_repo,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "CONFLICT" in proc.stdout + proc.stderr
    out = ok(stock_cli("status", cwd=stock_repo)).splitlines()
    # A text conflict made without the merge driver is shown as the stock merge it is,
    # with the conflicting tag, and `stock status` exits 0.
    assert out[0].startswith("unfinished stock merge of ") and any("lr" in line for line in out)
