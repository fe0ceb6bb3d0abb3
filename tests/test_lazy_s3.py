"""On-demand data from an S3 remote: a real S3-protocol server (moto) on 127.0.0.1.

One project is pushed once per module to a moto server (in a child process,
behind a relay: see ``S3Server`` and ``Team``); each test makes its
own lazy clone ("bob") of it. Tests that need a damaged or emptied remote
copy objects to a prefix of their own and point bob's remote there, so the
shared remote stays intact.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import stockroom
from stockroom.store import lazy
from tests.conftest import run_git
from tests.tcprelay import TcpRelay
from tests.test_lazy import SHAPE, N, make_big_project
from tests.test_remote import clone, stock_cli

obstore = pytest.importorskip("obstore")
pytest.importorskip("moto.server")

BUCKET = "stock-lazy"
ONE = int(np.prod(SHAPE)) * 4  # bytes of one image sample


# moto's S3 server, run in a child process: this test process forks (DataLoader
# workers, read-ahead helpers), and a fork must not copy a server's threads and
# sockets mid-request. Commands on stdin: "stop" stops the server, "start"
# starts a new one on a fresh port (the buckets stay in the child's memory);
# each is answered with a line: the port, or "stopped".
_SERVER = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no log line per request
def start():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    return server
server = start()
for line in sys.stdin:  # every command gets one line back: the test reads it
    if line.strip() == "stop":
        if server is not None:
            server.stop()
            server = None
        print("stopped", flush=True)
    elif line.strip() == "start":
        if server is None:
            server = start()
        else:
            print(server.get_host_and_port()[1], flush=True)
    else:
        print("unknown command", flush=True)
"""


class S3Server:
    """The child process that runs moto's S3 server (see ``_SERVER``)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.port = self._reply()

    def _reply(self) -> int:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            raise RuntimeError("the moto S3 server process exited")
        if line == "stopped":
            return 0
        if not line.isdigit():
            raise RuntimeError(f"the moto S3 server process answered {line!r}")
        return int(line)

    def _send(self, command: str) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def stop(self) -> None:
        self._send("stop")

    def start(self) -> int:
        self.port = self._send("start")
        return self.port

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Team:
    """The module's S3 server and the project pushed to it.

    Clients reach the server through ``front``, a relay whose port stays the
    same while the server behind it stops and starts on fresh ports (see
    tests/tcprelay.py: restarting on the old port can hang)."""

    server: S3Server
    front: TcpRelay
    proj: Path
    bare: Path
    digest: str
    imgs: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    model: list[np.ndarray] = field(default_factory=list)
    running: bool = True

    @property
    def port(self) -> int:
        return self.front.port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """The server goes down: connections to the endpoint are refused."""
        if self.running:
            self.front.cut()
            self.server.stop()
            self.running = False

    def start(self) -> None:
        """The server again, behind the same endpoint, with the same buckets."""
        if not self.running:
            self.front.point(self.server.start())
            self.running = True

    def raw_store(self, prefix: str) -> Any:
        from obstore.store import S3Store

        return S3Store(BUCKET, prefix=prefix, endpoint=self.endpoint, allow_http=True, region="us-east-1")


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    base = tmp_path_factory.mktemp("lazy-s3")
    home = base / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Stock Tester\n\temail = tester@example.com\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        mp.setenv("AWS_ACCESS_KEY_ID", "AKIDSTOCKLAZY")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "lazy-secret")
        mp.setenv("AWS_REGION", "us-east-1")
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        server = S3Server()
        front = TcpRelay(server.port)
        t = Team(server, front, base / "alice", base / "code.git", "")
        try:
            urllib.request.urlopen(urllib.request.Request(f"{t.endpoint}/{BUCKET}", method="PUT")).read()
            t.digest = make_big_project(t.proj, None)
            out = stock_cli(
                "remote", "add", "origin", f"s3://{BUCKET}/proj", "--endpoint", t.endpoint, cwd=t.proj
            )
            assert out.returncode == 0, out.stderr
            run_git("add", "-A", cwd=t.proj)
            run_git("commit", "-q", "-m", "remote", cwd=t.proj)
            run_git("init", "-q", "--bare", str(t.bare), cwd=base)
            run_git("remote", "add", "origin", str(t.bare), cwd=t.proj)
            out = stock_cli("push", cwd=t.proj)
            assert out.returncode == 0, out.stderr
            run_git("push", "-q", "origin", "HEAD:main", cwd=t.proj)
            with stockroom.StockRoom(t.proj) as stock:
                t.imgs = [stock.data["img"][i] for i in range(N)]
                t.labels = [int(stock.data["label"][i]) for i in range(N)]
                t.model = list(stock.model["net"])
            yield t
        finally:
            front.close()
            server.close()


@pytest.fixture
def bob(team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lazy clone of the team's project: commit records only, no data."""
    team.start()  # a test that failed with the server stopped leaves it stopped
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSTOCKLAZY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "lazy-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    where = clone(team.bare, tmp_path / "bob")
    out = stock_cli("pull", "--lazy", cwd=where)
    assert out.returncode == 0, out.stderr
    assert "no data" in out.stdout
    monkeypatch.chdir(where)
    return where


