"""Stock remotes on a directory: real git clones, pushes and pulls."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom.remote import config
from stockroom.remote.objects import DirectoryStore, RemoteError, check_name
from stockroom.remote.url import parse_url
from stockroom.store import transfer
from tests.conftest import run_git


def stock_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockroom", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )


def make_project(path: Path, remote: Path | None = None, n: int = 50) -> str:
    """A stock repository at ``path`` with data, a model and tags, committed in git."""
    path.mkdir(parents=True)
    run_git("init", "-q", cwd=path)
    stockroom.init_repo(path=path)
    with stockroom.StockRoom(path) as stock:
        with stock.optimize():
            for i in range(n):
                stock.data["img"][i] = np.full((4, 4), i, dtype=np.uint8)
                stock.data["label"][i] = np.array(i % 10, dtype=np.int64)
        stock.model["net"] = [np.arange(12, dtype=np.float32).reshape(3, 4), np.ones(3, np.float32)]
        stock.tag["lr"] = 0.25
        stock.tag["name"] = "first"
        digest = stock.commit("first")
    if remote is not None:
        assert stock_cli("remote", "add", "origin", str(remote), cwd=path).returncode == 0
    run_git("add", "-A", cwd=path)
    run_git("commit", "-q", "-m", "first", cwd=path)
    return digest


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path, str]:
    """A project pushed to a directory remote and a bare git repository."""
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    proj = tmp_path / "alice"
    digest = make_project(proj, remote)
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=proj)
    monkeypatch.chdir(proj)
    return proj, remote, bare, digest


def clone(bare: Path, where: Path) -> Path:
    run_git("clone", "-q", str(bare), str(where), cwd=where.parent)
    return where


def test_fresh_clone_pull_reads_everything(team: tuple[Path, Path, Path, str], tmp_path: Path) -> None:
    proj, remote, bare, digest = team
    out = stock_cli("push", cwd=proj)
    assert out.returncode == 0, out.stderr
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    assert not (bob / ".hangar").exists()
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr  # not init's "run `stock pull`" advice, after the pull
    assert (bob / ".git" / "hooks" / "pre-commit").exists()  # set up as `stock init` would
    with stockroom.StockRoom(bob) as stock, stockroom.StockRoom(proj) as orig:
        assert stock.head == digest
        for i in (0, 17, 49):
            np.testing.assert_array_equal(stock.data["img"][i], orig.data["img"][i])
        assert stock.tag["lr"] == 0.25 and stock.tag["name"] == "first"
        np.testing.assert_array_equal(stock.model["net"][0], orig.model["net"][0])
    # The image column keeps its numpy-memmap backend (10) after the transfer.
    repo = transfer._Local(bob)
    cols = transfer._columns(repo.commit(digest)[2])
    schema, digests = cols["data.img"]
    assert set(repo.data_backends(digests).values()) == {"10"}
    # A second pull has nothing to do and touches no remote object.
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 0 and "here already" in out.stdout


def test_layout_is_packed_and_push_is_incremental(team: tuple[Path, Path, Path, str]) -> None:
    proj, remote, _, first = team
    assert stock_cli("push", cwd=proj).returncode == 0
    objects = sorted(p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file())
    # 4 schemas (img, label, model, tags): one pack and index each, one manifest.
    assert len(objects) == 9
    assert objects[0] == f"commits/{first}"
    before = set(objects)
    with stockroom.StockRoom(proj) as stock:
        stock.tag["lr"] = 0.5
        second = stock.commit("second")
    out = stock_cli("push", cwd=proj)
    assert out.returncode == 0, out.stderr
    new = {p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()} - before
    # Only the changed tag travels: one pack, its index, one manifest.
    assert new == {f"commits/{second}"} | {n for n in new if n.startswith("packs/")}
    assert len(new) == 3
    assert "up to date" in stock_cli("push", cwd=proj).stdout


def test_partial_pull_then_unfetched_read_names_the_command(
    team: tuple[Path, Path, Path, str], tmp_path: Path
) -> None:
    proj, _, bare, digest = team
    assert stock_cli("push", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    out = stock_cli("pull", "--column", "img", "--tags", cwd=bob)
    assert out.returncode == 0, out.stderr
    with stockroom.StockRoom(bob) as stock:
        assert stock.data["img"][3][0, 0] == 3
        assert stock.tag["lr"] == 0.25
        with pytest.raises(stockroom.StockroomError, match="stock pull"):
            stock.data["label"][3]
        with pytest.raises(stockroom.StockroomError, match="stock pull"):
            stock.model["net"]
    assert stock_cli("pull", "--model", "net", cwd=bob).returncode == 0
    with stockroom.StockRoom(bob) as stock:
        assert stock.model["net"][1].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_damaged_pack_is_refused_and_nothing_is_written(
    team: tuple[Path, Path, Path, str], tmp_path: Path, damage: str
) -> None:
    proj, remote, bare, digest = team
    assert stock_cli("push", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    packs = sorted(
        (p for p in (remote / "packs").iterdir() if not p.name.endswith(".idx")),
        key=lambda p: -p.stat().st_size,
    )
    victim = packs[0]
    data = bytearray(victim.read_bytes())
    os.chmod(victim, 0o644)
    if damage == "corrupt":
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    else:
        victim.write_bytes(bytes(data[: len(data) // 2]))
    bob = clone(bare, tmp_path / "bob")
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 1
    assert f"packs/{victim.name}" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not transfer._Local(bob).has_commit(digest)
    data_dir = bob / ".hangar" / "data"
    assert not any(p.is_file() and p.stat().st_size for p in data_dir.rglob("*"))


def test_corrupt_manifest_is_refused(team: tuple[Path, Path, Path, str], tmp_path: Path) -> None:
    proj, remote, bare, digest = team
    assert stock_cli("push", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    manifest = remote / "commits" / digest
    manifest.write_bytes(manifest.read_bytes()[:-40])
    bob = clone(bare, tmp_path / "bob")
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 1 and f"commits/{digest}" in out.stderr
    assert not transfer._Local(bob).has_commit(digest)


class _Crashing(DirectoryStore):
    """A directory remote whose writes stop after ``budget`` objects (a killed push)."""

    def __init__(self, root: Path, budget: int) -> None:
        super().__init__(root, "origin")
        self.budget = budget

    def put_new(self, name: str, data: bytes) -> bool:
        if self.budget == 0:
            raise RemoteError("connection lost")
        self.budget -= 1
        return super().put_new(name, data)


@pytest.mark.parametrize("budget", range(9))
def test_push_interrupted_then_rerun(team: tuple[Path, Path, Path, str], budget: int) -> None:
    proj, remote, _, digest = team
    with pytest.raises(RemoteError):
        transfer.push(proj, _Crashing(remote, budget), [digest])
    # The commit is not visible before all its data is there.
    assert not (remote / "commits" / digest).exists()
    sent = {p.name for p in remote.rglob("*") if p.is_file()}
    summary = transfer.push(proj, DirectoryStore(remote, "origin"), [digest])
    assert summary.objects == 9 - len(sent)  # only what was missing
    assert summary.skipped_objects == len(sent)


def test_two_clones_push_at_once(team: tuple[Path, Path, Path, str], tmp_path: Path) -> None:
    proj, remote, bare, first = team
    assert stock_cli("push", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    clones = [clone(bare, tmp_path / name) for name in ("bob", "carol")]
    heads = []
    for i, c in enumerate(clones):
        assert stock_cli("pull", cwd=c).returncode == 0
        with stockroom.StockRoom(c) as stock:
            stock.data["img"][1000 + i] = np.full((4, 4), 200 + i, dtype=np.uint8)
            stock.tag["who"] = c.name
            heads.append(stock.commit(c.name))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "stockroom", "push"], cwd=c, stderr=subprocess.PIPE, text=True
        )
        for c in clones
    ]
    for p in procs:
        assert p.wait() == 0, p.stderr.read() if p.stderr else ""
    for h in heads:
        reader = tmp_path / f"reader-{h[2:8]}"
        make_reader = clone(bare, reader)
        (make_reader / "head.stock").write_text(h + "\n")
        assert stock_cli("pull", cwd=make_reader).returncode == 0
        with stockroom.StockRoom(make_reader) as stock:
            assert stock.tag["who"] in ("bob", "carol")
            assert int(stock.data["img"][1000 + ("carol" == stock.tag["who"])][0, 0]) in (200, 201)


def test_fetch_brings_branch_commits_without_changing_head(
    team: tuple[Path, Path, Path, str], tmp_path: Path
) -> None:
    proj, _, bare, first = team
    run_git("switch", "-q", "-c", "exp", cwd=proj)
    with stockroom.StockRoom(proj) as stock:
        stock.tag["lr"] = 0.75
        second = stock.commit("exp")
    run_git("commit", "-q", "-am", "exp", cwd=proj)
    assert stock_cli("push", "--all", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "main", "exp", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    assert stock_cli("fetch", "origin", "origin/exp", cwd=bob).returncode == 0
    assert (bob / "head.stock").read_text().strip() == first
    assert transfer._Local(bob).has_commit(second)


def test_remote_config_and_secrets(stock_repo: Path, tmp_path: Path) -> None:
    out = stock_cli("remote", "add", "s3", "s3://AKIA:verysecret@bucket/x", cwd=stock_repo)
    assert out.returncode == 1 and "verysecret" not in out.stderr + out.stdout
    (tmp_path / "r1").mkdir()  # a directory remote must exist (SPEC 6a)
    (tmp_path / "r2").mkdir()
    out = stock_cli("remote", "add", "shared", str(tmp_path / "r1"), cwd=stock_repo)
    assert out.returncode == 0
    out = stock_cli("remote", "add", "mine", "file://" + str(tmp_path / "r2"), "--local", cwd=stock_repo)
    assert out.returncode == 0
    assert "mine" not in (stock_repo / config.REMOTES_FILE).read_text()
    assert config.default_name(stock_repo) == "shared"
    listing = stock_cli("remote", "list", cwd=stock_repo).stdout
    assert "* shared" in listing and "  mine" in listing
    assert stock_cli("remote", "remove", "shared", cwd=stock_repo).returncode == 0
    assert config.default_name(stock_repo) == "mine"
    out = stock_cli("push", "nope", cwd=stock_repo)
    assert out.returncode == 1 and "no stock remote named 'nope'" in out.stderr


@pytest.mark.parametrize("name", ["../etc/passwd", "commits/../../x", "/abs", "packs/A", "a" * 300, "x\\y"])
def test_hostile_object_names_are_refused(name: str) -> None:
    with pytest.raises(RemoteError):
        check_name(name)


def test_url_parsing() -> None:
    assert parse_url("s3://my-bucket/team/stock").bucket == "my-bucket"
    assert parse_url("file:///srv/stock").path == "/srv/stock"
    for bad in ("s3://b/x", "gs://b/x", "s3://bucket/x?secret=1", "file://host/x"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_model_round_trip_dtypes(team: tuple[Path, Path, Path, str], tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    proj, _, bare, _ = team
    state = collections.OrderedDict(
        a=torch.randn(3, 2).to(torch.bfloat16), b=torch.tensor(5, dtype=torch.int64), c=torch.zeros(0)
    )
    with stockroom.StockRoom(proj) as stock:
        stock.model["t"] = state
        stock.commit("torch")
    run_git("commit", "-q", "-am", "torch", cwd=proj)
    assert stock_cli("push", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    assert stock_cli("pull", cwd=bob).returncode == 0
    with stockroom.StockRoom(bob) as stock:
        got = stock.model["t"]
    for k, v in state.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v)
