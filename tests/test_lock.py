"""Concurrency (SPEC section 2): many readers at once, one writer at a time
with a bounded, configurable wait, and recovery from a writer killed with
SIGKILL. Every other party here is a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import stockroom
from stockroom import StockroomError
from stockroom.lock import TIMEOUT_ENV, WriterLock, default_timeout

HOLDER = """
    import sys, stockroom
    stock = stockroom.StockRoom()
    with stock.optimize():
        stock.tag["holder"] = "staged by the holder"
        print("held", flush=True)
        sys.stdin.readline()  # hold until the test says so (or kills us)
    print("released", flush=True)
    sys.stdin.readline()
"""


class Holder:
    """A process that holds the stock writer until released or killed."""

    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            (sys.executable, "-c", textwrap.dedent(HOLDER)),
            cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != "held":
            raise AssertionError(f"holder did not start: {line!r} {self.proc.stderr.read()}")  # type: ignore[union-attr]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        self.proc.stdin.write("\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        assert self.proc.stdout.readline().strip() == "released"  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def holder(stock_repo: Path) -> Iterator[Holder]:
    with stockroom.StockRoom() as stock:
        stock.tag["committed"] = "before the holder"
        stock.commit("committed before")
    running = Holder(stock_repo)
    try:
        yield running
    finally:
        running.stop()


def test_second_writer_waits_the_timeout_then_names_the_holder(holder: Holder) -> None:
    with stockroom.StockRoom(lock_timeout=1.0) as stock:
        start = time.monotonic()
        with pytest.raises(StockroomError) as info:
            stock.tag["mine"] = 1
        waited = time.monotonic() - start
        assert 1.0 <= waited < 10
        message = str(info.value)
        assert f"pid {holder.pid}" in message and "waited 1s" in message
        # Issue 14.14: a `python -c` holder is shown as such, not as "(-c)".
        assert "(-c)" not in message
        assert f"({os.path.basename(sys.executable)} -c import sys, stockroom stock = " in message
        assert "lock_timeout" in message and TIMEOUT_ENV in message
        # Reads are not blocked by the writer, and see committed data only.
        assert dict(stock.tag) == {"committed": "before the holder"}
        # A failed write stored nothing; commit waits for the writer too.
        with pytest.raises(StockroomError, match=f"pid {holder.pid}"):
            stock.commit("blocked")


def test_timeout_from_the_environment(holder: Holder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "0.3")
    with stockroom.StockRoom() as stock:
        start = time.monotonic()
        with pytest.raises(StockroomError, match=f"pid {holder.pid}.*waited 0.3s"):
            stock.tag["mine"] = 1
        assert 0.3 <= time.monotonic() - start < 8
    # An explicit argument wins over the environment.
    with stockroom.StockRoom(lock_timeout=0) as stock:
        with pytest.raises(StockroomError, match="waited 0s"):
            stock.tag["mine"] = 1


@pytest.mark.parametrize("raw", ["soon", ""])
def test_bad_timeout_variable_is_a_clear_error(stock_repo: Path, monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, raw)
    with pytest.raises(StockroomError, match=f"{TIMEOUT_ENV}=.*not a number of seconds"):
        stockroom.StockRoom()


def test_default_timeout_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert 0 < default_timeout() <= 60
    monkeypatch.setenv(TIMEOUT_ENV, "-5")
    assert default_timeout() == 0


def test_writer_that_waits_gets_the_lock_when_released(holder: Holder) -> None:
    with stockroom.StockRoom(lock_timeout=60) as stock:
        import threading

        timer = threading.Timer(1.0, holder.release)
        timer.start()
        start = time.monotonic()
        stock.tag["mine"] = 1  # blocks until the holder leaves optimize()
        assert time.monotonic() - start >= 0.9
        timer.join()
        # The holder's staged write and ours share the staging area.
        digest = stock.commit("both")
        assert dict(stock.tag) == {"committed": "before the holder", "holder": "staged by the holder", "mine": 1}
        assert stock.head == digest


READER = """
    import sys, stockroom
    with stockroom.StockRoom() as stock:
        assert stock.tag["committed"] == "before the holder"
        print("ready", flush=True)
        sys.stdin.readline()  # start together
        for _ in range(100):
            assert stock.tag["committed"] == "before the holder"
            assert stock.data["x"][3].tolist() == [3, 3]
            assert "holder" not in stock.tag
    print("read 100 times")
