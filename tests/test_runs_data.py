"""Data position (SPEC 9): a resumed run goes on at the next batch, reading nothing twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import stockroom
from stockroom.loaders import StockDataset
from stockroom.runs.sampler import StockSampler

SAMPLES, BATCH = 24, 4
BATCHES = SAMPLES // BATCH
TOTAL = 3 * BATCHES  # three epochs, one step per batch


@pytest.fixture
def data_repo(stock_repo: Path) -> Path:
    with stockroom.StockRoom(stock_repo) as stock:
        stock.data["x"].update({i: np.array([float(i)], dtype=np.float32) for i in range(SAMPLES)})
        stock.commit("data")
    return stock_repo


class Loop:
    """A seeded loop over a StockDataset; ``reads`` lists every sample the dataset served."""

    def __init__(self, root: Path) -> None:
        self.reads: list[int] = []
        self.ds = StockDataset("x", path=root, transform=self._seen)
        self.sampler = StockSampler(self.ds, seed=3)
        torch.manual_seed(0)
        self.net = torch.nn.Linear(1, 1)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.01, momentum=0.9)

    def _seen(self, item: Any) -> Any:
        self.reads.append(int(item[0]))
        return item

    def train(self, run: Any, start: int, stop_after: int | None = None) -> None:
        loader = DataLoader(self.ds, batch_size=BATCH, sampler=self.sampler)
        step = start
        while step < TOTAL:
            for x in loader:
                self.opt.zero_grad()
                (self.net(x) - 2 * x).pow(2).mean().backward()
                self.opt.step()
                if step % 2 == 0:
                    run.save(step, model=self.net, opt=self.opt, sampler=self.sampler)
                if step == stop_after:
                    return
                step += 1
                if step == TOTAL:
                    return


def test_resume_mid_epoch_reads_on_from_the_next_batch(data_repo: Path) -> None:
    with stockroom.StockRoom(data_repo) as stock:
        reference = Loop(data_repo)
        run = stock.run("ref")
        reference.train(run, 0)
        run.close()
        assert sorted(reference.reads[:SAMPLES]) == list(range(SAMPLES))  # an epoch: each once
        assert reference.reads[:SAMPLES] != reference.reads[SAMPLES : 2 * SAMPLES]  # reshuffled

        first = Loop(data_repo)
        run = stock.run("cut")
        first.train(run, 0, stop_after=8)  # in the second epoch, after its third batch
        run.close()
        assert first.reads == reference.reads[: 9 * BATCH]

        second = Loop(data_repo)
        run = stock.run("cut")
        start = run.restore(model=second.net, opt=second.opt, sampler=second.sampler)
        assert start == 9
        assert (second.sampler.epoch, second.sampler.position) == (1, 3 * BATCH)
        second.train(run, start)
        run.close()
        # nothing consumed before the checkpoint is read again; the rest as uninterrupted
        assert second.reads == reference.reads[9 * BATCH :]
        for a, b in zip(second.net.parameters(), reference.net.parameters(), strict=True):
            assert torch.equal(a, b)


def test_sampler_state_round_trip_and_checks(data_repo: Path) -> None:
    sampler = StockSampler(10, seed=1)
    it = iter(sampler)
    taken = [next(it) for _ in range(4)]
    state = sampler.state_dict()
    assert state == {"seed": 1, "epoch": 0, "position": 4, "size": 10, "shuffle": True}
    other = StockSampler(10, seed=99)
    other.load_state_dict(state)
    assert len(other) == 6 and taken + list(other) == sampler.order(0).tolist()
    assert other.state_dict() == {"seed": 1, "epoch": 1, "position": 0, "size": 10, "shuffle": True}
    assert sampler.state_dict(consumed=10)["epoch"] == 1  # a finished epoch: the next one starts
    with pytest.raises(ValueError, match="the data changed"):
        StockSampler(11).load_state_dict(state)
    with pytest.raises(ValueError, match="outside"):
        sampler.state_dict(consumed=11)
    before = np.random.get_state()[1].copy()
    list(StockSampler(10, seed=5))
    assert np.array_equal(np.random.get_state()[1], before)  # its own generator only
