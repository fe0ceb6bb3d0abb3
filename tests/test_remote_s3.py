"""Stock remotes on S3: a real S3-protocol server (moto) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import stockroom
from tests.conftest import run_git
from tests.test_remote import clone, make_project, stock_cli

obstore = pytest.importorskip("obstore")
moto_server = pytest.importorskip("moto.server")

KEY_ID = "AKIDSTOCKTEST"
SECRET = "s3cr3t-never-printed-anywhere"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    """A moto S3 server with an empty bucket; yields (endpoint, server)."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    from obstore.store import S3Store

    store = S3Store("stock-team", endpoint=endpoint, allow_http=True, region="us-east-1")
    # moto creates a bucket on PUT /bucket.
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/stock-team", method="PUT")).read()
    del store
    try:
        yield endpoint, server
    finally:
        server.stop()


@pytest.fixture
def s3_team(
    tmp_path: Path, s3: tuple[str, object], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path, str, str]:
    endpoint, _ = s3
    proj = tmp_path / "alice"
    digest = make_project(proj)
    out = stock_cli("remote", "add", "origin", "s3://stock-team/proj", "--endpoint", endpoint, cwd=proj)
    assert out.returncode == 0, out.stderr
    run_git("add", "-A", cwd=proj)
    run_git("commit", "-q", "-m", "remote", cwd=proj)
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=proj)
    monkeypatch.chdir(proj)
    return proj, bare, digest, endpoint


def test_s3_push_clone_pull(s3_team: tuple[Path, Path, str, str], tmp_path: Path) -> None:
    proj, bare, digest, _ = s3_team
    out = stock_cli("push", cwd=proj)
    assert out.returncode == 0, out.stderr
    assert "up to date" in stock_cli("push", cwd=proj).stdout
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 0, out.stderr
    with stockroom.StockRoom(bob) as stock:
        assert stock.head == digest
        assert stock.data["img"][7][1, 1] == 7
        assert stock.tag["name"] == "first"
        assert stock.model["net"][0].shape == (3, 4)


def test_s3_wrong_credentials_one_line_no_secret(
    s3_team: tuple[Path, Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj, _, _, _ = s3_team
    # moto accepts any key unless its IAM checks are on: turn them on for this
    # server (it runs in this process); no key is then known to it.
    from moto import settings

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + SECRET)
    out = stock_cli("push", cwd=proj)
    text = out.stdout + out.stderr
    assert SECRET not in text and "wrong-" not in text
    assert out.returncode == 1 and "access denied" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in text


@contextlib.contextmanager
def hold_port(port: int) -> Iterator[None]:
    """Keep a stopped server's port bound, not listening: connecting to it is
    refused, as to a server that is down, and no other process on a shared
    machine can start answering on it meanwhile (one did once: a pull here
    got another server's 403 instead of a refused connection)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 10
    while True:
        try:
            sock.bind(("127.0.0.1", port))
            break
        except OSError:
            if time.monotonic() > deadline:
                sock.close()
                raise
            time.sleep(0.1)  # the stopped server's socket is still closing
    try:
        yield
    finally:
        sock.close()


def test_s3_server_stopped_mid_pull(
    s3_team: tuple[Path, Path, str, str], s3: tuple[str, object], tmp_path: Path
) -> None:
    proj, bare, digest, endpoint = s3_team
    assert stock_cli("push", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    port = int(endpoint.rsplit(":", 1)[1])
    s3[1].stop()  # type: ignore[attr-defined]
    with hold_port(port):
        out = stock_cli("pull", cwd=bob)
    assert out.returncode == 1
    assert "unreachable" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    from stockroom.store import transfer

    assert not transfer._Local(bob).has_commit(digest)


def test_s3_writes_are_create_only(s3_team: tuple[Path, Path, str, str]) -> None:
    proj, _, _, endpoint = s3_team
    from stockroom.remote.objects import S3Store
    from stockroom.remote.url import parse_url

    store = S3Store(parse_url("s3://stock-team/proj"), "origin", endpoint)
    assert store.put_new("commits/a=" + "0" * 40, b"first")
    assert not store.put_new("commits/a=" + "0" * 40, b"second")
    assert store.get("commits/a=" + "0" * 40) == b"first"
    assert store.get_range("commits/a=" + "0" * 40, 1, 3) == b"ir"


def test_s3_two_pushers(s3_team: tuple[Path, Path, str, str], tmp_path: Path) -> None:
    import subprocess
    import sys

    proj, bare, _, _ = s3_team
    assert stock_cli("push", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    clones = [clone(bare, tmp_path / n) for n in ("bob", "carol")]
    heads = []
    for i, c in enumerate(clones):
        assert stock_cli("pull", cwd=c).returncode == 0
        with stockroom.StockRoom(c) as stock:
            stock.data["img"][500 + i] = np.full((4, 4), 9, dtype=np.uint8)
            heads.append(stock.commit(c.name))
    procs = [subprocess.Popen([sys.executable, "-m", "stockroom", "push"], cwd=c) for c in clones]
    assert [p.wait() for p in procs] == [0, 0]
    from stockroom.remote.objects import S3Store
    from stockroom.remote.url import parse_url

    store = S3Store(parse_url("s3://stock-team/proj"), "origin", s3_team[3])
    assert all(store.exists(f"commits/{h}") for h in heads)


def test_s3_server_stops_between_objects(
    s3_team: tuple[Path, Path, str, str], s3: tuple[str, object], tmp_path: Path
) -> None:
    """The server goes away after the manifest was read, before the data."""
    from stockroom.remote.objects import MAX_OBJECT, RemoteError, S3Store
    from stockroom.remote.url import parse_url
    from stockroom.store import transfer

    proj, bare, digest, endpoint = s3_team
    assert stock_cli("push", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    assert stock_cli("pull", "--tags", cwd=bob).returncode == 0  # sets the store up, tags only

    class Stopping(S3Store):
        def get(self, name: str, limit: int = MAX_OBJECT) -> bytes:
            data = super().get(name, limit)
            if name.startswith("commits/"):
                s3[1].stop()  # type: ignore[attr-defined]
            return data

    with stockroom.StockRoom(bob) as stock:
        before = stock.tag["lr"]
    store = Stopping(parse_url("s3://stock-team/proj"), "origin", endpoint)
    with pytest.raises(RemoteError, match="unreachable"):
        transfer.fetch(bob, store, [digest])
    with stockroom.StockRoom(bob) as stock:
        assert stock.tag["lr"] == before
        with pytest.raises(stockroom.StockroomError, match="stock pull"):
            stock.data["img"][0]
