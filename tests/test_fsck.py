"""`stock fsck` and `stock push --repair` (SPEC 6a, "Broken remotes can be mended"):
a real project, a directory remote damaged by hand, real clones pulling from it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import stockroom
from tests.conftest import run_git
from tests.test_remote import clone, make_project, stock_cli


@pytest.fixture
def pushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path, str, str]:
    """Two stock commits pushed to a directory remote, the code to a bare repository."""
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    proj = tmp_path / "alice"
    first = make_project(proj, remote)
    with stockroom.StockRoom(proj) as stock:
        stock.tag["lr"] = 0.5
        stock.data["img"][100] = np.full((4, 4), 100, dtype=np.uint8)
        second = stock.commit("second")
    run_git("commit", "-q", "-am", "second", cwd=proj)
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=proj)
    out = stock_cli("push", cwd=proj)
    assert out.returncode == 0, out.stderr
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    monkeypatch.chdir(proj)
    return proj, remote, bare, first, second


def _packs(remote: Path) -> list[Path]:
    """Pack objects (not indexes), largest first."""
    packs = [p for p in (remote / "packs").iterdir() if not p.name.endswith(".idx") and not p.name.startswith(".")]
    return sorted(packs, key=lambda p: -p.stat().st_size)


def _pull_reads_everything(bare: Path, where: Path, second: str) -> None:
    bob = clone(bare, where)
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 0, out.stderr
    with stockroom.StockRoom(bob) as stock:
        assert stock.head == second
        assert stock.data["img"][7][1, 1] == 7 and stock.data["img"][100][0, 0] == 100
        assert stock.tag["lr"] == 0.5 and stock.tag["name"] == "first"
        assert stock.model["net"][0].shape == (3, 4)


def test_fsck_of_a_sound_remote_exits_0(pushed: tuple[Path, Path, Path, str, str]) -> None:
    proj, _, _, _, _ = pushed
    out = stock_cli("fsck", cwd=proj)
    assert out.returncode == 0, out.stderr
    assert "all sound" in out.stdout and "2 stock commit(s)" in out.stdout


@pytest.mark.parametrize("damage", ["corrupt-pack", "truncate-pack", "delete-pack", "corrupt-index", "delete-index"])
def test_damaged_pack_found_by_fsck_and_mended_by_push_repair(
    pushed: tuple[Path, Path, Path, str, str], tmp_path: Path, damage: str
) -> None:
    proj, remote, bare, _, second = pushed
    victim = _packs(remote)[0]
    if damage.endswith("index"):
        victim = victim.with_name(victim.name + ".idx")
    data = bytearray(victim.read_bytes())
    if damage.startswith("corrupt"):
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif damage.startswith("truncate"):
        victim.write_bytes(bytes(data[: len(data) // 2]))
    else:
        victim.unlink()
    # A plain push cannot see it: the remote has the commit.
    assert "up to date" in stock_cli("push", cwd=proj).stdout

    # The error a teammate gets names the remote and the fix.
    bob = clone(bare, tmp_path / "bob")
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    if not damage.startswith("delete"):
        assert f"packs/{victim.name}" in out.stderr
        assert "stock remote origin" in out.stderr and "stock push --repair origin" in out.stderr

    out = stock_cli("fsck", cwd=proj)
    assert out.returncode == 1
    assert f"packs/{victim.name}" in out.stdout
    assert ("missing" if damage.startswith("delete") else "corrupt") in out.stdout
    assert "stock push --repair origin" in out.stderr and len(out.stderr.strip().splitlines()) == 1

    out = stock_cli("push", "--repair", cwd=proj)
    assert out.returncode == 0, out.stderr
    assert f"packs/{victim.name}" in out.stdout
    out = stock_cli("fsck", cwd=proj)
    assert out.returncode == 0, out.stdout + out.stderr
    _pull_reads_everything(bare, tmp_path / "carol", second)


@pytest.mark.parametrize("which", ["first", "second"])
@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_damaged_manifest_found_and_mended(
    pushed: tuple[Path, Path, Path, str, str], tmp_path: Path, which: str, damage: str
) -> None:
    proj, remote, bare, first, second = pushed
    digest = first if which == "first" else second
    manifest = remote / "commits" / digest
    if damage == "delete":
        manifest.unlink()
    else:
        manifest.write_bytes(manifest.read_bytes()[:-30])
    out = stock_cli("fsck", cwd=proj)
    assert out.returncode == 1 and f"commits/{digest}" in out.stdout
    out = stock_cli("push", "--repair", cwd=proj)
    assert out.returncode == 0, out.stderr
    assert stock_cli("fsck", cwd=proj).returncode == 0
    _pull_reads_everything(bare, tmp_path / "bob", second)


def test_push_repair_of_a_sound_remote_changes_nothing(pushed: tuple[Path, Path, Path, str, str]) -> None:
    proj, remote, _, _, _ = pushed
    before = {p: p.stat().st_mtime_ns for p in remote.rglob("*") if p.is_file()}
    out = stock_cli("push", "--repair", cwd=proj)
    assert out.returncode == 0, out.stderr
    assert "nothing to repair" in out.stdout
    assert {p: p.stat().st_mtime_ns for p in remote.rglob("*") if p.is_file()} == before


def test_fsck_checks_every_local_branch(pushed: tuple[Path, Path, Path, str, str]) -> None:
    proj, _, _, _, _ = pushed
    run_git("switch", "-q", "-c", "exp", cwd=proj)
    with stockroom.StockRoom(proj) as stock:
        stock.tag["lr"] = 0.75
        third = stock.commit("third: never pushed")
    run_git("commit", "-q", "-am", "third", cwd=proj)
    run_git("switch", "-q", "main", cwd=proj)
    out = stock_cli("fsck", cwd=proj)
    assert out.returncode == 1 and f"missing: commits/{third}" in out.stdout
    assert stock_cli("push", "--all", cwd=proj).returncode == 0
    assert stock_cli("fsck", cwd=proj).returncode == 0


def test_fsck_without_a_remote_checks_the_local_store(stock_repo: Path) -> None:
    with stockroom.StockRoom(stock_repo) as stock:
        for i in range(5):
            stock.data["img"][i] = np.full((8, 8), i, dtype=np.uint8)
        stock.tag["lr"] = 0.1
        stock.commit("data")
    run_git("commit", "-q", "-am", "data", cwd=stock_repo)
    out = stock_cli("fsck", cwd=stock_repo)
    assert out.returncode == 0, out.stderr
    assert "local store" in out.stdout and "all sound" in out.stdout
    # One byte of a sample flipped on disk.
    files = [p for p in (stock_repo / ".hangar" / "data" / "10").iterdir() if p.suffix == ".npy"]
    assert files
    target = files[0]
    raw = bytearray(target.read_bytes())
    raw[-(8 * 8 * 1000) + 3] ^= 0xFF  # inside the first sample row, after the .npy header
    os.chmod(target, 0o644)
    target.write_bytes(bytes(raw))
    out = stock_cli("fsck", cwd=stock_repo)
    assert out.returncode == 1
    assert "unreadable: .hangar sample" in out.stdout and "Traceback" not in out.stderr
