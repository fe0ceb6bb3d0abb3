"""The installed git hooks (stockroom.hook), driven by real git commands.

Every test installs stockroom's hooks with ``stockroom.install.install`` and
runs real ``git commit`` / ``git checkout`` / ``git rebase`` ..., so the
shell script, the recorded interpreter and the fast path all take part.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import stockroom
from stockroom import hook
from stockroom.headfile import HANGAR_DIR, HEAD_FILE
from stockroom.install import install

MISSING = "a=" + "0123456789" * 4


def git(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(("git", *args), cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def stock_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """What the stockroom hooks printed (git shows hook output on stderr)."""
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("stockroom:")]


def stock_commit(repo: Path, **tags: int | str) -> str:
    with stockroom.StockRoom(repo) as room:
        for key, value in tags.items():
            room.tag[key] = value
        return room.commit(f"tags {sorted(tags)}")


def stage_tag(repo: Path, key: str, value: int) -> None:
    with stockroom.StockRoom(repo) as room:
        room.tag[key] = value


def staged(repo: Path) -> list[str]:
    from stockroom.store import Store

    store = Store(repo)
    try:
        return store.staged_changes()
    finally:
        store.close()


def head_at(repo: Path, rev: str) -> str:
    return git("show", f"{rev}:{HEAD_FILE}", cwd=repo).stdout.strip()


def code_change(repo: Path, name: str = "train.py", text: str = "print('hi')\n") -> None:
    (repo / name).write_text(text)
    git("add", name, cwd=repo)


@pytest.fixture
def repo(stock_repo: Path) -> Path:
    """A stock repository with one git commit and stockroom's hooks installed."""
    install(stock_repo)
    # the merge driver's .gitattributes line is committed, as users do
    git("add", ".gitattributes", cwd=stock_repo)
    git("commit", "-q", "--amend", "--no-edit", "--no-verify", cwd=stock_repo)
    return stock_repo


# ------------------------------------------------------------------ the module
def test_constants_match_the_modules_the_fast_path_avoids() -> None:
    from stockroom import headfile, store

    assert (hook.HEAD_FILE, hook.HANGAR_DIR) == (headfile.HEAD_FILE, headfile.HANGAR_DIR)
    assert hook.STAGED_MARKER == store.STAGED_MARKER
    from stockroom.store import repository

    assert hook.HANGAR_FILES == repository._HANGAR_FILES and hook.HANGAR_DIRS == repository._HANGAR_DIRS


def test_parse_agrees_with_headfile() -> None:
    from stockroom.headfile import parse_head

    digest = "a=" + "ab" * 20
    for raw in (b"", b"\n", digest.encode(), (digest + "\n").encode()):
        assert hook.parse(raw, HEAD_FILE) == parse_head(raw)
    for raw in (b"<<<<<<< HEAD\na=1\n=======\n>>>>>>> x\n", b"\xff\xfe", b"a=XYZ"):
        with pytest.raises(hook.HookError) as info:
            hook.parse(raw, HEAD_FILE)
        assert HEAD_FILE in str(info.value)


def test_fast_commit_check_agrees_with_the_store(stock_repo: Path) -> None:
    """hangar_has_commit reads Hangar's ref store directly; Store.has_commit asks Hangar."""
    digest = stock_commit(stock_repo, lr=1)
    # A fresh process each: LMDB refuses a second open of one store in a process.
    script = (
        "import sys; from pathlib import Path; from stockroom import hook; from stockroom.store import Store\n"
        "root, digest = sys.argv[1:]\n"
        "fast = hook.hangar_has_commit(root, digest)\n"
        "print(fast, Store(Path(root)).has_commit(digest))\n"
    )
    for candidate, expected in ((digest, "True"), (MISSING, "False")):
        out = subprocess.run(
            [sys.executable, "-c", script, str(stock_repo), candidate], capture_output=True, text=True, check=True
        ).stdout.split()
        assert out == [expected, expected]
    assert hook.hangar_has_commit(str(stock_repo / "nowhere"), digest) is None


def _imports(proc: subprocess.CompletedProcess[str]) -> set[str]:
    """Modules the hook's Python imported (PYTHONPROFILEIMPORTTIME output on stderr)."""
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


