"""A hostile remote costs nothing (SPEC 6a; issue 27).

A directory remote is tampered with by hand after an honest push, the way
anyone with write access to a shared drive could: compression bombs in a
manifest, an oversized schema, a pack that is a symlink to ``/dev/zero``, a
manifest that is a FIFO, symlinked folders, malformed manifests and indexes,
a pack altered past its first byte. Each command the victim runs (``stock
pull``, ``git switch`` with autofetch, ``git push`` with the pre-push hook,
``stock gc``) ends within its deadline with one clear line, its peak memory
(the child's maximum RSS) stays under 300 MB, and ``.hangar`` is unchanged.
Remote settings (endpoints, URLs) are checked wherever they are used.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import blosc
import numpy as np
import pytest

import stockroom
from stockroom.remote import objects
from stockroom.store import lazy
from tests.conftest import run_git
from tests.test_remote import clone, make_project, stock_cli

try:  # moto's S3 server fixture, asked for by name; without obstore only the S3 cases skip
    from tests.test_remote_s3 import s3  # noqa: F401
except pytest.skip.Exception:
    pass

MAX_RSS_MB = 300
DEADLINE = 120  # seconds: far above what a refused command takes, far below a hang

_MEASURE = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(r.returncode)\n"
)


def measured(*args: str, cwd: Path, tmp: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``args`` under a small wrapper that reports its children's peak RSS (MB)."""
    out = tmp / "rss"
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(out), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=os.environ.copy(),
    )
    rss = int(out.read_text()) / 1024
    print(f"peak RSS {rss:.0f} MB: {' '.join(a for a in args if not a.startswith('/'))}")
    return proc, rss


def stock(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "stockroom", *args)


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Errno" not in err, err
    return lines[0]


