"""Keras 3: weights, optimizer variables and epoch of ``model.fit`` into a stock run (SPEC 10).

One line::

    model.fit(x, y, epochs=10, callbacks=[StockCheckpoint(keep_best=1, monitor="val_loss")])

Every ``every_n_epochs`` epochs the callback stores the model's variables
(weights, and the seed generators' states where Keras tracks them), the
optimizer's variables (its iteration count included) and the epoch, as one
checkpoint of a stock run (SPEC 9), with Python's and numpy's RNG states.
Metrics go into the run at the end of each epoch (Keras' names: ``loss``,
``val_loss``) and every ``log_every_n_batches`` batches (``batch_loss``),
at the global batch count as the step.

Resume works like Keras' ``BackupAndRestore``: re-running the script
restores the run's latest checkpoint at ``on_train_begin`` and ``fit``
goes on from the epoch after it (Keras 3.0.1 lost that epoch, keras #19179;
this sets it). A finished run is refused with a one-line error.

Importing this module imports ``keras``; ``import stockroom`` does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from stockroom.integrations import _common

__all__ = ["StockCheckpoint"]


class StockCheckpoint(keras.callbacks.Callback):
    """Store ``fit``'s state in a stock run every N epochs; resume it on re-run.

    Args:
        run: the run's name (default: the git branch).
        every_n_epochs: save every N-th epoch (and at the end of training).
        log_every_n_batches: also log the batch metrics every N batches (0: epoch metrics only).
        keep_last, keep_best, monitor, mode: the run's retention (SPEC 9); ``monitor``
            is a key of Keras' epoch logs (``val_loss``).
        resume: restore the run's latest checkpoint when ``fit`` begins (default).
        path: the stock repository (default: found from the current directory).
    """

    def __init__(
        self,
        run: str | None = None,
        every_n_epochs: int = 1,
        log_every_n_batches: int = 0,
        keep_last: int | None = None,
        keep_best: int | None = None,
        monitor: str | None = None,
        mode: str = "min",
        resume: bool = True,
        path: str | Path | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError("every_n_epochs is a positive int")
        if keep_best is not None and monitor is None:
            raise ValueError("keep_best needs monitor= (the metric that ranks checkpoints)")
        self.run_name = run
        self.every_n_epochs = every_n_epochs
        self.log_every_n_batches = log_every_n_batches
        self.keep_last, self.keep_best, self.monitor, self.mode = keep_last, keep_best, monitor, mode
        self.resume = resume
        self.path = path
        self.handle: _common.Handle | None = None
        #: the epoch ``fit`` resumed from (None: it started afresh)
        self.resumed_epoch: int | None = None
        self._epoch = 0
        self._step = 0
        self._saved_epoch = -1

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.handle = _common.shared(self.path, self.run_name)
        self.run_name = self.handle.run.name
        self.handle.retention(self.keep_last, self.keep_best, self.monitor, self.mode)
        payload = self.handle.resume() if self.resume else None
        self._step = 0
        if payload is None:
            return
        states = payload["states"]
        model = self.model
        for var, value in zip(model.variables, states["variables"], strict=True):
            var.assign(value)
        optimizer = model.optimizer
        if optimizer is not None and "optimizer" in states:
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            for var, value in zip(optimizer.variables, states["optimizer"], strict=True):
                var.assign(value)
        _common.set_rng_state(payload["rng"])
        self.resumed_epoch = self._saved_epoch = int(states["epoch"])
        self._step = int(payload["step"])
        # what BackupAndRestore does: fit goes on from the epoch after the checkpoint
        model._initial_epoch = self.resumed_epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._step += 1
        n = self.log_every_n_batches
        if n and self.handle is not None and logs and self._step % n == 0:
            self.handle.log(self._step, {f"batch_{k}": v for k, v in logs.items()})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch + 1
        if self.handle is None:
            return
        self.handle.log(self._step, logs or {})
        if self._epoch % self.every_n_epochs == 0:
            self._save(logs or {})

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.handle is None:
            return
        if self._epoch > self._saved_epoch:
            self._save(logs or {})
        self.handle.finish()  # ran to its end: not resumed again
        self.handle = None

    def _save(self, logs: dict[str, Any]) -> None:
        assert self.handle is not None
        model = self.model
        states: dict[str, Any] = {
            "variables": [np.array(v) for v in model.variables],
            "epoch": self._epoch,
        }
        if model.optimizer is not None and model.optimizer.built:
            states["optimizer"] = [np.array(v) for v in model.optimizer.variables]
        self._saved_epoch = self._epoch
        self.handle.save(self._step, logs, **states)