HEAVY = ("numpy", "hangar", "git", "subprocess", "typing", "pathlib")


@pytest.mark.parametrize("what", ["commit", "checkout", "commit-new-stock", "checkout-new-stock"])
def test_unchanged_state_starts_no_python_changed_state_imports_nothing_heavy(repo: Path, what: str) -> None:
    """The installed hooks, run by git: no Python at all while the stock state stays
    the same; when it changed, Python with the fast path only (no numpy, hangar, GitPython)."""
    first = stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "stock", cwd=repo)  # the hook checks and remembers this commit
    git("checkout", "-q", "-b", "other", cwd=repo)
    code_change(repo, "other.py")
    git("commit", "-q", "-m", "other code", cwd=repo)
    git("checkout", "-q", "-b", "newer", cwd=repo)
    second = stock_commit(repo, lr=2)
    code_change(repo)
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    if what == "commit-new-stock":
        proc = git("commit", "-m", "code", cwd=repo, env=env)
        assert head_at(repo, "HEAD") == second
    else:
        git("commit", "-q", "-am", "newer", cwd=repo)
        if what == "commit":
            code_change(repo, "more.py")
            proc = git("commit", "-m", "more", cwd=repo, env=env)
        elif what == "checkout":
            git("checkout", "-q", "main", cwd=repo)
            proc = git("checkout", "other", cwd=repo, env=env)  # same head.stock both sides
        else:
            proc = git("checkout", "main", cwd=repo, env=env)
            assert first[:14] in "".join(stock_lines(proc))
    modules = _imports(proc)
    if what in ("commit", "checkout"):
        assert modules == set() and stock_lines(proc) == []  # decided by the script alone
    else:
        assert "stockroom.hook" in modules
        assert not {m for m in modules if m.split(".")[0] in HEAVY}


# ------------------------------------------------------------------ pre-commit
def test_commit_refused_with_uncommitted_stock_writes(repo: Path) -> None:
    stage_tag(repo, "lr", 3)
    code_change(repo)
    before = git("rev-parse", "HEAD", cwd=repo).stdout
    proc = git("commit", "-m", "code", cwd=repo, check=False)
    assert proc.returncode == 1
    text = "\n".join(stock_lines(proc)) + proc.stderr
    assert "not committed" in text and "tag" in text and "stock commit -m" in text
    assert git("rev-parse", "HEAD", cwd=repo).stdout == before
    # The writes are kept, and committing them lets the git commit through.
    assert staged(repo)
    with stockroom.StockRoom(repo) as room:
        digest = room.commit("lr")
    git("commit", "-q", "-m", "code", cwd=repo)
    assert head_at(repo, "HEAD") == digest
    assert git("status", "--porcelain", cwd=repo).stdout == ""


def test_no_verify_bypasses_the_check(repo: Path) -> None:
    stage_tag(repo, "lr", 3)
    code_change(repo)
    git("commit", "-q", "--no-verify", "-m", "code", cwd=repo)
    assert staged(repo)  # untouched: --no-verify skips the hook by design


@pytest.mark.parametrize("mode", ["plain", "all", "path", "amend"])
def test_every_commit_mode_records_the_current_head_stock(repo: Path, mode: str) -> None:
    (repo / "train.py").write_text("v1\n")
    (repo / "eval.py").write_text("v1\n")
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "code v1", cwd=repo)
    digest = stock_commit(repo, lr=2)  # head.stock now differs from the index
    (repo / "train.py").write_text("v2\n")
    if mode == "plain":
        git("add", "train.py", cwd=repo)
        proc = git("commit", "-m", "v2", cwd=repo)
    elif mode == "all":
        proc = git("commit", "-a", "-m", "v2", cwd=repo)
    elif mode == "path":
        # git commits from a temporary index here (GIT_INDEX_FILE=next-index-*)
        proc = git("commit", "-m", "v2", "train.py", cwd=repo)
    else:
        git("add", "train.py", cwd=repo)
        proc = git("commit", "--amend", "--no-edit", cwd=repo)
    staged_by_hook = any("staged head.stock" in line for line in stock_lines(proc))
    assert staged_by_hook is (mode != "all")  # `commit -a` stages the tracked head.stock itself
    assert head_at(repo, "HEAD") == digest
    # Neither the index nor the work tree is left behind the commit.
    assert git("diff", "--cached", "--name-only", cwd=repo).stdout == ""
    assert git("status", "--porcelain", cwd=repo).stdout == ""
    if mode == "amend":
        assert git("rev-list", "--count", "HEAD", cwd=repo).stdout.strip() == "2"


