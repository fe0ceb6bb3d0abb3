"""``stock.tag``: hyper-parameters and metrics (int, float, str, bool)."""

from __future__ import annotations

import contextlib
import itertools
import struct
from collections.abc import Iterable, Iterator, Mapping, MutableMapping

from stockroom.keys import decode_text, encode_text
from stockroom.store import Store, register_column_label

TagValue = int | float | str | bool

COLUMN = "tag"
register_column_label(COLUMN, lambda _: "tags")


def encode_value(value: object) -> str:
    """Type-tagged text for a tag value; exact for every supported value."""
    # bool first: it is a subclass of int.
    if isinstance(value, bool):
        return "b:1" if value else "b:0"
    if isinstance(value, int):
        # Hex has no digit limit (decimal str() refuses ints over 4300 digits).
        return f"i:{value:x}"
    if isinstance(value, float):
        # The IEEE bits: keeps -0.0, subnormals, infinities and nan payloads.
        return "f:" + struct.pack(">d", value).hex()
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"tag text {value[:40]!r} is not valid unicode (lone surrogate)") from None
        return "s:" + value
    raise TypeError(
        f"a tag value must be int, float, str or bool, not {type(value).__name__}; "
        f"store arrays in stock.data and weights in stock.model"
    )


def decode_value(raw: str) -> TagValue:
    kind, text = raw[:2], raw[2:]
    if kind == "b:":
        return text == "1"
    if kind == "i:":
        return int(text, 16)
    if kind == "f:":
        return float(struct.unpack(">d", bytes.fromhex(text))[0])
    if kind == "s:":
        return text
    raise ValueError(f"unknown tag encoding {raw[:20]!r}")  # pragma: no cover


class TagStore(MutableMapping[str, TagValue]):
    """Tags of the stock state: ``stock.tag["lr"] = 3e-4``.

    Values come back with their type and exact value (``True`` stays
    ``True``, floats keep every bit, ``nan`` and ``-0.0`` included).
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getitem__(self, key: str) -> TagValue:
        hkey = encode_text(key, "tag key")
        store = self._store
        if store.staged_in(COLUMN):  # read your own staged tags
            held = store.held_column(COLUMN, write=False)
            if held is not None:  # inside optimize(), after a tag write
                if hkey not in held:
                    raise KeyError(key)
                return decode_value(held[hkey])
            with store.staged_column(COLUMN, write=False) as col:
                if col is not None:
                    if hkey not in col:
                        raise KeyError(key)
                    return decode_value(col[hkey])
        with store.reading(column=COLUMN) as co:
            if co is None or COLUMN not in co.columns or hkey not in co.columns[COLUMN]:
                raise KeyError(key)
            return decode_value(co.columns[COLUMN][hkey])

    def __setitem__(self, key: str, value: TagValue) -> None:
        hkey = encode_text(key, "tag key")
        raw = encode_value(value)
        held = self._store.held_column(COLUMN, write=True)
        if held is not None:  # inside optimize(), the tag column already open
            held[hkey] = raw
            return
        self._write([(hkey, raw)])

    def update(  # type: ignore[override]
        self,
        other: Mapping[str, TagValue] | Iterable[tuple[str, TagValue]] = (),
        /,
        **kwargs: TagValue,
    ) -> None:
        """Write many tags in one go (one lock, one transaction).

        Every key and value is checked first: a failed update writes nothing.
        """
        pairs = other.items() if isinstance(other, Mapping) else other
        encoded = [
            (encode_text(key, "tag key"), encode_value(value))
            for key, value in itertools.chain(pairs, kwargs.items())
        ]
        if encoded:
            self._write(encoded)

    def _write(self, encoded: list[tuple[str, str]]) -> None:
        store = self._store
        with store.staged_column(COLUMN, write=True) as col:
            if col is not None:  # outside optimize(): the tag column alone
                for hkey, raw in encoded:
                    col[hkey] = raw
                store.mark_dirty(COLUMN)
                return
        with store.writing(keep_held=True) as co:
            if COLUMN not in co.columns:
                store.release_held()  # Hangar adds no column while one is open
                co.add_str_column(COLUMN)
            col = co.columns[COLUMN]
            with contextlib.ExitStack() as stack:
                if store.optimizing:
                    store.hold_column(COLUMN, col)  # kept open for the next tags
                else:
                    stack.enter_context(col)
                for hkey, raw in encoded:
                    col[hkey] = raw
        store.mark_dirty(COLUMN)

    def __delitem__(self, key: str) -> None:
        hkey = encode_text(key, "tag key")
        with self._store.staged_column(COLUMN, write=True) as col:
            if col is not None:
                if hkey not in col:
                    raise KeyError(key)
                del col[hkey]
                self._store.mark_dirty(COLUMN)
                return
        with self._store.writing() as co:
            if COLUMN not in co.columns or hkey not in co.columns[COLUMN]:
                raise KeyError(key)
            del co.columns[COLUMN][hkey]
        self._store.mark_dirty(COLUMN)

    def _hkeys(self) -> list[str]:
        if self._store.staged_in(COLUMN):
            with self._store.staged_column(COLUMN, write=False) as col:
                if col is not None:
                    return list(col.keys())
        with self._store.reading(column=COLUMN) as co:
            if co is None or COLUMN not in co.columns:
                return []
            return list(co.columns[COLUMN].keys())

    def __iter__(self) -> Iterator[str]:
        return iter([decode_text(k) for k in self._hkeys()])

    def __len__(self) -> int:
        return len(self._hkeys())

    def __contains__(self, key: object) -> bool:
        try:
            hkey = encode_text(key, "tag key")
        except ValueError:
            return False
        if self._store.staged_in(COLUMN):
            with self._store.staged_column(COLUMN, write=False) as col:
                if col is not None:
                    return hkey in col
        with self._store.reading(column=COLUMN) as co:
            return co is not None and COLUMN in co.columns and hkey in co.columns[COLUMN]

    def __repr__(self) -> str:
        return f"<stock.tag: {len(self)} tags>"
