"""What the framework integrations share (SPEC 10): one run per process, tags, metrics, RNG.

``stockroom.lightning``, ``stockroom.keras`` and ``stockroom.transformers``
are thin: each turns its framework's hooks into the calls of a
:class:`stockroom.runs.run.Run` (SPEC 9). This module imports no framework.

A checkpoint callback and a logger of one training share one open run (a
run is locked to one process, so they could not each open it): they get it
from :func:`shared`, keyed by stock root and run name.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from stockroom.core import StockRoom
from stockroom.errors import StockroomError
from stockroom.runs.run import Run, _branch, _rng_states, _set_rng_states, model_name

__all__ = ["Handle", "shared", "flatten", "numeric", "rng_state", "set_rng_state", "finished_message"]


def finished_message(name: str) -> str:
    return (
        f"run {name!r} is finished (it ran to its end), so it is not resumed; to train again, "
        f"name a new run (run='{name}-2')"
    )


class Handle:
    """One open run of this process: its :class:`StockRoom`, its :class:`Run`, its last steps."""

    def __init__(self, stock: StockRoom, run: Run) -> None:
        self.stock = stock
        self.run = run
        self.resumed_step: int | None = None
        self._last: dict[str, int] | None = None

    @property
    def closed(self) -> bool:
        return bool(self.run._closed)

    def retention(self, keep_last: int | None, keep_best: int | None, monitor: str | None, mode: str) -> None:
        """Set the run's retention (the checkpoint callback's settings win over a logger's none)."""
        run = self.run
        if keep_best is not None and monitor is None:
            raise ValueError("keep_best needs monitor= (the metric that ranks checkpoints)")
        if mode not in ("min", "max"):
            raise ValueError(f"mode is 'min' or 'max', not {mode!r}")
        run.keep_last, run.keep_best, run.monitor, run.mode = keep_last, keep_best, monitor, mode
        run.records.info.update(monitor=monitor, mode=mode)

    def resume(self, allow_finished: bool = False) -> dict[str, Any] | None:
        """The payload of the run's latest checkpoint (SPEC 9 ``run.restore``), or None.

        Global RNG states are left as they were: each integration restores
        them where its framework would (per process, at the right moment).
        A finished run is refused with a one-line error unless
        ``allow_finished`` (then nothing is resumed).
        """
        run = self.run
        if run.records.finished:
            if allow_finished:
                return None
            raise StockroomError(finished_message(run.name))
        saved = rng_state()
        try:
            step = run.restore()
        finally:
            set_rng_state(saved)
        if step is None:
            if not allow_finished and _finished_on_remote(run):
                raise StockroomError(finished_message(run.name))
            return None
        self.resumed_step = step - 1
        self._last = None
        payload: dict[str, Any] = run._resumed
        return payload

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """``run.log`` of the numeric ``metrics``; a metric already logged at ``step`` is skipped.

        Frameworks report some values twice at one step (Lightning's
        ``epoch`` with every log call, a resumed loop re-reporting the
        checkpoint's step): the run keeps one point per step.
        """
        values = numeric(metrics)
        if self._last is None:
            self._last = {}
            for name in self.run.metrics.names():
                steps, _ = self.run.history(name)
                if steps.size:
                    self._last[name] = int(steps[-1])
        fresh = {k: v for k, v in values.items() if self._last.get(k, -1) < step}
        if fresh:
            self.run.log(step, **fresh)
            for k in fresh:
                self._last[k] = step

    def tags(self, params: Mapping[str, Any], prefix: str = "") -> None:
        """Hyper-parameters as stock tags (staged: the next checkpoint's commit records them)."""
        self.run.wait()  # the background save writes through the same checkout
        for key, value in flatten(params, prefix).items():
            self.stock.tag[key] = value

    def save(self, step: int, metrics: Mapping[str, Any], **states: Any) -> None:
        self.run.save(step, metrics=numeric(metrics), **states)

    def finish(self) -> None:
        if not self.closed:
            self.run.finish()
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.run.close()
        self.stock.close()
        _HANDLES.pop((str(self.stock.path), self.run.name), None)


_HANDLES: dict[tuple[str, str], Handle] = {}


def shared(path: str | Path | None = None, name: str | None = None) -> Handle:
    """The open run ``name`` of the stock at ``path`` (cwd's by default), opened on first use."""
    stock = StockRoom(path)
    root = Path(stock.path)
    if name is None:
        name = _branch(root)
    handle = _HANDLES.get((str(root), name))
    if handle is not None and not handle.closed:
        stock.close()
        return handle
    handle = Handle(stock, stock.run(name))
    _HANDLES[(str(root), name)] = handle
    return handle


def read_checkpoint(path: str | Path | None, run: str, step: int | str) -> dict[str, Any]:
    """The payload of checkpoint ``RUN@STEP`` (``step`` may be ``latest``/``best``), read-only.

    For processes that restore but do not write (DDP ranks other than 0, a
    fine-tune from another run's checkpoint).
    """
    with StockRoom(path) as stock:
        payload: dict[str, Any] = stock.at(f"{run}@{step}").model[model_name(run)]
        return payload


def _finished_on_remote(run: Run) -> bool:
    from stockroom.runs import remote

    if run.records.items:
        return bool(run.records.items[-1].finished)
    try:
        doc = remote.latest(run)
    except StockroomError:
        return False
    return bool(doc and doc.get("finished"))


def flatten(params: Any, prefix: str = "") -> dict[str, int | float | str | bool]:
    """Nested hyper-parameters as ``a.b.c`` keys with tag values (others written as text)."""
    out: dict[str, int | float | str | bool] = {}

    def walk(key: str, value: Any) -> None:
        if isinstance(value, (Mapping, argparse.Namespace)):
            items = value.items() if isinstance(value, Mapping) else vars(value).items()
            for k, v in items:
                walk(f"{key}.{k}" if key else str(k), v)
            return
        if not key:
            raise TypeError("hyper-parameters are a mapping of names to values")
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = str(value)

    walk(prefix, params)
    return out


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics that are numbers (floats, ints, one-element tensors, numpy scalars), as floats."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, (str, bytes)) or value is None:
            continue
        try:
            item = getattr(value, "item", None)
            number = float(item() if callable(item) else value)
        except (TypeError, ValueError, RuntimeError):
            continue
        out[str(name)] = number
    return out


def rng_state() -> dict[str, Any]:
    """Python's, numpy's and torch's global RNG states (CUDA's where in use)."""
    return _rng_states()


def set_rng_state(states: Mapping[str, Any]) -> None:
    _set_rng_states(states)
