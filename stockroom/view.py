"""``stock.at(REV)``: the stock of any git revision, read-only, without a checkout."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from stockroom import revisions
from stockroom.errors import StockroomError


class StockView:
    """The stock that the git revision ``rev`` records: ``tag``, ``data`` and
    ``model`` read as on a live :class:`~stockroom.StockRoom` (``load_weights``
    included); every write raises :class:`~stockroom.StockroomError`.

    Made by ``stock.at(rev)``; closed by ``close()``, a ``with`` block, or
    when the ``StockRoom`` that made it closes.
    """

    def __init__(self, root: Path, rev: str) -> None:
        from stockroom.storages.data import DataStore
        from stockroom.storages.model import ModelStore
        from stockroom.storages.tag import TagStore
        from stockroom.store.view import ReadOnlyStore

        ref = revisions.stock_ref(root, rev)
        if not ref.digest:
            raise StockroomError(revisions.explain(rev, ref))
        self.rev = rev
        self.commit = ref.commit
        self.path = root
        self._store = ReadOnlyStore(root, ref.digest, f"git revision {rev!r} ({ref.commit[:10]})")
        self.data = DataStore(self._store)
        self.model = ModelStore(self._store)
        if ref.pruned:  # RUN@STEP of a pruned checkpoint: its run states are refused
            from stockroom.runs.records import PrunedModels

            self.model = PrunedModels(self.model, ref.pruned)  # type: ignore[assignment]
        self.tag = TagStore(self._store)
        self.closed = False

    @property
    def head(self) -> str:
        """The stock commit this view reads."""
        return self._store.head()

    def close(self) -> None:
        """Release the view's checkout (safe to call twice)."""
        if not self.closed:
            self.closed = True
            self._store.close()

    def __enter__(self) -> StockView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<stock at {self.rev!r}: {self.head}>"