def test_path_commit_leaves_other_staged_files_alone(repo: Path) -> None:
    digest = stock_commit(repo, lr=2)
    code_change(repo, "staged_only.py")  # in the index, not part of `git commit PATH`
    (repo / "train.py").write_text("x\n")
    git("add", "train.py", cwd=repo)
    git("commit", "-q", "-m", "only train", "train.py", cwd=repo)
    assert head_at(repo, "HEAD") == digest
    assert git("show", "--name-only", "--format=", "HEAD", cwd=repo).stdout.split() == [HEAD_FILE, "train.py"]
    assert git("status", "--porcelain", cwd=repo).stdout == "A  staged_only.py\n"


def test_head_stock_as_the_only_change_says_to_commit_again(repo: Path) -> None:
    """git decides "nothing to commit" before pre-commit runs: the hook says so."""
    digest = stock_commit(repo, lr=1)
    first = git("commit", "-q", "-m", "stock only", cwd=repo, check=False)
    assert any("run the same git commit again" in line for line in stock_lines(first))
    if first.returncode != 0:  # git refused, as it does today: the retry records it
        git("commit", "-q", "-m", "stock only", cwd=repo)
    assert head_at(repo, "HEAD") == digest
    # With a code change as well, no such hint.
    digest = stock_commit(repo, lr=2)
    code_change(repo)
    both = git("commit", "-q", "-m", "code and stock", cwd=repo)
    assert not any("again" in line for line in stock_lines(both))
    assert head_at(repo, "HEAD") == digest


def test_untracked_head_stock_is_added(git_repo: Path) -> None:
    stockroom.init_repo()  # hooks installed, nothing committed yet
    digest = stock_commit(git_repo, lr=1)
    code_change(git_repo)
    git("commit", "-q", "-m", "first", cwd=git_repo)
    assert head_at(git_repo, "HEAD") == digest


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"<<<<<<< HEAD\na=1\n=======\na=2\n>>>>>>> other\n", "merge-conflict"),
        (b"\x00\xff binary", "binary"),
        (b"not a digest\n", "does not hold a stock commit digest"),
        ((MISSING + "\n").encode(), "does not have"),
    ],
)
def test_commit_refused_with_a_bad_head_stock(repo: Path, content: bytes, expected: str) -> None:
    (repo / HEAD_FILE).write_bytes(content)
    code_change(repo)
    proc = git("commit", "-m", "code", cwd=repo, check=False)
    assert proc.returncode == 1
    assert expected in proc.stderr
    assert (repo / HEAD_FILE).read_bytes() == content  # never rewritten by the hook


def test_merge_commits(repo: Path) -> None:
    base = stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "base", cwd=repo)
    git("checkout", "-q", "-b", "feature", cwd=repo)
    theirs = stock_commit(repo, lr=2)
    git("commit", "-q", "-am", "feature", cwd=repo)
    git("checkout", "-q", "main", cwd=repo)
    ours = stock_commit(repo, lr=3)
    git("commit", "-q", "-am", "main", cwd=repo)
    assert len({base, theirs, ours}) == 3
    assert git("merge", "feature", cwd=repo, check=False).returncode == 1  # head.stock conflicts
    # Committing the conflict markers is refused, even once git thinks it is resolved.
    git("add", HEAD_FILE, cwd=repo)
    proc = git("commit", "--no-edit", cwd=repo, check=False)
    assert proc.returncode == 1 and "unfinished stock merge" in proc.stderr  # the merge driver's block
    git("checkout", "MERGE_HEAD", "--", HEAD_FILE, cwd=repo)  # take their stock state
    git("commit", "-q", "--no-edit", cwd=repo)
    assert head_at(repo, "HEAD") == theirs
    assert git("rev-list", "--parents", "-n", "1", "HEAD", cwd=repo).stdout.count(" ") == 2