def snapshot(hangar: Path) -> dict[str, str]:
    """Every file of ``hangar`` -> its digest (lock files aside: opening takes them)."""
    out = {}
    for path in sorted(hangar.rglob("*")):
        if path.is_file() and not path.is_symlink() and "lock" not in path.name:
            out[str(path.relative_to(hangar))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def blosc_bomb(nbytes: int) -> bytes:
    """A valid blosc buffer of a few KB that declares (and expands to) ``nbytes``
    zero bytes: every block starts at the same compressed stream."""
    one = blosc.compress(bytes(1 << 20), typesize=1, clevel=9, shuffle=blosc.NOSHUFFLE, cname="blosclz")
    _, _, block = blosc.get_cbuffer_sizes(one)
    starts = struct.unpack(f"<{(1 << 20) // block}i", one[16 : 16 + 4 * ((1 << 20) // block)])
    # Blosc's threads write blocks in the order they finish: block 0's stream
    # ends where the next stream in the buffer starts, whichever block that is.
    end = min((s for s in starts if s > starts[0]), default=len(one))
    stream = one[starts[0] : end]
    n = nbytes // block
    start = 16 + 4 * n
    head = one[:4] + struct.pack("<iii", n * block, block, start + len(stream))
    return head + struct.pack("<i", start) * n + stream


def test_the_bomb_is_what_it_claims() -> None:
    bomb = blosc_bomb(8 << 20)
    assert len(bomb) < 2000 and blosc.decompress(bomb) == bytes(8 << 20)


@pytest.fixture
def team(tmp_path: Path) -> tuple[Path, Path, Path, str, str]:
    """Alice pushed two stock commits (the second on branch ``b2``, also
    git-pushed); Bob cloned and pulled the first. Returns (alice, remote, bob,
    first digest, second digest)."""
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    alice = tmp_path / "alice"
    first = make_project(alice, remote)
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=alice)
    run_git("push", "-q", "origin", "HEAD:main", cwd=alice)
    bob = clone(bare, tmp_path / "bob")
    assert stock_cli("pull", cwd=bob).returncode == 0
    run_git("switch", "-q", "-c", "b2", cwd=alice)
    with stockroom.StockRoom(alice) as room:
        room.data["img"][99] = np.full((4, 4), 99, dtype=np.uint8)
        room.tag["lr"] = 0.5
        second = room.commit("second")
    run_git("commit", "-q", "-am", "second", cwd=alice)
    run_git("push", "-q", "origin", "b2", cwd=alice)  # pre-push uploads the stock
    assert (remote / "commits" / second).exists()
    run_git("fetch", "-q", cwd=bob)
    return alice, remote, bob, first, second


def switch_without_fetch(bob: Path) -> None:
    """Bob's work tree on ``b2`` (head.stock names the second commit), nothing fetched."""
    run_git("config", "stock.autofetch", "false", cwd=bob)
    run_git("switch", "-q", "b2", cwd=bob)
    run_git("config", "--unset", "stock.autofetch", cwd=bob)


def tamper_manifest(remote: Path, digest: str, **changes: object) -> None:
    path = remote / "commits" / digest
    manifest = json.loads(path.read_bytes())
    for key, value in changes.items():
        if value is None:
            del manifest[key]
        else:
            manifest[key] = value
    path.unlink()
    path.write_text(json.dumps(manifest))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ------------------------------------------------ 2: compression bombs
@pytest.mark.parametrize("field", ["ref", "spec"])
def test_compression_bomb_in_a_manifest_costs_nothing(
    team: tuple[Path, Path, Path, str, str], tmp_path: Path, field: str
) -> None:
    alice, remote, bob, _, second = team
    tamper_manifest(remote, second, **{field: b64(blosc_bomb(1 << 30))})
    assert len((remote / "commits" / second).read_bytes()) < 40_000
    before = snapshot(bob / ".hangar")
    # git switch: post-checkout autofetch warns, git goes on.
    out, rss = measured("git", "switch", "-q", "b2", cwd=bob, tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "corrupt" in out.stderr and rss < MAX_RSS_MB, (rss, out.stderr)
    # stock pull: one line, refused before anything is expanded.
    out, rss = measured(*stock("pull"), cwd=bob, tmp=tmp_path)
    assert out.returncode == 1
    assert f"commits/{second}" in one_line(out.stderr) and "corrupt" in out.stderr
    assert rss < MAX_RSS_MB, rss
    assert snapshot(bob / ".hangar") == before
    # pre-push reads the manifest the remote already has for Alice's parent.
    with stockroom.StockRoom(alice) as room:
        room.tag["lr"] = 0.75
        room.commit("third")
    run_git("commit", "-q", "-am", "third", cwd=alice)
    out, rss = measured("git", "push", "-q", "origin", "b2", cwd=alice, tmp=tmp_path)
    assert out.returncode != 0 and "corrupt" in out.stderr, out.stderr
    assert rss < MAX_RSS_MB, rss


def test_oversized_schema_costs_nothing(team: tuple[Path, Path, Path, str, str], tmp_path: Path) -> None:
    _, remote, bob, _, second = team
    manifest = json.loads((remote / "commits" / second).read_bytes())
    schema = sorted(manifest["schemas"])[0]
    # 5 MB of a Python literal: Hangar parses schemas with ast.literal_eval.
    manifest["schemas"][schema] = b64(b"[" + b"0," * 2_600_000 + b"0]")
    tamper_manifest(remote, second, schemas=manifest["schemas"])
    switch_without_fetch(bob)
    before = snapshot(bob / ".hangar")
    out, rss = measured(*stock("pull"), cwd=bob, tmp=tmp_path)
    assert out.returncode == 1
    assert f"schema {schema}" in one_line(out.stderr)
    assert rss < MAX_RSS_MB, rss
    assert snapshot(bob / ".hangar") == before


# ------------------------------------------------ 3, 4: unbounded reads, FIFOs
def test_pack_that_is_a_symlink_to_dev_zero_is_refused(
    team: tuple[Path, Path, Path, str, str], tmp_path: Path
) -> None:
    _, remote, bob, _, second = team
    manifest = json.loads((remote / "commits" / second).read_bytes())
    for sha in manifest["packs"]:
        pack = remote / "packs" / sha
        if pack.exists():
            pack.unlink()
            pack.symlink_to("/dev/zero")
    switch_without_fetch(bob)
    before = snapshot(bob / ".hangar")
    out, rss = measured(*stock("pull"), cwd=bob, tmp=tmp_path)
    assert out.returncode == 1
    assert "not a regular file" in one_line(out.stderr)
    assert rss < MAX_RSS_MB, rss
    assert snapshot(bob / ".hangar") == before


def test_manifest_that_is_a_fifo_does_not_hang(
    team: tuple[Path, Path, Path, str, str], tmp_path: Path
) -> None:
    _, remote, bob, _, second = team
    path = remote / "commits" / second
    path.unlink()
    os.mkfifo(path)
    before = snapshot(bob / ".hangar")
    out, _ = measured("git", "switch", "-q", "b2", cwd=bob, tmp=tmp_path)
    assert out.returncode == 0 and "not a regular file" in out.stderr, out.stderr
    out, _ = measured(*stock("pull"), cwd=bob, tmp=tmp_path)
    assert out.returncode == 1 and "not a regular file" in one_line(out.stderr)
    assert snapshot(bob / ".hangar") == before


def test_index_lengths_and_shapes_must_fit_the_schema(
    team: tuple[Path, Path, Path, str, str], tmp_path: Path
) -> None:
    """The manifest's pack list is not covered by the commit digest: a new
    index (with its digest in the manifest) claiming a 6 GB sample, or a shape
    the schema does not allow, is refused before anything is asked for."""
    _, remote, bob, _, second = team
    manifest = json.loads((remote / "commits" / second).read_bytes())
    switch_without_fetch(bob)
    before = snapshot(bob / ".hangar")
    for change in ("length", "shape5", "shape-1"):
        packs = {}
        for sha in manifest["packs"]:
            index = json.loads((remote / "packs" / f"{sha}.idx").read_bytes())
            entries = index["samples"]
            if isinstance(entries[0][4], list) and entries[0][4] == [4, 4]:
                if change == "length":
                    entries[-1][3] = 6 << 30
                else:
                    entries[0][4] = [5] if change == "shape5" else [-1, 16]
            size = sum(e[3] for e in entries)
            raw = json.dumps(index).encode()
            digest = hashlib.sha256(raw).hexdigest()
            (remote / "packs" / f"{sha}.idx").unlink()
            (remote / "packs" / f"{sha}.idx").write_bytes(raw)
            packs[sha] = {"index": digest, "size": size}
        tamper_manifest(remote, second, packs=packs)
        for args in (("pull",), ("pull", "--lazy")):
            out, rss = measured(*stock(*args), cwd=bob, tmp=tmp_path)
            assert out.returncode == 1, (change, args, out.stdout)
            line = one_line(out.stderr)
            assert "nothing was written" in line and "Traceback" not in out.stderr, (change, line)
            assert rss < MAX_RSS_MB, rss
        assert snapshot(bob / ".hangar") == before


# ------------------------------------------------ 5: writes outside the remote
def test_push_never_writes_through_symlinked_folders(
    team: tuple[Path, Path, Path, str, str], tmp_path: Path
) -> None:
    alice, remote, _, _, _ = team
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with stockroom.StockRoom(alice) as room:
        room.data["img"][100] = np.full((4, 4), 100, dtype=np.uint8)
        room.commit("third")
    for folder in ("packs", "commits"):
        (remote / folder).rename(elsewhere / folder)
        (remote / folder).symlink_to(elsewhere / folder)
        listing = sorted(p.name for p in (elsewhere / folder).iterdir())
        out = stock_cli("push", cwd=alice)
        assert out.returncode == 1
        assert "symbolic link" in one_line(out.stderr) and folder in out.stderr
        assert sorted(p.name for p in (elsewhere / folder).iterdir()) == listing
        (remote / folder).unlink()
        (elsewhere / folder).rename(remote / folder)
    # The remote root itself a symlink (swapped after `stock remote add`).
    remote.rename(elsewhere / "root")
    remote.symlink_to(elsewhere / "root")
    out = stock_cli("push", cwd=alice)
    assert out.returncode == 1 and "symbolic link" in one_line(out.stderr)
    remote.unlink()
    (elsewhere / "root").rename(remote)
    assert stock_cli("push", cwd=alice).returncode == 0


# ------------------------------------------------ 6: errors are one line
@pytest.mark.parametrize("case", ["no-parent", "nested", "parent-number", "not-json"])
def test_malformed_manifests_are_one_line_naming_the_remote(
    team: tuple[Path, Path, Path, str, str], tmp_path: Path, case: str
) -> None:
    _, remote, bob, _, second = team
    path = remote / "commits" / second
    if case == "no-parent":
        tamper_manifest(remote, second, parent=None)
    elif case == "parent-number":
        tamper_manifest(remote, second, parent=7)
    else:
        path.unlink()
        path.write_bytes(b"[" * 200_000 + b"]" * 200_000 if case == "nested" else b"\xff\x00 not json")
    switch_without_fetch(bob)
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 1
    line = one_line(out.stderr)
    assert f"commits/{second}" in line and "stock remote origin" in line, line
    assert ".hangar" not in line


@pytest.mark.parametrize("endpoint", ["file:///etc", "unix:///run/x.sock", "javascript:alert(1)", "http://"])
def test_unusable_endpoints_are_one_line_wherever_they_come_from(
    team: tuple[Path, Path, Path, str, str], endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = team[0]
    pytest.importorskip("obstore")
    out = stock_cli("remote", "add", "s3r", "s3://bucket-x/p", "--endpoint", endpoint, cwd=alice)
    assert out.returncode == 1 and "endpoint" in one_line(out.stderr)
    # Hand-edited into .stockremotes: refused when used.
    run_git("config", "--file", ".stockremotes", "stockremote.s3r.url", "s3://bucket-x/p", cwd=alice)
    run_git("config", "--file", ".stockremotes", "stockremote.s3r.endpoint", endpoint, cwd=alice)
    out = stock_cli("push", "s3r", cwd=alice)
    assert out.returncode == 1 and "endpoint of stock remote s3r" in one_line(out.stderr), out.stderr
    # From the environment.
    run_git("config", "--file", ".stockremotes", "--unset", "stockremote.s3r.endpoint", cwd=alice)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    out = stock_cli("push", "s3r", cwd=alice)
    assert out.returncode == 1 and "AWS_ENDPOINT_URL" in one_line(out.stderr), out.stderr


# ------------------------------------------------ 7: remote settings
@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:9000/?access_token=hunter2zz",
        "http://127.0.0.1:9000/#password=hunter2zz",
        "http://u:hunter2zz@127.0.0.1:9",
    ],
)
def test_secrets_in_endpoints_are_refused_and_never_shown(stock_repo: Path, endpoint: str) -> None:
    out = stock_cli("remote", "add", "s3r", "s3://bucket-x/p", "--endpoint", endpoint, cwd=stock_repo)
    assert out.returncode == 1 and "hunter2zz" not in out.stderr + out.stdout
    one_line(out.stderr)
    assert not (stock_repo / ".stockremotes").exists()
    # Hand-edited: `list -v` does not show the secret.
    run_git("config", "--file", ".stockremotes", "stockremote.s3r.url", "s3://bucket-x/p", cwd=stock_repo)
    run_git("config", "--file", ".stockremotes", "stockremote.s3r.endpoint", endpoint, cwd=stock_repo)
    out = stock_cli("remote", "list", "-v", cwd=stock_repo)
    assert out.returncode == 0 and "hunter2zz" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    "url", ["s3://bucket-x/p#password=hunter2zz", "s3://u:hunter2zz@bucket-x/p", "ftp://h/x", "file://h/x"]
)
def test_hand_edited_remote_urls_are_checked_when_used(stock_repo: Path, url: str) -> None:
    with stockroom.StockRoom(stock_repo) as room:
        room.tag["lr"] = 0.5
        room.commit("one")
    run_git("config", "--file", ".stockremotes", "stockremote.bad.url", url, cwd=stock_repo)
    out = stock_cli("push", "bad", cwd=stock_repo)
    assert out.returncode == 1 and "hunter2zz" not in out.stderr
    one_line(out.stderr)


def test_plain_http_to_another_host_warns(capsys: pytest.CaptureFixture[str]) -> None:
    objects._WARNED_HTTP.clear()
    assert (
        objects._usable_endpoint("lab", "http://minio.example.invalid:9000")
        == "http://minio.example.invalid:9000"
    )
    err = capsys.readouterr().err
    assert "warning" in err and "unencrypted" in err and "https://" in err
    objects._usable_endpoint("lab2", "http://127.0.0.1:9000")
    objects._usable_endpoint("lab3", "https://minio.example.invalid")
    assert capsys.readouterr().err == ""


# ------------------------------------------------ 8: gc
def test_gc_keeps_what_the_remote_cannot_prove_it_holds(tmp_path: Path) -> None:
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    alice = tmp_path / "alice"
    make_project(alice, remote)
    assert stock_cli("push", cwd=alice).returncode == 0
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=alice)
    run_git("push", "-q", "--no-verify", "origin", "HEAD:main", cwd=alice)
    bob = clone(bare, tmp_path / "bob")
    assert stock_cli("pull", "--lazy", cwd=bob).returncode == 0
    with stockroom.StockRoom(bob) as room:
        for i in range(5):
            room.data["img"][i]
        for i in range(5):
            del room.data["img"][i]
        room.commit("drop some")
    kept = len(lazy.cached(bob / ".hangar"))
    assert kept >= 5
    # Every pack altered past its first byte (same length): a one-byte probe
    # would say the remote holds them.
    for pack in (remote / "packs").iterdir():
        if pack.suffix != ".idx":
            data = bytearray(pack.read_bytes())
            data[1:] = b"\xab" * (len(data) - 1)
            pack.unlink()
            pack.write_bytes(bytes(data))
    out = stock_cli("gc", "--yes", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert len(lazy.cached(bob / ".hangar")) == kept


# ------------------------------------------------ 1: no foreign code in the relay
def test_relay_never_imports_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Forked DataLoader workers reach S3 through a relay interpreter; started
    from a shared folder holding an ``obstore.py``, it must not run it."""
    pytest.importorskip("obstore")
    pytest.importorskip("moto.server")
    from stockroom.remote.relay import Relay

    endpoint, _ = request.getfixturevalue("s3")
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    marker = tmp_path / "pwned"
    (shared / "obstore.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit(3)\n")
    monkeypatch.chdir(shared)
    relay = Relay("s3://stock-team/proj", "origin", endpoint, 5.0)
    try:
        assert relay.call("exists", "commits/a=" + "0" * 40) is False
    finally:
        relay.close()
    assert not marker.exists()


# ------------------------------------------------ 3: a hostile S3-protocol server
class _HostileS3(http.server.BaseHTTPRequestHandler):
    """Answers every object request claiming 100 GB (whole, or as the range asked for)."""

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(100 << 30))
        self.send_header("Last-Modified", "Tue, 08 Dec 2026 00:00:00 GMT")
        self.send_header("ETag", '"x"')
        self.end_headers()

    def do_GET(self) -> None:
        ranged = self.headers.get("Range")
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Length", str(100 << 30))
        if ranged:
            self.send_header("Content-Range", f"bytes 0-{(100 << 30) - 1}/{100 << 30}")
        self.send_header("Last-Modified", "Tue, 08 Dec 2026 00:00:00 GMT")
        self.send_header("ETag", '"x"')
        self.end_headers()
        # It keeps sending while the client reads: a client that sized its
        # buffer from the header would try to allocate 100 GB and abort.
        with contextlib.suppress(OSError):
            for _ in range(1024):
                self.wfile.write(bytes(64 << 10))


@pytest.mark.parametrize("call", ["get", "get_range"])
def test_hostile_s3_content_length_is_one_line_not_an_abort(tmp_path: Path, call: str) -> None:
    pytest.importorskip("obstore")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HostileS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    code = (
        "import dataclasses, sys\n"
        "from stockroom.remote.objects import S3Store, RemoteError\n"
        "from stockroom.remote.url import parse_url\n"
        f"s = S3Store(dataclasses.replace(parse_url('s3://bucket-x/p'), timeout=5.0), 'evil', {endpoint!r})\n"
        "try:\n"
        f"    s.get('packs/{'0' * 64}') if {call!r} == 'get' else s.get_range('packs/{'0' * 64}', 0, 64)\n"
        "except RemoteError as exc:\n"
        "    print(exc)\n"
    )
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDX",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_REGION": "us-east-1",
    }
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            env=env,
            cwd=tmp_path,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr[-2000:]
    assert "stock remote evil" in out.stdout and "Traceback" not in out.stderr, out.stdout + out.stderr
