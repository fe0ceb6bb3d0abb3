"""PyTorch Lightning: checkpoints and metrics of a ``Trainer`` into a stock run (SPEC 10).

One line each::

    trainer = L.Trainer(callbacks=[StockCheckpoint(every_n_epochs=1, keep_best=1, monitor="val_loss")],
                        logger=StockLogger())

Each checkpoint is Lightning's own full checkpoint dict (weights, optimizers,
schedulers, loops' progress, callbacks' states, precision plugin) written
through Lightning's ``CheckpointIO`` seam as one checkpoint of a stock run
(SPEC 9), plus every process's RNG states. Re-running the same script after a
crash resumes the run's latest checkpoint, here or in a fresh clone with the
stock remote; ``trainer.fit(model, ckpt_path="stock://RUN@STEP")`` (``@best``,
``@latest``) loads a given one. See docs/integrations.md.

Importing this module imports ``lightning``; ``import stockroom`` does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from stockroom.errors import StockroomError
from stockroom.integrations import _common

__all__ = ["StockCheckpoint", "StockLogger", "StockCheckpointIO"]

SCHEME = "stock://"
STATE = "lightning"


def _parse(path: Any) -> tuple[str, str] | None:
    """``stock://RUN@STEP`` -> (run, step text); None for any other path (a file)."""
    text = str(path)
    if not text.startswith(SCHEME):
        return None
    run, sep, step = text[len(SCHEME) :].rpartition("@")
    if not sep or not run or not step:
        raise ValueError(
            f"{text!r}: a stock checkpoint path is stock://RUN@STEP (STEP: a number, best, latest)"
        )
    return run, step


class StockCheckpointIO(CheckpointIO):
    """Lightning's ``CheckpointIO`` for ``stock://RUN@STEP`` paths; other paths go to ``inner``.

    :class:`StockCheckpoint` installs it on the trainer's strategy, so
    ``trainer.save_checkpoint`` / ``fit(ckpt_path=...)`` with a ``stock://``
    path write and read the stock, and Lightning's own ``ModelCheckpoint``
    keeps writing files beside it.
    """

    def __init__(self, callback: StockCheckpoint, inner: CheckpointIO) -> None:
        self.callback = callback
        self.inner = inner

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if _parse(path) is None:
            self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        self.callback._write(checkpoint)

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> Any:
        parsed = _parse(path)
        if parsed is None:
            return self.inner.load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        run, step = parsed
        payload = _common.read_checkpoint(self.callback.path, run, step)
        return _lightning_dict(payload, f"{run}@{step}")

    def remove_checkpoint(self, path: Any) -> None:
        if _parse(path) is None:
            self.inner.remove_checkpoint(path)
        # a stock checkpoint goes by the run's retention, never by a path

    def teardown(self) -> None:
        self.inner.teardown()


def _lightning_dict(payload: dict[str, Any], where: str) -> dict[str, Any]:
    states = payload.get("states", {})
    if STATE not in states:
        raise StockroomError(
            f"checkpoint {where} was not written by stockroom.lightning (it holds {sorted(states)}); "
            f"load it with run.restore(...)"
        )
    checkpoint: dict[str, Any] = states[STATE]
    return checkpoint


