"""``stock log --tags [KEY,...]``: git commits as an experiment table, one column per tag."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from stockroom import revisions
from stockroom.core import find_root
from stockroom.errors import StockroomError
from stockroom.git import git
from stockroom.reports import NOT_FETCHED, NOT_HERE, Row
from stockroom.reports import read_tags as _read_tags

# --plot: the image is PLOT_SIZE pixels (width, height) at PLOT_DPI.
PLOT_SIZE = (800, 450)
PLOT_DPI = 100


# Dates: the table shows the minute in one token (columns split on blanks stay
# columns); JSON and CSV give git's strict ISO 8601, seconds and offset.
_TEXT_DATE = "format-local:%Y-%m-%dT%H:%M"


def _commits(root: Path, max_count: int, branches: bool, fmt: str) -> list[Row]:
    fields = "%H%x09%ad%x09%s"
    if branches:
        # Local branches and remote-tracking ones (teammates' runs): a run
        # pushed by someone else is compared without checking it out.
        date = (
            "%(committerdate:iso-strict)" if fmt != "text" else "%(committerdate:format-local:%Y-%m-%dT%H:%M)"
        )
        out = git(
            "for-each-ref",
            "--sort=-committerdate",
            f"--format=%(objectname)%09{date}%09%(refname:short)%09%(symref)%09%(subject)",
            "refs/heads",
            "refs/remotes",
            cwd=root,
        )
        rows = []
        for line in out.splitlines():
            sha, date_text, branch, symref, subject = (line.split("\t", 4) + ["", "", ""])[:5]
            if symref:
                continue  # origin/HEAD: an alias of a branch listed anyway
            rows.append(Row(sha, date_text, subject, branch=branch))
        return rows
    date = "iso-strict" if fmt != "text" else _TEXT_DATE
    try:
        out = git("log", f"--max-count={max_count}", f"--date={date}", f"--format={fields}", cwd=root)
    except StockroomError:
        return []  # no git commits yet
    rows = []
    for line in out.splitlines():
        if line:
            sha, date_text, subject = (line.split("\t", 2) + ["", ""])[:3]
            rows.append(Row(sha, date_text, subject))
    return rows


def _rev_rows(root: Path, revs: list[str], max_count: int, fmt: str) -> list[Row]:
    """The rows of ``stock log --tags ... REV...``: ``git log REV...`` for git revisions,
    and for each ``RUN@STEP`` the run's checkpoints up to that one, newest first (SPEC 9)."""
    from datetime import datetime

    from stockroom.runs import records

    rows: list[Row] = []
    git_revs: list[str] = []
    for rev in revs:
        found = records.resolve_history(root, rev)
        if found is None:
            git_revs.append(revisions.resolve_commit(root, rev))
            continue
        ref, checkpoints = found
        for c in checkpoints[::-1][:max_count]:
            when = datetime.fromtimestamp(c.time).astimezone()
            date = when.strftime("%Y-%m-%dT%H:%M") if fmt == "text" else when.isoformat(timespec="seconds")
            subject = f"run {ref.run}: checkpoint at step {c.step}" + (" (pruned)" if c.pruned else "")
            rows.append(Row(f"{ref.run}@{c.step}", date, subject, digest=c.commit, checkpoint=True))
    if git_revs:
        date = "iso-strict" if fmt != "text" else _TEXT_DATE
        out = git(
            "log",
            f"--max-count={max_count}",
            f"--date={date}",
            "--format=%H%x09%ad%x09%s",
            *git_revs,
            "--",
            cwd=root,
        )
        for line in out.splitlines():
            if line:
                sha, date_text, subject = (line.split("\t", 2) + ["", ""])[:3]
                rows.append(Row(sha, date_text, subject))
    return rows


def _history(root: Path, branch: str, max_count: int) -> list[Row]:
    """The last ``max_count`` first-parent commits of ``branch``, oldest first
    (a branch's own line in ``--plot --branches``)."""
    out = git(
        "log", "--first-parent", f"--max-count={max_count}", "--format=%H%x09%ct", branch, "--", cwd=root
    )
    rows = []
    for line in out.splitlines():
        sha, _, stamp = line.partition("\t")
        if sha:
            rows.append(Row(sha, stamp, "", branch=branch))
    return rows[::-1]


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


