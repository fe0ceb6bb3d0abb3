"""End to end through the pre-commit framework (.pre-commit-hooks.yaml).

A committed copy of this project (package, setup files and the hook
manifest) serves as the hook repository; a stock repository points its
``.pre-commit-config.yaml`` at it and runs ``pre-commit install --hook-type
pre-commit --hook-type post-checkout``. The framework then pip-installs
stockroom (and builds hangar from source) into its own environment: slow
the first time (a minute or two), so the copy, the framework's home and
pip's cache live in pytest's cache directory with a content-determined
commit, and later runs reuse the environment.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import stockroom
from stockroom.headfile import HEAD_FILE

PROJECT = Path(stockroom.__file__).resolve().parent.parent
# What `pip install .` of the project needs, besides the package itself.
PROJECT_FILES = ("setup.cfg", "pyproject.toml", ".pre-commit-hooks.yaml", "README.md", "LICENSE", "MANIFEST.in")
FIXED_DATE = "2020-01-01T00:00:00+00:00"

pytest.importorskip("pre_commit")


def git(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(("git", *args), cwd=cwd, capture_output=True, text=True, env=env, check=False, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def hook_repository(where: Path) -> str:
    """A git repository holding this project's installable files; returns its commit."""
    if not (PROJECT / ".pre-commit-hooks.yaml").is_file() or not (PROJECT / "setup.cfg").is_file():
        pytest.skip("stockroom is not running from a source checkout")
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    shutil.copytree(
        PROJECT / "stockroom", where / "stockroom", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for name in PROJECT_FILES:
        if (PROJECT / name).is_file():
            shutil.copy2(PROJECT / name, where / name)
    env = dict(
        os.environ,
        GIT_AUTHOR_DATE=FIXED_DATE,
        GIT_COMMITTER_DATE=FIXED_DATE,
        GIT_AUTHOR_NAME="stockroom",
        GIT_AUTHOR_EMAIL="stockroom@example.com",
        GIT_COMMITTER_NAME="stockroom",
        GIT_COMMITTER_EMAIL="stockroom@example.com",
    )
    git("init", "-q", cwd=where)
    git("add", "-A", cwd=where)
    git("commit", "-q", "-m", "stockroom for the pre-commit framework", cwd=where, env=env)
    return git("rev-parse", "HEAD", cwd=where).stdout.strip()


def stock_commit(repo: Path, **tags: int) -> str:
    with stockroom.StockRoom(repo) as room:
        for key, value in tags.items():
            room.tag[key] = value
        return room.commit("tags")


def test_hooks_through_the_pre_commit_framework(stock_repo: Path, request: pytest.FixtureRequest) -> None:
    config_cache = getattr(request.config, "cache", None)
    cache = Path(config_cache.mkdir("stockroom-pre-commit")) if config_cache else stock_repo.parent
    source = cache / "stockroom-src"
    rev = hook_repository(source)
    env = dict(
        os.environ,
        PRE_COMMIT_HOME=str(cache / "home"),
        PIP_CACHE_DIR=str(cache / "pip"),
        PRE_COMMIT_COLOR="never",
    )
    (stock_repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n"
        f"  - repo: {source}\n"
        f"    rev: {rev}\n"
        f"    hooks:\n"
        f"      - id: stockroom-pre-commit\n"
        f"      - id: stockroom-post-checkout\n"
    )
    subprocess.run(
        [sys.executable, "-m", "pre_commit", "install", "--hook-type", "pre-commit", "--hook-type", "post-checkout"],
        cwd=stock_repo,
        env=env,
        check=True,
        capture_output=True,
    )
    (stock_repo / "train.py").write_text("v1\n")
    git("add", ".pre-commit-config.yaml", "train.py", cwd=stock_repo)
    # First commit: the framework builds its environment (pip installs the copy), then runs the hook.
    proc = git("commit", "-m", "use the framework", cwd=stock_repo, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stockroom (stock state recorded in head.stock)" in proc.stdout + proc.stderr

    # Uncommitted stock writes: refused, named, with the fix.
    with stockroom.StockRoom(stock_repo) as room:
        room.tag["lr"] = 1
    (stock_repo / "train.py").write_text("v2\n")
    git("add", "train.py", cwd=stock_repo)
    proc = git("commit", "-m", "v2", cwd=stock_repo, env=env, check=False)
    assert proc.returncode == 1
    assert "not committed" in proc.stdout + proc.stderr and "stock commit -m" in proc.stdout + proc.stderr

    # A stock commit leaves head.stock changed but unstaged: the framework stashes it, the hook
    # refuses with the exact fix, and the edit is back in the work tree afterwards.
    digest = stock_commit(stock_repo)
    proc = git("commit", "-m", "v2", cwd=stock_repo, env=env, check=False)
    assert proc.returncode == 1
    assert f"git add {HEAD_FILE}" in proc.stdout + proc.stderr
    assert (stock_repo / HEAD_FILE).read_text().strip() == digest
    git("add", HEAD_FILE, cwd=stock_repo)
    git("commit", "-m", "v2", cwd=stock_repo, env=env)
    assert git("show", f"HEAD:{HEAD_FILE}", cwd=stock_repo).stdout.strip() == digest
    assert git("status", "--porcelain", cwd=stock_repo).stdout == ""

    # post-checkout: a branch with another stock commit, and back.
    git("checkout", "-q", "-b", "other", cwd=stock_repo, env=env)
    other = stock_commit(stock_repo, lr=2)
    git("add", HEAD_FILE, cwd=stock_repo)
    git("commit", "-q", "-m", "other stock", cwd=stock_repo, env=env)
    proc = git("checkout", "main", cwd=stock_repo, env=env)
    out = proc.stdout + proc.stderr
    assert f"stock commit {digest[:14]} (was {other[:14]})" in out
    # A file checkout (flag 0): nothing from stockroom.
    (stock_repo / "train.py").write_text("scratch\n")
    proc = git("checkout", "--", "train.py", cwd=stock_repo, env=env)
    assert "stock commit" not in proc.stdout + proc.stderr
    # Staged writes left behind on a switch: warned, kept.
    with stockroom.StockRoom(stock_repo) as room:
        room.tag["wip"] = 3
    proc = git("checkout", "other", cwd=stock_repo, env=env)
    assert "uncommitted stock writes" in proc.stdout + proc.stderr
    # The package the framework installed carries the hook template `stock install` writes.
    with sqlite3.connect(cache / "home" / "db.db") as db:  # the framework's record of (repo, rev) -> clone
        (clone,) = db.execute("SELECT path FROM repos WHERE repo = ? AND ref = ?", (str(source), rev)).fetchone()
    (python,) = Path(clone).glob("py_env-*/bin/python")
    script = "from stockroom.install import render; print(render('pre-commit').splitlines()[1])"
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.startswith("# stockroom-managed-hook")
    # Drop the framework's environments of earlier sources (kept: the one this config uses).
    subprocess.run([sys.executable, "-m", "pre_commit", "gc"], cwd=stock_repo, env=env, check=True, capture_output=True)


def _use_framework(stock_repo: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """Point stock_repo's .pre-commit-config.yaml at this project, install the framework's
    hooks and make the first commit; returns the environment to run git with."""
    config_cache = getattr(request.config, "cache", None)
    cache = Path(config_cache.mkdir("stockroom-pre-commit")) if config_cache else stock_repo.parent
    source = cache / "stockroom-src"
    rev = hook_repository(source)
    env = dict(os.environ, PRE_COMMIT_HOME=str(cache / "home"), PIP_CACHE_DIR=str(cache / "pip"),
               PRE_COMMIT_COLOR="never")
    (stock_repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {source}\n    rev: {rev}\n    hooks:\n"
        f"      - id: stockroom-pre-commit\n      - id: stockroom-post-checkout\n"
    )
    subprocess.run(
        [sys.executable, "-m", "pre_commit", "install", "--hook-type", "pre-commit", "--hook-type", "post-checkout"],
        cwd=stock_repo, env=env, check=True, capture_output=True,
    )
    (stock_repo / "train.py").write_text("v1\n")
    git("add", ".pre-commit-config.yaml", "train.py", cwd=stock_repo)
    git("commit", "-m", "use the framework", cwd=stock_repo, env=env)
    return env


def _stock(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run((sys.executable, "-m", "stockroom", *args), cwd=cwd, capture_output=True, text=True)


def test_framework_refusals_name_the_right_digest_and_a_fix_that_works(
    stock_repo: Path, request: pytest.FixtureRequest
) -> None:
    """Issue 14.3, 14.5 and 14.14 (framework plus `stock install`), through the real framework."""
    env = _use_framework(stock_repo, request)
    old = stock_commit(stock_repo, lr=1)
    git("add", HEAD_FILE, cwd=stock_repo)
    git("commit", "-q", "-m", "stock 1", cwd=stock_repo, env=env)

    # 14.5: the refusal names the stashed (new) digest, not the old one the work tree shows then.
    new = stock_commit(stock_repo, lr=2)
    (stock_repo / "train.py").write_text("v2\n")
    git("add", "train.py", cwd=stock_repo)
    proc = git("commit", "-m", "v2", cwd=stock_repo, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and f"names stock commit {new[:14]}" in out and old[:14] not in out
    # ... and `stock status` does not claim the hook stages it.
    status = _stock("status", cwd=stock_repo).stdout.splitlines()[-1]
    assert "under the pre-commit framework the commit is refused until you do" in status
    assert "the pre-commit hook does it" not in status

    # 14.3: a path-mode commit is told to name head.stock among its paths (`git add` cannot help it).
    git("reset", "-q", "train.py", cwd=stock_repo)
    proc = git("commit", "-m", "v2", "--", "train.py", cwd=stock_repo, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and f"-- PATH... {HEAD_FILE}" in out, out
    git("add", HEAD_FILE, cwd=stock_repo)  # what the old message said: still refused, as the issue found
    assert git("commit", "-m", "v2", "--", "train.py", cwd=stock_repo, env=env, check=False).returncode == 1
    git("commit", "-q", "-m", "v2", "--", "train.py", HEAD_FILE, cwd=stock_repo, env=env)  # the advice
    assert git("show", f"HEAD:{HEAD_FILE}", cwd=stock_repo).stdout.strip() == new
    assert git("show", "HEAD:train.py", cwd=stock_repo).stdout == "v2\n"

    # 14.14: `stock install` on top of the framework warns, and checkouts say the stock line once.
    proc = _stock("install", cwd=stock_repo)
    assert proc.returncode == 0 and "the pre-commit framework already runs stockroom's" in proc.stderr
    git("checkout", "-q", "-b", "other", cwd=stock_repo, env=env)
    other = stock_commit(stock_repo, lr=3)
    git("add", HEAD_FILE, cwd=stock_repo)
    git("commit", "-q", "-m", "other stock", cwd=stock_repo, env=env)
    proc = git("checkout", "main", cwd=stock_repo, env=env)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if f"(was {other[:14]})" in line]
    assert len(lines) == 1, proc.stdout + proc.stderr
