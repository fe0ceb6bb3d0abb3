"""Per-step metrics of training runs: an append-only binary log per run and metric.

``run.log(step, loss=...)`` appends to in-memory buffers (two ``array``
objects per metric: no numpy call, no file write per point); a buffer is
written out when it holds :data:`FLUSH_POINTS` points, at every
checkpoint, at :meth:`MetricLog.flush` and at exit. Each metric is one file
of little-endian ``(int64 step, float64 value)`` records, so a reader maps
it into numpy with one ``fromfile`` and a torn last record (a crash in the
middle of a write) is simply cut off: everything up to the last flush
survives any crash.

The files live in ``.hangar/stockroom-runs/<run>/metrics/``: local, like
the lazy-read cache. A checkpoint also stores the metrics logged up to its
step (see :mod:`stockroom.runs.run`), so a fresh clone that resumes a run
gets them back.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np

RECORD = np.dtype([("step", "<i8"), ("value", "<f8")])
FLUSH_POINTS = 1 << 16
SUFFIX = ".f64"


def _file_name(metric: str) -> str:
    return quote(metric, safe="") + SUFFIX


def read_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one metric file; a torn last record is ignored."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    usable = len(raw) - len(raw) % RECORD.itemsize
    rec = np.frombuffer(raw, RECORD, count=usable // RECORD.itemsize)
    return rec["step"].astype(np.int64), rec["value"].astype(np.float64)


def downsample(steps: np.ndarray, values: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` points, keeping each bucket's minimum and maximum (a spike stays visible).

    The series is cut into ``points // 2`` buckets of consecutive points;
    each gives its smallest and its largest value, in step order. NaNs are
    kept only where a whole bucket is NaN.
    """
    n = steps.size
    if points <= 0 or n <= points:
        return steps, values
    buckets = max(1, points // 2)
    size = -(-n // buckets)
    buckets = -(-n // size)
    pad = buckets * size - n
    vals = np.concatenate([values, np.full(pad, np.nan)]).reshape(buckets, size)
    finite = ~np.isnan(vals)
    lo = np.where(finite, vals, np.inf).argmin(axis=1)
    hi = np.where(finite, vals, -np.inf).argmax(axis=1)
    base = np.arange(buckets) * size
    idx = np.stack([np.minimum(lo, hi), np.maximum(lo, hi)], axis=1) + base[:, None]
    idx = np.minimum(idx.reshape(-1), n - 1)
    # a bucket whose min and max are one point gives it once
    keep = np.ones(idx.size, dtype=bool)
    keep[1::2] = idx[1::2] != idx[0::2]
    idx = idx[keep]
    return steps[idx], values[idx]


class MetricLog:
    """The per-step metrics of one run, buffered in memory and appended to files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._steps: dict[str, array[int]] = {}
        self._values: dict[str, array[float]] = {}
        self._pending = 0

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Buffer one point per metric; write out when the buffers are full."""
        steps, values = self._steps, self._values
        for name, value in metrics.items():
            s = steps.get(name)
            if s is None:
                s = steps[name] = array("q")
                values[name] = array("d")
            s.append(step)
            values[name].append(value)
        self._pending += len(metrics)
        if self._pending >= FLUSH_POINTS:
            self.flush()

    def flush(self) -> None:
        """Append every buffered point to its file (and fsync: a crash keeps them)."""
        if not self._pending:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, s in self._steps.items():
            if not s:
                continue
            rec = np.empty(len(s), RECORD)
            rec["step"] = np.frombuffer(s, np.int64)
            rec["value"] = np.frombuffer(self._values[name], np.float64)
            path = self.folder / _file_name(name)
            with open(path, "ab") as f:
                size = f.tell()
                if size % RECORD.itemsize:  # a torn record of a crash: cut it off first
                    f.truncate(size - size % RECORD.itemsize)
                f.write(rec.tobytes())
                f.flush()
                os.fsync(f.fileno())
            del s[:]
            del self._values[name][:]
        self._pending = 0

    def names(self) -> list[str]:
        """The metrics this run has logged (written or buffered)."""
        found = set(self._steps)
        if self.folder.is_dir():
            found.update(
                unquote(p.name[: -len(SUFFIX)]) for p in self.folder.iterdir() if p.name.endswith(SUFFIX)
            )
        return sorted(found)

    def history(self, metric: str, points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of ``metric`` as numpy arrays (downsampled to ``points``)."""
        self.flush()
        steps, values = read_file(self.folder / _file_name(metric))
        return downsample(steps, values, points) if points else (steps, values)

    def all(self, flush: bool = True) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Every metric with its full series (``flush=False``: as written out,
        for a thread other than the one that logs: a flush there would race
        :meth:`log` and drop the points appended meanwhile)."""
        if flush:
            self.flush()
        for name in self.names():
            steps, values = read_file(self.folder / _file_name(name))
            yield name, steps, values

    def drop_after(self, step: int) -> None:
        """Forget every point logged after ``step`` (a resumed run logs them again)."""
        self.flush()
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if not path.name.endswith(SUFFIX):
                continue
            steps, values = read_file(path)
            keep = steps <= step
            if keep.all() and path.stat().st_size == steps.size * RECORD.itemsize:
                continue
            self._rewrite(path, steps[keep], values[keep])

    def replace(self, series: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Make the files hold exactly ``series`` (a checkpoint's metrics, on a fresh clone)."""
        self._steps.clear()
        self._values.clear()
        self._pending = 0
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in self.folder.iterdir():
            if path.name.endswith(SUFFIX) and unquote(path.name[: -len(SUFFIX)]) not in series:
                path.unlink()
        for name, (steps, values) in series.items():
            self._rewrite(self.folder / _file_name(name), steps, values)

    @staticmethod
    def _rewrite(path: Path, steps: np.ndarray, values: np.ndarray) -> None:
        rec = np.empty(steps.size, RECORD)
        rec["step"] = steps
        rec["value"] = values
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(rec.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
