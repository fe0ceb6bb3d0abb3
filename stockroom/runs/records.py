"""A run's local records (light: no numpy, torch or Hangar), and ``RUN@STEP`` resolution.

``.hangar/stockroom-runs/<run>/checkpoints.json`` lists every checkpoint a
run made (step, stock commit, the metrics given to ``save``, pruned or not)
and the run's settings. ``stock.at``, ``stock diff`` and ``stock log
--tags`` resolve ``RUN@STEP`` here (see :func:`resolve`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from stockroom.errors import StockroomError

RUNS_DIR = "stockroom-runs"
MODEL_PREFIX = "run."


def runs_dir(root: Path) -> Path:
    """Where the runs of the stock repository at ``root`` keep their local records."""
    return root / ".hangar" / RUNS_DIR


def run_dir(root: Path, name: str) -> Path:
    """The folder of run ``name``'s local records."""
    return runs_dir(root) / quote(name, safe="")


@dataclass
class Checkpoint:
    """One checkpoint of a run: its step, its stock commit and the metrics given to ``save``."""

    step: int
    commit: str
    metrics: dict[str, float] = field(default_factory=dict)
    time: float = 0.0
    pruned: bool = False
    finished: bool = False


class Records:
    """A run's ``checkpoints.json``: every checkpoint it made, pruned ones included."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "checkpoints.json"
        self.items: list[Checkpoint] = []
        self.finished = False
        self.info: dict[str, Any] = {}
        self.dropped: set[str] = set()  # pruned checkpoints whose data was dropped
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise StockroomError(
                f"the run records {self.path} are unreadable ({exc}); move the file away to start "
                f"the run's records afresh (its checkpoints stay in the stock history)"
            ) from None
        self.items = [Checkpoint(**c) for c in doc.get("checkpoints", [])]
        self.finished = bool(doc.get("finished", False))
        self.info = dict(doc.get("info", {}))
        self.dropped = set(doc.get("dropped", []))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "info": self.info,
            "finished": self.finished,
            "checkpoints": [asdict(c) for c in self.items],
            "dropped": sorted(self.dropped),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def latest(self) -> Checkpoint | None:
        return self.items[-1] if self.items else None


def pruned_message(name: str, step: int) -> str:
    return (
        f"run {name!r} checkpoint at step {step} was pruned by the run's retention (keep_last/"
        f"keep_best): its records, metrics and tags remain, its states do not; use a kept "
        f"checkpoint (stock runs lists them)"
    )


@dataclass(frozen=True)
class RunRef:
    """What ``RUN@STEP`` names."""

    run: str
    step: int
    commit: str
    pruned: bool


def resolve(root: Path, text: str) -> RunRef | None:
    """``RUN@STEP`` -> the checkpoint it names; None when ``text`` is not one (a git revision).

    ``STEP`` is a number, ``best`` or ``latest``. A pruned checkpoint still
    resolves (its records remain); reading its states says it was pruned.
    """
    found = resolve_history(root, text)
    if found is None:
        return None
    ref, _ = found
    return ref


def resolve_history(root: Path, text: str) -> tuple[RunRef, list[Checkpoint]] | None:
    """``RUN@STEP`` -> the checkpoint it names and the run's checkpoints up to it, oldest first
    (``stock log --tags RUN@STEP``); None when ``text`` is not one."""
    if "@" not in text or "{" in text:
        return None
    name, _, step_text = text.rpartition("@")
    folder = run_dir(root, name)
    if not name or not (folder / "checkpoints.json").is_file():
        return None
    records = Records(folder)
    at = _pick(records, name, step_text, text)
    pick = records.items[at]
    return RunRef(name, pick.step, pick.commit, pick.pruned), records.items[: at + 1]


def _pick(records: Records, name: str, step_text: str, text: str) -> int:
    """The index in ``records.items`` of the checkpoint ``STEP`` names."""
    items = records.items
    if not items:
        raise StockroomError(f"run {name!r} has no checkpoint yet")
    if step_text == "latest":
        return len(items) - 1
    if step_text == "best":
        monitor, mode = records.info.get("monitor"), records.info.get("mode", "min")
        if monitor is None:  # as run.best(): with no monitor, the latest kept checkpoint
            return max((i for i, c in enumerate(items) if not c.pruned), default=len(items) - 1)
        kept = [c for c in items if not c.pruned and monitor in c.metrics]
        if not kept:
            raise StockroomError(f"run {name!r} has no kept checkpoint with metric {monitor!r}")
        best = (min if mode == "min" else max)(kept, key=lambda c: c.metrics[monitor])
        return next(i for i, c in enumerate(items) if c is best)
    try:
        step = int(step_text)
    except ValueError:
        raise StockroomError(f"{text!r}: after '@' comes a checkpoint step, 'best' or 'latest'") from None
    found = [i for i, c in enumerate(items) if c.step == step]
    if not found:
        steps = ", ".join(str(c.step) for c in items[-10:])
        raise StockroomError(f"run {name!r} has no checkpoint at step {step}; it has {steps}")
    return found[-1]


class PrunedModels:
    """``stock.at("RUN@STEP").model`` of a pruned checkpoint: the run's own states refused."""

    def __init__(self, models: Any, why: str) -> None:
        self._models = models
        self._why = why

    def _check(self, name: str) -> None:
        if isinstance(name, str) and name.startswith(MODEL_PREFIX):
            raise StockroomError(self._why)

    def __getitem__(self, name: str) -> Any:
        self._check(name)
        return self._models[name]

    def load_weights(self, name: str, model: Any) -> None:
        self._check(name)
        self._models.load_weights(name, model)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._models, attr)

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def __iter__(self) -> Any:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)