def test_pre_commit_framework_mode_refuses_instead_of_staging(repo: Path) -> None:
    """Under the framework (PRE_COMMIT=1) the hook never touches the index."""
    stock_commit(repo, lr=1)
    code_change(repo)
    env = dict(os.environ, PRE_COMMIT="1")
    proc = subprocess.run(
        [sys.executable, "-m", "stockroom.hook", "pre-commit"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert f"`git add {HEAD_FILE}`" in proc.stderr
    assert git("diff", "--cached", "--name-only", cwd=repo).stdout == "train.py\n"


# --------------------------------------------------------------- post-checkout
def test_branch_switch_says_when_the_stock_commit_changed(repo: Path) -> None:
    first = stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "one", cwd=repo)
    git("checkout", "-q", "-b", "other", cwd=repo)
    second = stock_commit(repo, lr=2)
    git("commit", "-q", "-am", "two", cwd=repo)
    proc = git("checkout", "main", cwd=repo)
    lines = stock_lines(proc)
    assert len(lines) == 1 and first[:14] in lines[0] and second[:14] in lines[0]
    assert stockroom.StockRoom(repo).tag["lr"] == 1
    # Same stock commit on both sides: nothing to say.
    git("checkout", "-q", "-b", "third", cwd=repo)
    code_change(repo)
    git("commit", "-q", "-m", "code", cwd=repo)
    assert stock_lines(git("checkout", "main", cwd=repo)) == []


def test_file_checkout_exits_at_once(repo: Path) -> None:
    code_change(repo)
    git("commit", "-q", "-m", "code", cwd=repo)
    (repo / "train.py").write_text("edited\n")
    (repo / HEAD_FILE).write_bytes(b"garbage that would be reported\n")
    proc = git("checkout", "--", "train.py", cwd=repo)
    assert stock_lines(proc) == []
    assert hook.main(["post-checkout", "x", "y", "0"]) == 0


def test_checkout_warns_when_the_stock_commit_is_missing(repo: Path) -> None:
    git("checkout", "-q", "-b", "foreign", cwd=repo)
    (repo / HEAD_FILE).write_text(MISSING + "\n")
    git("commit", "-q", "--no-verify", "-am", "from another machine", cwd=repo)
    git("checkout", "-q", "main", cwd=repo)
    proc = git("checkout", "foreign", cwd=repo)
    lines = stock_lines(proc)
    assert len(lines) == 1 and "warning" in lines[0] and "does not have" in lines[0]


def test_checkout_warns_and_keeps_staged_writes(repo: Path) -> None:
    stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "one", cwd=repo)
    git("checkout", "-q", "-b", "other", cwd=repo)
    stock_commit(repo, lr=2)
    git("commit", "-q", "-am", "two", cwd=repo)
    stage_tag(repo, "wip", 7)
    proc = git("checkout", "main", cwd=repo, env=dict(os.environ), check=False)
    assert proc.returncode == 0
    text = "\n".join(stock_lines(proc)) + proc.stderr
    assert "uncommitted stock writes" in text and "stock reset" in text
    git("checkout", "-q", "other", cwd=repo)
    changes = staged(repo)  # never discarded
    assert len(changes) == 1 and "1 added" in changes[0]


def test_silent_without_head_stock_or_hangar(repo: Path) -> None:
    git("checkout", "-q", "--orphan", "bare", cwd=repo)
    git("rm", "-q", "-rf", ".", cwd=repo)
    code_change(repo)
    proc = git("commit", "-m", "no stock here", cwd=repo)
    assert stock_lines(proc) == []
    assert stock_lines(git("checkout", "main", cwd=repo)) == []
    assert stock_lines(git("checkout", "bare", cwd=repo)) == []  # target has no head.stock
    git("checkout", "-q", "main", cwd=repo)
    (repo / HANGAR_DIR).rename(repo.parent / "hangar-away")
    stock_commit_free = git("checkout", "-b", "x", cwd=repo)
    assert stock_lines(stock_commit_free) == []
    code_change(repo, "b.py")
    assert stock_lines(git("commit", "-m", "no hangar", cwd=repo)) == []


