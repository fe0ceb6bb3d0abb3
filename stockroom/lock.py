"""The stock writer lock: one writer per repository, across processes.

Hangar's own writer lock is a record in its database, so a writer that dies
(``kill -9``, power loss) leaves it set forever. stockroom puts an OS file
lock (``flock``) in front of it: the kernel drops a ``flock`` when its
process dies, so whoever holds ours is alive, and a Hangar lock found set
while we hold ours was left by a dead writer and can be released safely.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from stockroom.errors import StockroomError

LOCK_FILE = "stockroom-writer.lock"
DEFAULT_TIMEOUT = 10.0
TIMEOUT_ENV = "STOCKROOM_LOCK_TIMEOUT"
_POLL = 0.05
# Looks at an empty holder record before calling the holder unknown (0.2 s).
_HOLDER_TRIES = 10


def default_timeout() -> float:
    """Seconds a writer waits for the lock: ``STOCKROOM_LOCK_TIMEOUT`` or 10."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise StockroomError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds; fix or unset it") from None
    return max(value, 0.0)


class WriterLock:
    """An exclusive, process-wide ``flock`` on ``.hangar/stockroom-writer.lock``."""

    def __init__(self, hangar_dir: Path, timeout: float | None = None) -> None:
        self.path = hangar_dir / LOCK_FILE
        self.timeout = default_timeout() if timeout is None else timeout
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> str:
        """Who holds the lock, as the holder recorded it."""
        info = self._holder_info()
        if info is None:
            return "another process"
        cmd = info.get("cmd", "")
        return f"pid {info['pid']} on {info.get('host', '?')} ({cmd}) since {info.get('since', '?')}"

    def _holder_info(self) -> dict[str, object] | None:
        # A new holder writes its record just after taking the flock, and the
        # previous one emptied the file on release: in that gap the file is
        # empty, so look again briefly before calling the holder unknown.
        for _ in range(_HOLDER_TRIES):
            try:
                info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            except (OSError, ValueError):
                info = None
            if isinstance(info, dict) and "pid" in info:
                return info
            time.sleep(0.02)
        return None

    def acquire(self) -> None:
        """Take the lock, waiting at most ``timeout`` seconds."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StockroomError(
                        f"the stock writer is held by {self.holder()}; waited "
                        f"{self.timeout:g}s. Let it finish or close it, or wait longer "
                        f"with StockRoom(lock_timeout=...) or {TIMEOUT_ENV}"
                    ) from None
                time.sleep(_POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_record(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing drops the flock


_WHO: tuple[int, str] = (0, "")


def _holder_record() -> bytes:
    """What a new holder writes into the lock file: who it is, since when.

    Who (pid, host, command line) is built once per process (a staged tag
    write takes the lock each time); a forked child builds its own."""
    global _WHO
    pid = os.getpid()
    if _WHO[0] != pid:
        who = json.dumps({"pid": pid, "host": socket.gethostname(), "cmd": _command_line()})
        _WHO = (pid, who[:-1])  # without the closing brace: "since" follows
    since = json.dumps(time.strftime("%Y-%m-%d %H:%M:%S"))
    return f'{_WHO[1]}, "since": {since}}}'.encode()


def _command_line() -> str:
    """This process's command line, as a person would recognise it in a message.

    ``sys.argv`` of ``python -c CODE`` is just ``['-c']``: the interpreter's
    own argv (``sys.orig_argv``) says which Python ran what. Code given with
    ``-c`` is shown on one line and shortened.
    """
    argv = list(getattr(sys, "orig_argv", None) or sys.argv)
    if argv:
        argv[0] = os.path.basename(argv[0])
    shown = []
    for arg in argv:
        arg = " ".join(arg.split())  # multi-line -c code on one line
        shown.append(arg if len(arg) <= 60 else arg[:57] + "...")
    return " ".join(shown)[:200]
