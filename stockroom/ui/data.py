"""What the pages of ``stock ui`` show, as JSON-ready dicts, read-only.

Each function takes the repository root and names revisions, branches and
keys (never file paths). Bad names raise :class:`~stockroom.StockroomError`
(or ``KeyError``); the server turns those into a 4xx page.

Reuses the readers behind ``stock log --tags`` and ``stock diff``
(:mod:`stockroom.reports`, :mod:`stockroom.compare`) and the runs' local
records and metric store (:mod:`stockroom.runs`), never a command module.
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import struct
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stockroom import revisions
from stockroom.errors import StockroomError
from stockroom.git import git

# How many commits the Experiments page lists at most (newest first).
MAX_COMMITS = 5000
# Data page: samples shown per column, and the numbers shown of each sample.
SAMPLES_SHOWN = 8
NUMBERS_SHOWN = 16
# An image larger than this (pixels) on either side is shown scaled down by
# striding, so a page of samples stays small.
IMAGE_MAX_SIDE = 256
# Curves: points per series past which the server downsamples (min/max per bucket).
CURVE_POINTS = 2000


def _plain(value: Any) -> Any:
    """JSON has no NaN or infinity: those travel as their text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# ---------------------------------------------------------------- branches
@dataclass(frozen=True)
class Branch:
    """A local branch (``main``) or a remote-tracking one (``origin/main``)."""

    name: str
    ref: str
    commit: str
    remote: bool


def branches(root: Path) -> list[Branch]:
    """Local and remote-tracking branches, local first, each sorted by name."""
    out = git(
        "for-each-ref",
        "--format=%(refname)%09%(refname:short)%09%(objectname)%09%(symref)",
        "refs/heads",
        "refs/remotes",
        cwd=root,
    )
    found = []
    for line in out.splitlines():
        ref, short, sha, symref = (line.split("\t") + ["", "", ""])[:4]
        if symref:  # origin/HEAD: an alias of another remote-tracking branch
            continue
        found.append(Branch(short, ref, sha, ref.startswith("refs/remotes/")))
    found.sort(key=lambda b: (b.remote, b.name))
    return found


def choose_branches(root: Path, names: Iterable[str] | None) -> list[Branch]:
    """The named branches (all of them when ``names`` is None or empty)."""
    every = branches(root)
    wanted = [n for n in (names or ()) if n]
    if not wanted:
        return every
    by_name = {b.name: b for b in every}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise StockroomError(
            f"no branch named {unknown[0]!r}; name one of: {', '.join(by_name) or '(no branches yet)'}"
        )
    return [by_name[n] for n in wanted]