"""


def test_several_readers_at_once_while_a_writer_holds(stock_repo: Path) -> None:
    import numpy as np

    with stockroom.StockRoom() as stock:
        stock.tag["committed"] = "before the holder"
        stock.data["x"].update({i: np.full(2, i) for i in range(5)})
        stock.commit("data for the readers")
    env = {**os.environ, TIMEOUT_ENV: "0"}  # a reader that waited for the writer would fail
    readers = [
        subprocess.Popen(
            (sys.executable, "-c", textwrap.dedent(READER)), cwd=stock_repo, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(3)
    ]
    holder = Holder(stock_repo)
    try:
        for reader in readers:
            assert reader.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
        for reader in readers:
            reader.stdin.write("go\n")  # type: ignore[union-attr]
            reader.stdin.flush()  # type: ignore[union-attr]
        for reader in readers:
            out, err = reader.communicate(timeout=120)
            assert reader.returncode == 0, err
            assert out.strip() == "read 100 times"
    finally:
        holder.stop()
        for reader in readers:
            if reader.poll() is None:
                reader.kill()


def test_sigkilled_writer_leaves_a_lock_the_next_writer_releases(holder: Holder, stock_repo: Path) -> None:
    from hangar.records import heads

    os.kill(holder.pid, signal.SIGKILL)
    holder.proc.wait(timeout=30)
    with stockroom.StockRoom(lock_timeout=5) as stock:
        # Hangar's own writer lock is still recorded as held by the dead process
        # (hangar's writer_lock_held() answers "is it free?").
        assert not heads.writer_lock_held(stock._store.repo._env.branchenv)
        assert f'"pid": {holder.pid}' in (stock_repo / ".hangar" / "stockroom-writer.lock").read_text()
        start = time.monotonic()
        stock.tag["after"] = "the crash"
        assert time.monotonic() - start < 5
        assert dict(stock.tag)["committed"] == "before the holder"
        digest = stock.commit("after the crash")
        assert stock.head == digest
        # The dead writer's write was still inside its open optimize() block (its
        # column held open, as Hangar's `with column:`, saved at the block's end):
        # it was never staged, so it is not in this commit; nothing else is lost.
        assert dict(stock.tag) == {"committed": "before the holder", "after": "the crash"}
        assert heads.writer_lock_held(stock._store.repo._env.branchenv)  # free again
        stock._store.repo.verify_repo_integrity()


def test_lock_released_on_error_and_reentrant_within_an_object(stock_repo: Path) -> None:
    lock = WriterLock(stock_repo / ".hangar", timeout=0)
    other = WriterLock(stock_repo / ".hangar", timeout=0)
    lock.acquire()
    lock.acquire()  # the same object: no wait, no error
    assert lock.held
    with pytest.raises(StockroomError, match=f"pid {os.getpid()}"):
        other.acquire()  # a second holder, even in this process, waits
    lock.release()
    assert not lock.held
    other.acquire()
    other.release()
    other.release()  # releasing twice is harmless


CONCURRENT_WRITER = """
    import sys, stockroom
    name = sys.argv[1]
    with stockroom.StockRoom(lock_timeout=60) as stock:
        for i in range(15):
            stock.tag[f"{name}-{i}"] = i
    print("done")
"""


def test_concurrent_writers_never_corrupt(stock_repo: Path) -> None:
    writers = [
        subprocess.Popen(
            (sys.executable, "-c", textwrap.dedent(CONCURRENT_WRITER), name), cwd=stock_repo,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name in ("a", "b")
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=180)
        assert writer.returncode == 0, err
    with stockroom.StockRoom() as stock:
        stock.commit("both writers")
        assert dict(stock.tag) == {f"{n}-{i}": i for n in ("a", "b") for i in range(15)}
        stock._store.repo.verify_repo_integrity()
