"""A tiny Lightning training run for tests/test_lightning.py (run as a script, as users do).

python lightning_train.py RUN OUT.pt [ddp]; env: STOP_AT=step (SIGKILL there; with ddp
an exception on every process), VAL_SCORES=a,b,c (the val_loss of each epoch, so the
best checkpoint is known), CKPT=path (trainer.fit(ckpt_path=...)).
"""

import os
import signal
import sys

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stockroom.lightning import StockCheckpoint, StockLogger

RUN, OUT = sys.argv[1], sys.argv[2]
DDP = len(sys.argv) > 3 and sys.argv[3] == "ddp"
STOP_AT = int(os.environ.get("STOP_AT", "-1"))
SCORES = [float(v) for v in os.environ.get("VAL_SCORES", "").split(",") if v]


class Net(pl.LightningModule):
    def __init__(self, lr: float = 0.02, hidden: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        if self.global_step == STOP_AT:
            if DDP:
                raise RuntimeError("stopped on purpose")
            # the crash comes after the last checkpoint is whole (and pushed): kill -9
            callbacks[0].handle.run.wait()
            os.kill(os.getpid(), signal.SIGKILL)
        x, y = batch
        loss = (self.net(x) - y).pow(2).mean()
        self.log("loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = (self.net(x) - y).pow(2).mean()
        if SCORES:
            loss = torch.tensor(SCORES[self.current_epoch])
        self.log("val_loss", loss, sync_dist=DDP)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.7)]


def data(n: int, shuffle: bool = True) -> DataLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8, shuffle=shuffle)


pl.seed_everything(0, verbose=False)
model = Net()
callbacks = [StockCheckpoint(run=RUN, every_n_epochs=1, keep_last=1, keep_best=1, monitor="val_loss")]
trainer = pl.Trainer(
    max_epochs=3,
    accelerator="cpu",
    devices=2 if DDP else 1,
    strategy="ddp" if DDP else "auto",
    callbacks=callbacks,
    logger=StockLogger(),
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    deterministic=True,
    log_every_n_steps=1,
)
trainer.fit(model, data(64), data(16, shuffle=False), ckpt_path=os.environ.get("CKPT"))
if trainer.is_global_zero:
    torch.save(model.state_dict(), OUT)
    print("resumed from", callbacks[0].resumed_step)
