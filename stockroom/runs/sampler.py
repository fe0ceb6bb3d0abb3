"""A seeded sampler whose place in the data is part of a checkpoint (SPEC 9, data position).

``StockSampler(dataset, seed=0)`` hands out a shuffled order of the
dataset's indices, a new order each epoch, drawn from ``(seed, epoch)``
alone (its own generator: the global RNGs are neither used nor changed).
It counts what it handed out, so ``run.save(step, ..., sampler=sampler)``
stores the epoch and the position in it, and ``run.restore(sampler=sampler)``
makes the next pass start at the next batch: a resumed run reads none of
the samples it had already consumed, and sees the same order an
uninterrupted run would::

    sampler = StockSampler(dataset, seed=0)
    loader = DataLoader(dataset, batch_size=32, sampler=sampler)
    step = run.restore(model=net, opt=opt, sampler=sampler) or 0
    while step < total:
        for batch in loader:          # a resumed pass starts where the checkpoint was
            ...
            run.save(step, model=net, opt=opt, sampler=sampler)
            step += 1

With ``num_workers > 0`` a DataLoader asks for indices ahead of the batches
it has delivered (``prefetch_factor * num_workers`` batches): save
``sampler.state_dict(consumed=n)`` with ``n`` the samples the loop has
consumed in this epoch to resume exactly there.

Neither torch nor Hangar is imported: it works as any ``Sampler`` (an
iterable of ints with a length), and for a plain loop too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sized
from typing import Any

import numpy as np


class StockSampler:
    """Indices of ``data`` (a sized dataset, or its length), shuffled per epoch from ``seed``.

    ``shuffle=False`` gives ``0..n-1`` each epoch (the position still counts).
    """

    def __init__(self, data: Sized | int, seed: int = 0, shuffle: bool = True) -> None:
        size = data if isinstance(data, int) else len(data)
        if not isinstance(size, int) or size < 0:
            raise ValueError("StockSampler takes a sized dataset or its length (an int >= 0)")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError("seed is an int")
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0  # indices handed out in this epoch

    def order(self, epoch: int) -> np.ndarray:
        """The order of epoch ``epoch``: a function of ``(seed, epoch)`` only."""
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its beginning (``DistributedSampler``'s call)."""
        self.epoch, self.position = int(epoch), 0

    def _roll(self) -> None:
        if self.size and self.position >= self.size:
            self.epoch, self.position = self.epoch + 1, 0

    def __len__(self) -> int:
        """What the next pass hands out: the rest of the epoch (all of it when it starts)."""
        self._roll()
        return self.size - self.position

    def __iter__(self) -> Iterator[int]:
        self._roll()
        order = self.order(self.epoch)
        for index in order[self.position :].tolist():
            self.position += 1
            yield index
        self._roll()

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """``{seed, epoch, position, size, shuffle}``; ``consumed``: the position to record
        instead of what was handed out (a DataLoader with workers reads ahead)."""
        position = self.position if consumed is None else int(consumed)
        if not 0 <= position <= self.size:
            raise ValueError(f"consumed={consumed} is outside the epoch's {self.size} samples")
        epoch = self.epoch
        if self.size and position >= self.size:  # a finished epoch: the next starts
            epoch, position = epoch + 1, 0
        return {
            "seed": self.seed,
            "epoch": epoch,
            "position": position,
            "size": self.size,
            "shuffle": self.shuffle,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Go on from a saved state: the next pass starts at its position."""
        if int(state["size"]) != self.size:
            raise ValueError(
                f"the saved sampler covered {state['size']} samples and this one {self.size}: "
                f"the data changed, so its position means nothing here; start the epoch over "
                f"(sampler.set_epoch(epoch)) or restore on the same data"
            )
        self.seed = int(state["seed"])
        self.shuffle = bool(state.get("shuffle", True))
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])

    def __repr__(self) -> str:
        return f"StockSampler({self.size} samples, seed={self.seed}, epoch {self.epoch}, at {self.position})"
