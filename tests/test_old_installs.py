"""Repositories set up by an earlier stockroom keep working with this one.

`stock install` writes shell scripts into ``.git/hooks`` and a merge driver
into the git config; they stay there when stockroom is upgraded, and they
name stockroom's modules, files and markers. ``tests/data/c16719c/`` holds
exactly what commit c16719c wrote; these tests install that by hand and run
real git (commit, checkout, merge, push) with it against the current code.
The ``.pre-commit-hooks.yaml`` entries are run as the framework runs them.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import stockroom
from stockroom import layout
from stockroom.install import (
    DRIVER_COMMAND,
    _import_dirs,
    hooks_dir,
    install,
    installed_script,
    uninstall,
)

DATA = Path(__file__).parent / "data" / "c16719c"
PROJECT = Path(stockroom.__file__).resolve().parent.parent


def git(
    *args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(("git", *args), cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def recorded() -> dict[str, str]:
    """tests/data/c16719c/install.txt: KEY=VALUE lines."""
    values = {}
    for line in (DATA / "install.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def old_install(root: Path) -> list[Path]:
    """Install the hooks and merge driver as c16719c's `stock install` did; the files written."""
    rec = recorded()
    python, pkgdirs = shlex.quote(sys.executable), shlex.quote(_import_dirs())
    template = (DATA / "hook.sh").read_text(encoding="utf-8")
    directory = hooks_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in rec["hooks"].split():
        path = directory / name
        path.write_text(
            template.replace("@HOOK@", name).replace("@PYTHON@", python).replace("@PKGDIRS@", pkgdirs)
        )
        path.chmod(0o755)
        written.append(path)
    common = Path(git("rev-parse", "--git-common-dir", cwd=root).stdout.strip())
    driver = (common if common.is_absolute() else root / common) / rec["driver-file"]
    driver.write_text(
        (DATA / "merge-driver.sh")
        .read_text(encoding="utf-8")
        .replace("@PYTHON@", python)
        .replace("@PKGDIRS@", pkgdirs)
    )
    driver.chmod(0o755)
    written.append(driver)
    for key in ("merge.stock.name", "merge.stock.driver"):
        git("config", "--local", key, rec[key], cwd=root)
    with open(root / ".gitattributes", "a", encoding="utf-8") as handle:
        handle.write(rec["gitattributes"] + "\n")
    return written


def stock_commit(repo: Path, **tags: object) -> str:
    with stockroom.StockRoom(repo) as room:
        for key, value in tags.items():
            room.tag[key] = value
        return room.commit(f"tags {sorted(tags)}")


def code(repo: Path, name: str) -> None:
    (repo / name).write_text(name)
    git("add", name, cwd=repo)


def imports(proc: subprocess.CompletedProcess[str]) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")
    }


@pytest.fixture
def old(stock_repo: Path) -> Path:
    """A stock repository with c16719c's hooks and merge driver, .gitattributes committed."""
    old_install(stock_repo)
    git("add", ".gitattributes", cwd=stock_repo)
    git("commit", "-q", "--amend", "--no-edit", "--no-verify", cwd=stock_repo)
    return stock_repo


# ----------------------------------------------------------------- the fixture
def test_fixture_is_what_c16719c_shipped() -> None:
    """The copies under tests/data are the previous release's bytes (checked while the
    project's history is at hand), and differ from today's templates (or this tests nothing new)."""
    for name in ("hook.sh", "merge-driver.sh"):
        shown = subprocess.run(
            ("git", "show", f"c16719c:stockroom/resources/{name}"),
            cwd=PROJECT,
            capture_output=True,
            check=False,
        )
        if shown.returncode != 0:
            pytest.skip("not in a checkout with commit c16719c")
        assert (DATA / name).read_bytes() == shown.stdout, f"tests/data/c16719c/{name} is not c16719c's"
    rec = recorded()
    assert rec["merge.stock.driver"] == DRIVER_COMMAND  # uninstall recognises the old config by it
    assert rec["gitattributes"] == layout.ATTRIBUTE_LINE and rec["driver-file"] == layout.DRIVER_SCRIPT
    assert rec["hooks"].split() == list(layout.HOOK_NAMES)
    assert (DATA / "hook.sh").read_text() != (PROJECT / "stockroom" / "resources" / "hook.sh").read_text()


