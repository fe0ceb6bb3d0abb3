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
import struct
import subprocess
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


# ------------------------------------------------------------- experiments
def experiments(
    root: Path, names: Iterable[str] | None = None, max_count: int = MAX_COMMITS
) -> dict[str, Any]:
    """The Experiments table: one row per git commit reachable from the chosen
    branches (newest first), with the stock commit it records and its tags.

    ``rows[i]['parent']`` is the first parent (for curves along a branch);
    ``rows[i]['branches']`` every chosen branch that contains the commit.
    """
    from stockroom.reports import Row, read_tags

    chosen = choose_branches(root, names)
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
        read_tags(root, rows)
    contains = _containment(root, chosen, max_count)
    short = {b.ref: b.name for b in chosen}
    keys: dict[str, str] = {}  # tag -> 'number' or 'text'
    table = []
    for row in rows:
        m = meta[row.commit]
        for k, v in row.tags.items():
            numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
            # A tag is a number column only when it is a number in every row.
            keys[k] = "number" if numeric and keys.get(k, "number") == "number" else "text"
        table.append(
            {
                "commit": row.commit,
                "parent": m["parent"],
                "date": row.date,
                "time": m["time"],
                "author": m["author"],
                "subject": row.subject,
                "branch": short.get(m["source"], m["source"]),
                "branches": [b.name for b in chosen if row.commit in contains[b.name]],
                "stock": row.digest or None,
                "state": row.state.strip("()") or "ok",
                "tags": {k: _plain(v) for k, v in row.tags.items()},
            }
        )
    return {
        "branches": [{"name": b.name, "commit": b.commit, "remote": b.remote} for b in chosen],
        "tags": sorted(keys),
        "numeric": sorted(k for k, kind in keys.items() if kind == "number"),
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
    """Where per-step metrics come from: today tags per commit along a branch;
    the metric store of SPEC section 9 once it lands."""

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

    The default name of a training run (SPEC 9) is its git branch, so the
    run names stay the same when the metric store replaces this source.
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
    order = np.argsort(idx, kind="stable")
    idx, ys = idx[order], y[order]
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
    else min/max-downsampled into ``points / 2`` buckets."""
    if metric not in source.metrics():
        raise KeyError(f"no metric named {metric!r}; name one of: {', '.join(source.metrics()) or '(none)'}")
    data = [source.series(r, metric) for r in runs]
    counts = [int(xs.size) for xs, _ in data]
    union = np.unique(np.concatenate([xs for xs, _ in data])) if data else np.empty(0)
    points = max(4, points)
    if union.size <= points:
        grid = union
        ys_out = []
        for xs, ys in data:
            row = np.full(grid.size, np.nan)
            row[np.searchsorted(grid, xs)] = ys
            ys_out.append(row)
        exact = True
    else:
        buckets = points // 2
        lo, hi = float(union[0]), float(union[-1])
        width = (hi - lo) / buckets
        grid = lo + np.repeat(np.arange(buckets) * width, 2) + np.tile([0.25 * width, 0.75 * width], buckets)
        ys_out = [minmax_downsample(xs, ys, buckets, lo, hi) for xs, ys in data]
        exact = False
    return {
        "metric": metric,
        "exact": exact,
        "x": _numbers(grid),
        "series": [
            {"run": r, "points": n, "y": _numbers(ys)} for r, n, ys in zip(runs, counts, ys_out, strict=True)
        ],
    }


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
    refs = subprocess.run(
        ("git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/remotes"),
        cwd=root,
        capture_output=True,
        check=False,
    ).stdout
    parts = [refs]
    for rel in ("head.stock", ".hangar/stockroom-staged-tags", ".hangar/stockroom-staged"):
        try:
            st = (root / rel).stat()
            parts.append(f"{rel}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            parts.append(rel.encode())
    return f"{zlib.crc32(b'|'.join(parts)):08x}"
