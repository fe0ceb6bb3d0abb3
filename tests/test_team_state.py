"""What a sample is in each clone of a team (SPEC 6a): real clones, a bare git
origin, a directory remote, installed hooks.

Each test is the reproduction of one defect of issue 21: a value written here
is readable after ``stock.commit()`` whatever older commit holds its content
(1), a stock merged by ``git pull`` reads, logs, diffs and pushes (2), a
pulled clone pushes to a mirror (4), a lazy clone stays lazy (7).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom.store import samples  # noqa: F401
from tests.conftest import run_git
from tests.test_remote import clone, make_project, stock_cli

try:
    from tests.test_remote_s3 import s3  # noqa: F401 - the moto S3 server fixture
except pytest.skip.Exception:  # no obstore or moto here: the S3 tests skip
    pass


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """Alice's project (hooks installed) on a directory remote and a bare git origin."""
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    alice = tmp_path / "alice"
    make_project(alice, remote)
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=alice)
    run_git("push", "-q", "-u", "origin", "HEAD:main", cwd=alice)  # pre-push uploads the stock
    monkeypatch.chdir(tmp_path)
    return alice, remote, bare


def commit_both(path: Path, message: str, stock_message: str | None = None, **tags: object) -> str:
    """Write ``tags``, stock-commit them, then git-commit ``head.stock``."""
    with stockroom.StockRoom(path) as stock:
        for key, value in tags.items():
            stock.tag[key] = value
        digest = stock.commit(stock_message or message)
    run_git("commit", "-q", "-am", message, cwd=path)
    return digest


def pulled_clone(bare: Path, where: Path, *args: str) -> Path:
    bob = clone(bare, where)
    out = stock_cli("pull", *args, cwd=bob)
    assert out.returncode == 0, out.stderr
    return bob


def data_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path / ".hangar" / "data").rglob("*") if p.is_file())


