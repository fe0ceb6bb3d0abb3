"""``stock install`` / ``stock uninstall`` (stockroom.install), with real git."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import stockroom
from stockroom import StockroomError
from stockroom.headfile import HEAD_FILE
from stockroom.hook import HOOK_NAMES
from stockroom.install import (
    LEGACY_SUFFIX,
    MARKER,
    hooks_dir,
    install,
    install_hooks,
    installed_script,
    render,
    uninstall,
    uninstall_hooks,
)

PROJECT = Path(stockroom.__file__).resolve().parent.parent


def git(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(("git", *args), cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, bool]]:
    """Every entry of a hooks directory: bytes (or link target), mode, is-link."""
    result = {}
    for path in sorted(directory.iterdir()):
        if path.is_symlink():
            result[path.name] = (os.readlink(path).encode(), 0, True)
        else:
            result[path.name] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode), False)
    return result


def stage_writes(repo: Path) -> None:
    with stockroom.StockRoom(repo) as room:
        room.tag["uncommitted"] = 1


def commit_code(repo: Path, name: str = "train.py", check: bool = True) -> subprocess.CompletedProcess[str]:
    (repo / name).write_text(name)
    git("add", name, cwd=repo)
    return git("commit", "-m", f"add {name}", cwd=repo, check=check)


FOREIGN_SHELL = b"#!/bin/sh\necho foreign-shell-hook-ran \"$@\" >> \"$(git rev-parse --git-dir)/foreign.log\"\n"
FOREIGN_PYTHON = (
    "#!{python}\nimport subprocess, sys\n"
    "gitdir = subprocess.run(['git', 'rev-parse', '--git-dir'], capture_output=True, text=True).stdout.strip()\n"
    "open(gitdir + '/foreign.log', 'a').write('foreign-python-hook-ran ' + ' '.join(sys.argv[1:]) + '\\n')\n"
)


# ----------------------------------------------------------------- the scripts
def test_standalone_copies_match_the_template() -> None:
    """hooks/ at the project root holds the template rendered without an interpreter."""
    copies = PROJECT / "hooks"
    if not copies.is_dir():
        pytest.skip("not running from a source checkout (no hooks/ folder)")
    for name in HOOK_NAMES:
        copy = copies / name
        assert copy.read_text(encoding="utf-8") == render(name), f"regenerate hooks/{name} from the template"
        assert os.access(copy, os.X_OK)


def test_installed_script_records_the_interpreter_quoted() -> None:
    text = installed_script("pre-commit")
    assert MARKER in text.splitlines()[1]
    assert f"python={shlex.quote(sys.executable)}\n" in text
    weird = render("post-checkout", "/opt/my env/it's/python", "/a b:/c")
    assert "python='/opt/my env/it'\"'\"'s/python'\n" in weird
    assert not any(f"@{key}@" in weird for key in ("HOOK", "PYTHON", "PKGDIRS"))  # every placeholder filled
    with pytest.raises(ValueError):
        render("pre-rebase")


def test_quoting_survives_paths_with_spaces_and_quotes(stock_repo: Path, tmp_path: Path) -> None:
    odd = tmp_path / "my env's bin"
    odd.mkdir()
    (odd / "py thon").symlink_to(sys.executable)
    hooks = hooks_dir(stock_repo)
    # the directories the installed script records, unquoted
    pkgdirs = shlex.split(installed_script("pre-commit").split("pkgdirs=", 1)[1].split("\n", 1)[0])[0]
    script = render("pre-commit", str(odd / "py thon"), pkgdirs)
    (hooks / "pre-commit").write_text(script)
    (hooks / "pre-commit").chmod(0o755)
    stage_writes(stock_repo)
    proc = commit_code(stock_repo, check=False)
    assert proc.returncode == 1 and "not committed" in proc.stderr  # ran stockroom through that path


# ------------------------------------------------------------- install/uninstall
def test_install_twice_changes_nothing_and_uninstall_removes_it(stock_repo: Path) -> None:
    hooks = hooks_dir(stock_repo)
    before = snapshot(hooks)
    first = install_hooks(stock_repo)
    assert [c.action for c in first] == ["installed"] * len(HOOK_NAMES)
    after_first = snapshot(hooks)
    mtimes = {name: (hooks / name).stat().st_mtime_ns for name in HOOK_NAMES}
    second = install_hooks(stock_repo)
    assert [c.action for c in second] == ["unchanged"] * len(HOOK_NAMES)
    assert snapshot(hooks) == after_first
    assert {name: (hooks / name).stat().st_mtime_ns for name in HOOK_NAMES} == mtimes
    for name in HOOK_NAMES:
        assert after_first[name][1] & 0o111 and MARKER.encode() in after_first[name][0]
    assert [c.action for c in uninstall_hooks(stock_repo)] == ["removed"] * len(HOOK_NAMES)
    assert snapshot(hooks) == before
    assert [c.action for c in uninstall_hooks(stock_repo)] == ["absent"] * len(HOOK_NAMES)


def test_install_refreshes_a_stale_script(stock_repo: Path) -> None:
    install(stock_repo)
    path = hooks_dir(stock_repo) / "pre-commit"
    path.write_text(render("pre-commit", "/gone/python", ""))
    assert [c.action for c in install_hooks(stock_repo)][0] == "updated"
    assert path.read_text() == installed_script("pre-commit")


@pytest.mark.parametrize("kind", ["shell", "python", "symlink"])
def test_foreign_hook_is_kept_runs_and_comes_back_byte_for_byte(stock_repo: Path, tmp_path: Path, kind: str) -> None:
    hooks = hooks_dir(stock_repo)
    hooks.mkdir(exist_ok=True)
    for name in HOOK_NAMES:
        if kind == "shell":
            (hooks / name).write_bytes(FOREIGN_SHELL)
            (hooks / name).chmod(0o750)
        elif kind == "python":
            (hooks / name).write_text(FOREIGN_PYTHON.format(python=sys.executable))
            (hooks / name).chmod(0o700)
        else:
            target = tmp_path / f"shared-{name}"
            target.write_bytes(FOREIGN_SHELL)
            target.chmod(0o755)
            (hooks / name).symlink_to(target)
    before = snapshot(hooks)
    install(stock_repo)
    for name in HOOK_NAMES:
        assert os.path.lexists(hooks / (name + LEGACY_SUFFIX))
    log = stock_repo / ".git" / "foreign.log"
    # The foreign hooks still run, and stockroom's checks run too.
    commit_code(stock_repo)
    git("checkout", "-q", "-b", "side", cwd=stock_repo)
    ran = log.read_text()
    assert "hook-ran" in ran and ran.count("\n") == 2  # pre-commit, then post-checkout with its 3 args
    assert ran.splitlines()[1].endswith(" 1")
    stage_writes(stock_repo)
    proc = commit_code(stock_repo, "b.py", check=False)
    assert proc.returncode == 1 and "not committed" in proc.stderr
    install(stock_repo)  # again: still idempotent with a kept hook
    uninstall(stock_repo)
    assert snapshot(hooks) == before


def test_failing_foreign_pre_commit_still_stops_the_commit(stock_repo: Path) -> None:
    hooks = hooks_dir(stock_repo)
    (hooks / "pre-commit").write_text("#!/bin/sh\necho 'no commits today' >&2\nexit 3\n")
    (hooks / "pre-commit").chmod(0o755)
    install(stock_repo)
    proc = commit_code(stock_repo, check=False)
    assert proc.returncode != 0 and "no commits today" in proc.stderr


def test_uninstall_removes_only_what_stockroom_wrote(stock_repo: Path) -> None:
    install(stock_repo)
    hooks = hooks_dir(stock_repo)
    (hooks / "post-checkout").write_bytes(FOREIGN_SHELL)  # another tool replaced ours
    changes = {c.name: c.action for c in uninstall_hooks(stock_repo)}
    assert changes["pre-commit"] == "removed"
    assert changes["post-checkout"].startswith("left alone")
    assert (hooks / "post-checkout").read_bytes() == FOREIGN_SHELL


def test_install_refuses_when_a_kept_hook_would_be_lost(stock_repo: Path) -> None:
    hooks = hooks_dir(stock_repo)
    (hooks / "pre-commit").write_bytes(FOREIGN_SHELL)
    install(stock_repo)
    (hooks / "pre-commit").write_text("#!/bin/sh\necho another tool\n")  # replaced ours
    before = snapshot(hooks)
    with pytest.raises(StockroomError, match="merge them"):
        install(stock_repo)
    assert snapshot(hooks) == before


def test_init_repo_installs_the_hooks(git_repo: Path) -> None:
    stockroom.init_repo()
    for name in HOOK_NAMES:
        assert MARKER in (hooks_dir(git_repo) / name).read_text()


# ------------------------------------------------------- where hooks go
def test_core_hooks_path_relative_and_absolute(stock_repo: Path, tmp_path: Path) -> None:
    git("config", "core.hooksPath", ".githooks", cwd=stock_repo)
    install(stock_repo)
    assert (stock_repo / ".githooks" / "pre-commit").is_file()
    assert not (stock_repo / ".git" / "hooks" / "pre-commit").exists()
    stage_writes(stock_repo)
    assert commit_code(stock_repo, check=False).returncode == 1  # git ran it from there
    shared = tmp_path / "shared hooks"
    git("config", "core.hooksPath", str(shared), cwd=stock_repo)
    install(stock_repo)
    assert (shared / "post-checkout").is_file()
    assert commit_code(stock_repo, "b.py", check=False).returncode == 1


@pytest.mark.parametrize("value", ["/dev/null", "", "a-file"])
def test_core_hooks_path_where_git_runs_no_hooks_is_refused(stock_repo: Path, value: str) -> None:
    (stock_repo / "a-file").write_text("not a directory\n")
    git("config", "core.hooksPath", value, cwd=stock_repo)
    with pytest.raises(StockroomError, match="core.hooksPath"):
        install(stock_repo)
    proc = subprocess.run(
        [sys.executable, "-m", "stockroom", "install"], cwd=stock_repo, capture_output=True, text=True
    )
    assert proc.returncode == 1 and proc.stderr.startswith("stock: error:") and "Traceback" not in proc.stderr
    assert not (stock_repo / ".git" / "hooks" / "pre-commit").exists()


def test_linked_worktree_uses_the_shared_hooks(stock_repo: Path, tmp_path: Path) -> None:
    install(stock_repo)
    worktree = tmp_path / "wt"
    proc = git("worktree", "add", "-b", "feature", str(worktree), cwd=stock_repo)
    assert proc.returncode == 0  # post-checkout ran there (no .hangar in the new worktree) without failing
    assert hooks_dir(worktree) == hooks_dir(stock_repo)
    assert [c.action for c in install_hooks(worktree)] == ["unchanged"] * len(HOOK_NAMES)
    stockroom.init_repo(path=worktree)  # the worktree gets its own stock store
    with stockroom.StockRoom(worktree) as room:
        room.tag["wt"] = 1
    proc = commit_code(worktree, check=False)
    assert proc.returncode == 1 and "not committed" in proc.stderr
    with stockroom.StockRoom(worktree) as room:
        digest = room.commit("wt")
    commit_code(worktree)
    assert git("show", f"HEAD:{HEAD_FILE}", cwd=worktree).stdout.strip() == digest
    git("checkout", "-q", "-b", "feature2", cwd=worktree)
    git("checkout", "-q", "feature", cwd=worktree)


def test_submodule_hooks_go_to_its_git_dir(stock_repo: Path, tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git("init", "-q", cwd=upstream)
    commit_code(upstream, "lib.py")
    git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(upstream), "sub", cwd=stock_repo)
    sub = stock_repo / "sub"
    stockroom.init_repo(path=sub)
    hooks = hooks_dir(sub)
    assert hooks.resolve() == (stock_repo / ".git" / "modules" / "sub" / "hooks").resolve()
    assert (hooks / "pre-commit").is_file()
    assert not (stock_repo / ".git" / "hooks" / "pre-commit").exists()
    with stockroom.StockRoom(sub) as room:
        room.tag["sub"] = 1
    proc = commit_code(sub, check=False)
    assert proc.returncode == 1 and "not committed" in proc.stderr


# ------------------------------------------- the interpreter is gone
def _without_stock_on_path() -> dict[str, str]:
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "stock").exists()]
    return dict(os.environ, PATH=os.pathsep.join(dirs))


def test_gone_interpreter_refuses_commits_and_says_how_to_fix(stock_repo: Path) -> None:
    """Python is needed once the stock state changed: then a clear message, and the policy:
    pre-commit refuses (it cannot check), post-checkout warns and never fails."""
    hooks = hooks_dir(stock_repo)
    hooks.mkdir(exist_ok=True)
    (hooks / "pre-commit").write_bytes(FOREIGN_SHELL)
    install(stock_repo)  # the kept hook shows up in the message as the way back
    for name in HOOK_NAMES:
        (hooks / name).write_text(render(name, "/deleted/venv/bin/python", "/deleted/venv/lib"))
    env = _without_stock_on_path()
    with stockroom.StockRoom(stock_repo) as room:
        room.tag["lr"] = 1
        digest = room.commit("lr")  # head.stock changes: the hooks need Python now
    (stock_repo / "a.py").write_text("a")
    git("add", "a.py", cwd=stock_repo)
    proc = git("commit", "-m", "a", cwd=stock_repo, env=env, check=False)
    assert proc.returncode == 1
    assert "/deleted/venv/bin/python" in proc.stderr and "stock install" in proc.stderr
    hook = hooks.resolve() / "pre-commit"
    assert f'mv "{hook}.stockroom-legacy" "{hook}"' in proc.stderr
    assert "--no-verify" in proc.stderr
    git("commit", "-q", "--no-verify", "-am", "a", cwd=stock_repo)
    git("checkout", "-q", "-b", "x", "HEAD~1", cwd=stock_repo)
    # post-checkout says the same but never fails the checkout
    proc = git("checkout", "main", cwd=stock_repo, env=env, check=False)
    assert proc.returncode == 0 and "stock install" in proc.stderr
    assert f'rm "{hooks.resolve() / "post-checkout"}"' in proc.stderr
    assert (stock_repo / HEAD_FILE).read_text().strip() == digest


def test_gone_interpreter_falls_back_to_stock_on_path(stock_repo: Path, tmp_path: Path) -> None:
    stock = Path(sys.executable).parent / "stock"
    if not stock.exists():
        pytest.skip("no `stock` script beside this interpreter")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "stock").symlink_to(stock)
    hooks = hooks_dir(stock_repo)
    (hooks / "pre-commit").write_text(render("pre-commit", "/deleted/venv/bin/python", ""))
    (hooks / "pre-commit").chmod(0o755)
    env = _without_stock_on_path()
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    stage_writes(stock_repo)
    (stock_repo / "a.py").write_text("a")
    git("add", "a.py", cwd=stock_repo)
    proc = git("commit", "-m", "a", cwd=stock_repo, env=env, check=False)
    assert proc.returncode == 1 and "not committed" in proc.stderr  # stock hook pre-commit ran


def test_standalone_copy_without_stock_says_so(stock_repo: Path) -> None:
    copies = PROJECT / "hooks"
    if not copies.is_dir():
        pytest.skip("not running from a source checkout (no hooks/ folder)")
    git("config", "core.hooksPath", str(copies), cwd=stock_repo)
    stage_writes(stock_repo)  # something to check: the script needs stockroom
    (stock_repo / "a.py").write_text("a")
    git("add", "a.py", cwd=stock_repo)
    proc = git("commit", "-m", "a", cwd=stock_repo, env=_without_stock_on_path(), check=False)
    assert proc.returncode == 1 and "`stock` is not on PATH" in proc.stderr


# ------------------------------------------------------------------- the CLI
def test_stock_install_and_uninstall_commands(stock_repo: Path, tmp_path: Path) -> None:
    hooks = hooks_dir(stock_repo)
    before = snapshot(hooks)
    sub = stock_repo / "deep" / "dir"
    sub.mkdir(parents=True)
    run = [sys.executable, "-m", "stockroom"]
    proc = subprocess.run([*run, "install"], cwd=sub, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "pre-commit: installed" in proc.stdout and str(hooks) in proc.stdout
    proc = subprocess.run([*run, "uninstall"], cwd=sub, capture_output=True, text=True)
    assert proc.returncode == 0 and "pre-commit: removed" in proc.stdout
    assert snapshot(hooks) == before
    outside = tmp_path / "nogit"
    outside.mkdir()
    proc = subprocess.run([*run, "install"], cwd=outside, capture_output=True, text=True)
    assert proc.returncode == 1 and "not inside a git work tree" in proc.stderr


def test_noexec_style_failure_is_not_reported_as_success(stock_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If git cannot run the hooks from there, install takes them out again and refuses."""
    import stockroom.install as installer

    monkeypatch.setattr(installer, "_write_script", lambda path, text: (path.write_text(text), path.chmod(0o644)))
    hooks = hooks_dir(stock_repo)
    before = snapshot(hooks)
    with pytest.raises(StockroomError, match="does not run hooks"):
        install(stock_repo)
    assert snapshot(hooks) == before
