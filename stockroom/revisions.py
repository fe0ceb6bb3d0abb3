"""Which stock commit a git revision records: ``head.stock`` read out of git's history.

Light (no numpy or hangar): ``stock.at()``, ``stock diff`` and ``stock log
--tags`` resolve revisions here before they open anything in ``.hangar``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from stockroom.errors import StockroomError
from stockroom.git import git
from stockroom.headfile import HEAD_FILE, parse_head

# What a revision's head.stock says, besides a digest.
NO_HEAD = "no head.stock"  # the commit predates `stock init`
EMPTY = "empty"  # head.stock is there, before the first stock commit
UNREADABLE = "unreadable"  # not a digest (conflict markers, garbage)


@dataclass(frozen=True)
class StockRef:
    """The stock commit one git commit records."""

    commit: str  # full git sha
    digest: str  # '' unless the commit records a stock commit
    state: str = ""  # '' when digest is set, else NO_HEAD, EMPTY or UNREADABLE
    pruned: str = ""  # RUN@STEP of a pruned checkpoint: why its run states are gone


def resolve_commit(root: Path, rev: str) -> str:
    """The full sha of the git commit ``rev`` names (a branch, tag, sha, ``HEAD~2``)."""
    if not rev or rev.startswith("-"):
        raise StockroomError(f"{rev!r} is not a git revision; name a branch, tag or commit")
    try:
        return git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", cwd=root)
    except StockroomError:
        raise StockroomError(
            f"unknown git revision {rev!r}; name a branch, tag or commit (see `git log`)"
        ) from None


def stock_refs(root: Path, commits: list[str]) -> list[StockRef]:
    """The stock commit each git commit records, read with one ``git cat-file --batch``."""
    if not commits:
        return []
    request = "".join(f"{c}:{HEAD_FILE}\n" for c in commits).encode()
    out = subprocess.run(
        ("git", "cat-file", "--batch"), cwd=root, input=request, capture_output=True, check=True
    ).stdout
    refs: list[StockRef] = []
    pos = 0
    for commit in commits:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if header[-1] == b"missing" or len(header) < 3:
            refs.append(StockRef(commit, "", NO_HEAD))
            continue
        size = int(header[2])
        blob = out[pos : pos + size]
        pos += size + 1
        try:
            digest = parse_head(blob)
        except StockroomError:
            refs.append(StockRef(commit, "", UNREADABLE))
            continue
        refs.append(StockRef(commit, digest, "" if digest else EMPTY))
    return refs


def stock_ref(root: Path, rev: str) -> StockRef:
    """The stock commit the git revision ``rev`` records (or the checkpoint ``RUN@STEP`` names)."""
    from stockroom.runs import records

    ref = records.resolve(root, rev)
    if ref is not None:  # a run checkpoint: no git commit need record it (SPEC 9)
        why = records.pruned_message(ref.run, ref.step) if ref.pruned else ""
        return StockRef(f"{ref.run}@{ref.step}", ref.commit, "", why)
    return stock_refs(root, [resolve_commit(root, rev)])[0]


def explain(rev: str, ref: StockRef) -> str:
    """Why the revision ``rev`` has no stock state to read (for error messages)."""
    if ref.state == NO_HEAD:
        return (
            f"git revision {rev!r} ({ref.commit[:10]}) has no {HEAD_FILE}: it predates `stock init`; "
            f"name a later revision"
        )
    if ref.state == EMPTY:
        return (
            f"git revision {rev!r} ({ref.commit[:10]}) has an empty {HEAD_FILE}: no stock commit "
            f"was made before it; name a later revision"
        )
    return f"git revision {rev!r} ({ref.commit[:10]}) has an unreadable {HEAD_FILE}; name another revision"
