"""``stock.tag``: hyper-parameters and metrics (int, float, str, bool)."""

from __future__ import annotations

import contextlib
import itertools
import struct
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, cast

from stockroom import quickread, taglog
from stockroom.headfile import HANGAR_DIR
from stockroom.keys import decode_text, encode_text

if TYPE_CHECKING:
    from stockroom.store import Store

TagValue = int | float | str | bool

# Hangar's column of the tags: stockroom.store.labels.TAG_COLUMN (which labels
# it "tags"), not imported from there: that would import Hangar, which a
# committed tag read does not need.
COLUMN = "tag"


# Hangar's str columns take at most 2,000,000 bytes (UTF-8) per value; the
# encoded value carries a 2-character type prefix.
_MAX_ENCODED = 2_000_000
MAX_TEXT_BYTES = _MAX_ENCODED - 2
# An int is stored as hex digits (and a sign): this many bits fit.
MAX_INT_BITS = 4 * (MAX_TEXT_BYTES - 1)


def _from_numpy(value: object) -> object:
    """A numpy scalar as the Python value it equals exactly (metrics often are
    ``np.float32`` or ``np.int64``); anything else as it is.

    ``np.bool_`` becomes ``bool``, numpy integers ``int``, float16/32/64
    ``float`` (exact: a Python float holds every one of their values) and
    ``np.str_`` ``str``. ``np.longdouble`` is refused by the caller: it does
    not fit a Python float exactly.
    """
    module = type(value).__module__
    if module != "numpy" or not hasattr(value, "item"):
        return value
    import numpy as np

    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating) and value.dtype.itemsize <= 8:
        return float(value)
    if isinstance(value, np.str_):
        return str(value)
    return value


def _type_name(value: object) -> str:
    cls = type(value)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def encode_value(value: object) -> str:
    """Type-tagged text for a tag value; exact for every supported value."""
    value = _from_numpy(value)
    # bool first: it is a subclass of int.
    if isinstance(value, bool):
        return "b:1" if value else "b:0"
    if isinstance(value, int):
        # Hex has no digit limit (decimal str() refuses ints over 4300 digits).
        if value.bit_length() > MAX_INT_BITS:
            raise ValueError(
                f"an int tag can have at most {MAX_INT_BITS:,} bits; this one has "
                f"{value.bit_length():,}: store it as bytes in stock.data (a uint8 array)"
            )
        return f"i:{value:x}"
    if isinstance(value, float):
        # The IEEE bits: keeps -0.0, subnormals, infinities and nan payloads.
        return "f:" + struct.pack(">d", value).hex()
    if isinstance(value, str):
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError(f"tag text {value[:40]!r} is not valid unicode (lone surrogate)") from None
        if size > MAX_TEXT_BYTES:
            raise ValueError(
                f"a str tag can hold at most {MAX_TEXT_BYTES:,} bytes of UTF-8 text; this one is "
                f"{size:,} bytes: store long text in stock.data (e.g. as a uint8 array of its bytes)"
            )
        return "s:" + value
    hint = ""
    if type(value).__name__ == "longdouble":
        hint = " (it does not fit a Python float exactly; float(value) rounds it)"
    raise TypeError(
        f"a tag value must be int, float, str or bool (or a numpy scalar of one), not "
        f"{_type_name(value)}{hint}; store arrays in stock.data and weights in stock.model"
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

    def __init__(self, store: Store | quickread.LazyStore) -> None:
        self._lazy = store if isinstance(store, quickread.LazyStore) else quickread.LazyStore.of(store)
        # The tags of the last commit read (encoded key: encoded value): a
        # commit's digest names its content, so this never goes stale.
        self._seen: tuple[str, dict[str, str]] = ("", {})
        self._hangar_dir = str(self._lazy.root / HANGAR_DIR)

    @property
    def _store(self) -> Store:
        return cast("Store", self._lazy.open())

    def _committed(self) -> dict[str, str] | None:
        """The tags of the commit ``head.stock`` names, when reads go there and
        they are cached (see :mod:`stockroom.quickread`); None otherwise."""
        lazy = self._lazy
        store = lazy.store
        if store is not None and store.staged_in(COLUMN):
            return None  # read your own staged tags
        if lazy.is_closed():
            return None  # the slow path says so
        digest = lazy.head()
        if digest == "":
            return {}
        seen_digest, tags = self._seen
        if seen_digest == digest:
            return tags
        cached = quickread.read_tags(lazy.root, digest)
        if cached is not None:
            self._seen = (digest, cached)
        return cached

    def _remember(self, co: Any) -> None:
        """After a slow read from the reader checkout: cache its commit's tags."""
        store = self._lazy.store
        if co is None or store is None or co is not store._reader:
            return
        col = co.columns[COLUMN] if COLUMN in co.columns else None
        tags = {} if col is None else {str(k): str(col[k]) for k in col.keys()}
        digest = store._reader_digest
        quickread.save_tags(self._lazy.root, digest, tags)
        self._seen = (digest, tags)

    def __getitem__(self, key: str) -> TagValue:
        hkey = encode_text(key, "tag key")
        tags = self._committed()
        if tags is not None:
            raw = tags.get(hkey)
            if raw is None:
                raise KeyError(key)
            return decode_value(raw)
        store = self._store
        if store.staged_in(COLUMN):  # read your own staged tags
            logged = self._logged()
            if hkey in logged:
                raw = logged[hkey]
                if raw is None:
                    raise KeyError(key)
                return decode_value(raw)
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
            self._remember(co)
            if co is None or COLUMN not in co.columns or hkey not in co.columns[COLUMN]:
                raise KeyError(key)
            return decode_value(co.columns[COLUMN][hkey])

    def _logged(self) -> dict[str, str | None]:
        """This stock state's tag writes still in the staged tag log (see
        :mod:`stockroom.taglog`): newer than what Hangar's staging area holds."""
        return taglog.overlay(self._hangar_dir, self._lazy.head())

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
        if store.log_tags(list(encoded)):  # outside optimize(): the cheap way
            return
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
        tags = self._committed()
        if tags is not None:
            return list(tags)
        # The log first: a fold by another process between the two reads only
        # moves tags from the log into Hangar, so neither read misses one.
        logged = self._logged() if self._store.staged_in(COLUMN) else {}
        keys = self._unlogged_hkeys()
        if not logged:
            return keys
        known = set(keys)
        kept = [k for k in keys if logged.get(k, k) is not None]
        return kept + [k for k, raw in logged.items() if raw is not None and k not in known]

    def _unlogged_hkeys(self) -> list[str]:
        """The tag keys that Hangar has (staging area or commit), without the log."""
        if self._store.staged_in(COLUMN):
            with self._store.staged_column(COLUMN, write=False) as col:
                if col is not None:
                    return list(col.keys())
        with self._store.reading(column=COLUMN) as co:
            self._remember(co)
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
        tags = self._committed()
        if tags is not None:
            return hkey in tags
        if self._store.staged_in(COLUMN):
            logged = self._logged()
            if hkey in logged:
                return logged[hkey] is not None
            with self._store.staged_column(COLUMN, write=False) as col:
                if col is not None:
                    return hkey in col
        with self._store.reading(column=COLUMN) as co:
            return co is not None and COLUMN in co.columns and hkey in co.columns[COLUMN]

    def __repr__(self) -> str:
        return f"<stock.tag: {len(self)} tags>"