# -------------------------------------------------------------------- runs
@dataclass
class RunInfo:
    """One training run of this clone (SPEC 9): its local records and metric store."""

    name: str
    branch: str
    checkpoints: list[Any]  # stockroom.runs.records.Checkpoint, oldest first
    metrics: list[str]
    folder: Path
    mode: str = "min"
    monitor: str | None = None
    finished: bool = False

    def history(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of ``metric``, all points, from the run's metric files."""
        from stockroom.runs.metrics import MetricLog

        # A MetricLog of our own has nothing buffered: this reads what the
        # training process flushed, without its lock (reads never block it).
        return MetricLog(self.folder / "metrics").history(metric)


def local_runs(root: Path) -> list[RunInfo]:
    """The runs whose records this clone holds (``.hangar/stockroom-runs/``), by name."""
    from urllib.parse import unquote

    from stockroom.runs.metrics import MetricLog
    from stockroom.runs.records import Records, runs_dir

    base = runs_dir(root)
    found: list[RunInfo] = []
    if not base.is_dir():
        return found
    for folder in sorted(base.iterdir()):
        if not folder.is_dir():
            continue
        try:
            records = Records(folder)
        except StockroomError:
            continue  # unreadable records: `stock runs` says so; the page shows the rest
        found.append(
            RunInfo(
                name=unquote(folder.name),
                branch=str(records.info.get("branch", "")),
                checkpoints=list(records.items),
                metrics=MetricLog(folder / "metrics").names(),
                folder=folder,
                mode=str(records.info.get("mode") or "min"),
                monitor=records.info.get("monitor"),
                finished=records.finished,
            )
        )
    return found


def _metric_cells(
    run: RunInfo, step: int, series: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, float]:
    """A checkpoint's metric columns, over its run's points up to ``step``:
    ``METRIC:last``, ``METRIC:min`` and ``METRIC:max`` of each per-step metric,
    and ``METRIC:best`` of the run's ``monitor`` by its ``mode`` (from the
    per-step points, or from the metrics given to ``save`` when the monitor is
    not logged per step). Only the monitor has a known direction: a best
    accuracy is a maximum, a best loss a minimum."""
    out: dict[str, float] = {}
    for metric in run.metrics:
        steps, values = series[metric]
        n = int(np.searchsorted(steps, step, side="right")) if steps.size else 0
        upto = values[:n]
        upto = upto[~np.isnan(upto)]
        if not upto.size:
            continue
        out[f"{metric}:last"] = float(upto[-1])
        out[f"{metric}:min"] = float(upto.min())
        out[f"{metric}:max"] = float(upto.max())
    monitor = run.monitor
    if monitor:
        if f"{monitor}:min" in out:
            out[f"{monitor}:best"] = out[f"{monitor}:max" if run.mode == "max" else f"{monitor}:min"]
        else:
            saved = [
                float(c.metrics[monitor])
                for c in run.checkpoints
                if c.step <= step and monitor in c.metrics and not math.isnan(c.metrics[monitor])
            ]
            if saved:
                out[f"{monitor}:best"] = max(saved) if run.mode == "max" else min(saved)
    return out


# ------------------------------------------------------------- experiments
def experiments(
    root: Path,
    names: Iterable[str] | None = None,
    max_count: int = MAX_COMMITS,
    runs: Sequence[RunInfo] | None = None,
) -> dict[str, Any]:
    """The Experiments table: one row per git commit reachable from the chosen
    branches (newest first) and per checkpoint of a run (SPEC 9) that no
    listed git commit records, each with its stock commit, its tags and, for
    a checkpoint, its run's last and best metrics up to its step.

    ``rows[i]['id']`` is the git commit or ``RUN@STEP``; ``parent`` the first
    parent (curves along a branch); ``branches`` every chosen branch that
    contains the commit (a checkpoint: its run's branch, and the branches of
    the commits recording it); ``checkpoint`` the ``RUN@STEP`` a row is;
    ``curve`` the Curves page's name for it (its run when that run has
    per-step metrics, else its branch).
    """
    from stockroom.reports import STATES, Row, digest_tags

    chosen = choose_branches(root, names)
    runs = local_runs(root) if runs is None else list(runs)
    rows: list[Row] = []
    meta: dict[str, dict[str, Any]] = {}
    if chosen:
        out = git(
            "log",
            "--source",
            f"--max-count={max_count}",
            "--date=short",
            "--format=%H%x09%P%x09%ct%x09%ad%x09%an%x09%S%x09%s",
            *(b.ref for b in chosen),
            "--",
            cwd=root,
        )
        for line in out.splitlines():
            parts = (line.split("\t", 6) + [""] * 7)[:7]
            sha, parents, ctime, date, author, source, subject = parts
            rows.append(Row(sha, date, subject))
            meta[sha] = {
                "parent": parents.split()[0] if parents else None,
                "time": int(ctime or 0),
                "author": author,
                "source": source,
            }

    # The run's branch and its remote-tracking namesakes (origin/BRANCH): where a
    # teammate resumes it from the stock remote (SPEC 9).
    def run_branches(run: RunInfo) -> list[str]:
        return [
            b.name
            for b in chosen
            if b.name == run.branch or (b.remote and b.name.split("/", 1)[-1] == run.branch)
        ]

    # The tags of the commits' stock and of the checkpoints, in one pass over the store.
    refs = revisions.stock_refs(root, [row.commit for row in rows])
    wanted = [ref.digest for ref in refs] + [c.commit for r in runs if run_branches(r) for c in r.checkpoints]
    found = digest_tags(root, wanted)
    for row, ref in zip(rows, refs, strict=True):
        row.digest = ref.digest
        row.state, row.tags = found[ref.digest] if ref.digest else (STATES[ref.state], {})
    contains = _containment(root, chosen, max_count)
    short = {b.ref: b.name for b in chosen}
    # Which checkpoint each stock commit is (a git commit recording it gets its RUN@STEP).
    by_digest: dict[str, tuple[RunInfo, Any]] = {}
    for run in runs:
        for c in run.checkpoints:
            by_digest[c.commit] = (run, c)
    series = {r.name: {m: r.history(m) for m in r.metrics} for r in runs if r.checkpoints}
    keys: dict[str, str] = {}  # tag -> 'number' or 'text'
    metric_cols: set[str] = set()

    def kinds(tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
            # A tag is a number column only when it is a number in every row.
            keys[k] = "number" if numeric and keys.get(k, "number") == "number" else "text"

    def run_fields(run: RunInfo | None, c: Any) -> dict[str, Any]:
        if run is None:
            return {"checkpoint": None, "run": None, "step": None, "pruned": False, "metrics": {}}
        cells = _metric_cells(run, c.step, series[run.name])
        metric_cols.update(cells)
        return {
            "checkpoint": f"{run.name}@{c.step}",
            "run": run.name,
            "step": c.step,
            "pruned": c.pruned,
            "metrics": cells,
        }

    table = []
    recorded: dict[str, list[str]] = {}  # RUN@STEP -> branches of the git commits recording it
    for row in rows:
        m = meta[row.commit]
        kinds(row.tags)
        owner: RunInfo | None = None
        ck: Any = None
        if row.digest in by_digest:
            owner, ck = by_digest[row.digest]
        fields = run_fields(owner, ck)
        in_branches = [b.name for b in chosen if row.commit in contains[b.name]]
        branch = short.get(m["source"], m["source"])
        if fields["checkpoint"]:
            recorded.setdefault(fields["checkpoint"], []).extend(in_branches)
        table.append(
            {
                "id": row.commit,
                "kind": "commit",
                "commit": row.commit,
                "parent": m["parent"],
                "date": row.date,
                "time": m["time"],
                "author": m["author"],
                "subject": row.subject,
                "branch": branch,
                "branches": in_branches,
                "stock": row.digest or None,
                "state": row.state.strip("()") or "ok",
                "tags": {k: _plain(v) for k, v in row.tags.items()},
                "curve": owner.name if owner is not None and owner.metrics else branch,
                **fields,
            }
        )

    # Checkpoints no listed git commit records: rows of their own, on their run's branch.
    pending = [
        (run, c, where)
        for run in runs
        if (where := run_branches(run))
        for c in run.checkpoints
        if f"{run.name}@{c.step}" not in recorded
    ]
    for run, c, where in pending:
        state, tags = found[c.commit]
        kinds(tags)
        stamp = time.localtime(c.time)
        table.append(
            {
                "id": f"{run.name}@{c.step}",
                "kind": "checkpoint",
                "commit": None,
                "parent": None,
                "date": time.strftime("%Y-%m-%d", stamp),
                "time": int(c.time),
                "author": "",
                "subject": f"run {run.name}: checkpoint at step {c.step}" + (" (pruned)" if c.pruned else ""),
                "branch": run.branch,
                "branches": where,
                "stock": c.commit,
                "state": state.strip("()") or "ok",
                "tags": {k: _plain(v) for k, v in tags.items()},
                "curve": run.name if run.metrics else run.branch,
                **run_fields(run, c),
            }
        )
    table.sort(key=lambda r: -r["time"])  # stable: git's order among commits of one second
    return {
        "branches": [{"name": b.name, "commit": b.commit, "remote": b.remote} for b in chosen],
        "tags": sorted(keys),
        "metric_columns": sorted(metric_cols),
        "numeric": sorted([k for k, kind in keys.items() if kind == "number"] + sorted(metric_cols)),
        "runs": [
            {
                "name": r.name,
                "branch": r.branch,
                "checkpoints": len(r.checkpoints),
                "metrics": r.metrics,
                "finished": r.finished,
            }
            for r in runs
        ],
        "rows": table,
    }


def _containment(root: Path, chosen: Sequence[Branch], max_count: int) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for b in chosen:
        out = git("rev-list", f"--max-count={max_count}", b.ref, "--", cwd=root)
        found[b.name] = set(out.split())
    return found


# ------------------------------------------------------------------ curves
class CurveSource(Protocol):
    """Where curves come from: the runs' metric store (:class:`RunCurves`),
    with tags per commit along a branch where there are no run metrics."""

    def runs(self) -> list[str]:
        """The run names."""
        ...

    def metrics(self) -> list[str]:
        """The metric names."""
        ...

    def series(self, run: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of ``metric`` in ``run`` (empty when it has none)."""
        ...


class TagCurves:
    """Tags per commit as curves: a run is a branch, a step is a commit along
    its first-parent history (0: the oldest listed), one point per commit.

    The fallback of :class:`RunCurves` where a branch has no run metrics.
    """

    def __init__(self, table: dict[str, Any]) -> None:
        self._rows = {r["commit"]: r for r in table["rows"]}
        self._tips = {b["name"]: b["commit"] for b in table["branches"]}
        self._numeric = list(table["numeric"])

    def runs(self) -> list[str]:
        return list(self._tips)

    def metrics(self) -> list[str]:
        return self._numeric

    def history(self, run: str) -> list[dict[str, Any]]:
        """The run's commits, oldest first."""
        if run not in self._tips:
            raise KeyError(f"no run named {run!r}; name one of: {', '.join(self._tips) or '(none)'}")
        chain = []
        sha: str | None = self._tips[run]
        seen = set()
        while sha is not None and sha in self._rows and sha not in seen:
            seen.add(sha)
            chain.append(self._rows[sha])
            sha = self._rows[sha]["parent"]
        return chain[::-1]

    def series(self, run: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        steps, values = [], []
        for i, row in enumerate(self.history(run)):
            v = row["tags"].get(metric)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                steps.append(i)
                values.append(float(v))
        return np.asarray(steps, np.float64), np.asarray(values, np.float64)


class RunCurves:
    """Per-step metrics of the runs (SPEC 9's metric store), and tags per
    commit (:class:`TagCurves`) only where there are no run metrics.

    A name is a run, a branch, or both (a run's default name is its branch):
    ``series(name, metric)`` is the run's per-step series when the run has
    logged ``metric``, else the tag along the branch of that name, one point
    per commit.
    """

    def __init__(self, table: dict[str, Any], runs: Sequence[RunInfo]) -> None:
        self._tags = TagCurves(table)
        self._runs = {r.name: r for r in runs if r.metrics}
        self._branches = set(self._tags.runs())
        self._numeric = [k for k in table["numeric"] if k not in set(table.get("metric_columns", ()))]

    def runs(self) -> list[str]:
        return list(self._runs) + [b for b in self._tags.runs() if b not in self._runs]

    def kinds(self) -> dict[str, str]:
        """Each name's source: ``run`` (the metric store) or ``tags`` (per commit)."""
        return {name: "run" if name in self._runs else "tags" for name in self.runs()}

    def metrics(self) -> list[str]:
        logged = {m for r in self._runs.values() for m in r.metrics}
        return sorted(logged) + [k for k in self._numeric if k not in logged]

    def has(self, run: str, metric: str) -> bool:
        """Whether ``run`` has a series of ``metric`` (a run's metric, or a branch's numeric tag)."""
        found = self._runs.get(run)
        if found is not None and metric in found.metrics:
            return True
        return run in self._branches and metric in self._numeric

    def series(self, run: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        found = self._runs.get(run)
        if found is not None and metric in found.metrics:
            steps, values = found.history(metric)
            return steps.astype(np.float64), values
        if run in self._branches:
            return self._tags.series(run, metric)
        if found is not None:
            return np.empty(0), np.empty(0)  # a run without this metric: no line
        raise KeyError(f"no run named {run!r}; name one of: {', '.join(self.runs()) or '(none)'}")


def minmax_downsample(x: np.ndarray, y: np.ndarray, buckets: int, lo: float, hi: float) -> np.ndarray:
    """``y`` on a grid of ``2 * buckets`` slots over ``[lo, hi]``: per bucket
    its min and max, in the order they occur (NaN where a bucket is empty).

    Keeps every spike and dip a line plot would show at this width, unlike
    averaging or taking every n-th point.
    """
    out = np.full(2 * buckets, np.nan)
    if x.size == 0:
        return out
    span = hi - lo if hi > lo else 1.0
    idx = np.minimum(((x - lo) / span * buckets).astype(np.int64), buckets - 1)
    if idx.size > 1 and not (idx[1:] >= idx[:-1]).all():  # a run's steps come sorted: no sort then
        order = np.argsort(idx, kind="stable")
        idx, ys = idx[order], y[order]
    else:
        ys = y
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    counts = np.diff(np.r_[starts, idx.size])
    mins = np.minimum.reduceat(ys, starts)
    maxs = np.maximum.reduceat(ys, starts)
    # Where in its bucket each min and max first occurs, without a Python loop
    # over buckets (100 runs x 1,000 buckets would cost a second).
    pos = np.arange(idx.size)
    never = idx.size
    first_min = np.minimum.reduceat(np.where(ys == np.repeat(mins, counts), pos, never), starts)
    first_max = np.minimum.reduceat(np.where(ys == np.repeat(maxs, counts), pos, never), starts)
    min_first = first_min <= first_max
    slots = idx[starts]
    out[2 * slots] = np.where(min_first, mins, maxs)
    out[2 * slots + 1] = np.where(min_first, maxs, mins)
    return out


def curves(
    source: CurveSource, runs: Sequence[str], metric: str, points: int = CURVE_POINTS
) -> dict[str, Any]:
    """The series of ``metric`` for ``runs`` on one shared x axis (uPlot's
    data layout): exact when all steps together are at most ``points``,
    else min/max-downsampled into ``points / 2`` buckets. Past ``points``, a
    series of at most one point per bucket (a branch's tags per commit beside
    per-step runs) keeps its own points, exactly, while they add up to at
    most ``points`` (bucketing them would merge neighbouring commits)."""
    if metric not in source.metrics():
        raise KeyError(f"no metric named {metric!r}; name one of: {', '.join(source.metrics()) or '(none)'}")
    data = [source.series(r, metric) for r in runs]
    counts = [int(xs.size) for xs, _ in data]
    union = np.unique(np.concatenate([xs for xs, _ in data])) if data else np.empty(0)
    points = max(4, points)
    ys_out: list[np.ndarray] = []
    if union.size <= points:
        grid = union
        for xs, ys in data:
            row = np.full(grid.size, np.nan)
            row[np.searchsorted(grid, xs)] = ys
            ys_out.append(row)
        exact = True
    else:
        buckets = points // 2
        lo, hi = float(union[0]), float(union[-1])
        width = (hi - lo) / buckets
        slots = lo + np.repeat(np.arange(buckets) * width, 2) + np.tile([0.25 * width, 0.75 * width], buckets)
        budget = points
        small = set()
        for i, n in enumerate(counts):
            if n <= buckets and n <= budget:
                small.add(i)
                budget -= n
        grid = np.unique(np.concatenate([slots, *(data[i][0] for i in small)])) if small else slots
        at_slots = np.searchsorted(grid, slots)
        for i, (xs, ys) in enumerate(data):
            row = np.full(grid.size, np.nan)
            if i in small:
                row[np.searchsorted(grid, xs)] = ys
            else:
                row[at_slots] = minmax_downsample(xs, ys, buckets, lo, hi)
            ys_out.append(row)
        exact = False
    return {
        "metric": metric,
        "exact": exact,
        "encoding": "f64le-base64",
        "x": f64(grid),
        "series": [
            {"run": r, "points": n, "y": f64(ys)} for r, n, ys in zip(runs, counts, ys_out, strict=True)
        ],
    }


def f64(values: np.ndarray) -> str:
    """``values`` as little-endian float64 bytes in base64 (NaN: a gap in a series).

    The curves travel so, not as JSON numbers: 100 runs x 1,360 points as JSON
    text cost Python's encoder about 0.7 s on the bench machine (a float's repr
    is slow), as bytes a few milliseconds, and the text is a third smaller.
    Every value arrives bit for bit; the page decodes it with a Float64Array.
    """
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def from_f64(text: str) -> list[float | None]:
    """What :func:`f64` encoded, as a list (NaN as None): for tests and tools."""
    return _numbers(np.frombuffer(base64.b64decode(text), dtype="<f8"))


def _numbers(values: np.ndarray) -> list[float | None]:
    """Floats for JSON: NaN (a gap in a series) as null, whole numbers as ints."""
    return [None if not math.isfinite(v) else (int(v) if v.is_integer() else v) for v in values.tolist()]


# ----------------------------------------------------------------- compare
def compare(root: Path, rev1: str, rev2: str) -> dict[str, Any]:
    """What ``stock diff REV1 REV2 --all --json`` reports, as a dict."""
    from stockroom import compare as cmp
    from stockroom.reports import Side, diff_items
    from stockroom.store import Store
    from stockroom.store.view import snapshot_at

    ref1 = revisions.stock_ref(root, rev1)
    ref2 = revisions.stock_ref(root, rev2)
    store = Store(root)
    try:
        with contextlib.ExitStack() as stack:
            old = stack.enter_context(snapshot_at(store, ref1.digest, f"git revision {rev1!r}"))
            new = stack.enter_context(snapshot_at(store, ref2.digest, f"git revision {rev2!r}"))
            result = cmp.compare(old, new)
    finally:
        store.close()
    doc: dict[str, Any] = {
        "from": Side(rev1, ref1.commit, ref1.digest).as_json(),
        "to": Side(rev2, ref2.commit, ref2.digest).as_json(),
        "changed": result.changed,
        "tags": [],
        "data": [],
        "models": [],
    }
    for section, item in diff_items(result, True, False):
        doc[section].append(item)
    return doc


# -------------------------------------------------------------------- data
def data_page(root: Path, rev: str) -> dict[str, Any]:
    """The data columns (dtype, sample shape, count, first samples) and the
    models (layers) of the stock at git revision ``rev``."""
    from stockroom.keys import decode_sample, decode_text
    from stockroom.storages import data as data_storage
    from stockroom.storages import model as model_storage
    from stockroom.store import Store
    from stockroom.store.view import snapshot_at

    ref = revisions.stock_ref(root, rev)
    if not ref.digest:
        raise StockroomError(revisions.explain(rev, ref))
    store = Store(root)
    columns = []
    models = []
    try:
        with snapshot_at(store, ref.digest, f"git revision {rev!r}") as snap:
            for hname in sorted(snap.records):
                if hname.startswith(data_storage.PREFIX):
                    records = snap.records[hname]
                    dtype, shape = snap.column_schema(hname)
                    keys = sorted(records.samples, key=lambda k: (isinstance(k, str), str(k)))
                    shown = []
                    for hkey in keys[:SAMPLES_SHOWN]:
                        shown.append(_sample(decode_sample(hkey), np.asarray(snap.read(hname, hkey))))
                    columns.append(
                        {
                            "name": decode_text(hname[len(data_storage.PREFIX) :]),
                            "dtype": dtype,
                            "shape": list(shape),
                            "count": len(records.samples),
                            "samples": shown,
                        }
                    )
                elif hname.startswith(model_storage.PREFIX):
                    models.append(decode_text(hname[len(model_storage.PREFIX) :]))
    finally:
        store.close()
    return {"rev": rev, "commit": ref.commit, "stock": ref.digest, "columns": columns, "models": models}


def _sample(key: Any, arr: np.ndarray) -> dict[str, Any]:
    image = _as_image(arr)
    out: dict[str, Any] = {"key": str(key), "shape": list(arr.shape), "dtype": str(arr.dtype)}
    if image is not None:
        out["image"] = "data:image/png;base64," + base64.b64encode(png(image)).decode("ascii")
    else:
        flat = arr.reshape(-1)[:NUMBERS_SHOWN]
        out["values"] = [_plain(v) for v in flat.tolist()]
        out["more"] = int(arr.size) > NUMBERS_SHOWN
    return out


def _as_image(arr: np.ndarray) -> np.ndarray | None:
    """``arr`` as an 8-bit image (H, W, 1|3|4), or None when it is not one.

    An image: 2-D, or 3-D with 1, 3 or 4 channels last, at least 4 pixels on
    each side; uint8, or floats within [0, 1].
    """
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) < 4:
        return None
    if arr.dtype == np.uint8:
        img = arr
    elif arr.dtype.kind == "f" and arr.size and np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1:
        img = np.round(arr * 255).astype(np.uint8)
    else:
        return None
    step = max(1, math.ceil(max(img.shape[:2]) / IMAGE_MAX_SIDE))
    return np.ascontiguousarray(img[::step, ::step])


def png(img: np.ndarray) -> bytes:
    """``img`` (H, W, 1|3|4 uint8) as PNG bytes: stdlib only, no imaging library."""
    h, w, c = img.shape
    colour = {1: 0, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))  # filter 0 per row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------- version
def fingerprint(root: Path) -> str:
    """Changes whenever what the pages show may have changed: a git ref moved,
    head.stock or the staged stock changed. Polled by the pages (live update)."""
    try:
        refs = git(
            "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/remotes", cwd=root
        ).encode()
    except StockroomError:
        refs = b""
    parts = [refs]
    for rel in ("head.stock", ".hangar/stockroom-staged-tags", ".hangar/stockroom-staged"):
        try:
            st = (root / rel).stat()
            parts.append(f"{rel}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            parts.append(rel.encode())
    parts.extend(_runs_state(root))
    return f"{zlib.crc32(b'|'.join(parts)):08x}"


def _runs_state(root: Path) -> list[bytes]:
    """Size and time of each run's records and metric files: a training run
    that flushes metrics or saves a checkpoint changes it (live curves)."""
    from stockroom.runs.records import runs_dir

    found: list[bytes] = []
    try:
        folders = sorted(os.scandir(runs_dir(root)), key=lambda e: e.name)
    except OSError:
        return found
    for folder in folders:
        for sub in (folder.path, os.path.join(folder.path, "metrics")):
            try:
                entries = sorted(os.scandir(sub), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                if e.name.endswith((".json", ".f64")):
                    st = e.stat()
                    found.append(f"{e.path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return found