def test_not_a_stock_repository_is_a_silent_no_op(git_repo: Path) -> None:
    install(git_repo)
    code_change(git_repo)
    proc = git("commit", "-m", "plain", cwd=git_repo)
    assert stock_lines(proc) == [] and "stockroom" not in proc.stderr
    git("checkout", "-q", "-b", "b", cwd=git_repo)
    code_change(git_repo, "c.py")
    git("commit", "-q", "-m", "c", cwd=git_repo)
    proc = git("checkout", "main", cwd=git_repo)
    assert "stockroom" not in proc.stderr


def test_fresh_clone_names_the_missing_stock_data(repo: Path, tmp_path: Path) -> None:
    digest = stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "stock", cwd=repo)
    hooks = git("rev-parse", "--git-path", "hooks", cwd=repo).stdout.strip()
    dest = tmp_path / "clone"
    proc = git("-c", f"core.hooksPath={repo / hooks}", "clone", str(repo), str(dest), cwd=tmp_path)
    lines = stock_lines(proc)
    assert len(lines) == 1 and digest[:14] in lines[0] and HANGAR_DIR in lines[0]
    assert "stock pull" in lines[0] and "stock init" not in lines[0]  # issue 14.6
    assert (dest / HEAD_FILE).read_text().strip() == digest


def test_new_worktree_gets_advice_that_works(repo: Path, tmp_path: Path) -> None:
    """Issue 14.6: `git worktree add` is told how to get the store (not `stock init`),
    and following the advice makes the stock readable and writable there."""
    import re
    import shlex

    digest = stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "stock", cwd=repo)
    git("branch", "feat", cwd=repo)
    wt = tmp_path / "wt"
    proc = git("worktree", "add", str(wt), "feat", cwd=repo)
    lines = stock_lines(proc)
    assert len(lines) == 1 and digest[:14] in lines[0] and "stock init" not in lines[0], lines
    copy = re.search(r"`(cp -a [^`]*)`", lines[0])
    assert copy is not None and str(repo / HANGAR_DIR) in copy.group(1)
    subprocess.run(shlex.split(copy.group(1)), cwd=wt, check=True)
    with stockroom.StockRoom(wt) as room:
        assert room.tag["lr"] == 1
        room.tag["lr"] = 2
        new = room.commit("in the worktree")
    git("commit", "-q", "-am", "stock in wt", cwd=wt)
    assert head_at(wt, "HEAD") == new
    with stockroom.StockRoom(repo) as room:  # an independent copy: the main store is unchanged
        assert room.tag["lr"] == 1


def test_stock_init_in_a_clone_warns_that_the_commit_is_missing(repo: Path, tmp_path: Path) -> None:
    digest = stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "stock", cwd=repo)
    dest = tmp_path / "clone"
    git("clone", "-q", str(repo), str(dest), cwd=tmp_path)
    with pytest.warns(UserWarning, match=f"names stock commit {digest}, which this new, empty store does not have"):
        stockroom.init_repo(path=dest, install_hooks=False)


# ------------------------------------------------------- replaying operations
def _diverge(repo: Path) -> None:
    """main and topic both change code after a common stock commit."""
    stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "stock", cwd=repo)
    git("checkout", "-q", "-b", "topic", cwd=repo)
    code_change(repo, "topic.py")
    git("commit", "-q", "-m", "topic work", cwd=repo)
    git("checkout", "-q", "main", cwd=repo)
    stock_commit(repo, lr=2)
    code_change(repo, "main.py")
    git("commit", "-q", "-am", "main work", cwd=repo)
    stage_tag(repo, "wip", 1)  # would make a plain commit refuse


def test_rebase_am_cherry_pick_and_merge_are_not_interfered_with(repo: Path, tmp_path: Path) -> None:
    _diverge(repo)
    # rebase (its checkouts run post-checkout)
    git("checkout", "-q", "topic", cwd=repo)
    proc = git("rebase", "main", cwd=repo)
    assert stock_lines(proc) == []
    # cherry-pick with a conflict, concluded by `git commit` (pre-commit runs)
    git("checkout", "-q", "-b", "pick", "main~1", cwd=repo)
    (repo / "main.py").write_text("conflicting\n")
    git("add", "main.py", cwd=repo)
    git("commit", "-q", "--no-verify", "-m", "conflicting main.py", cwd=repo)
    assert git("cherry-pick", "main", cwd=repo, check=False).returncode != 0
    (repo / "main.py").write_text("resolved\n")
    git("add", "main.py", HEAD_FILE, cwd=repo)
    proc = git("commit", "--no-edit", cwd=repo)
    assert stock_lines(proc) == []
    # git am
    patch = git("format-patch", "-1", "--stdout", "topic", cwd=repo).stdout
    git("checkout", "-q", "-b", "mail", "main", cwd=repo)
    (tmp_path / "p.patch").write_text(patch)
    proc = git("am", str(tmp_path / "p.patch"), cwd=repo)
    assert stock_lines(proc) == []
    # a merge that git commits itself
    git("checkout", "-q", "main", cwd=repo)
    proc = git("merge", "--no-ff", "--no-edit", "mail", cwd=repo)
    assert stock_lines(proc) == []
    assert staged(repo)  # the staged writes were never touched