def _pack_names(team: Team) -> list[str]:
    """The pack objects (not their indexes) on the team's remote."""
    listed = obstore.list(team.raw_store("proj/packs")).collect()
    return [o["path"] for o in listed if not o["path"].endswith(".idx")]


def _pack_sizes(team: Team) -> int:
    listed = obstore.list(team.raw_store("proj/packs")).collect()
    return sum(int(o["size"]) for o in listed if not o["path"].endswith(".idx"))


def _point_remote(bob: Path, prefix: str) -> None:
    """Point bob's (tracked) remote at another prefix of the bucket."""
    run_git("config", "--file", ".stockremotes", "stockremote.origin.url", f"s3://{BUCKET}/{prefix}", cwd=bob)


def _objects_verify(bob: Path) -> int:
    """Every object lazy reads kept is whole and matches its digest; how many there are."""
    base = bob / ".hangar" / lazy.LAZY_DIR
    objects = base / "objects"
    if objects.exists():  # no half-written download left behind
        assert not [p.name for p in objects.iterdir() if p.name.startswith(".")]
    rd = lazy.reader(bob / ".hangar")
    by_digest: dict[str, tuple[str, list[Any]]] = {}
    for idx in (base / "packs").glob("*.idx"):
        for entry in json.loads(idx.read_bytes())["samples"]:
            by_digest[entry[0]] = (idx.name[: -len(".idx")], entry)
    schemas = [rd.schema(p.name) for p in (base / "schemas").iterdir()]
    kept = lazy.cached(bob / ".hangar")
    for digest in kept:
        _, entry = by_digest[digest]
        raw = (objects / digest).read_bytes()
        assert len(raw) == entry[3], digest
        assert any(
            _matches(obj, raw, entry[4], digest) for obj in schemas
        ), f"kept object {digest} does not match its digest"
    return len(kept)


def _matches(obj: Any, raw: bytes, shape: Any, digest: str) -> bool:
    try:
        value = lazy._decode(obj, raw, shape)
        return bool(obj.data_hash_digest(value) == digest)
    except (ValueError, TypeError, UnicodeDecodeError):
        return False


# --------------------------------------------------------------------- tests


def test_s3_lazy_read_of_one_sample_fetches_little(team: Team, bob: Path) -> None:
    data = bob / ".hangar" / "data"
    assert sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) < 4096  # records only
    total = _pack_sizes(team)
    assert total > N * ONE
    # Bob's reads go through a relay that counts what the server sends.
    proxy = TcpRelay(team.port)
    try:
        run_git(
            "config", "--file", ".stockremotes", "stockremote.origin.endpoint",
            f"http://127.0.0.1:{proxy.port}", cwd=bob,
        )  # fmt: skip
        before, requests = lazy.stats.nbytes, lazy.stats.requests
        with stockroom.StockRoom(bob) as stock:
            assert stock.head == team.digest
            np.testing.assert_array_equal(stock.data["img"][17], team.imgs[17])
            assert lazy.stats.nbytes - before == ONE  # exactly the sample's bytes
            assert lazy.stats.requests - requests == 1
            on_wire = proxy.down
            assert ONE <= on_wire < ONE + 4096  # the sample and one response's headers
            assert on_wire * 20 < total
            np.testing.assert_array_equal(stock.data["img"][17], team.imgs[17])
            assert proxy.down == on_wire  # read again: from the cache
            assert stock.tag["lr"] == 0.25 and stock.tag["name"] == "first"
            assert int(stock.data["label"][13]) == team.labels[13]
    finally:
        proxy.close()


