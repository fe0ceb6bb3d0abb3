"""The staged tag log (stockroom.taglog): tag writes outside optimize() are
logged beside Hangar and folded into its staging area before anything else
looks at it. Real git repositories, real Hangar stores, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom import StockroomError, taglog
from stockroom.headfile import HANGAR_DIR, read_head
from tests.conftest import run_git


def hangar(root: Path) -> Path:
    return root / HANGAR_DIR


def logged_keys(root: Path) -> list[str]:
    return [key for _, ops in taglog.records(hangar(root)) for key, _ in ops]


def stock_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockroom", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_a_tag_written_outside_optimize_is_logged_and_read_back(stock: stockroom.StockRoom) -> None:
    stock.tag["lr"] = 0.25
    assert logged_keys(stock.path) == ["lr"]
    assert stock.tag["lr"] == 0.25 and "lr" in stock.tag and list(stock.tag) == ["lr"] and len(stock.tag) == 1
    # Other processes (other StockRoom objects) see committed tags only.
    with stockroom.StockRoom(stock.path) as other:
        assert "lr" not in other.tag
    digest = stock.commit("lr")
    assert not taglog.exists(hangar(stock.path))
    with stockroom.StockRoom(stock.path) as fresh:
        assert fresh.tag["lr"] == 0.25
    assert read_head(stock.path) == digest


def test_logged_and_hangar_staged_tags_interleave_like_one_mapping(stock: stockroom.StockRoom) -> None:
    """Whatever path each write takes (log, optimize(), a delete, an update),
    reads and the commit see them in order, like a dict."""
    want: dict[str, object] = {}
    stock.tag["seed"] = 1
    want["seed"] = 1
    stock.commit("base")

    def check() -> None:
        assert dict(stock.tag) == want
        assert len(stock.tag) == len(want)
        for key, value in want.items():
            assert stock.tag[key] == value and key in stock.tag

    stock.tag["lr"] = 0.1  # logged
    want["lr"] = 0.1
    check()
    with stock.optimize():
        stock.tag["lr"] = 0.2  # opens the writer, which folds the log first
        assert not taglog.exists(hangar(stock.path))
        stock.tag["epochs"] = 3
        stock.data["x"][0] = np.arange(3)
        want.update(lr=0.2, epochs=3)
        check()
    stock.tag.update(lr=0.3, name="run")  # logged, over Hangar's staged lr
    want.update(lr=0.3, name="run")
    check()
    del stock.tag["epochs"]  # folds the log, deletes in Hangar
    del want["epochs"]
    check()
    stock.tag["epochs"] = 4  # logged again: newer than Hangar's delete
    want["epochs"] = 4
    check()
    with pytest.raises(KeyError):
        del stock.tag["missing"]
    stock.commit("all")
    with stockroom.StockRoom(stock.path) as fresh:
        assert dict(fresh.tag) == want


def test_status_and_pre_commit_see_logged_tags(stock_repo: Path) -> None:
    from stockroom.install import install

    install(stock_repo)
    run_git("add", "-A", cwd=stock_repo)
    run_git("commit", "-q", "--no-verify", "-m", "hooks", cwd=stock_repo)
    with stockroom.StockRoom(stock_repo) as stock:
        stock.tag["lr"] = 3
        assert taglog.exists(hangar(stock_repo))
    (stock_repo / "train.py").write_text("print(1)\n")
    run_git("add", "train.py", cwd=stock_repo)
    refused = run_git("commit", "-m", "code", cwd=stock_repo, check=False)
    assert (
        refused.returncode == 1 and "stock commit -m" in refused.stderr and "tags: 1 added" in refused.stderr
    )
    status = stock_cli("status", cwd=stock_repo)
    assert status.returncode == 0 and "tags: 1 added" in status.stdout, status.stdout + status.stderr
    assert stock_cli("commit", "-m", "lr", cwd=stock_repo).returncode == 0
    run_git("commit", "-q", "-m", "code", cwd=stock_repo)
    with stockroom.StockRoom(stock_repo) as stock:
        assert stock.tag["lr"] == 3


def test_a_torn_record_loses_only_itself(stock: stockroom.StockRoom) -> None:
    stock.tag["a"] = 1
    with open(taglog.log_path(hangar(stock.path)), "ab") as f:
        f.write(b'\n1234abcd ["x",[["b","i:2"')  # a crash in the middle of an append
    stock.tag["c"] = 3
    assert logged_keys(stock.path) == ["a", "c"]
    assert dict(stock.tag) == {"a": 1, "c": 3}
    stock.commit("torn")
    with stockroom.StockRoom(stock.path) as fresh:
        assert dict(fresh.tag) == {"a": 1, "c": 3}


def test_logged_tags_survive_a_killed_process(stock_repo: Path) -> None:
    """kill -9 after a logged write: the next writer folds it in; the commit has it."""
    code = textwrap.dedent(
        """
        import os, signal, stockroom
        stock = stockroom.StockRoom()
        stock.tag["killed"] = "yes"
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=stock_repo, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert taglog.exists(hangar(stock_repo))
    with stockroom.StockRoom(stock_repo) as stock:
        assert stock._store.staged_changes() == ["tags: 1 added"]
        stock.commit("after the crash")
        assert stock.tag["killed"] == "yes"


