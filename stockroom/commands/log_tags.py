"""``stock log --tags [KEY,...]``: git commits as an experiment table, one column per tag."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from stockroom import revisions
from stockroom.core import find_root
from stockroom.errors import StockroomError
from stockroom.git import git

# What the stock column shows for a commit without readable stock.
NOT_HERE = "(not here)"
STATES = {revisions.NO_HEAD: "(no stock)", revisions.EMPTY: "(empty)", revisions.UNREADABLE: "(unreadable)"}
# --plot: the image is PLOT_SIZE pixels (width, height) at PLOT_DPI.
PLOT_SIZE = (800, 450)
PLOT_DPI = 100


@dataclass
class Row:
    commit: str
    date: str
    subject: str
    branch: str = ""
    digest: str = ""
    state: str = ""  # '' when the tags were read; else what the stock column says
    tags: dict[str, Any] = field(default_factory=dict)


def _commits(root: Path, max_count: int, branches: bool) -> list[Row]:
    fields = "%H%x09%ad%x09%s"
    if branches:
        out = git(
            "for-each-ref",
            "--sort=-committerdate",
            "--format=%(objectname)%09%(committerdate:short)%09%(refname:short)%09%(subject)",
            "refs/heads",
            cwd=root,
        )
        rows = []
        for line in out.splitlines():
            sha, date, branch, subject = (line.split("\t", 3) + ["", ""])[:4]
            rows.append(Row(sha, date, subject, branch=branch))
        return rows
    try:
        out = git("log", f"--max-count={max_count}", "--date=short", f"--format={fields}", cwd=root)
    except StockroomError:
        return []  # no git commits yet
    rows = []
    for line in out.splitlines():
        if line:
            sha, date, subject = (line.split("\t", 2) + ["", ""])[:3]
            rows.append(Row(sha, date, subject))
    return rows


def _read_tags(root: Path, rows: list[Row]) -> None:
    """Fill in each row's stock digest and tags: one read per distinct tag value."""
    from stockroom.storages import tag as tag_storage
    from stockroom.store import Store
    from stockroom.store.view import DigestReader, commit_records

    refs = revisions.stock_refs(root, [row.commit for row in rows])
    store = Store(root)
    reader = DigestReader(store, text_cache=True)
    cache: dict[str, tuple[str, dict[str, Any]]] = {}
    try:
        for row, ref in zip(rows, refs, strict=True):
            row.digest = ref.digest
            if not ref.digest:
                row.state = STATES[ref.state]
                continue
            if ref.digest not in cache:
                if not store.has_commit(ref.digest):
                    cache[ref.digest] = (NOT_HERE, {})
                else:
                    column = commit_records(store, ref.digest).get(tag_storage.COLUMN)
                    tags: dict[str, Any] = {}
                    if column is not None:
                        for hkey, digest in sorted(column.samples.items(), key=lambda kv: str(kv[0])):
                            raw = reader.read(column.schema, digest)
                            tags[_decode_key(str(hkey))] = tag_storage.decode_value(raw)
                    cache[ref.digest] = ("", tags)
            row.state, row.tags = cache[ref.digest]
    finally:
        reader.close()
        store.close()


def _decode_key(hkey: str) -> str:
    from stockroom.keys import decode_text

    return decode_text(hkey)