def test_s3_lazy_model_loads_bit_for_bit(team: Team, bob: Path) -> None:
    before = lazy.stats.requests
    with stockroom.StockRoom(bob) as stock:
        got = stock.model["net"]
    assert lazy.stats.requests > before  # it came from the remote
    assert len(got) == len(team.model)
    for a, b in zip(got, team.model, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_s3_dataloader_two_workers_every_sample_once(team: Team, bob: Path) -> None:
    pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from stockroom.loaders import StockDataset

    # This process reads first: its remote client exists when the workers fork.
    with stockroom.StockRoom(bob) as stock:
        np.testing.assert_array_equal(stock.data["img"][0], team.imgs[0])
    ds = StockDataset(["img", "label"], path=bob)
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=2, timeout=30)
    got: list[tuple[bytes, int]] = []
    for imgs, labels in loader:
        got.extend((img.numpy().tobytes(), int(label)) for img, label in zip(imgs, labels, strict=True))
    ds.close()
    want = [(img.tobytes(), label) for img, label in zip(team.imgs, team.labels, strict=True)]
    assert sorted(got) == sorted(want)  # every sample exactly once, equal to the original
    assert _objects_verify(bob) == N + len(set(team.labels))  # labels repeat: 10 distinct samples


def test_s3_cache_limit_smaller_than_dataset_completes_an_epoch(team: Team, bob: Path) -> None:
    run_git("config", "stock.cacheLimit", str(ONE * 10), cwd=bob)
    from stockroom.loaders import StockDataset

    ds = StockDataset("img", path=bob)
    try:
        for i in range(len(ds)):
            np.testing.assert_array_equal(ds[i], team.imgs[i])
    finally:
        ds.close()
    assert len(ds) == N
    assert sum(lazy.cached(bob / ".hangar").values()) <= ONE * 12
    _objects_verify(bob)


def test_s3_truncated_object_read_lazily_error_nothing_kept(team: Team, bob: Path) -> None:
    # A copy of the remote whose image packs end half way through their
    # last-but-one image: that one straddles the end, the last lies past it.
    src, dst = team.raw_store("proj"), team.raw_store("truncated")
    short: set[str] = set()  # digests of the samples the copy lost
    for idx in (bob / ".hangar" / lazy.LAZY_DIR / "packs").glob("*.idx"):
        name = idx.name[: -len(".idx")]
        data = bytes(obstore.get(src, f"packs/{name}").bytes())
        images = sorted((e for e in json.loads(idx.read_bytes())["samples"] if e[3] == ONE), key=lambda e: e[2])
        cut = images[-2][2] + ONE // 2 if len(images) >= 2 else len(data)
        short.update(e[0] for e in images if e[2] + e[3] > cut)
        obstore.put(dst, f"packs/{name}", data[:cut])
    assert len(short) >= 2
    _point_remote(bob, "truncated")
    failed = []
    with stockroom.StockRoom(bob) as stock:
        for i in range(N):
            try:
                value = stock.data["img"][i]
            except stockroom.StockroomError as err:
                text = str(err)
                assert "truncated" in text and "origin" in text and "stock push" in text, text
                assert "\n" not in text
                failed.append(i)
            else:
                np.testing.assert_array_equal(value, team.imgs[i])
        assert len(failed) == len(short)
        kept = lazy.cached(bob / ".hangar")
        assert not short & set(kept)  # nothing of a truncated sample kept
        assert _objects_verify(bob) == N - len(failed)
        # The intact remote again: the same samples read, equal to the original.
        _point_remote(bob, "proj")
        lazy._READERS.clear()
        for i in failed:
            np.testing.assert_array_equal(stock.data["img"][i], team.imgs[i])


