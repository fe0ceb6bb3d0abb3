"""Overhead of the framework integrations against each framework's own checkpointing (SPEC 10).

For each framework a small model trains for a few epochs three ways: with no
checkpoint, with the framework's own checkpointing (Lightning
``ModelCheckpoint``, the Trainer's ``save_steps`` folders, Keras
``BackupAndRestore`` and ``ModelCheckpoint``) and with stockroom's callback at
the same frequency. The table gives medians over ``--repeats`` runs: the wall
time of the training, the cost per checkpoint (time minus the no-checkpoint
run, divided by the checkpoints made) and the ratio stock / framework of
both. The stock's saves include waiting for the last background write.

    python bench/bench_integrations.py [--repeats 3] [--only lightning,transformers,keras]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def stock_repo() -> Iterator[Path]:
    import stockroom

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "bench"
        repo.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        old = Path.cwd()
        os.chdir(repo)
        try:
            stockroom.init_repo(name="bench", email="b@e", install_hooks=False)
            yield repo
        finally:
            os.chdir(old)


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ----------------------------------------------------------------- Lightning
def lightning_cases(repo: Path, i: int) -> dict[str, Callable[[], None]]:
    import lightning.pytorch as pl
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from stockroom.lightning import StockCheckpoint

    class Net(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 1)
            )

        def training_step(self, batch: Any, idx: int) -> Any:
            x, y = batch
            return (self.net(x) - y).pow(2).mean()

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    x = torch.randn(640, 64)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=32)

    def fit(callbacks: list[Any], checkpointing: bool) -> None:
        pl.seed_everything(0, verbose=False)
        trainer = pl.Trainer(
            max_epochs=EPOCHS,
            accelerator="cpu",
            devices=1,
            callbacks=callbacks,
            logger=False,
            enable_checkpointing=checkpointing,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(Net(), data)

    own = pl.callbacks.ModelCheckpoint(dirpath=repo / f"pl-{i}", every_n_epochs=1, save_top_k=-1)
    return {
        "none": lambda: fit([], False),
        "framework": lambda: fit([own], True),
        "stock": lambda: fit([StockCheckpoint(run=f"pl{i}", every_n_epochs=1)], False),
    }


# ----------------------------------------------------------------- Transformers
def transformers_cases(repo: Path, i: int) -> dict[str, Callable[[], None]]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments, set_seed

    from stockroom.transformers import StockCallback

    ids = torch.randint(0, 256, (EPOCHS * 40, 32), generator=torch.Generator().manual_seed(0))
    data = [{"input_ids": r, "labels": r} for r in ids]

    def train(save: bool, stock: bool, tag: str) -> None:
        set_seed(0)
        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=256, n_positions=64))
        args = TrainingArguments(
            output_dir=str(repo / f"hf-{tag}-{i}"),
            per_device_train_batch_size=8,
            num_train_epochs=1,
            save_strategy="steps" if save else "no",
            save_steps=5,
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            logging_steps=5,
        )
        callbacks = [StockCallback(run=f"hf{i}")] if stock else []
        Trainer(model, args, train_dataset=data, callbacks=callbacks).train()

    return {
        "none": lambda: train(False, False, "none"),
        "framework": lambda: train(True, False, "own"),
        "stock": lambda: train(True, True, "stock"),
    }


# ----------------------------------------------------------------- Keras
def keras_cases(repo: Path, i: int) -> dict[str, Callable[[], None]]:
    import keras
    import numpy as np

    from stockroom.keras import StockCheckpoint

    x = np.random.default_rng(0).normal(size=(640, 64)).astype("float32")
    y = x.sum(axis=1, keepdims=True)

    def fit(callbacks: list[Any]) -> None:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(512, activation="relu"),
                keras.layers.Dense(512),
                keras.layers.Dense(1),
            ]
        )
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, batch_size=32, epochs=EPOCHS, verbose=0, callbacks=callbacks)

    return {
        "none": lambda: fit([]),
        "framework": lambda: fit([keras.callbacks.BackupAndRestore(str(repo / f"kb-{i}"))]),
        "framework2": lambda: fit(
            [keras.callbacks.ModelCheckpoint(str(repo / f"km-{i}" / "m-{epoch}.keras"))]
        ),
        "stock": lambda: fit([StockCheckpoint(run=f"k{i}")]),
    }


EPOCHS = 4
FRAMEWORKS = {
    "lightning": (lightning_cases, "ModelCheckpoint"),
    "transformers": (transformers_cases, "save_steps=5 folders"),
    "keras": (keras_cases, "BackupAndRestore"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="lightning,transformers,keras")
    opts = parser.parse_args()
    rows = []
    for name in opts.only.split(","):
        make, label = FRAMEWORKS[name]
        times: dict[str, list[float]] = {}
        with stock_repo() as repo:
            make(repo, -1)["stock"]()  # warm-up: imports, first store open
            for i in range(opts.repeats):
                for case, fn in make(repo, i).items():
                    times.setdefault(case, []).append(timed(fn))
        med = {case: statistics.median(v) for case, v in times.items()}
        n_ckpt = EPOCHS if name != "transformers" else EPOCHS * 40 // 8 // 5
        for own in [c for c in med if c.startswith("framework")]:
            own_label = label if own == "framework" else "ModelCheckpoint(.keras)"
            per_own = (med[own] - med["none"]) / n_ckpt
            per_stock = (med["stock"] - med["none"]) / n_ckpt
            rows.append((name, own_label, med["none"], med[own], med["stock"], per_own, per_stock))
    print(
        "| framework | baseline | no ckpt s | baseline s | stock s | stock/baseline | per ckpt baseline ms | per ckpt stock ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, label, none, own, stock, per_own, per_stock in rows:
        print(
            f"| {name} | {label} | {none:.2f} | {own:.2f} | {stock:.2f} | {stock / own:.2f}x | "
            f"{per_own * 1000:.0f} | {per_stock * 1000:.0f} |"
        )


if __name__ == "__main__":
    main()
