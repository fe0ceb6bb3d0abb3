"""pre-push uploads the stock; post-merge/post-checkout fetch it (real git, installed hooks)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom.install import hooks_dir
from stockroom.store import transfer
from tests.conftest import run_git
from tests.test_remote import clone, make_project, stock_cli


@pytest.fixture
def hooked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path, str]:
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    proj = tmp_path / "alice"
    digest = make_project(proj, remote)  # init_repo installs the hooks
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=proj)
    monkeypatch.chdir(proj)
    return proj, remote, bare, digest


def test_git_push_uploads_the_stock_first(hooked: tuple[Path, Path, Path, str], tmp_path: Path) -> None:
    proj, remote, bare, digest = hooked
    assert (hooks_dir(proj) / "pre-push").exists()
    out = run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    assert (remote / "commits" / digest).exists(), out.stderr
    bob = clone(bare, tmp_path / "bob")
    assert stock_cli("pull", cwd=bob).returncode == 0
    with stockroom.StockRoom(bob) as stock:
        assert stock.tag["lr"] == 0.25


def test_git_push_refused_when_remote_unreachable(hooked: tuple[Path, Path, Path, str]) -> None:
    proj, remote, bare, digest = hooked
    remote.rename(remote.with_name("moved"))
    out = run_git("push", "origin", "HEAD:main", cwd=proj, check=False)
    assert out.returncode != 0
    assert "push refused" in out.stderr and "does not exist" in out.stderr
    assert run_git("ls-remote", str(bare), cwd=proj).stdout == ""  # git sent nothing


def test_nothing_new_makes_no_request(hooked: tuple[Path, Path, Path, str]) -> None:
    proj, remote, _, _ = hooked
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    # The remote disappears: a push with nothing new for the stock never notices.
    remote.rename(remote.with_name("moved"))
    (proj / "code.py").write_text("print(1)\n")
    run_git("add", "code.py", cwd=proj)
    run_git("commit", "-q", "-m", "code only", cwd=proj)
    out = run_git("push", "origin", "HEAD:main", cwd=proj, check=False)
    assert out.returncode == 0, out.stderr
    assert "stockroom" not in out.stderr


def test_no_stock_remote_is_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "solo"
    make_project(proj)
    bare = tmp_path / "solo.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    out = run_git("push", str(bare), "HEAD:main", cwd=proj, check=False)
    assert out.returncode == 0
    notes = [line for line in out.stderr.splitlines() if line.startswith("stockroom:")]
    assert len(notes) == 1 and "no stock remote" in notes[0]


def test_foreign_pre_push_kept_and_restored(hooked: tuple[Path, Path, Path, str]) -> None:
    proj, _, _, _ = hooked
    stock_cli("uninstall", cwd=proj)
    hook = hooks_dir(proj) / "pre-push"
    hook.write_text('#!/bin/sh\ncat > "$(git rev-parse --git-dir)/seen-refs"\nexit 0\n')
    hook.chmod(0o755)
    original = hook.read_bytes()
    assert stock_cli("install", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    assert "refs/heads/main" in (proj / ".git" / "seen-refs").read_text()  # it got git's stdin
    assert stock_cli("uninstall", cwd=proj).returncode == 0
    assert hook.read_bytes() == original


def test_git_pull_autofetches(hooked: tuple[Path, Path, Path, str], tmp_path: Path) -> None:
    proj, remote, bare, first = hooked
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    assert stock_cli("pull", cwd=bob).returncode == 0  # sets up .hangar and bob's hooks
    with stockroom.StockRoom(proj) as stock:
        stock.data["img"][999] = np.full((4, 4), 7, dtype=np.uint8)
        second = stock.commit("more")
    run_git("commit", "-q", "-am", "more", cwd=proj)
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)  # pre-push uploads `second`
    out = run_git("pull", "-q", "--ff-only", cwd=bob)
    assert "fetched stock commit" in out.stderr
    with stockroom.StockRoom(bob) as stock:
        assert stock.head == second
        assert stock.data["img"][999][0, 0] == 7


def test_autofetch_off_and_checkout(hooked: tuple[Path, Path, Path, str], tmp_path: Path) -> None:
    proj, remote, bare, first = hooked
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    assert stock_cli("pull", cwd=bob).returncode == 0
    run_git("switch", "-q", "-c", "exp", cwd=proj)
    with stockroom.StockRoom(proj) as stock:
        stock.tag["lr"] = 0.125
        second = stock.commit("exp")
    run_git("commit", "-q", "-am", "exp", cwd=proj)
    run_git("push", "-q", "origin", "exp", cwd=proj)
    run_git("fetch", "-q", cwd=bob)
    run_git("config", "stock.autofetch", "false", cwd=bob)
    out = run_git("switch", "-q", "exp", cwd=bob)
    assert out.returncode == 0 and "stock pull" in out.stderr
    assert not transfer._Local(bob).has_commit(second)
    run_git("switch", "-q", "main", cwd=bob)
    run_git("config", "stock.autofetch", "true", cwd=bob)
    # Remote gone: the checkout still succeeds, with a warning.
    remote.rename(remote.with_name("moved"))
    out = run_git("switch", "-q", "exp", cwd=bob, check=False)
    assert out.returncode == 0 and "could not fetch" in out.stderr
    remote.with_name("moved").rename(remote)
    run_git("switch", "-q", "main", cwd=bob)
    out = run_git("switch", "-q", "exp", cwd=bob)
    assert "fetched stock commit" in out.stderr
    with stockroom.StockRoom(bob) as stock:
        assert stock.tag["lr"] == 0.125
    assert os.path.exists(bob / ".hangar")