def test_s3_gc_never_drops_what_the_remote_lacks(team: Team, bob: Path) -> None:
    with stockroom.StockRoom(bob) as stock:
        for i in range(5):
            stock.data["img"][i]
        stock.data["img"][1000] = np.ones(SHAPE, np.float32)  # data only here
        stock.data["label"][1000] = np.array(1)
        for i in range(5):
            del stock.data["img"][i]
        stock.commit("drop some")
    cached = lazy.cached(bob / ".hangar")
    assert sum(size == ONE for size in cached.values()) == 5
    # The remote's prefix holds none of the packs: nothing may go.
    _point_remote(bob, "empty")
    lazy._READERS.clear()
    out = stock_cli("gc", "--yes", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert lazy.cached(bob / ".hangar") == cached
    # Packs that exist but were cut short one byte into the last image gc would
    # drop: gc reads each sample back, so exactly that one is not proven held.
    src, dst = team.raw_store("proj"), team.raw_store("gc-truncated")
    cut: set[str] = set()
    for idx in (bob / ".hangar" / lazy.LAZY_DIR / "packs").glob("*.idx"):
        name = idx.name[: -len(".idx")]
        data = bytes(obstore.get(src, f"packs/{name}").bytes())
        mine = [e for e in json.loads(idx.read_bytes())["samples"] if e[0] in cached and e[3] == ONE]
        end = max((e[2] + e[3] for e in mine), default=len(data) + 1) - 1
        cut.update(e[0] for e in mine if e[2] + e[3] > end)
        obstore.put(dst, f"packs/{name}", data[:end])
    _point_remote(bob, "gc-truncated")
    out = stock_cli("gc", "--yes", cwd=bob)
    assert out.returncode == 0, out.stderr
    left = lazy.cached(bob / ".hangar")
    assert cut and set(left) == {d for d, size in cached.items() if size != ONE or d in cut}
    cached = left
    # The server is down: one line that names the remote and what to do; nothing dropped.
    _point_remote(bob, "proj")
    team.stop()
    try:
        out = stock_cli("gc", "--yes", cwd=bob)
    finally:
        team.start()
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert "origin" in out.stderr and "again" in out.stderr
    assert lazy.cached(bob / ".hangar") == cached
    # The remote holds them: the cached images left go, the local-only sample stays.
    out = stock_cli("gc", "--yes", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert f"dropped {len(cut)} sample" in out.stdout
    kept = lazy.cached(bob / ".hangar")
    assert all(size < ONE for size in kept.values()), kept
    with stockroom.StockRoom(bob) as stock:
        assert stock.data["img"][1000].sum() == np.prod(SHAPE)
        np.testing.assert_array_equal(stock.data["img"][6], team.imgs[6])


def test_s3_server_stopped_mid_epoch_then_resumes(team: Team, bob: Path) -> None:
    from stockroom.loaders import StockDataset

    # Sample by sample (no whole pack on a miss): the failed read is a sample's.
    ds = StockDataset(["img", "label"], path=bob, fetch_threads=0)
    half = N // 2
    try:
        for i in range(half):
            img, label = ds[i]
            np.testing.assert_array_equal(img, team.imgs[i])
        team.stop()
        with pytest.raises(stockroom.StockroomError) as err:
            ds[half]
        text = str(err.value)
        assert "\n" not in text and "stock remote origin" in text
        assert "again" in text and "unreachable" in text and "stock pull" in text  # what went wrong, what to do
        # From a fresh process too: one line on stderr, naming the remote.
        script = f"import stockroom\nwith stockroom.StockRoom() as s:\n    s.data['img'][{half + 1}]\n"
        proc = subprocess.run([sys.executable, "-c", script], cwd=bob, capture_output=True, text=True)
        assert proc.returncode != 0
        assert "stock remote origin" in proc.stderr.strip().splitlines()[-1]
        # Nothing partial kept: every kept object is whole and verifies.
        assert _objects_verify(bob) >= half
        kept = set(lazy.cached(bob / ".hangar"))
        team.start()
        for i in range(half, N):
            img, label = ds[i]
            np.testing.assert_array_equal(img, team.imgs[i])
            assert int(label) == team.labels[i]
        assert set(lazy.cached(bob / ".hangar")) > kept
        assert _objects_verify(bob) == N + len(set(team.labels))
    finally:
        ds.close()


def test_s3_forked_process_goes_through_the_relay(team: Team, tmp_path: Path) -> None:
    """A process forked after obstore ran: its requests work, errors keep their kind."""
    from stockroom.remote.objects import ObjectMissing, RemoteError, S3Store
    from stockroom.remote.url import parse_url

    store = S3Store(parse_url(f"s3://{BUCKET}/proj"), "origin", team.endpoint)
    (name,) = _pack_names(team)[:1]
    want = store.get_range(f"packs/{name}", 3, 40)  # obstore's runtime runs in this process now
    result = tmp_path / "child"
    with socket.create_server(("127.0.0.1", 0)) as sock:
        closed = sock.getsockname()[1]  # a port nothing listens on once closed
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            child = S3Store(parse_url(f"s3://{BUCKET}/proj"), "origin", team.endpoint)
            got = child.get_range(f"packs/{name}", 3, 40)
            try:
                child.get("packs/" + "0" * 64)
                missing = "no error"
            except ObjectMissing as exc:
                missing = str(exc)
            nobody = S3Store(parse_url(f"s3://{BUCKET}/proj"), "origin", f"http://127.0.0.1:{closed}")
            try:
                nobody.exists(f"packs/{name}")
                down = "no error"
            except RemoteError as exc:
                down = str(exc)
            result.write_text(repr((got == want, child._relay is not None, missing, down)))
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("a forked process's S3 request hung")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status[1]) == 0
    same, relayed, missing, down = eval(result.read_text())  # noqa: S307 - written by the child above
    assert same and relayed
    assert missing.startswith("stock remote origin has no object packs/")
    assert "stock remote origin" in down and "unreachable" in down and "\n" not in down


# ------------------------------------- read-ahead nobody asked for (issue 21 #10)


def _epoch(loader: Any) -> list[tuple[bytes, int]]:
    got: list[tuple[bytes, int]] = []
    for imgs, labels in loader:
        got.extend((img.numpy().tobytes(), int(label)) for img, label in zip(imgs, labels, strict=True))
    return got


def test_s3_plain_shuffled_dataloader_downloads_whole_packs(team: Team, bob: Path) -> None:
    """`DataLoader(StockDataset(...), shuffle=True)`, nothing else: the first
    miss in a pack the dataset reads most of downloads it whole, once; the
    epoch makes no request per sample."""
    pytest.importorskip("torch")
    import torch
    from torch.utils.data import DataLoader

    from stockroom.loaders import StockDataset

    packs = _pack_names(team)
    ds = StockDataset(["img", "label"], path=bob)
    before = (lazy.stats.requests, lazy.stats.packs)
    loader = DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(3))
    got = _epoch(loader)
    want = [(img.tobytes(), label) for img, label in zip(team.imgs, team.labels, strict=True)]
    assert sorted(got) == sorted(want)
    fetched = lazy.stats.packs - before[1]
    assert 1 <= fetched <= len(packs)
    assert lazy.stats.requests - before[0] == fetched  # whole packs only, no sample by range
    assert _objects_verify(bob) == N + len(set(team.labels))
    assert _epoch(loader) and lazy.stats.requests - before[0] == fetched  # the second epoch: nothing
    ds.close()


