"""``stock.model``: model weights (placeholder until the model storage lands)."""

from __future__ import annotations

from stockroom.store import Store


class ModelStore:
    def __init__(self, store: Store) -> None:
        self._store = store
