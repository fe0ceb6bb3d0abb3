"""Hugging Face Transformers: the ``Trainer``'s checkpoints and logs into a stock run (SPEC 10).

One line, and the resume line Hugging Face scripts already have::

    trainer = Trainer(model, args, train_dataset=ds, callbacks=[StockCallback(keep_best=1)])
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)

At every checkpoint the Trainer makes (its ``save_steps`` / ``save_strategy``)
the callback stores what that checkpoint holds, as one checkpoint of a stock
run (SPEC 9): the model's weights, the optimizer's and the scheduler's states,
every process's RNG states and the trainer state (``trainer_state.json``: step,
epoch, log history, best metric). Metrics go into the run at ``logging_steps``.

Resume: when the Trainer is made and the run has an unfinished checkpoint,
the callback writes it back as ``output_dir/checkpoint-<step>`` in the
Trainer's own format (unless that folder is there already, as after a crash
on the same machine) and sets ``args.resume_from_checkpoint`` to it, so
``train(resume_from_checkpoint=args.resume_from_checkpoint)`` (or ``=True``)
resumes with the Trainer's own semantics: weights, optimizer, scheduler, RNG,
and the data position, whose skipped batches accelerate's
``skip_first_batches`` passes over in the sampler (their samples are not
read). On a fresh clone the checkpoint comes from the stock remote.

Importing this module imports ``transformers``; ``import stockroom`` does not.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from stockroom.integrations import _common

__all__ = ["StockCallback"]

WEIGHTS = "pytorch_model.bin"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
STATE = "trainer_state.json"


class StockCallback(TrainerCallback):
    """Store the Trainer's checkpoints in a stock run, log its metrics, resume an unfinished run.

    Args:
        run: the run's name (default: the git branch).
        keep_last, keep_best, monitor, mode: the run's retention (SPEC 9).
            ``monitor`` defaults to the Trainer's ``metric_for_best_model``
            (``eval_`` prefixed as the Trainer does), ``mode`` to its
            ``greater_is_better``.
        resume: make the Trainer resume the run's latest checkpoint (default);
            a finished run is refused with a one-line error (name a new run).
        path: the stock repository (default: found from the current directory).
    """

    def __init__(
        self,
        run: str | None = None,
        keep_last: int | None = None,
        keep_best: int | None = None,
        monitor: str | None = None,
        mode: str | None = None,
        resume: bool = True,
        path: str | Path | None = None,
    ) -> None:
        self.run_name = run
        self.keep_last, self.keep_best, self.monitor, self.mode = keep_last, keep_best, monitor, mode
        self.resume = resume
        self.path = path
        self.handle: _common.Handle | None = None
        #: the checkpoint folder the Trainer resumes from (None: nothing to resume)
        self.resume_from_checkpoint: str | None = None
        self.resumed_step: int | None = None

    # ------------------------------------------------------------ open, resume
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        monitor, mode = self.monitor, self.mode
        if monitor is None and args.metric_for_best_model:
            name = args.metric_for_best_model
            monitor = name if name.startswith("eval_") else f"eval_{name}"
        if mode is None:
            mode = "max" if args.greater_is_better else "min"
        if self.keep_best is not None and monitor is None:
            raise ValueError("keep_best needs monitor= (or the Trainer's metric_for_best_model)")
        self.monitor, self.mode = monitor, mode
        found: list[Any] = [None]
        if args.should_save:  # the main process writes the stock; the others read its folder
            self.handle = _common.shared(self.path, self.run_name)
            self.run_name = self.handle.run.name
            self.handle.retention(self.keep_last, self.keep_best, monitor, mode)
            payload = self.handle.resume() if self.resume else None
            if payload is not None:
                step = int(payload["step"])
                folder = Path(args.output_dir) / f"checkpoint-{step}"
                if not (folder / STATE).is_file():
                    _write_folder(folder, payload["states"])
                found = [(step, str(folder))]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every process resumes from the folder the main one wrote (a shared output_dir)
            torch.distributed.broadcast_object_list(found, src=0)
        if found[0] is not None:
            self.resumed_step, self.resume_from_checkpoint = found[0]
            args.resume_from_checkpoint = self.resume_from_checkpoint

    # ------------------------------------------------------------ metrics, checkpoints
    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if self.handle is not None and logs:
            self.handle.log(int(state.global_step), logs)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.handle is None:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        states: dict[str, Any] = {
            "model": kwargs["model"].state_dict(),
            "trainer_state": (folder / STATE).read_text(encoding="utf-8"),
            "rng": _rng_files(folder),
        }
        optimizer, scheduler = kwargs.get("optimizer"), kwargs.get("lr_scheduler")
        if optimizer is not None and (folder / OPTIMIZER).is_file():
            states["optimizer"] = optimizer.state_dict()
        if scheduler is not None and (folder / SCHEDULER).is_file():
            states["scheduler"] = scheduler.state_dict()
        metrics = {}
        for entry in state.log_history:  # the latest value of each metric up to this step
            if entry.get("step", -1) <= state.global_step:
                metrics.update(entry)
        metrics.pop("step", None)
        self.handle.save(int(state.global_step), metrics, **states)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.handle is not None:
            self.handle.finish()  # ran to its end: not resumed again
            self.handle = None


def _rng_files(folder: Path) -> dict[str, Any]:
    """The RNG states the Trainer just saved, per process (``rng_state[_N].pth``), as nested states."""
    out: dict[str, Any] = {}
    for name in sorted(glob.glob(str(folder / "rng_state*.pth"))):
        loaded = torch.load(name, weights_only=False)  # the file this Trainer wrote a moment ago
        out[os.path.basename(name)] = loaded
    return out


def _write_folder(folder: Path, states: dict[str, Any]) -> None:
    """A checkpoint folder in the Trainer's format from a stored checkpoint (atomic: made aside, renamed)."""
    tmp = folder.with_name(folder.name + ".stock-tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save(dict(states["model"]), tmp / WEIGHTS)
    if "optimizer" in states:
        torch.save(states["optimizer"], tmp / OPTIMIZER)
    if "scheduler" in states:
        torch.save(states["scheduler"], tmp / SCHEDULER)
    for name, rng in states.get("rng", {}).items():
        torch.save(rng, tmp / name)
    state = json.loads(states["trainer_state"])
    (tmp / STATE).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if folder.exists():  # the Trainer's own folder, cut short by a crash in its save
        shutil.rmtree(folder)
    os.replace(tmp, folder)