# ------------------------------------------------------------- defect 1
def test_tag_equal_to_an_older_commits_is_readable_after_commit(
    team: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    alice, _, bare = team
    commit_both(alice, "epoch 1", epoch=1)
    commit_both(alice, "epoch 2", epoch=2)
    run_git("push", "-q", "origin", "HEAD:main", cwd=alice)
    bob = pulled_clone(bare, tmp_path / "bob")
    with stockroom.StockRoom(bob) as stock:
        assert stock.tag["epoch"] == 2
        stock.tag["epoch"] = 1  # content that only an older commit holds
        stock.commit("back to 1")
    with stockroom.StockRoom(bob) as stock:
        assert stock.tag["epoch"] == 1
        assert dict(stock.tag)["epoch"] == 1


def test_data_sample_equal_to_an_older_commits_is_readable_after_commit(
    team: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    alice, _, bare = team
    old = np.full((4, 4), 200, dtype=np.uint8)
    with stockroom.StockRoom(alice) as stock:
        stock.data["img"][7] = old
        stock.commit("img 7 is 200")
    with stockroom.StockRoom(alice) as stock:
        stock.data["img"][7] = np.full((4, 4), 201, dtype=np.uint8)
        stock.commit("img 7 is 201")
    run_git("commit", "-q", "-am", "two data commits", cwd=alice)
    run_git("push", "-q", "origin", "HEAD:main", cwd=alice)
    bob = pulled_clone(bare, tmp_path / "bob")
    with stockroom.StockRoom(bob) as stock:
        stock.data["img"][100] = old  # through one write
        stock.data["label"].update({100: np.array(3, dtype=np.int64)})
        stock.commit("bob's sample")
    with stockroom.StockRoom(bob) as stock:
        np.testing.assert_array_equal(stock.data["img"][100], old)
    with stockroom.StockRoom(bob) as stock:
        with stock.optimize():  # and through the held-column fast path
            stock.data["img"][101] = old
        stock.commit("another")
    with stockroom.StockRoom(bob) as stock:
        np.testing.assert_array_equal(stock.data["img"][101], old)


def test_value_written_after_a_partial_pull_is_readable(
    team: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The same after `stock pull --column img`: the label column was left on
    the remote, and a label written here with the same content as one there."""
    _, _, bare = team
    bob = pulled_clone(bare, tmp_path / "bob", "--column", "img")
    with stockroom.StockRoom(bob) as stock:
        stock.data["label"][500] = np.array(3, dtype=np.int64)  # label 3 exists, not fetched
        stock.commit("bob")
    with stockroom.StockRoom(bob) as stock:
        assert int(stock.data["label"][500]) == 3
        with pytest.raises(stockroom.StockroomError, match="stock pull"):
            stock.data["label"][4]  # what the pull left out stays out, with the command


# ------------------------------------------------------------- defect 2
@pytest.mark.parametrize("how", ["--no-rebase", "--rebase"])
def test_git_pull_merging_a_teammates_stock_stays_readable(
    team: tuple[Path, Path, Path], tmp_path: Path, how: str
) -> None:
    alice, _, bare = team
    bob = pulled_clone(bare, tmp_path / "bob")
    with stockroom.StockRoom(alice) as stock:
        stock.tag["alice"] = "a"
        stock.data["img"][60] = np.full((4, 4), 60, dtype=np.uint8)
        stock.commit("alice")
    run_git("commit", "-q", "-am", "alice", cwd=alice)
    run_git("push", "-q", "origin", "HEAD:main", cwd=alice)
    commit_both(bob, "bob", bob="b")
    out = run_git("pull", "-q", how, "origin", "main", cwd=bob, check=False)
    assert out.returncode == 0, out.stderr
    with stockroom.StockRoom(bob) as stock:
        tags = dict(stock.tag)
        assert tags["alice"] == "a" and tags["bob"] == "b" and tags["lr"] == 0.25
        assert int(stock.data["img"][60][0, 0]) == 60
    for args in (("log", "--tags"), ("diff", "HEAD~1", "HEAD"), ("status",)):
        out = stock_cli(*args, cwd=bob)
        assert out.returncode == 0 and "not fetched" not in out.stdout + out.stderr, (args, out)
    out = stock_cli("push", cwd=bob)
    assert out.returncode == 0, out.stderr
    # What bob pushed is whole: a third clone reads the merged commit.
    run_git("push", "-q", "origin", "HEAD:main", cwd=bob)
    carol = pulled_clone(bare, tmp_path / "carol")
    with stockroom.StockRoom(carol) as stock:
        assert stock.tag["alice"] == "a" and stock.tag["bob"] == "b"
        assert int(stock.data["img"][60][0, 0]) == 60


def test_pull_of_a_merged_commit_whose_sides_are_records_only(
    team: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A merge made where a side's data was never fetched (autofetch off):
    `stock pull` brings it from the remote, though the merged commit itself
    exists only here."""
    alice, _, bare = team
    bob = pulled_clone(bare, tmp_path / "bob")
    run_git("config", "stock.autofetch", "false", cwd=bob)
    commit_both(alice, "alice", alice="a")
    run_git("push", "-q", "origin", "HEAD:main", cwd=alice)
    assert stock_cli("fetch", cwd=bob).returncode == 0  # nothing new on local branches
    commit_both(bob, "bob", bob="b")
    run_git("fetch", "-q", "origin", cwd=bob)
    # Records only, as the driver once fetched them (a merge reads no data).
    from stockroom.remote import sync

    sync.fetch(bob, None, [sync.digest_at(bob, "origin/main")], columns=set())
    out = run_git("merge", "-q", "--no-edit", "origin/main", cwd=bob, check=False)
    assert out.returncode == 0, out.stderr
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 0, out.stderr
    with stockroom.StockRoom(bob) as stock:
        assert stock.tag["alice"] == "a" and stock.tag["bob"] == "b"


# ------------------------------------------------------------- defect 4
@pytest.mark.parametrize("kind", ["dir", "s3"])
def test_pulled_clone_pushes_to_a_mirror(
    team: tuple[Path, Path, Path], tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    alice, _, bare = team
    if kind == "dir":
        mirror = tmp_path / "mirror"
        mirror.mkdir()
        where = [str(mirror)]
    else:  # a new bucket prefix on moto's S3 server
        endpoint, _ = request.getfixturevalue("s3")
        where = ["s3://stock-team/mirror", "--endpoint", endpoint]
    with stockroom.StockRoom(alice) as stock:
        stock.data["img"][3] = np.full((4, 4), 99, dtype=np.uint8)
        stock.tag["lr"] = 0.5
        stock.commit("second")
    run_git("commit", "-q", "-am", "second", cwd=alice)
    run_git("push", "-q", "origin", "HEAD:main", cwd=alice)
    bob = pulled_clone(bare, tmp_path / "bob")
    assert stock_cli("remote", "add", "mirror", *where, "--local", cwd=bob).returncode == 0
    out = stock_cli("push", "mirror", cwd=bob)
    assert out.returncode == 0, out.stderr
    # The mirror is whole: a clone pulling from it alone reads head and its parent.
    carol = clone(bare, tmp_path / "carol")
    (carol / ".stockremotes").unlink(missing_ok=True)
    assert stock_cli("remote", "add", "mirror", *where, "--local", cwd=carol).returncode == 0
    out = stock_cli("pull", "mirror", cwd=carol)
    assert out.returncode == 0, out.stderr
    out = stock_cli("fetch", "mirror", "HEAD~1", cwd=carol)  # the parent's data too
    assert out.returncode == 0, out.stderr
    with stockroom.StockRoom(carol) as stock:
        assert int(stock.data["img"][3][0, 0]) == 99 and stock.tag["lr"] == 0.5
        older = stock.at("HEAD~1")
        assert older.tag["lr"] == 0.25 and int(older.data["img"][3][0, 0]) == 3


def test_mirror_push_without_a_source_says_what_to_do(team: tuple[Path, Path, Path], tmp_path: Path) -> None:
    alice, remote, bare = team
    commit_both(alice, "second", lr=0.5)
    run_git("push", "-q", "origin", "HEAD:main", cwd=alice)
    bob = pulled_clone(bare, tmp_path / "bob")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    assert stock_cli("remote", "add", "mirror", str(mirror), "--local", cwd=bob).returncode == 0
    remote.rename(remote.with_name("gone"))  # where the parent's data came from
    out = stock_cli("push", "mirror", cwd=bob)
    assert out.returncode == 1
    assert "origin" in out.stderr and "stock remote add" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (mirror / "commits").exists() or not any((mirror / "commits").iterdir())


def test_lazy_clone_pushes_to_a_mirror(team: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A lazy clone reads everything on demand, so it can share everything."""
    _, _, bare = team
    bob = pulled_clone(bare, tmp_path / "bob", "--lazy")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    assert stock_cli("remote", "add", "mirror", str(mirror), "--local", cwd=bob).returncode == 0
    out = stock_cli("push", "mirror", cwd=bob)
    assert out.returncode == 0, out.stderr
    carol = clone(bare, tmp_path / "carol")
    (carol / ".stockremotes").unlink(missing_ok=True)
    assert stock_cli("remote", "add", "mirror", str(mirror), "--local", cwd=carol).returncode == 0
    assert stock_cli("pull", "mirror", cwd=carol).returncode == 0
    with stockroom.StockRoom(carol) as stock:
        assert int(stock.data["img"][17][0, 0]) == 17 and stock.model["net"][1].tolist() == [1.0] * 3


# ------------------------------------------------------------- defect 7
def _big_branch(alice: Path) -> None:
    run_git("switch", "-q", "-c", "exp", cwd=alice)
    rng = np.random.default_rng(1)
    with stockroom.StockRoom(alice) as stock:
        with stock.optimize():
            for i in range(200, 264):
                stock.data["img"][i] = rng.integers(0, 256, (4, 4), dtype=np.uint8)
        stock.model["net"] = [rng.standard_normal((256, 256)).astype(np.float32), np.ones(3, np.float32)]
        stock.commit("exp")
    run_git("commit", "-q", "-am", "exp", cwd=alice)
    run_git("push", "-q", "origin", "exp", cwd=alice)


@pytest.mark.parametrize("setup", ["pull --lazy", "stock.lazy"])
def test_lazy_clone_stays_lazy_across_switch_and_fetch(
    team: tuple[Path, Path, Path], tmp_path: Path, setup: str
) -> None:
    alice, _, bare = team
    if setup == "pull --lazy":
        bob = pulled_clone(bare, tmp_path / "bob", "--lazy")
    else:  # a full clone told to stay lazy from now on
        bob = pulled_clone(bare, tmp_path / "bob")
        run_git("config", "stock.lazy", "true", cwd=bob)
    assert samples.lazy_clone(bob)
    base = data_bytes(bob)
    _big_branch(alice)
    run_git("fetch", "-q", "origin", cwd=bob)
    out = run_git("switch", "-q", "exp", cwd=bob)  # post-checkout autofetches
    assert "fetched stock commit" in out.stderr, out.stderr
    assert data_bytes(bob) - base < 4096  # records only
    with stockroom.StockRoom(bob) as stock:
        assert stock.model["net"][0].shape == (256, 256)  # readable on demand
        assert int(stock.data["img"][3][0, 0]) == 3
    # stock fetch of another branch: records only too, and enough for a diff.
    run_git("switch", "-q", "main", cwd=bob)
    with stockroom.StockRoom(alice) as stock:
        stock.model["net"] = [np.zeros((256, 256), np.float32), np.ones(3, np.float32)]
        stock.commit("exp 2")
    run_git("commit", "-q", "-am", "exp 2", cwd=alice)
    run_git("push", "-q", "origin", "exp", cwd=alice)
    run_git("fetch", "-q", "origin", cwd=bob)
    before = data_bytes(bob)
    out = stock_cli("fetch", "origin", "origin/exp", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert data_bytes(bob) - before < 4096
    out = stock_cli("diff", "exp", "origin/exp", cwd=bob)
    assert out.returncode == 0 and "net" in out.stdout, out
    # git pull on main (post-merge autofetch): records only.
    run_git("switch", "-q", "main", cwd=alice)
    with stockroom.StockRoom(alice) as stock:
        stock.data["img"].update({i: np.full((4, 4), i % 256, np.uint8) for i in range(300, 364)})
        stock.commit("more data")
    run_git("commit", "-q", "-am", "more data", cwd=alice)
    run_git("push", "-q", "origin", "main", cwd=alice)
    before = data_bytes(bob)
    out = run_git("pull", "-q", "origin", "main", cwd=bob, check=False)
    assert out.returncode == 0 and "fetched stock commit" in out.stderr, out.stderr
    assert data_bytes(bob) - before < 4096
    with stockroom.StockRoom(bob) as stock:
        assert int(stock.data["img"][301][0, 0]) == 301 % 256