def _sort_value(value: Any) -> tuple[int, Any]:
    if value is None:
        return (3, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (0, value) if not (isinstance(value, float) and math.isnan(value)) else (2, 0)
    return (2, str(value))


def _sorted(rows: list[Row], sort: str) -> list[Row]:
    """Rows sorted by tag ``sort`` (``-KEY``: descending); rows without it stay last."""
    descending = sort.startswith("-")
    key = sort[1:] if descending else sort
    present = [r for r in rows if key in r.tags]
    absent = [r for r in rows if key not in r.tags]
    present.sort(key=lambda r: _sort_value(r.tags[key]), reverse=descending)
    return present + absent


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return repr(value) if isinstance(value, float) else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def log_tags(
    max_count: int, keys: list[str] | None, branches: bool, sort: str | None, fmt: str, plot: str | None
) -> int:
    """Print the table of commits (or branch tips) with their tags as columns."""
    root = find_root()
    if plot is not None and Path(plot).suffix.lower() not in (".png", ".html"):
        raise ValueError(f"--plot writes a .png or .html file, not {plot!r}")
    rows = _commits(root, max_count, branches)
    _read_tags(root, rows)
    if keys is None:
        keys = sorted({k for row in rows for k in row.tags})
    if sort is not None:
        rows = _sorted(rows, sort)
    missing = sum(1 for row in rows if row.state == NOT_HERE)
    if fmt == "json":
        doc = [
            {
                "commit": row.commit,
                "date": row.date,
                "subject": row.subject,
                **({"branch": row.branch} if branches else {}),
                "stock": row.digest or None,
                "stock_state": {"": "ok", NOT_HERE: "missing"}.get(row.state, row.state.strip("()")),
                "tags": {k: _plain(row.tags[k]) for k in keys if k in row.tags},
            }
            for row in rows
        ]
        click.echo(json.dumps(doc, indent=2))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["commit", "date", "subject", *(["branch"] if branches else []), "stock", *keys])
        for row in rows:
            stock = row.state or row.digest
            extra = [row.branch] if branches else []
            writer.writerow(
                [row.commit, row.date, row.subject, *extra, stock, *(row.tags.get(k, "") for k in keys)]
            )
        click.echo(buffer.getvalue(), nl=False)
    else:
        _print_table(rows, keys, branches)
        if missing:
            click.echo(
                f"{missing} commit{'s name' if missing > 1 else ' names'} stock commits that are not here: "
                f"`stock fetch` brings them from a stock remote"
            )
    if plot is not None:
        _plot(rows if sort is not None else rows[::-1], keys, Path(plot), branches)
        click.echo(f"plot written to {plot}", err=True)
    return 0


def _print_table(rows: list[Row], keys: list[str], branches: bool) -> None:
    header = ["commit", *(["branch"] if branches else []), "date", "stock", *keys, "subject"]
    body = []
    for row in rows:
        stock = row.state or row.digest[:12]
        extra = [row.branch] if branches else []
        body.append(
            [row.commit[:10], *extra, row.date, stock, *(_cell(row.tags.get(k)) for k in keys), row.subject]
        )
    if not body:
        click.echo("no git commits yet")
        return
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for cells in [header, *body]:
        # Numbers right-aligned in tag columns would look better, but mixed
        # types are common (a tag that is sometimes a str): left-align all.
        click.echo("  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths, strict=False)) + "  " + cells[-1])


def _plot(rows: list[Row], keys: list[str], path: Path, branches: bool) -> None:
    """Draw the numeric tags among ``keys`` across ``rows`` (left to right) into ``path``."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise StockroomError(
            '--plot needs matplotlib; install it with `pip install "stockroom[plot]"`'
        ) from None
    numeric = [
        k
        for k in keys
        if any(isinstance(r.tags.get(k), (int, float)) and not isinstance(r.tags.get(k), bool) for r in rows)
    ]
    if not numeric:
        raise ValueError(
            f"--plot draws numeric tags, and none of {', '.join(keys) or '(no tags)'} is a number "
            f"in these commits; name one with --tags KEY"
        )
    fig = Figure(figsize=(PLOT_SIZE[0] / PLOT_DPI, PLOT_SIZE[1] / PLOT_DPI), dpi=PLOT_DPI)
    ax = fig.add_subplot()
    xs = list(range(len(rows)))
    for key in numeric:
        ys = [
            float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
            for v in (r.tags.get(key) for r in rows)
        ]
        ax.plot(xs, ys, marker="o", label=key)
    labels = [r.branch if branches else r.commit[:7] for r in rows]
    step = max(1, len(rows) // 20)  # at most ~20 labels stay readable
    ax.set_xticks(xs[::step], labels[::step], rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("branch" if branches else "commit")
    ax.grid(True, alpha=0.3)
    if len(numeric) > 1:
        ax.legend()
    else:
        ax.set_ylabel(numeric[0])
    fig.tight_layout()
    if path.suffix.lower() == ".png":
        fig.savefig(path, format="png", dpi=PLOT_DPI)
        return
    svg = io.StringIO()
    fig.savefig(svg, format="svg")
    title = ", ".join(numeric)
    path.write_text(
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>stock log: {title}</title></head>\n'
        f"<body>\n{svg.getvalue()}\n</body></html>\n",
        encoding="utf-8",
    )