def test_a_moved_head_stock_hides_logged_tags_and_refuses_writes_losing_nothing(stock_repo: Path) -> None:
    with stockroom.StockRoom(stock_repo) as stock:
        stock.tag["lr"] = 1
        first = stock.commit("one")
        run_git("commit", "-q", "-am", "one", cwd=stock_repo)
        run_git("switch", "-q", "-c", "other", cwd=stock_repo)
        stock.tag["lr"] = 2
        second = stock.commit("two")
        run_git("commit", "-q", "-am", "two", cwd=stock_repo)
        stock.tag["wip"] = 7  # logged on the second commit
        run_git("switch", "-q", "main", cwd=stock_repo)
        assert read_head(stock_repo) == first
        assert stock.tag["lr"] == 1 and "wip" not in stock.tag  # reads follow head.stock
        with pytest.raises(StockroomError) as err:
            stock.tag["more"] = 1
        assert second in str(err.value) and first in str(err.value) and "stock reset" in str(err.value)
        run_git("switch", "-q", "other", cwd=stock_repo)
        assert stock.tag["wip"] == 7 and stock.tag["lr"] == 2
        stock.commit("wip")
    with stockroom.StockRoom(stock_repo) as fresh:
        assert dict(fresh.tag) == {"lr": 2, "wip": 7}


def test_reset_drops_logged_tags(stock_repo: Path) -> None:
    with stockroom.StockRoom(stock_repo) as stock:
        stock.tag["keep"] = 1
        stock.commit("keep")
        stock.tag["drop"] = 2
    proc = stock_cli("reset", cwd=stock_repo)
    assert proc.returncode == 0, proc.stderr
    assert not taglog.exists(hangar(stock_repo))
    with stockroom.StockRoom(stock_repo) as stock:
        assert dict(stock.tag) == {"keep": 1}
        with pytest.raises(StockroomError, match="nothing to commit"):
            stock.commit("nothing")


def test_a_large_log_is_folded_at_once(stock: stockroom.StockRoom) -> None:
    text = "x" * (taglog.FOLD_AT // 3)
    for i in range(4):
        stock.tag[f"t{i}"] = text
    assert os.path.getsize(taglog.log_path(hangar(stock.path))) <= taglog.FOLD_AT
    assert dict(stock.tag) == {f"t{i}": text for i in range(4)}
    stock.commit("big")
    with stockroom.StockRoom(stock.path) as fresh:
        assert fresh.tag["t3"] == text


def test_a_logged_write_waits_for_the_writer(stock: stockroom.StockRoom) -> None:
    with stockroom.StockRoom(stock.path) as holder, holder.optimize():
        holder.data["x"][0] = np.arange(2)
        with stockroom.StockRoom(stock.path, lock_timeout=0.2) as mine:
            with pytest.raises(StockroomError, match="writer is held"):
                mine.tag["lr"] = 1
    assert not taglog.exists(hangar(stock.path))


def test_a_cache_that_may_be_stale_is_not_trusted(stock: stockroom.StockRoom) -> None:
    """The log is emptied and refilled in place: refilled to the same size
    within one timestamp tick, its stat would not change. A fold always reads
    it whole, and a read does while its stat is that recent."""
    stock.tag["a"] = 1
    path = taglog.log_path(hangar(stock.path))
    st = os.stat(path)
    key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    # What a process that parsed the log before another one refilled it holds:
    taglog._CACHE[path] = (key, [("stale", [("gone", "i:1")])])
    assert [k for _, ops in taglog.records(hangar(stock.path), fresh=True) for k, _ in ops] == ["a"]
    taglog._CACHE[path] = (key, [("stale", [("gone", "i:1")])])
    assert [k for _, ops in taglog.records(hangar(stock.path)) for k, _ in ops] == ["a"]  # written just now
    assert dict(stock.tag) == {"a": 1}


def test_a_write_the_disk_cannot_take_is_an_error_and_stages_nothing(stock_repo: Path) -> None:
    """A short append (disk full; here a file-size limit) is taken back and raised."""
    code = textwrap.dedent(
        """
        import resource, signal, stockroom
        from stockroom import taglog
        stock = stockroom.StockRoom()
        stock.tag["small"] = 1
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            stock.tag["big"] = "x" * 20_000
        except OSError as exc:
            print("refused:", exc)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print([k for _, ops in taglog.records(".hangar") for k, _ in ops], sorted(stock.tag))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=stock_repo, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused: could not append a staged tag" in proc.stdout and "disk full" in proc.stdout
    assert "['small'] ['small']" in proc.stdout
    with stockroom.StockRoom(stock_repo) as stock:
        assert stock._store.staged_changes() == ["tags: 1 added"]
