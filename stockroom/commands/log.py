from __future__ import annotations

import subprocess

import click

from stockroom.errors import StockroomError
from stockroom.git import git, work_tree_root
from stockroom.headfile import HEAD_FILE, parse_head


def _digests(root: str, commits: list[str]) -> list[str]:
    """The head.stock each commit records, read with one `git cat-file --batch`."""
    request = "".join(f"{c}:{HEAD_FILE}\n" for c in commits).encode()
    out = subprocess.run(
        ("git", "cat-file", "--batch"), cwd=root, input=request, capture_output=True, check=True
    ).stdout
    result: list[str] = []
    pos = 0
    for _ in commits:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if header[-1] == b"missing":
            result.append("(no head.stock)")
            continue
        size = int(header[2])
        blob = out[pos : pos + size]
        pos += size + 1
        try:
            result.append(parse_head(blob) or "(empty)")
        except StockroomError:
            result.append("(unreadable head.stock)")
    return result


def log(max_count: int) -> int:
    # Only git's history is read: no store needed (it works without head.stock or .hangar too).
    root = work_tree_root()
    try:
        lines = git("log", f"--max-count={max_count}", "--format=%H%x09%h%x09%s", cwd=root)
    except StockroomError:
        click.echo("no git commits yet")
        return 0
    rows = [line.split("\t", 2) for line in lines.splitlines() if line]
    for (_, short, subject), digest in zip(rows, _digests(str(root), [r[0] for r in rows]), strict=True):
        click.echo(f"{short}  {digest:<44}  {subject}")
    return 0
