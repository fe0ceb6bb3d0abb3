"""Faults on the way to a remote (SPEC 6a): stalled endpoints, a stopped S3
server, read-only and full directory remotes, a full local disk, a killed
push, a teammate with another user id, and remote housekeeping.

The mount and user-id tests need root (tmpfs, bind mounts, setpriv) and skip
with the reason where the machine does not allow them. Deadlines are set
small (``git config stock.timeout 2``) so these stay fast.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom.remote import config
from tests.conftest import run_git
from tests.test_remote import clone, make_project, stock_cli
from tests.test_remote_s3 import s3  # noqa: F401 - moto's S3 server fixture, asked for by name

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (mount, setpriv); this machine runs the tests as a user")


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Errno" not in err, err
    return lines[0]


def _team(tmp_path: Path, remote: Path) -> tuple[Path, Path]:
    """Alice's project with ``remote`` as stock remote origin, and a bare git origin."""
    proj = tmp_path / "alice"
    make_project(proj, remote)
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=proj)
    return proj, bare


# ------------------------------------------------------------- defect 17
def test_remote_add_refuses_what_cannot_be_a_remote(stock_repo: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    (stock_repo / "sub").mkdir()
    cases = {
        str(tmp_path / "missing"): "does not exist",
        str(tmp_path / "a-file"): "is a file",
        str(stock_repo): "inside this repository's work tree",
        "sub": "inside this repository's work tree",
        str(stock_repo / ".hangar"): "inside this repository's work tree",
        "file://" + str(stock_repo / ".hangar"): "inside this repository's work tree",
    }
    for url, reason in cases.items():
        out = stock_cli("remote", "add", "bad", url, cwd=stock_repo)
        assert out.returncode == 1, url
        assert reason in _one_line(out.stderr), url
    assert config.list_remotes(stock_repo) == []
    (tmp_path / "good").mkdir()
    assert stock_cli("remote", "add", "good", str(tmp_path / "good"), cwd=stock_repo).returncode == 0
    out = stock_cli("remote", "set-url", "good", str(stock_repo / "sub"), cwd=stock_repo)
    assert out.returncode == 1 and "work tree" in out.stderr


# ------------------------------------------------------------- defect 12
def test_remote_set_url_rename_default(stock_repo: Path, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    assert stock_cli("remote", "add", "origin", str(tmp_path / "a"), cwd=stock_repo).returncode == 0
    assert stock_cli("remote", "add", "mirror", str(tmp_path / "b"), "--local", cwd=stock_repo).returncode == 0
    out = stock_cli("remote", "set-url", "origin", str(tmp_path / "c"), cwd=stock_repo)
    assert out.returncode == 0, out.stderr
    assert config.get_remote(stock_repo, "origin").url == str(tmp_path / "c")
    out = stock_cli("remote", "rename", "origin", "team", cwd=stock_repo)
    assert out.returncode == 0, out.stderr
    assert {r.name for r in config.list_remotes(stock_repo)} == {"team", "mirror"}
    assert config.default_name(stock_repo) == "team"  # the default follows the rename
    assert "team" in (stock_repo / config.REMOTES_FILE).read_text()
    out = stock_cli("remote", "default", "mirror", cwd=stock_repo)
    assert out.returncode == 0, out.stderr
    assert config.default_name(stock_repo) == "mirror"
    assert "* mirror" in stock_cli("remote", "list", cwd=stock_repo).stdout
    for args in (("rename", "nope", "x"), ("default", "nope"), ("rename", "team", "mirror")):
        out = stock_cli("remote", *args, cwd=stock_repo)
        assert out.returncode == 1
        _one_line(out.stderr)


def test_advice_names_the_remote_that_has_the_commit(tmp_path: Path) -> None:
    origin, mirror = tmp_path / "origin-dir", tmp_path / "mirror-dir"
    origin.mkdir()
    mirror.mkdir()
    proj, bare = _team(tmp_path, origin)
    assert stock_cli("remote", "add", "mirror", str(mirror), cwd=proj).returncode == 0
    run_git("commit", "-q", "-am", "mirror", cwd=proj)
    assert stock_cli("push", "mirror", cwd=proj).returncode == 0  # only the mirror has it
    run_git("push", "-q", "--no-verify", "origin", "HEAD:main", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 1
    line = _one_line(out.stderr)
    assert "origin" in line and "stock remote mirror has it" in line and "`stock pull mirror`" in line
    assert stock_cli("pull", "mirror", cwd=bob).returncode == 0
    # The autofetch warning after a checkout names it too.
    with stockroom.StockRoom(proj) as stock:
        stock.tag["lr"] = 0.9
        stock.commit("second")
    run_git("commit", "-q", "-am", "second", cwd=proj)
    assert stock_cli("push", "mirror", cwd=proj).returncode == 0
    run_git("push", "-q", "--no-verify", "origin", "HEAD:main", cwd=proj)
    out = run_git("pull", "-q", "--no-rebase", cwd=bob)
    assert "stock remote mirror has it" in out.stderr


# ------------------------------------------------------------- defect 13
def test_stock_fetch_takes_a_git_revision_where_a_remote_is_expected(tmp_path: Path) -> None:
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    proj, bare = _team(tmp_path, remote)
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    run_git("switch", "-q", "-c", "x", cwd=proj)
    with stockroom.StockRoom(proj) as stock:
        stock.tag["lr"] = 0.125
        stock.commit("on x")
    run_git("commit", "-q", "-am", "on x", cwd=proj)
    run_git("push", "-q", "origin", "x", cwd=proj)  # pre-push uploads the stock
    bob = clone(bare, tmp_path / "bob")
    assert stock_cli("pull", cwd=bob).returncode == 0
    out = stock_cli("fetch", "origin/x", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert "fetched 1 stock commit" in out.stdout
    with stockroom.StockRoom(bob) as stock:
        assert stock.at("origin/x").tag["lr"] == 0.125
    out = stock_cli("fetch", "nosuch", cwd=bob)
    assert out.returncode == 1 and "no stock remote named 'nosuch'" in _one_line(out.stderr)


# -------------------------------------------------------------- defect 8
def _modes(remote: Path) -> tuple[set[int], set[int]]:
    files = {stat.S_IMODE(p.stat().st_mode) for p in remote.rglob("*") if p.is_file()}
    dirs = {stat.S_IMODE(p.stat().st_mode) for p in remote.rglob("*") if p.is_dir()}
    return files, dirs


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize(("mask", "fmode", "dmode"), [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_directory_remote_objects_follow_the_umask(tmp_path: Path, mask: int, fmode: int, dmode: int) -> None:
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    proj, _ = _team(tmp_path, remote)
    with _umask(mask):
        out = stock_cli("push", cwd=proj)
    assert out.returncode == 0, out.stderr
    assert _modes(remote) == ({fmode}, {dmode})


@needs_root
def test_teammate_with_another_uid_can_pull(tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    # A tree others may enter (pytest's temporary folders are 0700).
    base = Path(tempfile.mkdtemp(prefix="stock-uids-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        remote = base / "shared"
        remote.mkdir()
        with _umask(0o022):
            proj, bare = _team(base, remote)
            out = stock_cli("push", cwd=proj)
            assert out.returncode == 0, out.stderr
            run_git("push", "-q", "--no-verify", "origin", "HEAD:main", cwd=proj)
            bob = clone(bare, base / "bob")
        home = base / "bob-home"
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\tname = Bob\n\temail = bob@example.com\n")
        subprocess.run(["chown", "-R", "65534:65534", str(bob), str(home)], check=True)
        env = dict(os.environ, HOME=str(home), GIT_CONFIG_GLOBAL=str(home / ".gitconfig"))
        env.pop("XDG_CONFIG_HOME", None)
        out = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-m", "stockroom", "pull"],
            cwd=bob, env=env, capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert "pulled 1 stock commit" in out.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------- mounts (9, 14)
@contextlib.contextmanager
def _mount(*args: str) -> Iterator[None]:
    """Run ``mount ARGS`` (the last is the mount point); unmount after."""
    if not ROOT:
        pytest.skip("needs root to mount a file system")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")
    try:
        yield
    finally:
        if subprocess.run(["umount", args[-1]], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", args[-1]], capture_output=True)


@needs_root
def test_read_only_remote_is_one_line_naming_it(tmp_path: Path) -> None:
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    proj, _ = _team(tmp_path, remote)
    with _mount("--bind", str(remote), str(remote)):
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(remote)], capture_output=True).returncode:
            pytest.skip("cannot make a read-only bind mount here")
        out = stock_cli("push", cwd=proj)
        assert out.returncode == 1
        line = _one_line(out.stderr)
        assert "stock remote origin" in line and "read-only" in line and str(remote) in line
        out = run_git("push", "origin", "HEAD:main", cwd=proj, check=False)  # the pre-push hook too
        assert out.returncode != 0 and "read-only" in out.stderr and "Errno" not in out.stderr


def _big_project(path: Path, remote: Path, mb: int) -> str:
    """A project with ``mb`` MB of image samples (a numpy-memmap column)."""
    path.mkdir(parents=True)
    run_git("init", "-q", cwd=path)
    stockroom.init_repo(path=path)
    rng = np.random.default_rng(1)
    with stockroom.StockRoom(path) as stock:
        with stock.optimize():
            for i in range(mb * 64):  # 16 KB each
                stock.data["img"][i] = rng.standard_normal((64, 64)).astype(np.float32)
        stock.tag["lr"] = 0.5
        digest = stock.commit("big")
    assert stock_cli("remote", "add", "origin", str(remote), cwd=path).returncode == 0
    run_git("add", "-A", cwd=path)
    run_git("commit", "-q", "-m", "big", cwd=path)
    return digest


@needs_root
def test_full_remote_is_one_line_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    remote = tmp_path / "small-remote"
    remote.mkdir()
    proj = tmp_path / "alice"
    _big_project(proj, remote, mb=4)
    with _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(remote)):
        out = stock_cli("push", cwd=proj)
        assert out.returncode == 1
        line = _one_line(out.stderr)
        assert "stock remote origin" in line and "full" in line
        assert not [p for p in remote.rglob(".incoming-*")]
        assert subprocess.run(["mount", "-o", "remount,size=16m", str(remote)]).returncode == 0
        out = stock_cli("push", cwd=proj)
        assert out.returncode == 0, out.stderr
        assert stock_cli("fsck", cwd=proj).returncode == 0


def _data_files(bob: Path) -> list[tuple[str, int]]:
    hangar = bob / ".hangar"
    found = []
    for folder in ("data", "remote_data", "store_data"):
        for p in (hangar / folder).rglob("*"):
            if p.is_file() or p.is_symlink():
                # Names are random: what counts is how many files of which backend, and their sizes.
                code = p.relative_to(hangar / folder).parts[0]
                found.append((f"{folder}/{code}", p.stat().st_size if p.is_file() else 0))
    return sorted(found)


@needs_root
def test_full_disk_during_pull_is_one_line_and_leaves_no_orphans(tmp_path: Path) -> None:
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    proj = tmp_path / "alice"
    digest = _big_project(proj, remote, mb=8)
    assert stock_cli("push", cwd=proj).returncode == 0
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("push", "-q", "--no-verify", str(bare), "HEAD:main", cwd=proj)
    reference = clone(bare, tmp_path / "reference")  # a pull on a disk with room
    assert stock_cli("pull", cwd=reference).returncode == 0
    disk = tmp_path / "disk"
    disk.mkdir()
    with _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)):
        bob = clone(bare, disk / "bob")
        out = stock_cli("pull", cwd=bob)
        assert out.returncode == 1, (out.returncode, out.stderr)  # not 135 / -SIGBUS
        line = _one_line(out.stderr)
        assert "no space left" in line and "run the command again" in line
        assert subprocess.run(["mount", "-o", "remount,size=64m", str(disk)]).returncode == 0
        out = stock_cli("pull", cwd=bob)
        assert out.returncode == 0, out.stderr
        with stockroom.StockRoom(bob) as stock:
            assert stock.head == digest and stock.data["img"][500].shape == (64, 64)
            assert stock.tag["lr"] == 0.5
        assert _data_files(bob) == _data_files(reference)


# ------------------------------------------------------------- defect 19
def _killed_upload(remote: Path) -> Path:
    """A process writing a large object to ``remote``, killed mid-write: its temporary file."""
    script = (
        "import sys; from pathlib import Path; from stockroom.remote.objects import DirectoryStore\n"
        "DirectoryStore(Path(sys.argv[1]), 'origin').put_new('packs/' + 'ab' * 32, b'x' * (400 << 20))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(remote)])
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            found = list((remote / "packs").glob(".incoming-*")) if (remote / "packs").is_dir() else []
            if found and found[0].stat().st_size > 0:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return found[0]
            if proc.poll() is not None:
                break
            time.sleep(0.001)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pytest.fail("the upload finished before it could be killed")


@pytest.mark.parametrize("command", ["push", "fsck"])
def test_leftover_of_a_killed_push_is_removed(tmp_path: Path, command: str) -> None:
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    proj, _ = _team(tmp_path, remote)
    assert stock_cli("push", cwd=proj).returncode == 0
    leftover = _killed_upload(remote)
    assert leftover.exists()
    # A write in progress (its lock held) is left alone.
    busy = remote / "packs" / ".incoming-busy"
    with open(busy, "wb") as handle:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        out = stock_cli(command, cwd=proj)
        assert out.returncode == 0, out.stdout + out.stderr
        assert not leftover.exists()
        assert busy.exists()


# -------------------------------------------------------------- defect 11
def test_missing_bucket_is_named(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    endpoint, _ = request.getfixturevalue("s3")
    proj = tmp_path / "alice"
    make_project(proj)
    out = stock_cli("remote", "add", "origin", "s3://no-such-bucket/proj", "--endpoint", endpoint, cwd=proj)
    assert out.returncode == 0, out.stderr
    run_git("add", "-A", cwd=proj)
    run_git("commit", "-q", "-m", "remote", cwd=proj)
    for command in ("push", "pull", "fsck"):
        out = stock_cli(command, cwd=proj if command != "pull" else _fresh(proj, tmp_path))
        assert out.returncode == 1, command
        line = _one_line(out.stderr) if command != "fsck" else out.stderr
        assert "no such bucket 'no-such-bucket'" in line and "stock remote origin" in line, command


def _fresh(proj: Path, tmp_path: Path) -> Path:
    where = tmp_path / "bob"
    if not where.exists():
        run_git("clone", "-q", str(proj), str(where), cwd=tmp_path)
    return where


# --------------------------------------------------------------- defect 6
@pytest.fixture
def stalled(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An endpoint that accepts connections and never answers (the kernel
    completes each connection; nobody reads or writes)."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=128)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSTALL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "stall-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def _timed(*args: str, cwd: Path, git: bool = False) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    if git:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    else:
        out = subprocess.run(
            [sys.executable, "-m", "stockroom", *args], cwd=cwd, capture_output=True, text=True, timeout=60
        )
    return out, time.monotonic() - start


def _stalled_team(tmp_path: Path, endpoint: str) -> tuple[Path, Path]:
    proj = tmp_path / "alice"
    make_project(proj)
    out = stock_cli("remote", "add", "origin", "s3://stock-team/proj", "--endpoint", endpoint, cwd=proj)
    assert out.returncode == 0, out.stderr
    run_git("add", "-A", cwd=proj)
    run_git("commit", "-q", "-m", "remote", cwd=proj)
    run_git("config", "stock.timeout", "2", cwd=proj)
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=proj)
    run_git("push", "-q", "--no-verify", "origin", "HEAD:main", cwd=proj)
    run_git("switch", "-q", "-c", "exp", cwd=proj)
    with stockroom.StockRoom(proj) as stock:
        stock.tag["lr"] = 0.75
        stock.commit("exp")
    run_git("commit", "-q", "-am", "exp", cwd=proj)
    run_git("push", "-q", "--no-verify", "origin", "exp", cwd=proj)
    return proj, bare


def test_stalled_endpoint_fails_each_command_within_the_deadline(tmp_path: Path, stalled: str) -> None:
    proj, bare = _stalled_team(tmp_path, stalled)
    out, took = _timed("push", cwd=proj)
    assert out.returncode == 1 and took < 15, (took, out.stderr)
    assert "stock remote origin did not answer within 2 s" in _one_line(out.stderr)
    out, took = _timed("push", "origin", "HEAD:refs/heads/other", cwd=proj, git=True)
    assert out.returncode != 0 and took < 15 and "push refused" in out.stderr, (took, out.stderr)
    bob = clone(bare, tmp_path / "bob")
    run_git("config", "stock.timeout", "2", cwd=bob)
    out, took = _timed("pull", cwd=bob)
    assert out.returncode == 1 and took < 15, (took, out.stderr)
    assert "did not answer" in out.stderr
    out, took = _timed("switch", "exp", cwd=bob, git=True)  # autofetch in post-checkout
    assert out.returncode == 0 and took < 15, (took, out.stderr)
    assert "could not fetch stock commit" in out.stderr and "did not answer" in out.stderr


def test_hooks_wait_at_most_10_s(tmp_path: Path, stalled: str) -> None:
    _, bare = _stalled_team(tmp_path, stalled)
    bob = clone(bare, tmp_path / "bob")
    run_git("config", "stock.timeout", "300", cwd=bob)
    with pytest.warns(UserWarning, match="stock pull"):  # it does not have head.stock's commit
        stockroom.init_repo(path=bob)  # the store and hooks, as a first `stock pull` sets them up
    out, took = _timed("switch", "exp", cwd=bob, git=True)
    assert out.returncode == 0, out.stderr
    assert "did not answer within 10 s" in out.stderr and took < 30, (took, out.stderr)


def test_bad_timeout_setting_is_one_line(tmp_path: Path, stalled: str) -> None:
    proj, _ = _stalled_team(tmp_path, stalled)
    run_git("config", "stock.timeout", "soon", cwd=proj)
    out = stock_cli("push", cwd=proj)
    assert out.returncode == 1 and "stock.timeout" in _one_line(out.stderr)


_EPOCH = """
import sys, time
from torch.utils.data import DataLoader
from stockroom.loaders import StockDataset
ds = StockDataset(["img", "label"], path=sys.argv[1])
start = time.monotonic()
try:
    for _ in DataLoader(ds, batch_size=4, shuffle=True, num_workers=2):
        pass
except Exception as exc:
    print(f"{time.monotonic() - start:.1f} {exc}")
    sys.exit(3)
print("epoch completed")
"""


def test_stopped_s3_server_lazy_reads_and_pull_raise_after_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from tests.tcprelay import TcpRelay
    from tests.test_lazy import make_big_project
    from tests.test_lazy_s3 import S3Server

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSTOP")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "stop-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    server = S3Server()
    front = TcpRelay(server.port)
    endpoint = f"http://127.0.0.1:{front.port}"
    try:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/stock-stop", method="PUT")).read()
        proj = tmp_path / "alice"
        make_big_project(proj, None)
        out = stock_cli("remote", "add", "origin", "s3://stock-stop/p", "--endpoint", endpoint, cwd=proj)
        assert out.returncode == 0, out.stderr
        run_git("add", "-A", cwd=proj)
        run_git("commit", "-q", "-m", "remote", cwd=proj)
        assert stock_cli("push", cwd=proj).returncode == 0
        bare = tmp_path / "code.git"
        run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
        run_git("push", "-q", "--no-verify", str(bare), "HEAD:main", cwd=proj)
        bob = clone(bare, tmp_path / "bob")
        carol = clone(bare, tmp_path / "carol")
        assert stock_cli("pull", "--lazy", cwd=bob).returncode == 0
        for where in (bob, carol):
            run_git("config", "stock.timeout", "2", cwd=where)
        os.kill(server.proc.pid, signal.SIGSTOP)  # accepts (the kernel does), never answers
        try:
            start = time.monotonic()
            epoch = subprocess.run(
                [sys.executable, "-c", _EPOCH, str(bob)], capture_output=True, text=True, timeout=90
            )
            took = time.monotonic() - start
            assert epoch.returncode == 3, epoch.stdout + epoch.stderr
            assert "did not answer within 2 s" in epoch.stdout and took < 45, (took, epoch.stdout)
            out, took = _timed("pull", cwd=carol)
            assert out.returncode == 1 and took < 15 and "did not answer" in out.stderr, (took, out.stderr)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
    finally:
        front.close()
        server.close()