# Significant digits of a float in the table (JSON and CSV keep every bit).
FLOAT_DIGITS = 5


def _short_float(value: float) -> str:
    """A float for the table: ``FLOAT_DIGITS`` significant digits
    (``1.6942708253860475`` -> ``1.6943``, ``0.001`` stays ``0.001``), with the
    integer part never cut (``123456.7`` -> ``123457``, not ``1.2346e+05``)
    and an exponent only for magnitudes below 1e-4."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 10**FLOAT_DIGITS:
        return f"{value:.0f}"
    return f"{value:.{FLOAT_DIGITS}g}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return _short_float(value) if isinstance(value, float) else str(value)


def _check_keys(rows: list[Row], keys: list[str] | None, sort: str | None, branches: bool) -> None:
    """Refuse ``--tags``/``--sort`` keys that none of the commits shown has:
    a typo would otherwise print an empty column or an unsorted table."""
    read = [row for row in rows if not row.state]
    if not read:
        return  # no stock read here (none, or not fetched): the table says so
    known = sorted({k for row in read for k in row.tags})
    where = "branch tips" if branches else f"{len(read)} commit(s) shown (-n looks further back)"
    have = ", ".join(known[:30]) + (", ..." if len(known) > 30 else "") if known else "none"
    unknown = [k for k in keys or [] if k not in known]
    if unknown:
        raise ValueError(f"--tags: no tag {', '.join(map(repr, unknown))} in the {where}; their tags: {have}")
    if sort is not None:
        key = sort[1:] if sort.startswith("-") else sort
        if key not in known:
            raise ValueError(f"--sort: no tag {key!r} in the {where}; their tags: {have}")


def _checkpoint_hint(root: Path, keys: list[str] | None) -> None:
    """``stock log --tags cnn@5`` reads ``cnn@5`` as a tag key: say where a checkpoint goes."""
    from stockroom.runs import records

    for key in keys or []:
        if "@" in key and records.resolve(root, key) is not None:
            raise ValueError(
                f"--tags takes tag keys, and {key!r} is a run checkpoint: name it after them "
                f"(`stock log --tags KEY,... {key}`, or `stock log {key} --tags` for all tags)"
            )


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def log_tags(
    max_count: int,
    keys: list[str] | None,
    branches: bool,
    sort: str | None,
    fmt: str,
    plot: str | None,
    revs: tuple[str, ...] = (),
) -> int:
    """Print the table of commits (or branch tips) with their tags as columns.

    ``revs``: git revisions to start from, or ``RUN@STEP`` for a run's checkpoints."""
    root = find_root()
    if plot is not None and Path(plot).suffix.lower() not in (".png", ".html"):
        raise ValueError(f"--plot writes a .png or .html file, not {plot!r}")
    if revs and branches:
        raise ValueError("--branches shows every branch tip; name revisions (or RUN@STEP) without it")
    rows = _rev_rows(root, list(revs), max_count, fmt) if revs else _commits(root, max_count, branches, fmt)
    _read_tags(root, rows)
    if not revs:
        _checkpoint_hint(root, keys)
    _check_keys(rows, keys, sort, branches)
    if keys is None:
        keys = sorted({k for row in rows for k in row.tags})
    if sort is not None:
        rows = _sorted(rows, sort)
    missing = sum(1 for row in rows if row.state in (NOT_HERE, NOT_FETCHED))
    if fmt == "json":
        doc = [
            {
                "commit": None if row.checkpoint else row.commit,
                **({"checkpoint": row.commit} if row.checkpoint else {}),
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
            absent = list(dict.fromkeys(row.digest for row in rows if row.state in (NOT_HERE, NOT_FETCHED)))
            # Plain `stock fetch` brings branch tips only: name what to fetch.
            how = (
                f"`stock fetch {' '.join(absent)}`"
                if len(absent) <= 3
                else "`stock fetch REV...` (their git commits)"
            )
            click.echo(
                f"{missing} commit{'s name' if missing > 1 else ' names'} stock data that is not here: "
                f"{how} brings it from a stock remote"
            )
    if plot is not None:
        if branches:
            _plot_branches(root, rows, keys, Path(plot), max_count)
        else:
            _plot(rows if sort is not None else rows[::-1], keys, Path(plot))
        click.echo(f"plot written to {plot}", err=True)
    return 0


def _print_table(rows: list[Row], keys: list[str], branches: bool) -> None:
    header = ["commit", *(["branch"] if branches else []), "date", "stock", *keys, "subject"]
    body = []
    for row in rows:
        stock = row.state or row.digest[:12]
        extra = [row.branch] if branches else []
        body.append(
            [
                row.commit if row.checkpoint else row.commit[:10],
                *extra,
                row.date,
                stock,
                *(_cell(row.tags.get(k)) for k in keys),
                row.subject,
            ]
        )
    if not body:
        click.echo("no git commits yet")
        return
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for cells in [header, *body]:
        # Numbers right-aligned in tag columns would look better, but mixed
        # types are common (a tag that is sometimes a str): left-align all.
        click.echo("  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths, strict=False)) + "  " + cells[-1])


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_keys(rows: list[Row], keys: list[str]) -> list[str]:
    numeric = [k for k in keys if any(_numeric(r.tags.get(k)) for r in rows)]
    if not numeric:
        raise ValueError(
            f"--plot draws numeric tags, and none of {', '.join(keys) or '(no tags)'} is a number "
            f"in these commits; name one with --tags KEY"
        )
    return numeric


def _ys(rows: list[Row], key: str) -> list[float]:
    values = (r.tags.get(key) for r in rows)
    return [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan for v in values]


@dataclass
class Series:
    """One line of a plot: its label and points."""

    label: str
    xs: list[Any]
    ys: list[float]


def branch_series(root: Path, tips: list[Row], keys: list[str], max_count: int) -> list[Series]:
    """``--plot --branches``: one line per branch (and tag), over that
    branch's own first-parent history against commit time, so that unrelated
    branches are never joined by one line."""
    from datetime import datetime

    histories = [_history(root, tip.branch, max_count) for tip in tips]
    every = [row for history in histories for row in history]
    _read_tags(root, every)
    numeric = _numeric_keys(every, keys)
    series = []
    for tip, history in zip(tips, histories, strict=True):
        xs = [datetime.fromtimestamp(int(r.date)) for r in history]
        for key in numeric:
            ys = _ys(history, key)
            if any(not math.isnan(y) for y in ys):
                label = tip.branch if len(numeric) == 1 else f"{tip.branch}: {key}"
                series.append(Series(label, xs, ys))
    return series


def _figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise StockroomError(
            '--plot needs matplotlib; install it with `pip install "stockroom[plot]"`'
        ) from None
    fig = Figure(figsize=(PLOT_SIZE[0] / PLOT_DPI, PLOT_SIZE[1] / PLOT_DPI), dpi=PLOT_DPI)
    return fig, fig.add_subplot()


def _plot_branches(root: Path, tips: list[Row], keys: list[str], path: Path, max_count: int) -> None:
    """Each branch's history as its own line, against commit time, into ``path``."""
    fig, ax = _figure()
    series = branch_series(root, tips, keys, max_count)
    for line in series:
        ax.plot(line.xs, line.ys, marker="o", label=line.label)
    ax.set_xlabel("commit time")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    _save(fig, path, ", ".join(dict.fromkeys(s.label for s in series)))


def _plot(rows: list[Row], keys: list[str], path: Path) -> None:
    """Draw the numeric tags among ``keys`` across ``rows`` (left to right) into ``path``."""
    fig, ax = _figure()
    numeric = _numeric_keys(rows, keys)
    xs = list(range(len(rows)))
    for key in numeric:
        ax.plot(xs, _ys(rows, key), marker="o", label=key)
    labels = [r.commit[:7] for r in rows]
    step = max(1, len(rows) // 20)  # at most ~20 labels stay readable
    ax.set_xticks(xs[::step], labels[::step], rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("commit")
    ax.grid(True, alpha=0.3)
    if len(numeric) > 1:
        ax.legend()
    else:
        ax.set_ylabel(numeric[0])
    _save(fig, path, ", ".join(numeric))


def _save(fig: Any, path: Path, title: str) -> None:
    fig.tight_layout()
    if path.suffix.lower() == ".png":
        fig.savefig(path, format="png", dpi=PLOT_DPI)
        return
    svg = io.StringIO()
    fig.savefig(svg, format="svg")
    path.write_text(
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>stock log: {title}</title></head>\n'
        f"<body>\n{svg.getvalue()}\n</body></html>\n",
        encoding="utf-8",
    )
