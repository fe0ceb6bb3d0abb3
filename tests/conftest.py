"""Shared fixtures: real git repositories in temp dirs, with git config isolated."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import stockroom


def run_git(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run real git in ``cwd``; returns the completed process (text mode)."""
    return subprocess.run(("git", *args), cwd=cwd, check=check, capture_output=True, text=True, env=env)


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the developer's git config; make commits reproducible."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "STOCKROOM_LOCK_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Stock Tester\n\temail = tester@example.com\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
    )


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty git work tree (cwd set to it)."""
    repo = tmp_path / "project"
    repo.mkdir()
    run_git("init", "-q", cwd=repo)
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture
def stock_repo(git_repo: Path) -> Path:
    """A git work tree made a stock repository (no hooks), with one git commit."""
    import stockroom

    stockroom.init_repo(install_hooks=False)
    run_git("add", "-A", cwd=git_repo)
    run_git("commit", "-q", "-m", "stock init", cwd=git_repo)
    return git_repo


@pytest.fixture
def stock(stock_repo: Path) -> Iterator[stockroom.StockRoom]:
    with stockroom.StockRoom() as room:
        yield room


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow", action="store_true", default=False,
        help="also run the tests marked slow (the long fault-injection sweep)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
