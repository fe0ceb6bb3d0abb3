from __future__ import annotations

import click

from stockroom.errors import StockroomError
from stockroom.git import git, work_tree_root
from stockroom.revisions import EMPTY, NO_HEAD, StockRef, stock_refs

_SHOWN = {NO_HEAD: "(no head.stock)", EMPTY: "(empty)"}


def _shown(ref: StockRef) -> str:
    return ref.digest or _SHOWN.get(ref.state, "(unreadable head.stock)")


def log(max_count: int) -> int:
    # Only git's history is read: no store needed (it works without head.stock or .hangar too).
    root = work_tree_root()
    try:
        lines = git("log", f"--max-count={max_count}", "--format=%H%x09%h%x09%s", cwd=root)
    except StockroomError:
        click.echo("no git commits yet")
        return 0
    rows = [line.split("\t", 2) for line in lines.splitlines() if line]
    refs = stock_refs(root, [r[0] for r in rows])
    for (_, short, subject), ref in zip(rows, refs, strict=True):
        click.echo(f"{short}  {_shown(ref):<44}  {subject}")
    return 0
