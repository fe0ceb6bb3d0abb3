"""stockroom.progress: bars on a terminal (a real pseudo-terminal here), silence elsewhere."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from stockroom import progress


@pytest.fixture(autouse=True)
def no_progress_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)


def open_pty() -> tuple[int, int]:
    """A pseudo-terminal 100 columns wide (a fresh one reports 0 columns)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    return master, slave


@pytest.fixture
def terminal() -> Iterator[tuple[IO[str], int]]:
    """A text stream on the slave side of a pseudo-terminal, and the master fd to read it."""
    master, slave = open_pty()
    stream = os.fdopen(slave, "w", buffering=1, encoding="utf-8")
    try:
        yield stream, master
    finally:
        stream.close()
        os.close(master)


def drain(master: int) -> str:
    """Everything written to the terminal so far."""
    chunks = []
    # poll, not select: select() cannot watch descriptors above 1024.
    poller = select.poll()
    poller.register(master, select.POLLIN)
    while poller.poll(200):
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def test_enabled_only_on_a_terminal(terminal: tuple[IO[str], int]) -> None:
    stream, _ = terminal
    assert progress.enabled(stream)
    assert not progress.enabled(io.StringIO())
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as pipe:
        assert not progress.enabled(pipe)


def test_closed_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    stream.close()
    assert not progress.enabled(stream)


def test_environment_setting_overrides(monkeypatch: pytest.MonkeyPatch, terminal: tuple[IO[str], int]) -> None:
    stream, _ = terminal
    monkeypatch.setenv(progress.ENV, "0")
    assert not progress.enabled(stream)
    monkeypatch.setenv(progress.ENV, "1")
    assert progress.enabled(io.StringIO())


def test_track_is_silent_and_free_off_a_terminal() -> None:
    out = io.StringIO()
    items = [1, 2, 3]
    tracked = progress.track(items, desc="loading", file=out, delay=0)
    assert tracked is items  # no wrapper: nothing to pay per item
    assert list(tracked) == items
    assert out.getvalue() == ""


def test_track_shows_a_bar_on_a_terminal(terminal: tuple[IO[str], int]) -> None:
    stream, master = terminal
    assert list(progress.track(range(250), desc="importing", unit="sample", file=stream, delay=0)) == list(range(250))
    shown = drain(master)
    assert "importing" in shown
    assert "250/250" in shown
    assert "sample" in shown


def test_track_waits_for_its_delay(terminal: tuple[IO[str], int]) -> None:
    """A quick operation shows nothing even on a terminal."""
    stream, master = terminal
    assert sum(progress.track(range(10), desc="quick", file=stream, delay=60)) == 45
    assert "quick" not in drain(master)


def test_bar_hook_counts_on_a_terminal(terminal: tuple[IO[str], int]) -> None:
    stream, master = terminal
    with progress.bar(3 * 2**20, "saving model", unit="B", unit_scale=True, file=stream, delay=0) as bar:
        assert bar.shown
        for _ in range(3):
            bar.update(2**20)
    shown = drain(master)
    assert "saving model" in shown
    assert "3.15M/3.15M" in shown  # 3 MiB, in tqdm's decimal units


def test_bar_hook_is_a_no_op_off_a_terminal() -> None:
    out = io.StringIO()
    with progress.bar(10, "loading model", file=out, delay=0) as bar:
        assert not bar.shown
        bar.update(5)
    bar.close()  # twice is fine
    assert out.getvalue() == ""


BULK_IMPORT = """
    import numpy as np
    import stockroom
    from stockroom import progress
    progress.DELAY_S = 0  # show the bar at once: the import is short here
    with stockroom.StockRoom() as stock:
        stock.data["img"].update({i: np.full((4, 4), i % 256, dtype=np.uint8) for i in range(3000)})
        assert stock.data["img"][2999][0, 0] == 2999 % 256
    print("done")
"""


def run_bulk_import(stock_repo: Path, stderr: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BULK_IMPORT)],
        cwd=stock_repo, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=120,
    )


def on_terminal(run: Callable[[int], subprocess.CompletedProcess[str]]) -> tuple[subprocess.CompletedProcess[str], str]:
    """``run(stderr_fd)`` with stderr on a pseudo-terminal; returns what it showed there."""
    master, slave = open_pty()
    try:
        proc = run(slave)
        os.close(slave)
        slave = -1
        shown = drain(master)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return proc, shown


def test_bulk_import_shows_progress_on_a_terminal(stock_repo: Path) -> None:
    proc, shown = on_terminal(lambda fd: run_bulk_import(stock_repo, fd))
    assert proc.returncode == 0 and proc.stdout.strip() == "done", shown
    assert "writing 'img'" in shown
    assert "3000/3000" in shown


def test_bulk_import_is_silent_when_not_a_terminal(stock_repo: Path) -> None:
    proc = run_bulk_import(stock_repo, subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    assert proc.stderr == ""


MODEL_SAVE_LOAD = """
    import torch
    import stockroom
    from stockroom import progress
    progress.DELAY_S = 0
    with stockroom.StockRoom() as stock:
        stock.model["net"] = {"w": torch.ones(1024, 1024), "b": torch.zeros(7)}
        assert torch.equal(stock.model["net"]["w"], torch.ones(1024, 1024))
    print("done")
"""


def test_model_save_and_load_show_progress_on_a_terminal(stock_repo: Path) -> None:
    proc, shown = on_terminal(
        lambda fd: subprocess.run(
            [sys.executable, "-c", textwrap.dedent(MODEL_SAVE_LOAD)],
            cwd=stock_repo, stdout=subprocess.PIPE, stderr=fd, text=True, timeout=120,
        )
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "done", shown
    assert "saving model 'net'" in shown
    assert "loading model 'net'" in shown