def test_commit_during_a_rebase_is_left_alone(repo: Path) -> None:
    _diverge(repo)
    git("checkout", "-q", "topic", cwd=repo)
    env = dict(os.environ, GIT_SEQUENCE_EDITOR="sed -i -e 's/^pick/edit/'")
    git("rebase", "-i", "main", cwd=repo, env=env)
    assert (repo / ".git" / "rebase-merge").is_dir()  # stopped at the first commit
    code_change(repo, "extra.py")
    proc = git("commit", "--amend", "--no-edit", cwd=repo)  # staged writes exist: not refused mid-rebase
    assert stock_lines(proc) == []
    git("rebase", "--continue", cwd=repo)


# ------------------------------------------------------------ the writer lock
HOLDER = textwrap.dedent(
    """
    import sys, time
    import stockroom
    room = stockroom.StockRoom(sys.argv[1])
    with room.optimize():
        room.tag["held"] = 1
        print("holding", flush=True)
        time.sleep(60)
    """
)


def test_writer_held_by_another_process(repo: Path) -> None:
    stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "stock", cwd=repo)
    git("checkout", "-q", "-b", "other", cwd=repo)
    stock_commit(repo, lr=2)
    git("commit", "-q", "-am", "two", cwd=repo)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(repo)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        code_change(repo)
        start = time.monotonic()
        proc = git("commit", "-m", "code", cwd=repo, check=False)  # the hook's own bounded wait
        elapsed = time.monotonic() - start
        assert proc.returncode == 1
        assert "held by" in proc.stderr and f"pid {holder.pid}" in proc.stderr
        assert elapsed < hook.HOOK_LOCK_TIMEOUT + 10
        env = dict(os.environ, STOCKROOM_LOCK_TIMEOUT="0.5")
        proc = git("checkout", "main", cwd=repo, env=env, check=False)
        assert proc.returncode == 0
        assert "held by" in proc.stderr and "warning" in proc.stderr
    finally:
        holder.kill()
        holder.wait()
    # Nothing was corrupted: the next writer writes and commits. (The killed writer's
    # write was still inside its open optimize() block, so it was never staged.)
    git("checkout", "-q", "other", cwd=repo)
    with stockroom.StockRoom(repo) as room:
        assert room.tag["lr"] == 2
        room.tag["after"] = 1
        room.commit("after the notebook died")
    git("commit", "-q", "-am", "code", cwd=repo)


