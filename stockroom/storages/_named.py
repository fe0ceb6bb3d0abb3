"""What ``stock.data`` and ``stock.model`` share: listing and deleting their own Hangar columns."""

from __future__ import annotations

from collections.abc import Iterator

from stockroom.keys import decode_text
from stockroom.store import Store


class NamedColumns:
    """Names of the Hangar columns that start with ``PREFIX`` (one per data
    column, or one per model), decoded back to what the user called them."""

    PREFIX = ""
    _store: Store

    @classmethod
    def _column_name(cls, name: str) -> str:  # pragma: no cover - each storage defines it
        raise NotImplementedError

    def _names(self) -> list[str]:
        prefix = self.PREFIX
        with self._store.reading() as co:
            if co is None:
                return []
            return [decode_text(n[len(prefix) :]) for n in co.columns.keys() if n.startswith(prefix)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __delitem__(self, name: str) -> None:
        """Delete the whole data column or model (staged until commit)."""
        hname = self._column_name(name)
        with self._store.writing() as co:
            if hname not in co.columns:
                raise KeyError(name)
            del co.columns[hname]
        self._store.mark_dirty(hname)

    def __contains__(self, name: object) -> bool:
        try:
            hname = self._column_name(name)  # type: ignore[arg-type]
        except ValueError:
            return False
        with self._store.reading() as co:
            return co is not None and hname in co.columns
