"""``stock.run()``: a training run whose every checkpoint is a stock commit (SPEC 9).

A checkpoint is one stock commit holding the model ``run.<name>``, a nested
state (:mod:`stockroom.storages._nested`)::

    {"run": name, "step": step, "states": {"model": ..., "opt": ...},
     "rng": {"python": ..., "numpy": ..., "torch": ..., "cuda": [...]},
     "metrics": {"loss": (steps, values), ...}, "saved": metrics passed to save}

and the tags ``run.<name>.step`` and ``run.<name>.<metric>`` (the metrics
given to ``save``, so ``stock log --tags`` shows them). Tensors dedup as
layers do, so an unchanged embedding costs nothing in the next checkpoint.

Local bookkeeping (git-ignored, in ``.hangar/stockroom-runs/<name>/``):
``checkpoints.json`` (step, stock commit, metrics, pruned), the per-step
metric files (:mod:`stockroom.runs.metrics`) and a lock held while the run
is open in a process, so two processes cannot write one run at once.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import math
import os
import random
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

import numpy as np

from stockroom.errors import StockroomError
from stockroom.headfile import read_head, write_head
from stockroom.runs.metrics import MetricLog
from stockroom.runs.records import Checkpoint, Records, pruned_message, run_dir, runs_dir


class StockRoom(Protocol):
    """What a run uses of :class:`stockroom.StockRoom` (the app layer above: not imported)."""

    path: Path

    @property
    def model(self) -> Any: ...
    @property
    def tag(self) -> Any: ...
    @property
    def _store(self) -> Any: ...

    def commit(self, message: str, update_head: bool = ...) -> str: ...


MODEL_PREFIX = "run."
TAG_PREFIX = "run."


def model_name(name: str) -> str:
    """The ``stock.model`` name a run's checkpoints are stored under."""
    return MODEL_PREFIX + name


def _to_float(name: str, value: Any) -> float:
    try:
        item = getattr(value, "item", None)  # one-element tensors (no grad warning), numpy scalars
        return float(item() if callable(item) else value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"metric {name!r} is a {type(value).__name__}; log numbers (floats, ints, one-element "
            f"tensors or numpy scalars)"
        ) from None


