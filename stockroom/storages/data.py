"""``stock.data``: datasets as named columns of numpy samples."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from stockroom.keys import SampleKey, decode_sample, decode_text, encode_sample, encode_text
from stockroom.store import Store

PREFIX = "data."
# The dtypes Hangar stores (bfloat16 and complex are not among them).
SUPPORTED = frozenset(
    np.dtype(t)
    for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
        np.uint32, np.uint64, np.float16, np.float32, np.float64,
    )
)


def column_name(name: str) -> str:
    """Hangar column name for the data column ``name``."""
    return PREFIX + encode_text(name, "column name", room=64 - len(PREFIX))


def to_array(value: object, where: str) -> np.ndarray:
    """``value`` as a native-endian, contiguous numpy array Hangar can store."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor, maybe on a GPU
        value = value.detach().cpu()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - any conversion failure means "wrong type"
        raise TypeError(f"{where}: cannot store {type(value).__name__} as an array ({exc})") from None
    if arr.dtype.byteorder not in "=|":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype not in SUPPORTED:
        raise TypeError(
            f"{where}: cannot store dtype {arr.dtype} (from {type(value).__name__}); "
            f"use bool, int8-64, uint8-64 or float16/32/64"
        )
    return np.ascontiguousarray(arr)


class Column(MutableMapping[SampleKey, np.ndarray]):
    """One data column: ``stock.data["images"][0] = array``.

    Sample keys are ``str`` or non-negative ``int``. The first sample
    written fixes the column's dtype and shape.
    """

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self.name = name
        self._hname = column_name(name)

    def _check_fits(self, col: Any, arr: np.ndarray) -> None:
        if arr.dtype != col.dtype:
            raise TypeError(
                f"column {self.name!r} holds {col.dtype} samples, got {arr.dtype}; "
                f"convert with .astype({str(col.dtype)!r}) or use another column"
            )
        if arr.shape != tuple(col.shape):
            raise ValueError(
                f"column {self.name!r} holds samples of shape {tuple(col.shape)}, got "
                f"{arr.shape}; reshape it or use another column"
            )

    def __getitem__(self, key: SampleKey) -> np.ndarray:
        hkey = encode_sample(key)
        with self._store.reading() as co:
            if co is None or self._hname not in co.columns:
                raise KeyError(key)
            col = co.columns[self._hname]
            if hkey not in col:
                raise KeyError(key)
            return col[hkey]  # type: ignore[no-any-return]

    def __setitem__(self, key: SampleKey, value: object) -> None:
        self.update({key: value})

    def update(self, other: Mapping[SampleKey, object] | Iterable[tuple[SampleKey, object]] = (), /, **kwargs: object) -> None:  # type: ignore[override]
        """Write many samples in one go (one lock, one checkout)."""
        items = list(other.items() if isinstance(other, Mapping) else other) + list(kwargs.items())
        prepared = [
            (encode_sample(k), to_array(v, f"column {self.name!r}, sample {k!r}")) for k, v in items
        ]
        if not prepared:
            return
        with self._store.writing() as co:
            if self._hname in co.columns:
                col = co.columns[self._hname]
            else:
                col = co.add_ndarray_column(self._hname, prototype=prepared[0][1])
            for _, arr in prepared:
                self._check_fits(col, arr)
            with col:
                for hkey, arr in prepared:
                    col[hkey] = arr
        self._store.mark_dirty()

    def __delitem__(self, key: SampleKey) -> None:
        hkey = encode_sample(key)
        with self._store.writing() as co:
            if self._hname not in co.columns or hkey not in co.columns[self._hname]:
                raise KeyError(key)
            del co.columns[self._hname][hkey]
        self._store.mark_dirty()

    def _hkeys(self) -> list[str | int]:
        with self._store.reading() as co:
            if co is None or self._hname not in co.columns:
                return []
            return list(co.columns[self._hname].keys())

    def __iter__(self) -> Iterator[SampleKey]:
        return iter([decode_sample(k) for k in self._hkeys()])

    def __len__(self) -> int:
        with self._store.reading() as co:
            if co is None or self._hname not in co.columns:
                return 0
            return len(co.columns[self._hname])

    def __contains__(self, key: object) -> bool:
        try:
            hkey = encode_sample(key)
        except ValueError:
            return False
        with self._store.reading() as co:
            return co is not None and self._hname in co.columns and hkey in co.columns[self._hname]

    def __repr__(self) -> str:
        return f"<stock.data[{self.name!r}]: {len(self)} samples>"


class DataStore(MutableMapping[str, Column]):
    """All data columns: ``stock.data["images"]`` is a :class:`Column`.

    Indexing returns a column handle even before the column exists, so that
    ``stock.data["new"][0] = array`` creates it; ``in``, ``keys()`` and
    ``len`` list only columns that exist.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getitem__(self, name: str) -> Column:
        return Column(self._store, name)

    def __setitem__(self, name: str, samples: Mapping[SampleKey, object]) -> None:
        """``stock.data["x"] = {key: array, ...}`` writes many samples at once."""
        if not isinstance(samples, Mapping):
            raise TypeError(
                f"assign a mapping of sample key to array to stock.data[{name!r}], "
                f"not {type(samples).__name__}; write one sample with stock.data[{name!r}][key] = array"
            )
        Column(self._store, name).update(samples)

    def __delitem__(self, name: str) -> None:
        hname = column_name(name)
        with self._store.writing() as co:
            if hname not in co.columns:
                raise KeyError(name)
            del co.columns[hname]
        self._store.mark_dirty()

    def get(self, name: str, default: Any = None) -> Any:
        return Column(self._store, name) if name in self else default

    def _names(self) -> list[str]:
        with self._store.reading() as co:
            if co is None:
                return []
            return [decode_text(n[len(PREFIX) :]) for n in co.columns.keys() if n.startswith(PREFIX)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        try:
            hname = column_name(name)  # type: ignore[arg-type]
        except ValueError:
            return False
        with self._store.reading() as co:
            return co is not None and hname in co.columns

    def __repr__(self) -> str:
        return f"<stock.data: columns {self._names()}>"