def test_s3_subset_of_a_dataset_downloads_whole_packs(team: Team, bob: Path) -> None:
    """A train split (`torch.utils.data.Subset`) reads through the dataset: it
    gets the same read-ahead, with no extra call."""
    pytest.importorskip("torch")
    from torch.utils.data import DataLoader, Subset

    from stockroom.loaders import StockDataset

    ds = StockDataset(["img", "label"], path=bob)
    train = Subset(ds, list(range(0, N, 4)) + list(range(1, N, 4)) + list(range(2, N, 4)))  # 3/4 of it
    before = (lazy.stats.requests, lazy.stats.packs)
    got = _epoch(DataLoader(train, batch_size=4, shuffle=True))
    want = [(team.imgs[i].tobytes(), team.labels[i]) for i in train.indices]
    assert sorted(got) == sorted(want)
    fetched = lazy.stats.packs - before[1]
    assert fetched >= 1
    assert lazy.stats.requests - before[0] == fetched
    ds.close()


def test_s3_two_workers_share_the_packs_out(team: Team, bob: Path) -> None:
    """num_workers=2, shuffle=True: every sample once and equal, each pack
    downloaded once (bytes on the wire: the packs, not twice, not per sample)."""
    pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from stockroom.loaders import StockDataset

    proxy = TcpRelay(team.port)
    try:
        run_git(
            "config", "--file", ".stockremotes", "stockremote.origin.endpoint",
            f"http://127.0.0.1:{proxy.port}", cwd=bob,
        )  # fmt: skip
        ds = StockDataset(["img", "label"], path=bob)
        view = ds._current_view()
        read = {lazy.parse_placeholder(text)[2] for text in ds._lazy_texts(view, view.hkeys)}  # type: ignore[index]
        sizes = {o["path"]: int(o["size"]) for o in obstore.list(team.raw_store("proj/packs")).collect()}
        total = sum(sizes[sha] for sha in read)  # the images' pack and the labels'
        got = _epoch(DataLoader(ds, batch_size=4, shuffle=True, num_workers=2, timeout=60))
        ds.close()
        want = [(img.tobytes(), label) for img, label in zip(team.imgs, team.labels, strict=True)]
        assert sorted(got) == sorted(want)
        assert total <= proxy.down < total + 16 * 1024  # each pack once, and the responses' headers
    finally:
        proxy.close()
    assert _objects_verify(bob) == N + len(set(team.labels))
