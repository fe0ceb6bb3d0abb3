"""On-demand data on a directory remote: lazy clones read what they need."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom.errors import StockroomError
from stockroom.store import lazy, transfer
from tests.conftest import run_git
from tests.test_remote import clone, stock_cli

N = 40
SHAPE = (3, 32, 32)


def make_big_project(path: Path, remote: Path | None) -> str:
    """A stock repository whose images are large enough that one is a small part."""
    path.mkdir(parents=True)
    run_git("init", "-q", cwd=path)
    stockroom.init_repo(path=path)
    rng = np.random.default_rng(0)
    with stockroom.StockRoom(path) as stock:
        with stock.optimize():
            for i in range(N):
                stock.data["img"][i] = rng.standard_normal(SHAPE).astype(np.float32)
                stock.data["label"][i] = np.array(i % 10, dtype=np.int64)
        stock.model["net"] = [rng.standard_normal((64, 32)).astype(np.float32), np.arange(5, dtype=np.int16)]
        stock.tag["lr"] = 0.25
        stock.tag["name"] = "first"
        digest = stock.commit("first")
    if remote is not None:
        assert stock_cli("remote", "add", "origin", str(remote), cwd=path).returncode == 0
    run_git("add", "-A", cwd=path)
    run_git("commit", "-q", "-m", "first", cwd=path)
    return digest


@pytest.fixture
def lazy_team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path, str]:
    """A project pushed to a directory remote, and a lazy clone of it ("bob")."""
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    proj = tmp_path / "alice"
    digest = make_big_project(proj, remote)
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=proj)
    assert stock_cli("push", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    out = stock_cli("pull", "--lazy", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert "no data" in out.stdout
    monkeypatch.chdir(bob)
    return proj, remote, bob, digest


def _data_files_bytes(bob: Path) -> int:
    return sum(p.stat().st_size for p in (bob / ".hangar" / "data").rglob("*") if p.is_file())


def _pack_bytes(remote: Path) -> int:
    return sum(p.stat().st_size for p in (remote / "packs").iterdir() if not p.name.endswith(".idx"))


def test_lazy_clone_reads_one_sample_fetching_little(lazy_team: tuple[Path, Path, Path, str]) -> None:
    proj, remote, bob, digest = lazy_team
    assert _data_files_bytes(bob) < 4096  # records only
    before = lazy.stats.nbytes
    with stockroom.StockRoom(bob) as stock, stockroom.StockRoom(proj) as orig:
        assert stock.head == digest
        np.testing.assert_array_equal(stock.data["img"][17], orig.data["img"][17])
        one = lazy.stats.nbytes - before
        assert one == np.prod(SHAPE) * 4  # exactly the sample's bytes
        assert one * 20 < _pack_bytes(remote)
        # Read again: from the cache, nothing fetched.
        np.testing.assert_array_equal(stock.data["img"][17], orig.data["img"][17])
        assert lazy.stats.nbytes - before == one
        assert stock.tag["lr"] == 0.25 and stock.tag["name"] == "first"
        assert int(stock.data["label"][13]) == 3


def test_lazy_model_loads_bit_for_bit(lazy_team: tuple[Path, Path, Path, str]) -> None:
    proj, _, bob, _ = lazy_team
    with stockroom.StockRoom(bob) as stock, stockroom.StockRoom(proj) as orig:
        got, want = stock.model["net"], orig.model["net"]
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_full_pull_after_lazy_clone(lazy_team: tuple[Path, Path, Path, str]) -> None:
    proj, _, bob, digest = lazy_team
    out = stock_cli("pull", cwd=bob)
    assert out.returncode == 0, out.stderr
    repo = transfer._Local(bob)
    _, digests = transfer._columns(repo.commit(digest)[2])["data.img"]
    assert set(repo.data_backends(digests).values()) == {"10"}
    with stockroom.StockRoom(bob) as stock, stockroom.StockRoom(proj) as orig:
        np.testing.assert_array_equal(stock.data["img"][5], orig.data["img"][5])


def test_unreachable_remote_one_clear_error_nothing_kept(lazy_team: tuple[Path, Path, Path, str]) -> None:
    _, remote, bob, _ = lazy_team
    hidden = remote.with_name("moved-away")
    remote.rename(hidden)
    script = "import stockroom\nwith stockroom.StockRoom() as s:\n    s.data['img'][3]\n"
    out = subprocess.run([sys.executable, "-c", script], cwd=bob, capture_output=True, text=True)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "stock remote origin" in last and "stock pull" in last
    assert lazy.cached(bob / ".hangar") == {}
    hidden.rename(remote)
    with stockroom.StockRoom(bob) as stock:
        assert stock.data["img"][3].shape == SHAPE


def test_remote_gone_mid_epoch_clear_error_then_resumes(lazy_team: tuple[Path, Path, Path, str]) -> None:
    """The directory-remote form of "the server stopped mid-epoch": half an
    epoch read, the remote goes away, the next unfetched read fails with one
    clear line and keeps nothing half-written; back, the epoch finishes."""
    from stockroom.loaders import StockDataset

    proj, remote, bob, _ = lazy_team
    ds = StockDataset("img", path=bob, fetch_threads=0)  # sample by sample (no whole pack on a miss)
    with stockroom.StockRoom(proj) as orig:
        want = [orig.data["img"][i] for i in range(N)]
    for i in range(N // 2):
        np.testing.assert_array_equal(ds[i], want[i])
    hidden = remote.with_name("unmounted")
    remote.rename(hidden)
    with pytest.raises(stockroom.StockroomError) as err:
        ds[N // 2]
    message = str(err.value)
    assert "\n" not in message and "stock remote origin" in message and "stock pull" in message
    objects = bob / ".hangar" / lazy.LAZY_DIR / "objects"
    assert not list(objects.glob(".incoming-*"))
    kept = lazy.cached(bob / ".hangar")
    assert len(kept) == N // 2  # what was read before, nothing of the failed read
    for i in range(N // 2):  # what was kept is whole
        np.testing.assert_array_equal(ds[i], want[i])
    hidden.rename(remote)
    for i in range(N // 2, N):
        np.testing.assert_array_equal(ds[i], want[i])
    ds.close()
    assert len(lazy.cached(bob / ".hangar")) == N


def test_whole_pack_on_a_miss_remote_gone_one_clear_error(lazy_team: tuple[Path, Path, Path, str]) -> None:
    """A dataset's miss that would download its pack whole, with the remote
    gone: the same one-line error as a read by range, nothing kept."""
    from stockroom.loaders import StockDataset

    proj, remote, bob, _ = lazy_team
    ds = StockDataset(["img", "label"], path=bob)
    hidden = remote.with_name("unmounted")
    remote.rename(hidden)
    with pytest.raises(stockroom.StockroomError) as err:
        ds.__getitems__([3, 1, 4])
    message = str(err.value)
    assert "\n" not in message and "stock remote origin" in message and "stock pull" in message
    assert lazy.cached(bob / ".hangar") == {}
    hidden.rename(remote)
    with stockroom.StockRoom(proj) as orig:
        np.testing.assert_array_equal(ds[3][0], orig.data["img"][3])
    assert len(lazy.cached(bob / ".hangar")) >= N  # its pack, whole
    ds.close()


def test_truncated_remote_object_error_nothing_kept(lazy_team: tuple[Path, Path, Path, str]) -> None:
    proj, remote, bob, _ = lazy_team
    for pack in (remote / "packs").iterdir():
        if not pack.name.endswith(".idx"):
            data = pack.read_bytes()
            os.chmod(pack, 0o644)
            pack.write_bytes(data[:10])
    with stockroom.StockRoom(bob) as stock:
        with pytest.raises(stockroom.StockroomError, match="truncated"):
            stock.data["img"][N - 1]
    assert lazy.cached(bob / ".hangar") == {}
    assert not list((bob / ".hangar" / lazy.LAZY_DIR / "objects").glob(".incoming-*"))


def test_kept_copy_of_the_wrong_length_is_fetched_again(lazy_team: tuple[Path, Path, Path, str]) -> None:
    proj, _, bob, _ = lazy_team
    from stockroom.loaders import StockDataset

    with stockroom.StockRoom(proj) as orig:
        want = [orig.data["img"][i] for i in (3, 4)]
    with stockroom.StockRoom(bob) as stock:
        stock.data["img"][3]
        stock.data["img"][4]
    assert len(lazy.cached(bob / ".hangar")) == 2
    objects = bob / ".hangar" / lazy.LAZY_DIR / "objects"
    ds = StockDataset("img", path=bob)
    keys = ds.keys()
    # As a crash of the machine before write-back might leave them (any length
    # but the right one): one read through the store, one through a dataset.
    for index, cut in ((3, lambda b: b[:100]), (4, lambda b: b + b"\0" * 8)):
        kept = objects / _digest_of(ds, keys.index(index))
        kept.write_bytes(cut(kept.read_bytes()))
    ds.close()
    lazy._READERS.clear()
    before = lazy.stats.nbytes
    with stockroom.StockRoom(bob) as stock:
        np.testing.assert_array_equal(stock.data["img"][3], want[0])
    ds = StockDataset("img", path=bob)
    np.testing.assert_array_equal(ds[keys.index(4)], want[1])
    ds.close()
    assert lazy.stats.nbytes - before == 2 * np.prod(SHAPE) * 4
    assert sorted(lazy.cached(bob / ".hangar").values()) == [np.prod(SHAPE) * 4] * 2


def test_corrupt_remote_sample_error_nothing_kept(lazy_team: tuple[Path, Path, Path, str]) -> None:
    _, remote, bob, _ = lazy_team
    for pack in (remote / "packs").iterdir():
        if not pack.name.endswith(".idx"):
            data = bytearray(pack.read_bytes())
            os.chmod(pack, 0o644)
            for i in range(0, len(data), 512):
                data[i] ^= 0xFF
            pack.write_bytes(bytes(data))
    with stockroom.StockRoom(bob) as stock:
        with pytest.raises(stockroom.StockroomError, match="corrupt"):
            stock.data["img"][7]
    assert lazy.cached(bob / ".hangar") == {}


def test_dataloader_two_workers_every_sample_once(lazy_team: tuple[Path, Path, Path, str]) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from stockroom.loaders import StockDataset

    proj, _, bob, _ = lazy_team
    ds = StockDataset(["img", "label"], path=bob)
    seen: list[int] = []
    got: dict[int, np.ndarray] = {}
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=2)
    for imgs, labels in loader:
        for img, label in zip(imgs, labels, strict=True):
            del label
            key = len(seen)
            seen.append(key)
            got[key] = img.numpy()
    assert len(seen) == N
    with stockroom.StockRoom(proj) as orig:
        want = {orig.data["img"][i].tobytes() for i in range(N)}
    assert {a.tobytes() for a in got.values()} == want  # every sample, each exactly once
    assert len(lazy.cached(bob / ".hangar")) >= N
    del torch


def test_cache_limit_smaller_than_dataset_completes_an_epoch(
    lazy_team: tuple[Path, Path, Path, str],
) -> None:
    proj, _, bob, _ = lazy_team
    one = int(np.prod(SHAPE)) * 4
    run_git("config", "stock.cacheLimit", str(one * 10), cwd=bob)
    from stockroom.loaders import StockDataset

    ds = StockDataset("img", path=bob)
    with stockroom.StockRoom(proj) as orig:
        for i in range(len(ds)):
            np.testing.assert_array_equal(ds[i], orig.data["img"][i])
    ds.close()
    assert sum(lazy.cached(bob / ".hangar").values()) <= one * 12


def test_cache_limit_lowered_trims_on_gc_and_on_reads(lazy_team: tuple[Path, Path, Path, str]) -> None:
    """Issue 21 #18: a limit lowered below what is kept is applied by `stock gc`
    (the least recently read first, even of what head.stock's commit reads) and
    by the next process that reads."""
    _, _, bob, _ = lazy_team
    one = int(np.prod(SHAPE)) * 4
    with stockroom.StockRoom(bob) as stock:
        for i in range(N):
            stock.data["img"][i]
    assert sum(lazy.cached(bob / ".hangar").values()) >= N * one
    run_git("config", "stock.cacheLimit", str(one * 10), cwd=bob)
    out = stock_cli("gc", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert "stock.cacheLimit" in out.stdout, out.stdout
    assert sum(lazy.cached(bob / ".hangar").values()) >= N * one  # a dry run
    out = stock_cli("gc", "--yes", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert sum(lazy.cached(bob / ".hangar").values()) <= one * 10
    # Reads trim too: a process that finds more kept than the limit allows.
    run_git("config", "--unset", "stock.cacheLimit", cwd=bob)
    script = f"import stockroom\nwith stockroom.StockRoom() as s:\n    [s.data['img'][i] for i in range({N})]"
    assert subprocess.run([sys.executable, "-c", script], cwd=bob).returncode == 0
    assert sum(lazy.cached(bob / ".hangar").values()) >= N * one
    run_git("config", "stock.cacheLimit", str(one * 5), cwd=bob)
    script = "import stockroom\nwith stockroom.StockRoom() as s:\n    s.data['img'][0]\n"
    assert subprocess.run([sys.executable, "-c", script], cwd=bob).returncode == 0
    assert sum(lazy.cached(bob / ".hangar").values()) <= one * 5


def test_cache_limit_not_a_size_is_refused_in_one_line(lazy_team: tuple[Path, Path, Path, str]) -> None:
    """Issue 21 #18: refused wherever it is read, never accepted by one command and a traceback in another."""
    _, _, bob, _ = lazy_team
    run_git("config", "stock.cacheLimit", "lots", cwd=bob)
    for args in (("status",), ("gc",), ("gc", "--yes")):
        out = stock_cli(*args, cwd=bob)
        assert out.returncode == 1, (args, out.stdout)
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
        assert "stock.cacheLimit 'lots' is not a size" in out.stderr
        assert "git config stock.cacheLimit 20G" in out.stderr
    from stockroom.loaders import StockDataset

    with pytest.raises(StockroomError, match="stock.cacheLimit 'lots' is not a size"):
        StockDataset(["img", "label"], path=bob)


def test_gc_drops_only_remote_backed_data(lazy_team: tuple[Path, Path, Path, str]) -> None:
    _, remote, bob, _ = lazy_team
    with stockroom.StockRoom(bob) as stock:
        for i in range(5):
            stock.data["img"][i]
        # Data only here: a new commit that the remote has not seen.
        stock.data["img"][1000] = np.ones(SHAPE, np.float32)
        stock.data["label"][1000] = np.array(1)
        stock.commit("local only")
    assert len(lazy.cached(bob / ".hangar")) >= 5
    # head.stock's commit still reads those: nothing to drop.
    out = stock_cli("gc", "--yes", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert "nothing to drop" in out.stdout
    assert len(lazy.cached(bob / ".hangar")) >= 5
    # A commit that no longer names samples 0..4: their cached copies can go.
    with stockroom.StockRoom(bob) as stock:
        for i in range(5):
            del stock.data["img"][i]
        stock.commit("drop some")
    out = stock_cli("gc", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert "dry run" in out.stdout and "would drop 5 sample" in out.stdout
    assert len(lazy.cached(bob / ".hangar")) >= 5
    # The remote lost its packs: the cached copies are the only ones, kept.
    packs = remote / "packs"
    packs.rename(remote / "packs-away")
    out = stock_cli("gc", "--yes", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert len(lazy.cached(bob / ".hangar")) >= 5
    (remote / "packs-away").rename(packs)
    out = stock_cli("gc", "--yes", cwd=bob)
    assert out.returncode == 0, out.stderr
    # The image samples 0..4 went; what stays is what head.stock's commit
    # still names (its tags, read when the commit was made: a few bytes each).
    kept = lazy.cached(bob / ".hangar")
    assert all(size < 4 * np.prod(SHAPE) for size in kept.values()), kept
    with stockroom.StockRoom(bob) as stock:
        assert stock.data["img"][1000].sum() == np.prod(SHAPE)  # local-only data kept
        assert stock.data["img"][6].shape == SHAPE


def test_status_says_local_and_remote_only(lazy_team: tuple[Path, Path, Path, str]) -> None:
    _, _, bob, _ = lazy_team
    out = stock_cli("status", cwd=bob)
    assert out.returncode == 0, out.stderr
    assert "remote-only" in out.stdout
    with stockroom.StockRoom(bob) as stock:
        stock.data["img"][0]
    out2 = stock_cli("status", cwd=bob)
    assert out2.stdout != out.stdout


def test_lazy_autofetch_on_git_pull(lazy_team: tuple[Path, Path, Path, str]) -> None:
    proj, _, bob, first = lazy_team
    with stockroom.StockRoom(proj) as stock:
        stock.data["img"][0] = np.zeros(SHAPE, np.float32)
        second = stock.commit("second")
    run_git("commit", "-q", "-am", "second", cwd=proj)
    assert stock_cli("push", cwd=proj).returncode == 0
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    run_git("config", "stock.lazy", "true", cwd=bob)
    run_git("pull", "-q", "origin", "main", cwd=bob)
    with stockroom.StockRoom(bob) as stock:
        assert stock.head == second
        assert not stock.data["img"][0].any()
    assert _data_files_bytes(bob) < 8192
    # The older commit's samples are readable on demand too.
    run_git("checkout", "-q", "HEAD~1", cwd=bob)
    with stockroom.StockRoom(bob) as stock, stockroom.StockRoom(proj) as orig:
        assert stock.head == first
        del orig
        assert stock.data["img"][0].any()


def _digest_of(ds: object, index: int) -> str:
    view = ds._current_view()  # type: ignore[attr-defined]
    parsed = lazy.parse_placeholder(view.columns[0]._samples[view.hkeys[index]].schema_hash)
    assert parsed is not None
    return parsed[1]


def _log_downloads(monkeypatch: pytest.MonkeyPatch, log: Path, pause: float = 0.0) -> dict[str, int]:
    """Record every download (digest, one line per download, from any process)
    and the most downloads in flight at once in this process."""
    real = lazy._Reader.download
    state = {"now": 0, "most": 0}
    guard = __import__("threading").Lock()

    def download(self: lazy._Reader, obj: object, digest: str, pack: str, entry: list[object]) -> bytes:
        with guard:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            if pause:
                __import__("time").sleep(pause)
            raw = real(self, obj, digest, pack, entry)
        finally:
            with guard:
                state["now"] -= 1
        with open(log, "a") as f:  # one short append per line: lines from workers do not mix
            f.write(digest + "\n")
        return raw

    real_pack = lazy._Reader.download_pack

    def download_pack(self: lazy._Reader, pack: str) -> bytes:
        raw = real_pack(self, pack)
        with open(log, "a") as f:
            f.write(f"pack:{pack}:{len(raw)}\n")
        return raw

    monkeypatch.setattr(lazy._Reader, "download", download)
    monkeypatch.setattr(lazy._Reader, "download_pack", download_pack)
    return state


def test_batch_fetches_its_missing_samples_at_once(
    lazy_team: tuple[Path, Path, Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from stockroom.loaders import StockDataset

    proj, _, bob, _ = lazy_team
    log = tmp_path / "downloads.log"
    state = _log_downloads(monkeypatch, log, pause=0.05)
    # A dataset of less than half the pack: its misses are fetched by range, not as a whole pack.
    ds = StockDataset(["img", "label"], keys=range(N // 3), path=bob)
    batch = ds.__getitems__(list(range(8)))
    assert state["most"] >= 4  # the batch's samples were fetched concurrently
    downloads = log.read_text().split()
    # 8 images, each once, by range; the labels (10 distinct, all in the
    # dataset's keys) are the whole of their tiny pack: downloaded whole.
    assert len([d for d in downloads if not d.startswith("pack:")]) == 8
    assert len([d for d in downloads if d.startswith("pack:")]) == 1
    with stockroom.StockRoom(proj) as orig:
        for i, (img, label) in enumerate(batch):
            np.testing.assert_array_equal(img, orig.data["img"][i])
            assert int(label) == i % 10
    # fetch_threads=0: one at a time, as each sample is read.
    state["most"] = 0
    one = StockDataset(["img", "label"], keys=range(N // 3), path=bob, fetch_threads=0)
    one.__getitems__(list(range(8, 12)))
    assert state["most"] == 1
    ds.close()
    one.close()


def test_read_ahead_sampler_fetches_the_next_samples_in_order(
    lazy_team: tuple[Path, Path, Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import time

    from stockroom.loaders import StockDataset

    _, _, bob, _ = lazy_team
    log = tmp_path / "downloads.log"
    _log_downloads(monkeypatch, log)
    ds = StockDataset("img", path=bob)
    # Less than half the pack: sample by sample, by byte range (no whole pack).
    order = [(7 * i) % N for i in range(16)]  # N is not a multiple of 7: distinct indices
    ahead = 10
    it = iter(ds.read_ahead(order, samples=ahead, threads=4))
    assert next(it) == order[0]
    want = {_digest_of(ds, i) for i in order[:ahead]}
    deadline = time.monotonic() + 30
    while set(lazy.cached(bob / ".hangar")) != want and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # nothing beyond the window follows
    # The next `ahead` samples in the sampler's order are here before anything read them.
    assert set(lazy.cached(bob / ".hangar")) == want
    rest = list(it)
    assert [order[0], *rest] == order
    # The pass handed out every index: the helper fetches to the end, then stops.
    everything = {_digest_of(ds, i) for i in order}
    while set(lazy.cached(bob / ".hangar")) != everything and time.monotonic() < deadline:
        time.sleep(0.02)
    assert set(lazy.cached(bob / ".hangar")) == everything
    _join_read_ahead()
    assert sorted(log.read_text().split()) == sorted(everything)  # each by range, once
    ds.close()


def _join_read_ahead() -> None:
    from stockroom import loaders

    while loaders._READ_AHEAD:
        loaders._READ_AHEAD.pop().join(30)


def _packs_read(ds: object) -> set[str]:
    """The packs holding the samples a dataset reads."""
    view = ds._current_view()  # type: ignore[attr-defined]
    texts = ds._lazy_texts(view, view.hkeys)  # type: ignore[attr-defined]
    return {lazy.parse_placeholder(text)[2] for text in texts}  # type: ignore[index]


def _pack_sizes(remote: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (remote / "packs").iterdir() if not p.name.endswith(".idx")}


def test_read_ahead_over_most_of_a_pack_downloads_it_whole_once(
    lazy_team: tuple[Path, Path, Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from stockroom.loaders import StockDataset

    proj, remote, bob, _ = lazy_team
    log = tmp_path / "downloads.log"
    _log_downloads(monkeypatch, log)
    ds = StockDataset(["img", "label"], path=bob)
    order = [(7 * i) % N for i in range(N)]
    assert list(ds.read_ahead(order, samples=4, threads=4)) == order
    _join_read_ahead()
    # One plain GET per pack the pass reads (images, labels), for the whole
    # pack, and no sample by range.
    packs = _pack_sizes(remote)
    read = _packs_read(ds)
    assert len(read) == 2
    assert sorted(log.read_text().split()) == sorted(f"pack:{sha}:{packs[sha]}" for sha in read)
    # Every sample kept is whole and verifies against its digest.
    hangar = bob / ".hangar"
    rd = lazy.reader(hangar)
    view = ds._current_view()
    texts = ds._lazy_texts(view, view.hkeys)
    assert len(texts) == 2 * N
    for text in texts:
        parsed = lazy.parse_placeholder(text)
        assert parsed is not None
        schema, digest, pack = parsed
        obj = rd.schema(schema)
        entry = rd.entry(pack, digest)
        raw = rd.object_path(digest).read_bytes()
        assert len(raw) == entry[3]
        assert obj.data_hash_digest(lazy._decode(obj, raw, entry[4])) == digest
    # The epoch reads every sample once, equal to the original, with no more downloads.
    before = lazy.stats.requests
    got = [ds[i] for i in order]
    assert lazy.stats.requests == before
    assert len(log.read_text().split()) == len(read)
    with stockroom.StockRoom(proj) as orig:
        for i, (img, label) in zip(order, got, strict=True):
            np.testing.assert_array_equal(img, orig.data["img"][i])
            assert int(label) == i % 10
    ds.close()


@pytest.mark.parametrize("byte_locks", [True, False], ids=["byte-range-locks", "lock-files"])
def test_reader_of_a_sample_in_a_pack_being_downloaded_waits_for_it(
    lazy_team: tuple[Path, Path, Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, byte_locks: bool
) -> None:
    """Another thread (so another descriptor, in the same process) reading a
    sample whose pack is being downloaded waits for it; with byte-range locks
    (Linux) or, where those are missing, a lock file per sample."""
    import threading
    import time

    from stockroom.loaders import StockDataset

    if sys.platform == "linux":
        assert lazy._OFD  # Linux has them: the byte-range case must run here
    elif byte_locks and not lazy._OFD:
        pytest.skip("no open-file-description locks on this system")
    monkeypatch.setattr(lazy, "_OFD", byte_locks)
    lazy._READERS.clear()
    proj, _, bob, _ = lazy_team
    log = tmp_path / "downloads.log"
    _log_downloads(monkeypatch, log)
    ds = StockDataset("img", path=bob)
    view = ds._current_view()
    texts = ds._lazy_texts(view, view.hkeys)
    hangar = bob / ".hangar"
    plans = lazy.plan_packs(hangar, enumerate(texts))
    assert len(plans) == 1
    held = lazy.hold_first(hangar, plans)  # what the read-ahead helper does first
    assert len(held) == N
    got: list[np.ndarray] = []
    waited = lazy.stats.waited
    reading = threading.Thread(
        target=lambda: got.append(lazy.read_placeholder(hangar, texts[3])), daemon=True
    )
    reading.start()
    time.sleep(0.3)
    assert not got  # waits for the pack rather than reading the sample by range
    assert lazy.fetch_pack(hangar, plans[0], held) == N
    reading.join(10)
    assert lazy.stats.waited == waited + 1
    assert not held  # every lock released
    assert [d.split(":")[0] for d in log.read_text().split()] == ["pack"]
    locks = os.listdir(hangar / lazy.LAZY_DIR / "locks")
    assert locks == ["samples"] if byte_locks else len(locks) == N  # one file, or one per sample
    with stockroom.StockRoom(proj) as orig:
        np.testing.assert_array_equal(got[0], orig.data["img"][3])
    ds.close()


def test_read_ahead_under_a_small_cache_limit_reads_by_range(
    lazy_team: tuple[Path, Path, Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from stockroom.loaders import StockDataset

    _, _, bob, _ = lazy_team
    one = int(np.prod(SHAPE)) * 4
    run_git("config", "stock.cacheLimit", str(one * (N - 5)), cwd=bob)
    log = tmp_path / "downloads.log"
    _log_downloads(monkeypatch, log)
    ds = StockDataset("img", path=bob)
    assert list(ds.read_ahead(range(N), samples=4, threads=4)) == list(range(N))
    _join_read_ahead()
    downloads = log.read_text().split()
    assert downloads
    assert not [d for d in downloads if d.startswith("pack:")]  # the pass does not fit: by range
    ds.close()


def test_dataloader_two_workers_read_ahead_every_sample_once_fetched_once(
    lazy_team: tuple[Path, Path, Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from torch.utils.data import DataLoader, RandomSampler

    from stockroom.loaders import StockDataset

    proj, _, bob, _ = lazy_team
    log = tmp_path / "downloads.log"
    _log_downloads(monkeypatch, log)  # forked workers inherit the patch
    ds = StockDataset(["img", "label"], path=bob)
    sampler = ds.read_ahead(RandomSampler(ds), samples=12, threads=4)
    loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=2)
    got = [img.numpy().tobytes() for imgs, _ in loader for img in imgs]
    with stockroom.StockRoom(proj) as orig:
        want = sorted(orig.data["img"][i].tobytes() for i in range(N))
    assert sorted(got) == want  # every sample, each exactly once
    downloads = log.read_text().split()
    # Workers and the read-ahead helper shared the work: no sample was downloaded
    # twice, and the pack (the pass reads all of it) was downloaded whole once.
    assert len(downloads) == len(set(downloads))
    assert len([d for d in downloads if d.startswith("pack:")]) <= len(_packs_read(ds)) == 2
    # A second epoch reads the local copies: nothing more is downloaded.
    assert sorted(img.numpy().tobytes() for imgs, _ in loader for img in imgs) == want
    assert log.read_text().split() == downloads
    ds.close()


def test_a_pass_over_samples_all_kept_looks_for_nothing_to_fetch(
    lazy_team: tuple[Path, Path, Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Once every sample is kept, a dataset made then knows it before its workers
    fork: no read-ahead helper, no per-batch look for what to fetch; a kept copy
    that went since is fetched again when read."""
    pytest.importorskip("torch")
    import multiprocessing

    from torch.utils.data import DataLoader, RandomSampler

    from stockroom.loaders import StockDataset

    proj, _, bob, _ = lazy_team
    with stockroom.StockRoom(proj) as orig:
        want = [orig.data["img"][i] for i in range(N)]
    first = StockDataset(["img", "label"], path=bob, fetch_threads=0)  # no whole pack on a miss
    assert not first._current_view().kept  # nothing kept yet
    for i in range(N - 1):
        first[i]
    first.close()
    assert not StockDataset(["img", "label"], path=bob)._current_view().kept  # one sample is not here
    first[N - 1]
    first.close()
    ds = StockDataset(["img", "label"], path=bob)
    assert ds._current_view().kept
    log = tmp_path / "downloads.log"
    _log_downloads(monkeypatch, log)
    sampler = ds.read_ahead(RandomSampler(ds), samples=12)
    order = []
    for index in sampler:
        order.append(index)
        assert not [p for p in multiprocessing.active_children() if p.name == "stock-read-ahead"]
    assert sorted(order) == list(range(N))
    loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=2)
    got = sorted(img.numpy().tobytes() for imgs, _ in loader for img in imgs)
    assert got == sorted(w.tobytes() for w in want)
    assert not log.exists()  # nothing downloaded
    # A kept copy goes (another process's cache limit, say): read, it comes back.
    gone = _digest_of(ds, 3)
    (bob / ".hangar" / lazy.LAZY_DIR / "objects" / gone).unlink()
    np.testing.assert_array_equal(ds[3][0], want[3])
    assert log.read_text().split() == [gone]
    assert (bob / ".hangar" / lazy.LAZY_DIR / "objects" / gone).exists()
    ds.close()
    # Under a cache limit reads may drop kept copies: the dataset does not count on them.
    # (This process looked at the limit before it was set: a new dataset looks again.)
    run_git("config", "stock.cacheLimit", "1G", cwd=bob)
    assert not StockDataset(["img", "label"], path=bob)._current_view().kept


def test_forked_reader_starts_from_its_parents_lookups(
    lazy_team: tuple[Path, Path, Path, str], tmp_path: Path
) -> None:
    proj, _, bob, _ = lazy_team
    hangar_dir = bob / ".hangar"
    with stockroom.StockRoom(bob) as stock:
        first = stock.data["img"][5]
    parent = lazy.reader(hangar_dir)
    assert parent._entries and parent._schemas and parent._store is not None
    assert parent.limit() is None
    with stockroom.StockRoom(proj) as orig:
        want = orig.data["img"][6]
    # Set after the parent looked: a worker forked now must see it.
    run_git("config", "stock.cacheLimit", "1G", cwd=bob)
    result = tmp_path / "child"
    pid = os.fork()
    if pid == 0:  # report through a file, never return into pytest
        code = 1
        try:
            child = lazy.reader(hangar_dir)
            inherited = (
                child is not parent
                and child._entries == parent._entries
                and child._schemas.keys() == parent._schemas.keys()
                and child.limit() == 1 << 30
                and child._store is None  # a remote client never crosses a fork
            )
            with stockroom.StockRoom(bob) as stock:
                same = bool(np.array_equal(stock.data["img"][6], want))
            result.write_text(repr((inherited, same)))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert result.read_text() == "(True, True)"
    assert first.shape == SHAPE


def test_sample_locks_exclude_and_fall_back_to_lock_files_when_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    rd = lazy._Reader(tmp_path / ".hangar")
    held = rd.lock("0=aa")
    assert held is not None
    assert rd.try_lock("0=aa") is None  # another descriptor, same process: excluded
    other = rd.try_lock("0=bb")
    assert other is not None
    lazy.unlock(held)
    again = rd.try_lock("0=aa")
    assert again is not None
    for fd in (other, again):
        lazy.unlock(fd)
    locks = tmp_path / ".hangar" / lazy.LAZY_DIR / "locks"
    if lazy._OFD:
        assert rd._ofd and os.listdir(locks) == ["samples"]  # the kernel took the packed request

    def refused(fd: int, digest: str, wait: bool) -> bool:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(lazy, "_ofd_lock", refused)  # a file system without these locks
    first = rd.lock("0=cc")
    assert first is not None and not rd._ofd
    assert rd.try_lock("0=cc") is None
    lazy.unlock(first)
    assert "0=cc" in os.listdir(locks)


def test_passing_lock_error_is_raised_not_a_switch_to_lock_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only an answer every process gets alike (no such locks here) switches to
    lock files: one process switching alone would stop excluding the others."""
    import errno

    if not lazy._OFD:
        pytest.skip("no open-file-description locks on this system")
    rd = lazy._Reader(tmp_path / ".hangar")

    def busy_kernel(fd: int, digest: str, wait: bool) -> bool:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lazy, "_ofd_lock", busy_kernel)
    with pytest.raises(OSError, match="No locks"):
        rd.lock("0=dd")
    assert rd._ofd and not lazy._HELD_LOCKS  # still byte locks; nothing left open


def test_forked_child_drops_the_sample_locks_it_inherits(tmp_path: Path) -> None:
    """A lock its parent held at the fork is not kept by the child: released by
    the parent, it is free while the child lives on (and the child can take it)."""
    import time

    rd = lazy._Reader(tmp_path / ".hangar")
    fd = rd.lock("0=ee")
    assert fd is not None
    report = tmp_path / "child"
    released = tmp_path / "released"
    pid = os.fork()
    if pid == 0:  # report through a file, never return into pytest
        code = 1
        try:
            inherited = fd in lazy._HELD_LOCKS
            deadline = time.monotonic() + 30
            while not released.exists() and time.monotonic() < deadline:
                time.sleep(0.02)  # the parent releases its lock meanwhile
            mine = lazy._Reader(tmp_path / ".hangar").try_lock("0=ee")
            report.write_text(repr((inherited, mine is not None)))
            code = 0
        finally:
            os._exit(code)
    lazy.unlock(fd)
    released.touch()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report.read_text() == "(False, True)"


def test_read_ahead_releases_locks_held_for_packs_not_started(tmp_path: Path) -> None:
    """What an idle read-ahead helper does after 2 s: the locks it took ahead
    for packs it has not started go, so a pass left open holds up no other."""
    from stockroom import loaders

    rd = lazy._Reader(tmp_path / ".hangar")
    plans = [lazy.PackPlan(0, "p1", [("s", "0=a1"), ("s", "0=a2")], [0, 1])]
    held = {d: rd.lock(d) for d in ("0=a1", "0=a2", "0=b1")}  # 0=b1: a pack under way keeps it
    assert all(fd is not None for fd in held.values())
    loaders._release_unstarted(plans, held)  # type: ignore[arg-type]
    assert list(held) == ["0=b1"]
    for digest in ("0=a1", "0=a2"):
        fd = rd.try_lock(digest)
        assert fd is not None
        lazy.unlock(fd)
    assert rd.try_lock("0=b1") is None
    lazy.unlock(held.pop("0=b1"))  # type: ignore[arg-type]


def test_read_ahead_does_not_fetch_by_range_what_a_coming_pack_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several packs, two downloading at a time and the others queued: the
    read-ahead never fetches by range a sample whose pack is on its way, even
    when it holds none of its locks yet (here: a lock budget of one)."""
    import time

    from stockroom.loaders import StockDataset
    from stockroom.remote import sync

    remote = tmp_path / "stock-remote"
    remote.mkdir()
    proj = tmp_path / "alice"
    one = int(np.prod(SHAPE)) * 4
    monkeypatch.setattr(transfer, "PACK_BYTES", 8 * one)  # about 8 images a pack
    digest = make_big_project(proj, remote)
    sync.push(proj, "origin", [digest])
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=proj)
    run_git("push", "-q", "origin", "HEAD:main", cwd=proj)
    bob = clone(bare, tmp_path / "bob")
    assert stock_cli("pull", "--lazy", cwd=bob).returncode == 0
    monkeypatch.setattr(lazy, "_lock_budget", lambda: (1, 1))
    log = tmp_path / "downloads.log"
    _log_downloads(monkeypatch, log)
    real_pack = lazy._Reader.download_pack

    def slow_pack(self: lazy._Reader, pack: str) -> bytes:
        time.sleep(0.2)  # the window's range fetches would overtake it
        return real_pack(self, pack)

    monkeypatch.setattr(lazy._Reader, "download_pack", slow_pack)
    ds = StockDataset("img", path=bob)
    read = _packs_read(ds)
    assert len(read) >= 4
    assert list(ds.read_ahead(range(N), samples=N, threads=4)) == list(range(N))
    _join_read_ahead()
    downloads = log.read_text().split()
    assert sorted(d.split(":")[1] for d in downloads if d.startswith("pack:")) == sorted(read)
    assert [d for d in downloads if not d.startswith("pack:")] == []  # nothing by range
    with stockroom.StockRoom(proj) as orig:
        for i in range(N):
            np.testing.assert_array_equal(ds[i], orig.data["img"][ds.keys()[i]])
    ds.close()