def _host_copy(value: Any) -> Any:
    """A deep copy of a state with every tensor in host memory (the background save's own copy)."""
    if isinstance(value, Mapping):
        copied = {k: _host_copy(v) for k, v in value.items()}
        return OrderedDict(copied) if isinstance(value, OrderedDict) else copied
    if type(value) is list:
        return [_host_copy(v) for v in value]
    if type(value) is tuple:
        return tuple(_host_copy(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.copy()
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    return value


def _torch() -> Any:
    import sys

    return sys.modules.get("torch")


def _state_of(key: str, obj: Any) -> Any:
    getter = getattr(obj, "state_dict", None)
    if callable(getter):
        return getter()
    return obj


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state()}
    torch = _torch()
    if torch is not None:
        states["torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states["cuda"] = {"all": list(torch.cuda.get_rng_state_all())}
    return states


def _set_rng_states(states: Mapping[str, Any]) -> None:
    if "python" in states:
        random.setstate(states["python"])
    if "numpy" in states:
        np.random.set_state(states["numpy"])
    torch = _torch()
    if torch is not None and "torch" in states:
        torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"]["all"])


_OPEN: weakref.WeakSet[Run] = weakref.WeakSet()


@atexit.register
def _finish_all() -> None:  # pragma: no cover - runs at interpreter exit
    for run in list(_OPEN):
        with contextlib.suppress(Exception):
            run.close()


class Run:
    """A training run: ``log`` metrics, ``save`` checkpoints, ``restore`` the latest one.

    Made by :meth:`stockroom.StockRoom.run`. See docs/runs.md.
    """

    def __init__(
        self,
        stock: StockRoom,
        name: str | None = None,
        keep_last: int | None = None,
        keep_best: int | None = None,
        monitor: str | None = None,
        mode: str = "min",
        background: bool = True,
        push: bool | None = None,
    ) -> None:
        # Opening the store the first time (importing Hangar) draws from
        # Python's global RNG; a run must not change the training's RNG.
        rng = random.getstate()
        try:
            self._open(stock, name, keep_last, keep_best, monitor, mode, background, push)
        finally:
            random.setstate(rng)

    def _open(
        self,
        stock: StockRoom,
        name: str | None,
        keep_last: int | None,
        keep_best: int | None,
        monitor: str | None,
        mode: str,
        background: bool,
        push: bool | None,
    ) -> None:
        from stockroom.storages.model import column_name

        if name is None:
            name = _branch(stock.path)
        if not isinstance(name, str) or not name:
            raise ValueError("a run name is a non-empty str (default: the git branch)")
        column_name(model_name(name))  # a name too long or odd fails now
        if mode not in ("min", "max"):
            raise ValueError(f"mode is 'min' or 'max', not {mode!r}")
        if keep_best is not None and monitor is None:
            raise ValueError("keep_best needs monitor= (the metric that ranks checkpoints)")
        for label, n in (("keep_last", keep_last), ("keep_best", keep_best)):
            if n is not None and (not isinstance(n, int) or n < 0):
                raise ValueError(f"{label} is a non-negative int or None")
        if keep_last == 0 and not keep_best:
            raise ValueError("keep_last=0 with no keep_best would keep no checkpoint; keep at least one")
        self.stock = stock
        self.name = name
        self.keep_last, self.keep_best, self.monitor, self.mode = keep_last, keep_best, monitor, mode
        self.background = background
        self._push = push
        self.folder = run_dir(stock.path, name)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise StockroomError(
                f"run {name!r} is open in another process of this clone; finish that one, or give "
                f"this run another name (stock.run(name=...))"
            ) from None
        self.records = Records(self.folder)
        if not self.records.info:
            self.records.info = {"name": name, "branch": _branch(stock.path), "created": time.time()}
        self.records.info.update(monitor=monitor, mode=mode)
        self.metrics = MetricLog(self.folder / "metrics")
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._closed = False
        self._reconcile()
        _OPEN.add(self)

    # ------------------------------------------------------------- metrics
    def log(self, step: int, **metrics: Any) -> None:
        """Record per-step metrics (floats; tensors and numpy scalars accepted)."""
        self._check()
        values: dict[str, float] = {}
        for k, v in metrics.items():
            values[k] = v if type(v) is float else _to_float(k, v)
        self.metrics.log(int(step), values)

    def flush(self) -> None:
        """Write the buffered metrics to disk now (a crash keeps them)."""
        self.metrics.flush()

    def history(self, metric: str, points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of ``metric``; with ``points``, min/max-preserving downsampling."""
        return self.metrics.history(metric, points)

    # ------------------------------------------------------------- checkpoints
    @property
    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint of the run, oldest first (pruned ones too, marked)."""
        return list(self.records.items)

    def best(self) -> Checkpoint | None:
        """The best kept checkpoint by ``monitor`` (the latest when there is no monitor)."""
        self._check()
        kept = [c for c in self.records.items if not c.pruned]
        if self.monitor is None:
            return kept[-1] if kept else None
        scored = [c for c in kept if self.monitor in c.metrics and not math.isnan(c.metrics[self.monitor])]
        if not scored:
            return None
        pick = min if self.mode == "min" else max
        return pick(scored, key=lambda c: c.metrics[self.monitor])  # type: ignore[index]

    def save(self, step: int, metrics: Mapping[str, Any] | None = None, **states: Any) -> None:
        """Write one checkpoint of ``states`` at ``step``, as one stock commit.

        Returns once the states are copied to host memory; the write, the
        commit and the push go on in the background (``run.wait()`` waits).
        """
        self._check()
        self._join()
        if not states:
            raise ValueError("run.save(step, model=..., opt=...) needs at least one state to save")
        saved = {k: _to_float(k, v) for k, v in (metrics or {}).items()}
        payload = {
            "run": self.name,
            "step": int(step),
            "states": {k: _host_copy(_state_of(k, obj)) for k, obj in states.items()},
            "rng": _host_copy(_rng_states()),
            "saved": saved,
        }
        self.metrics.flush()
        if self.background:
            self._thread = threading.Thread(
                target=self._save_guarded, args=(payload,), name=f"stockroom-run-{self.name}"
            )
            self._thread.start()
        else:
            self._write(payload)

    def wait(self) -> None:
        """Wait for the save in flight; raise its error if it failed."""
        self._join()
        self._check()

    def _save_guarded(self, payload: dict[str, Any]) -> None:
        try:
            self._write(payload)
        except BaseException as exc:  # noqa: BLE001 - handed to the next call into the run
            self._failure = exc

    def _write(self, payload: dict[str, Any]) -> None:
        from stockroom.runs import remote, retention

        step = payload["step"]
        # save() flushed on the training thread; this may be the background
        # one, which must only read (a flush here would race run.log).
        payload["metrics"] = {
            name: (steps[steps <= step], values[steps <= step])
            for name, steps, values in self.metrics.all(flush=False)
        }
        stock = self.stock
        stock.model[model_name(self.name)] = payload
        tags: dict[str, Any] = {f"{TAG_PREFIX}{self.name}.step": step}
        tags.update({f"{TAG_PREFIX}{self.name}.{k}": v for k, v in payload["saved"].items()})
        stock.tag.update(tags)  # one write for all of them
        _crash_point("before-commit")
        digest = stock.commit(f"run {self.name}: checkpoint at step {step}")
        _crash_point("after-commit")
        self.records.items.append(Checkpoint(step, digest, payload["saved"], time.time()))
        self.records.save()
        if self.keep_last is not None or self.keep_best is not None:
            retention.apply(self)
            _crash_point("before-drop")
            retention.drop_data(self)
        if self._push_enabled():
            remote.publish(self, digest, step)

    def _push_enabled(self) -> bool:
        if self._push is not None:
            return self._push
        from stockroom.remote import config

        return config.default_name(self.stock.path) is not None

    # ------------------------------------------------------------- resuming
    def restore(self, **objects: Any) -> int | None:
        """Load the run's latest checkpoint into ``objects`` in place; the step to go on from.

        Restores the RNG states, drops metrics logged after the checkpoint's
        step and returns that step + 1, or ``None`` when there is nothing to
        resume (no checkpoint, or the run is finished). With a default stock
        remote and no local checkpoint (a fresh clone), the run's latest
        checkpoint recorded on the remote is used: ``head.stock`` moves to
        it and only what is loaded is fetched.
        """
        self._check()
        self._join()
        self._check()
        latest = self.records.latest()
        if latest is None or not self.stock._store.has_commit(latest.commit):
            from stockroom.runs import remote

            found = remote.find_latest(self)
            if found is None:
                return None
            latest = found
        if latest.finished or self.records.finished:
            return None
        if latest.pruned:
            raise StockroomError(pruned_message(self.name, latest.step))
        head = read_head(self.stock.path)
        if head != latest.commit:
            write_head(self.stock.path, latest.commit)
        payload = self.stock.model[model_name(self.name)]
        states = payload["states"]
        for key, obj in objects.items():
            if key not in states:
                raise KeyError(
                    f"run {self.name!r} checkpoint at step {latest.step} has no state {key!r}; it "
                    f"holds {sorted(states)}"
                )
            loader = getattr(obj, "load_state_dict", None)
            if not callable(loader):
                raise TypeError(
                    f"restore({key}=...) needs an object with load_state_dict(); read a plain "
                    f"state with run.load({key!r})"
                )
            loader(states[key])
        _set_rng_states(payload["rng"])
        self.metrics.replace({k: (np.asarray(s), np.asarray(v)) for k, (s, v) in payload["metrics"].items()})
        self._resumed = payload
        return int(payload["step"]) + 1

    def load(self, key: str) -> Any:
        """A state of the checkpoint last restored (a plain nested state, not loaded into anything)."""
        payload = getattr(self, "_resumed", None)
        if payload is None:
            raise StockroomError("nothing restored yet; call run.restore() first")
        return payload["states"][key]

    def finish(self) -> None:
        """Wait for the last save, flush metrics and mark the run finished (it is not resumed)."""
        self._join()
        self._check()
        self.metrics.flush()
        self.records.finished = True
        self.records.save()
        if self._push_enabled() and self.records.items:
            from stockroom.runs import remote

            last = self.records.items[-1]
            remote.publish(self, last.commit, last.step, finished=True)
        self.close()

    def close(self) -> None:
        """Wait for the save in flight, flush metrics and release the run (it can be resumed)."""
        if self._closed:
            return
        self._join()
        with contextlib.suppress(Exception):
            self.metrics.flush()
        self._closed = True
        os.close(self._lock_fd)
        _OPEN.discard(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<stock run {self.name!r}: {len(self.records.items)} checkpoint(s)>"

    # ------------------------------------------------------------- helpers
    def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _check(self) -> None:
        if self._closed:
            raise StockroomError(f"run {self.name!r} is closed; open it again with stock.run({self.name!r})")
        failure, self._failure = self._failure, None
        if failure is not None:
            raise StockroomError(
                f"the background save of run {self.name!r} failed: {failure}; the training state in "
                f"memory is intact: fix the cause and call run.save() again"
            ) from failure

    def _reconcile(self) -> None:
        """A crash after a checkpoint's commit but before its record: take it from head.stock."""
        head = read_head(self.stock.path)
        if not head or any(c.commit == head for c in self.records.items):
            return
        try:
            step = self.stock.tag[f"{TAG_PREFIX}{self.name}.step"]
        except KeyError:
            return
        if not isinstance(step, int):
            return
        last = self.records.latest()
        if last is not None and last.step >= step:
            return
        saved = {}
        prefix = f"{TAG_PREFIX}{self.name}."
        for key in self.stock.tag.keys():
            if key.startswith(prefix) and key != prefix + "step":
                value = self.stock.tag[key]
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    saved[key[len(prefix) :]] = float(value)
        self.records.items.append(Checkpoint(step, head, saved, time.time()))
        self.records.save()


def _branch(root: Path) -> str:
    from stockroom.git import git

    try:
        return git("symbolic-ref", "--short", "-q", "HEAD", cwd=root) or "detached"
    except StockroomError:
        return "detached"


def _crash_point(name: str) -> None:
    # Test-only fault injection (tests/test_runs_crash.py): die here, like a SIGKILL.
    if os.environ.get("STOCK_RUN_CRASH") == name:
        os.kill(os.getpid(), 9)


def list_runs(root: Path) -> list[dict[str, Any]]:
    """Every run of this clone (all branches): name, branch, steps, checkpoints, metrics.

    For ``stock runs`` and a web UI: no Hangar, no torch, only the local records.
    """
    base = runs_dir(root)
    out: list[dict[str, Any]] = []
    if not base.is_dir():
        return out
    for folder in sorted(base.iterdir()):
        if not folder.is_dir():
            continue
        records = Records(folder)
        name = unquote(folder.name)
        log = MetricLog(folder / "metrics")
        items = records.items
        out.append(
            {
                "name": name,
                "branch": records.info.get("branch", ""),
                "last_step": items[-1].step if items else None,
                "checkpoints": len(items),
                "kept": sum(1 for c in items if not c.pruned),
                "pruned": sum(1 for c in items if c.pruned),
                "finished": records.finished,
                "metrics": log.names(),
                "last": dict(items[-1].metrics) if items else {},
                "monitor": records.info.get("monitor"),
                "mode": records.info.get("mode", "min"),
            }
        )
    return out


def history(root: Path, run: str, metric: str, points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one run's metric, read from the local files (no lock taken)."""
    return MetricLog(run_dir(root, run) / "metrics").history(metric, points)