def _storable(value: Any) -> Any:
    """Hyper-parameters as the stock can hold them (SPEC 9 nested states): unknown values as text."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _storable(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_storable(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    return repr(value)


class StockCheckpoint(pl.Callback):
    """Write Lightning's checkpoint to a stock run every N epochs or train steps; resume on re-run.

    Args:
        run: the run's name (default: the git branch).
        every_n_epochs: save at the end of every N-th training epoch (default 1 when
            ``every_n_train_steps`` is not given).
        every_n_train_steps: save after every N-th optimizer step instead.
        keep_last, keep_best, monitor, mode: the run's retention (SPEC 9); ``monitor``
            is read from ``trainer.callback_metrics``.
        save_last: also save when training ends off the N-step grid.
        resume: re-running the script resumes the run's latest checkpoint (default);
            a finished run is refused with a one-line error (name a new run).
        path: the stock repository (default: found from the current directory).
    """

    def __init__(
        self,
        run: str | None = None,
        every_n_epochs: int | None = None,
        every_n_train_steps: int | None = None,
        keep_last: int | None = None,
        keep_best: int | None = None,
        monitor: str | None = None,
        mode: str = "min",
        save_last: bool = True,
        resume: bool = True,
        path: str | Path | None = None,
    ) -> None:
        if every_n_epochs is not None and every_n_train_steps is not None:
            raise ValueError("give every_n_epochs or every_n_train_steps, not both")
        for label, n in (("every_n_epochs", every_n_epochs), ("every_n_train_steps", every_n_train_steps)):
            if n is not None and (not isinstance(n, int) or n < 1):
                raise ValueError(f"{label} is a positive int")
        if keep_best is not None and monitor is None:
            raise ValueError("keep_best needs monitor= (the metric that ranks checkpoints)")
        if mode not in ("min", "max"):
            raise ValueError(f"mode is 'min' or 'max', not {mode!r}")
        self.run_name = run
        self.every_n_epochs = every_n_epochs if every_n_train_steps is None else None
        if self.every_n_epochs is None and every_n_train_steps is None:
            self.every_n_epochs = 1
        self.every_n_train_steps = every_n_train_steps
        self.keep_last, self.keep_best, self.monitor, self.mode = keep_last, keep_best, monitor, mode
        self.save_last = save_last
        self.resume = resume
        self.path = path
        self.handle: _common.Handle | None = None
        #: the step of the checkpoint this fit resumed from (None: it started afresh)
        self.resumed_step: int | None = None
        self._saved_step = -1
        self._metrics: dict[str, float] = {}

    @property
    def state_key(self) -> str:
        # not by run name: a checkpoint of another run (fit(ckpt_path="stock://other@best"))
        # brings its RNG states along too
        return "StockCheckpoint"

    # ------------------------------------------------------------ set up, resume
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        strategy = trainer.strategy
        if not isinstance(strategy.checkpoint_io, StockCheckpointIO):
            strategy.checkpoint_io = StockCheckpointIO(self, strategy.checkpoint_io)
        found: int | None = None
        if trainer.is_global_zero:
            self.handle = _shared(self.path, self.run_name, trainer)
            self.run_name = self.handle.run.name
            self.handle.retention(self.keep_last, self.keep_best, self.monitor, self.mode)
            for logger in trainer.loggers:  # one run: the logger writes where the checkpoints go
                if isinstance(logger, StockLogger) and logger._run_name in (None, self.run_name):
                    logger._handle, logger._run_name = self.handle, self.run_name
            payload = self.handle.resume() if self.resume else None
            if payload is not None:
                found = int(payload["step"])
                connector_load(trainer, _lightning_dict(payload, f"{self.run_name}@{found}"))
        # every process restores: rank 0 found the checkpoint, the others read the same one
        self.run_name = strategy.broadcast(self.run_name, src=0)
        found = strategy.broadcast(found, src=0)
        self.resumed_step = found
        if found is not None:
            self._saved_step = found
            if not trainer.is_global_zero:
                payload = _common.read_checkpoint(self.path, str(self.run_name), found)
                connector_load(trainer, _lightning_dict(payload, f"{self.run_name}@{found}"))

    # ------------------------------------------------------------ when to save
    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0 and trainer.global_step != self._saved_step:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        n = self.every_n_epochs
        if n and (trainer.current_epoch + 1) % n == 0 and trainer.global_step != self._saved_step:
            self._save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.save_last and trainer.global_step != self._saved_step and trainer.global_step > 0:
            self._save(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.handle is not None:
            self.handle.finish()  # ran to its end: not resumed again
            self.handle = None

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self.handle is not None:
            self.handle.close()  # the checkpoint in flight completes; the run stays resumable
            self.handle = None

    def _save(self, trainer: pl.Trainer) -> None:
        self._metrics = _common.numeric(trainer.callback_metrics)
        self._saved_step = trainer.global_step
        # Lightning builds its checkpoint dict on every process (our state_dict gathers
        # the RNG states) and hands it to the CheckpointIO on rank 0 only.
        trainer.save_checkpoint(f"{SCHEME}{self.run_name}@{trainer.global_step}")

    def _write(self, checkpoint: dict[str, Any]) -> None:
        if self.handle is None:
            raise StockroomError("StockCheckpoint saves during trainer.fit only (its run is not open)")
        checkpoint = dict(checkpoint)
        for key in ("hyper_parameters", "datamodule_hyper_parameters"):
            if key in checkpoint:
                checkpoint[key] = _storable(checkpoint[key])
        self.handle.save(int(checkpoint["global_step"]), self._metrics, **{STATE: checkpoint})

    # ------------------------------------------------------------ RNG, per process
    def state_dict(self) -> dict[str, Any]:
        state = _common.rng_state()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, state)
            return {"rng": gathered}
        return {"rng": [state]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = state_dict.get("rng") or []
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        if states:
            _common.set_rng_state(states[rank] if rank < len(states) else states[0])


def connector_load(trainer: pl.Trainer, checkpoint: dict[str, Any]) -> None:
    """Hand a checkpoint to Lightning's own restore, as if ``fit(ckpt_path=...)`` had loaded it.

    Called in ``setup``, before Lightning's ``_restore_modules_and_callbacks``:
    with no ``ckpt_path`` it restores what is preloaded (its ``resume_start``
    leaves a preloaded checkpoint alone); an explicit ``ckpt_path`` replaces it.
    """
    trainer._checkpoint_connector._loaded_checkpoint = checkpoint


def _shared(path: str | Path | None, name: str | None, trainer: pl.Trainer) -> _common.Handle:
    for logger in trainer.loggers:
        if isinstance(logger, StockLogger) and logger._handle is not None and not logger._handle.closed:
            if name is None or logger._handle.run.name == name:
                return logger._handle
    return _common.shared(path, name)


class StockLogger(Logger):
    """Lightning ``Logger``: metrics per step into a stock run, hyper-parameters as stock tags.

    With :class:`StockCheckpoint` in the same trainer both use one run (the
    tags are committed with its first checkpoint). ``log_hyperparams`` writes
    ``stock.tag[name]`` for each (nested names joined with ``.``; values other
    than int/float/str/bool as text).
    """

    def __init__(self, run: str | None = None, path: str | Path | None = None) -> None:
        super().__init__()
        self._run_name = run
        self._path = path
        self._handle: _common.Handle | None = None

    def _get(self) -> _common.Handle:
        if self._handle is None or self._handle.closed:
            self._handle = _common.shared(self._path, self._run_name)
            self._run_name = self._handle.run.name
        return self._handle

    @property
    def name(self) -> str:
        return self._run_name or "stock"

    @property
    def version(self) -> str:
        return "stock"

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The stock run (:class:`stockroom.runs.run.Run`) once training logs; until then None.

        Lightning touches this before the callbacks' ``setup``; opening the run
        here would open the branch-named one before :class:`StockCheckpoint`
        names it.
        """
        return self._handle.run if self._handle is not None and not self._handle.closed else None

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        if params is None:
            return
        if not hasattr(params, "items"):
            params = vars(params)
        self._get().tags(params)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        handle = self._get()
        if step is None:
            step = int(metrics.get("step", 0))
        handle.log(int(step), metrics)

    @rank_zero_only
    def save(self) -> None:
        if self._handle is not None and not self._handle.closed:
            self._handle.run.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._handle is not None and not self._handle.closed:
            self._handle.run.flush()