# ------------------------------------------------------- old hooks, new code
def test_old_hooks_commit_checkout_and_push(old: Path, tmp_path: Path) -> None:
    # pre-commit: staged writes refuse the commit, through the old script and today's stockroom.hook
    with stockroom.StockRoom(old) as room:
        room.tag["wip"] = 1
    code(old, "a.py")
    proc = git("commit", "-m", "a", cwd=old, check=False)
    assert proc.returncode == 1 and "not committed" in proc.stderr, proc.stderr
    with stockroom.StockRoom(old) as room:
        first = room.commit("wip")
    proc = git("commit", "-m", "a", cwd=old)
    assert f"staged {layout.HEAD_FILE}" in proc.stderr
    assert git("show", f"HEAD:{layout.HEAD_FILE}", cwd=old).stdout.strip() == first
    # The old script's no-Python path reads the names today's hook.py writes (the verified digest).
    code(old, "b.py")
    proc = git("commit", "-m", "b", cwd=old, env=dict(os.environ, PYTHONPROFILEIMPORTTIME="1"))
    assert imports(proc) == set(), "the old hook started Python for an unchanged stock state"
    # post-checkout: a branch with another stock commit, and back
    git("checkout", "-q", "-b", "other", cwd=old)
    second = stock_commit(old, lr=2)
    git("commit", "-q", "-am", "other stock", cwd=old)
    proc = git("checkout", "main", cwd=old)
    assert f"stock commit {first[:14]} (was {second[:14]})" in proc.stderr
    # pre-push: runs (no stock remote here: says so, and the push goes through)
    bare = tmp_path / "code.git"
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    proc = git("push", str(bare), "main", cwd=old)
    assert "no stock remote configured" in proc.stderr
    assert git("ls-remote", str(bare), cwd=old).stdout.strip()


def test_old_merge_driver_merges_stock(old: Path) -> None:
    stock_commit(old, seed=1)  # both sides build on one stock commit
    git("commit", "-q", "-am", "base", cwd=old)
    git("checkout", "-q", "-b", "side", cwd=old)
    stock_commit(old, epochs=3)
    git("commit", "-q", "-am", "theirs", cwd=old)
    git("checkout", "-q", "main", cwd=old)
    stock_commit(old, lr=0.1)
    git("commit", "-q", "-am", "ours", cwd=old)
    proc = git("merge", "--no-edit", "side", cwd=old, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with stockroom.StockRoom(old) as room:
        assert dict(room.tag) == {"seed": 1, "lr": 0.1, "epochs": 3}
    assert git("status", "--porcelain", cwd=old).stdout == ""


def test_install_over_an_old_install_updates_it_and_uninstall_removes_all(old: Path) -> None:
    hooks = hooks_dir(old)
    install(old)
    for name in layout.HOOK_NAMES:
        assert (hooks / name).read_text() == installed_script(name)  # recognised as ours: replaced
        assert not (hooks / (name + layout.LEGACY_SUFFIX)).exists()  # not kept as someone else's
    assert git("config", "--get-all", "merge.stock.driver", cwd=old).stdout.strip() == DRIVER_COMMAND
    assert (old / ".gitattributes").read_text().count(layout.ATTRIBUTE_LINE) == 1
    uninstall(old)
    assert not any((hooks / name).exists() for name in layout.HOOK_NAMES)
    assert git("config", "--get-regexp", "merge", cwd=old, check=False).stdout == ""
    assert not (old / ".git" / layout.DRIVER_SCRIPT).exists()


def test_uninstall_removes_an_old_install_directly(stock_repo: Path) -> None:
    written = old_install(stock_repo)
    uninstall(stock_repo)
    assert not any(path.exists() for path in written)
    assert git("config", "--get-regexp", "merge", cwd=stock_repo, check=False).stdout == ""
    assert not (stock_repo / ".gitattributes").exists()


# ------------------------------------------------------ .pre-commit-hooks.yaml
def _entries() -> dict[str, list[str]]:
    path = PROJECT / ".pre-commit-hooks.yaml"
    if not path.is_file():
        pytest.skip("not running from a source checkout (no .pre-commit-hooks.yaml)")
    return {hook["id"]: shlex.split(hook["entry"]) for hook in yaml.safe_load(path.read_text())}


def test_pre_commit_hooks_yaml_entries_run(stock_repo: Path) -> None:
    """Each declared entry, run as the framework runs it (its python, PRE_COMMIT=1, the
    post-checkout refs in the environment), still reaches today's hook code."""
    entries = _entries()
    assert set(entries) == {layout.FRAMEWORK_ID_PREFIX + name for name in ("pre-commit", "post-checkout")}

    def run(hook_id: str, **extra: str) -> subprocess.CompletedProcess[str]:
        argv = entries[hook_id]
        assert argv[0] == "python"
        env = dict(os.environ, PRE_COMMIT="1", **extra)
        return subprocess.run(
            [sys.executable, *argv[1:]], cwd=stock_repo, env=env, capture_output=True, text=True
        )

    before = git("rev-parse", "HEAD", cwd=stock_repo).stdout.strip()
    with stockroom.StockRoom(stock_repo) as room:
        room.tag["wip"] = 1
    proc = run("stockroom-pre-commit")
    assert proc.returncode == 1 and "not committed" in proc.stderr, proc.stderr
    with stockroom.StockRoom(stock_repo) as room:
        digest = room.commit("wip")
    git("commit", "-q", "-am", "stock", "--no-verify", cwd=stock_repo)
    after = git("rev-parse", "HEAD", cwd=stock_repo).stdout.strip()
    proc = run(
        "stockroom-post-checkout",
        PRE_COMMIT_FROM_REF=before,
        PRE_COMMIT_TO_REF=after,
        PRE_COMMIT_CHECKOUT_TYPE="1",
    )
    assert proc.returncode == 0 and f"stock commit {digest[:14]}" in proc.stderr, proc.stderr