# ------------------------------------------------------------------- the CLI
def test_stock_hook_command(repo: Path) -> None:
    run = [sys.executable, "-m", "stockroom", "hook"]
    assert subprocess.run([*run, "post-checkout", "a", "b", "0"], cwd=repo).returncode == 0
    stage_tag(repo, "lr", 1)
    proc = subprocess.run([*run, "pre-commit"], cwd=repo / HANGAR_DIR, capture_output=True, text=True)
    assert proc.returncode == 1 and "not committed" in proc.stderr
    proc = subprocess.run([*run, "pre-rebase"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 1 and "pre-commit, post-checkout" in proc.stderr


def test_refusal_lists_staged_writes_in_the_users_names(repo: Path) -> None:
    """Issue 14.9: the hook (which imports no storage) names columns, models and tags as users do."""
    import numpy as np

    stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "stock", cwd=repo)
    with stockroom.StockRoom(repo) as room:
        room.data["x"].update({i: np.zeros(2) for i in range(5)})
        room.model["a/b"] = [np.zeros(3)]
        room.tag["lr"] = 2
        room.tag["bs"] = 3
    code_change(repo)
    proc = git("commit", "-m", "code", cwd=repo, check=False)
    assert proc.returncode == 1
    assert "data column 'x': new, 5 samples added" in proc.stderr
    assert "model 'a/b': new" in proc.stderr
    assert "tags: 1 added, 1 changed" in proc.stderr
    assert "Hangar column" not in proc.stderr


@pytest.mark.parametrize("lost", ["ref.lmdb", "hash.lmdb", "stage_ref.lmdb", "store_data"])
def test_commit_refused_when_the_store_lost_a_file_despite_the_verified_digest(repo: Path, lost: str) -> None:
    """Issue 14.14: the remembered verified digest must not pass a damaged store."""
    import shutil

    stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "stock", cwd=repo)  # the hook verifies and remembers the digest
    assert (repo / HANGAR_DIR / hook.VERIFIED_FILE).is_file()
    target = repo / HANGAR_DIR / lost
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    code_change(repo)
    proc = git("commit", "-m", "code", cwd=repo, check=False)
    assert proc.returncode == 1, proc.stderr
    assert f"is damaged (missing {lost}" in proc.stderr


@pytest.mark.parametrize("option", ["--amend", "--allow-empty"])
def test_no_commit_again_hint_when_git_commits_anyway(repo: Path, option: str) -> None:
    """Issue 14.14: `git commit --amend` goes on with nothing else staged: no "commit again" hint."""
    digest = stock_commit(repo, lr=1)
    proc = git("commit", "-q", option, "-m", "stock", cwd=repo)
    lines = stock_lines(proc)
    assert any("staged head.stock" in line for line in lines)
    assert not any("again" in line for line in lines), lines
    assert head_at(repo, "HEAD") == digest


@pytest.mark.parametrize("keep", ["--theirs", "--ours", "no-conflict"])
def test_rebase_that_kept_one_side_of_a_head_stock_conflict_warns(repo: Path, keep: str) -> None:
    """Issue 14.14: after `git rebase` with head.stock resolved by one side, say what the stock lacks."""
    stock_commit(repo, lr=1)
    git("commit", "-q", "-am", "base", cwd=repo)
    git("checkout", "-q", "-b", "topic", cwd=repo)
    mine = stock_commit(repo, mine=1)
    code_change(repo, "topic.py")  # with code too: kept by the rebase whichever head.stock it gets
    git("commit", "-q", "-am", "topic stock", cwd=repo)
    git("checkout", "-q", "main", cwd=repo)
    if keep == "no-conflict":  # main changed code only: the rebase keeps everything
        code_change(repo, "main.py")
        git("commit", "-q", "-m", "main code", cwd=repo)
        git("checkout", "-q", "topic", cwd=repo)
        proc = git("rebase", "main", cwd=repo)
        assert not any("rebase" in line for line in stock_lines(proc))
        assert head_at(repo, "HEAD") == mine
        return
    upstream = stock_commit(repo, up=1)
    git("commit", "-q", "-am", "main stock", cwd=repo)
    git("checkout", "-q", "topic", cwd=repo)
    # Without the merge driver (a clone that never ran `stock install`), git merges head.stock as text.
    git("config", "--remove-section", "merge.stock", cwd=repo)
    assert git("rebase", "main", cwd=repo, check=False).returncode != 0  # head.stock conflicts
    git("checkout", keep, HEAD_FILE, cwd=repo)  # in a rebase --ours is main's, --theirs the topic's
    git("add", HEAD_FILE, cwd=repo)
    proc = git("-c", "core.editor=true", "rebase", "--continue", cwd=repo)
    warnings = [line for line in stock_lines(proc) if "warning: this rebase resolved" in line]
    assert len(warnings) == 1, proc.stdout + proc.stderr
    if keep == "--theirs":  # the topic commit's side: main's stock writes are gone
        assert f"lacks the stock changes of the branch you rebased onto (stock commit {upstream[:14]})" in warnings[0]
    else:
        assert f"lacks your branch's own stock changes (stock commit {mine[:14]})" in warnings[0]
    # An amend runs post-rewrite too: nothing to say there.
    amend = git("commit", "-q", "--amend", "-m", "amended", cwd=repo)
    assert not any("rebase" in line for line in stock_lines(amend))
