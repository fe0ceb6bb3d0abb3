"""A tiny, fully seeded PyTorch training loop for the run tests (CPU)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn

EPOCHS = 5


class Trainer:
    """A small net with Adam, OneCycleLR and dropout; every epoch draws from all three RNGs."""

    BATCHES = 4

    def __init__(self, seed: int) -> None:
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=0.05, total_steps=EPOCHS * self.BATCHES
        )

    def epoch(self, epoch: int, run: Any = None) -> float:
        loss_value = 0.0
        for b in range(self.BATCHES):
            x = torch.randn(8, 6) + float(np.random.rand()) + random.random()
            y = x.sum(dim=1, keepdim=True)
            self.opt.zero_grad()
            loss = (self.net(x) - y).pow(2).mean()
            loss.backward()
            self.opt.step()
            self.sched.step()
            loss_value = loss.item()
            if run is not None:
                run.log(epoch * self.BATCHES + b, loss=loss)
        return loss_value

    def assert_same(self, other: Trainer) -> None:
        for (k, a), b in zip(self.net.state_dict().items(), other.net.state_dict().values(), strict=True):
            assert torch.equal(a, b), k
        sa, sb = self.opt.state_dict(), other.opt.state_dict()
        for i, st in sa["state"].items():
            for k, v in st.items():
                assert torch.equal(v, sb["state"][i][k]), (i, k)
        assert sa["param_groups"] == sb["param_groups"]
        assert self.sched.state_dict() == other.sched.state_dict()
