"""The commit journal: what a stock commit leaves behind when it is cut short.

A stock commit is two steps that no file system can make one: the Hangar
commit (in ``.hangar/``), then ``head.stock`` pointing at it. A process
killed between the two leaves a Hangar commit that ``head.stock`` does not
name. So ``Store.commit`` first writes ``.hangar/stockroom-commit.json``
(the commit it builds on, and the Hangar branch it goes to), and removes it
once ``head.stock`` names the new commit. A journal found later, when no
writer holds the lock, belongs to a commit that was interrupted: the store
checks whether the Hangar commit happened (then ``stock repair`` points
``head.stock`` at it) or not (then the journal is stale and is dropped).

Light on purpose (no numpy or hangar): the git hooks and ``stock status``
may look at it cheaply.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from stockroom.headfile import atomic_write

JOURNAL_FILE = "stockroom-commit.json"


@dataclass(frozen=True)
class Journal:
    """A stock commit in progress, or interrupted."""

    base: str  # the commit head.stock named when the commit began ('' for none)
    branch: str  # the Hangar branch the new commit goes to
    pid: int
    since: str


def begin(hangar_dir: Path, base: str, branch: str) -> None:
    """Record, before the Hangar commit, that a commit on ``base`` starts."""
    record = {
        "base": base,
        "branch": branch,
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    atomic_write(hangar_dir / JOURNAL_FILE, (json.dumps(record) + "\n").encode("utf-8"))


def read(hangar_dir: Path) -> Journal | None:
    """The journal in ``hangar_dir``; None when there is none.

    A journal that cannot be parsed (it is written atomically, so only a
    hand edit does that) comes back with an empty branch, which names no
    commit: the store treats it as stale.
    """
    try:
        raw = (hangar_dir / JOURNAL_FILE).read_bytes()
    except FileNotFoundError:
        return None
    try:
        info = json.loads(raw.decode("utf-8"))
        return Journal(str(info["base"]), str(info["branch"]), int(info["pid"]), str(info["since"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return Journal(base="", branch="", pid=0, since="?")


def exists(hangar_dir: Path | str) -> bool:
    """Whether a journal is there (one ``stat``: for fast paths)."""
    return os.path.exists(os.path.join(hangar_dir, JOURNAL_FILE))


def clear(hangar_dir: Path) -> None:
    """Remove the journal: the commit finished, or never reached Hangar."""
    with contextlib.suppress(FileNotFoundError):
        (hangar_dir / JOURNAL_FILE).unlink()
