"""``stock.data``: datasets as named columns of numpy samples."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from stockroom.headfile import HANGAR_DIR
from stockroom.keys import SampleKey, decode_sample, decode_text, encode_sample, encode_text
from stockroom.progress import track
from stockroom.storages._named import NamedColumns
from stockroom.store import Store, damaged, register_column_label

PREFIX = "data."
# The dtypes Hangar stores (bfloat16 and complex are not among them).
SUPPORTED = frozenset(
    np.dtype(t)
    for t in (
        np.bool_,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
    )
)


register_column_label(PREFIX, lambda rest: f"data column {decode_text(rest)!r}")

# Hangar backend for new data columns: "10" keeps samples in numpy
# memory-mapped files. Measured (bench/bench_data.py, docs/data.md): it reads
# a 28x28 uint8 sample ~20x and a 3x224x224 float32 one ~3x faster than the
# chunked HDF5 backends ("00"/"01") Hangar picks for such shapes, and writes
# both 5-6x faster (with stockroom._compat's flush per block). It does not
# compress. Each file holds 1000
# sample slots (a sparse file): samples over MEMMAP_MAX_BYTES keep Hangar's
# own choice, so no file needs more than ~64 GB of address space.
MEMMAP_BACKEND = "10"
MEMMAP_MAX_BYTES = 64 * 2**20
# Largest int sample key Hangar takes (see stockroom.keys.encode_sample).
_INT_KEY_LIMIT = 10**64


def backend_options(prototype: np.ndarray) -> dict[str, str]:
    """Keyword arguments for ``add_ndarray_column`` for samples like ``prototype``."""
    return {"backend": MEMMAP_BACKEND} if prototype.nbytes <= MEMMAP_MAX_BYTES else {}


def _as_sample(value: object) -> np.ndarray | None:
    """``value`` as is when it already is a sample Hangar stores (the usual
    case in bulk writes: no conversion, no message built); None otherwise,
    for :func:`to_array` to convert or to explain."""
    if type(value) is np.ndarray:
        arr = value
    elif isinstance(value, np.generic):  # a numpy scalar, e.g. one label
        arr = np.asarray(value)
    else:
        return None
    dtype = arr.dtype
    if (
        dtype in SUPPORTED
        and dtype.byteorder in "=|"
        and arr.flags.c_contiguous
        and arr.size
        and arr.ndim <= 31
    ):
        return arr
    return None


def _hangar_key(key: object) -> str | int:
    # Plain ints skip encode_sample's checks: this runs once per sample read.
    if type(key) is int and 0 <= key < _INT_KEY_LIMIT:
        return key
    return encode_sample(key)


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
    # Hangar's limits on a column's shape (its checkout and typesystem refuse
    # more, with messages that name neither the column nor the fix).
    if arr.size == 0 or arr.ndim > 31:
        raise ValueError(
            f"{where}: cannot store an array of shape {arr.shape}; a sample needs at least "
            f"one element and at most 31 dimensions (reshape it, or store its shape in a tag)"
        )
    # Not np.ascontiguousarray: it turns a 0-dim array into shape (1,).
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


class _FileGone(Exception):
    """Hangar could not find the data file of a sample the column lists."""


class _NoColumn(Exception):
    """A read from a column that does not exist (args: the first key asked for)."""


class Column(MutableMapping[SampleKey, np.ndarray]):
    """One data column: ``stock.data["images"][0] = array``.

    Sample keys are ``str`` or non-negative ``int``. The first sample
    written fixes the column's dtype and shape.
    """

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self.name = name
        self._hname = column_name(name)
        # The Hangar column of the last reader checkout seen (per-sample reads).
        self._seen_checkout: Any = None
        self._seen_column: Any = None
        # (held writer column, its dtype, its shape): per-sample writes.
        self._fits: tuple[Any, np.dtype, tuple[int, ...]] | None = None

    def _check_fits(self, dtype: np.dtype, shape: tuple[int, ...], arr: np.ndarray) -> None:
        if arr.dtype != dtype:
            raise TypeError(
                f"column {self.name!r} holds {dtype} samples, got {arr.dtype}; "
                f"convert with .astype({str(dtype)!r}) or use another column"
            )
        if arr.shape != shape:
            raise ValueError(
                f"column {self.name!r} holds samples of shape {shape}, got "
                f"{arr.shape}; reshape it or use another column"
            )

    def __getitem__(self, key: SampleKey) -> np.ndarray:
        hkey = key if type(key) is int and 0 <= key < _INT_KEY_LIMIT else _hangar_key(key)
        store = self._store
        if not store.dirty:
            # The per-sample fast path: nothing staged by this object, and the
            # reader checkout seen last is still at the commit head.stock names.
            col = self._seen_column
            if (
                col is not None
                and store._reader is self._seen_checkout
                and store._reader_digest == store.head()
            ):
                try:
                    return col[hkey]
                except KeyError as exc:
                    if hkey not in col:
                        raise KeyError(key) from None
                    raise self._file_gone(exc) from None
                except OSError as exc:
                    raise damaged(store.root / HANGAR_DIR, f"reading failed: {exc}") from exc
        if self._store.staged_in(self._hname):  # read your own staged writes: through the writer
            held = self._store.held_column(self._hname, write=False)
            if held is not None:  # inside optimize(), after a write to this column
                if hkey not in held:
                    raise KeyError(key)
                return held[hkey]
            return self._read([key], [hkey])[0][0]
        col = self._reader_column()
        if col is None:
            raise self._no_column(key)
        if hkey not in col:
            raise KeyError(key)
        try:
            return col[hkey]
        except OSError as exc:
            raise damaged(self._store.root / HANGAR_DIR, f"reading failed: {exc}") from exc
        except KeyError as exc:  # the key is in the column: its data file is gone
            raise self._file_gone(exc) from None

    def _no_column(self, key: object) -> KeyError:
        return KeyError(f"stock.data has no column {self.name!r} (asked for its sample {key!r})")

    def _file_gone(self, exc: KeyError) -> Exception:
        """Hangar's KeyError for a sample whose data file is missing, as the damage it is."""
        uid = exc.args[0] if exc.args else "?"
        return damaged(
            self._store.root / HANGAR_DIR, f"data file {uid!r} of data column {self.name!r} is missing"
        )

    def get_many(self, keys: Iterable[SampleKey]) -> list[np.ndarray]:
        """The samples under ``keys``, in that order, as a list of arrays.

        One ``head.stock`` check and one checkout for them all, where
        ``[column[k] for k in keys]`` pays for both per sample. KeyError
        names the first key that is missing.
        """
        wanted = list(keys)
        return self._read(wanted, [_hangar_key(k) for k in wanted])[0]

    def get_batch(self, keys: Iterable[SampleKey]) -> np.ndarray:
        """The samples under ``keys`` stacked into one array (first axis: the keys).

        Like :meth:`get_many`; an empty ``keys`` gives an empty array of the
        column's dtype and sample shape.
        """
        wanted = list(keys)
        arrays, dtype, shape = self._read(wanted, [_hangar_key(k) for k in wanted])
        out = np.empty((len(arrays), *shape), dtype=dtype)
        for i, arr in enumerate(arrays):
            out[i] = arr
        return out

    def _reader_column(self) -> Any:
        """The Hangar column at the commit ``head.stock`` names; None when absent.

        The store keeps its reader checkout open (reopened when head.stock
        changes); the column is looked up once per checkout, not per sample.
        """
        co = self._store.reader()
        if co is not self._seen_checkout:
            self._seen_column = (
                co.columns[self._hname] if co is not None and self._hname in co.columns else None
            )
            self._seen_checkout = co
        return self._seen_column

    def _read(
        self, keys: list[Any], hkeys: list[str | int]
    ) -> tuple[list[np.ndarray], np.dtype, tuple[int, ...]]:
        try:
            if self._store.staged_in(self._hname):
                with self._store.reading(keep_held=True, column=self._hname) as co:
                    col = co.columns[self._hname] if co is not None and self._hname in co.columns else None
                    if col is not None and co is self._store._writer:
                        self._store.hold_column(self._hname, col)
                    return self._read_from(col, keys, hkeys)
            return self._read_from(self._reader_column(), keys, hkeys)
        except OSError as exc:
            raise damaged(self._store.root / HANGAR_DIR, f"reading failed: {exc}") from exc
        except _FileGone as exc:
            raise self._file_gone(KeyError(*exc.args)) from None
        except _NoColumn as exc:
            raise self._no_column(exc.args[0]) from None

    @staticmethod
    def _read_from(
        col: Any, keys: list[Any], hkeys: list[str | int]
    ) -> tuple[list[np.ndarray], np.dtype, tuple[int, ...]]:
        if col is None:
            if keys:
                raise _NoColumn(keys[0])
            return [], np.dtype(np.float64), ()
        out = []
        for key, hkey in zip(keys, hkeys, strict=True):
            if hkey not in col:
                raise KeyError(key)
            try:
                out.append(col[hkey])
            except KeyError as exc:  # the key is in the column: its data file is gone
                raise _FileGone(*exc.args) from None
        return out, np.dtype(col.dtype), tuple(col.shape)

    def __setitem__(self, key: SampleKey, value: object) -> None:
        held = self._store.held_column(self._hname, write=True)
        if held is None:
            self.update({key: value})
            return
        # Inside optimize(), the column already open: the per-sample fast path.
        hkey = key if type(key) is int and 0 <= key < _INT_KEY_LIMIT else _hangar_key(key)
        arr = _as_sample(value)
        if arr is None:
            arr = to_array(value, f"column {self.name!r}, sample {key!r}")
        fits = self._fits
        if fits is None or fits[0] is not held:
            # The held column's dtype and shape, looked up once per column held.
            fits = self._fits = (held, np.dtype(held.dtype), tuple(held.shape))
        if arr.dtype != fits[1] or arr.shape != fits[2]:
            self._check_fits(fits[1], fits[2], arr)
        held._perform_set(hkey, arr)  # Staging.put_sample, without the call

    def update(  # type: ignore[override]
        self, other: Mapping[SampleKey, object] | Iterable[tuple[SampleKey, object]] = (), /, **kwargs: object
    ) -> None:
        """Write many samples in one go (one lock, one checkout)."""
        pairs = other.items() if isinstance(other, Mapping) else other
        self._write(itertools.chain(pairs, kwargs.items()), replace=False)

    def _prepare(self, items: Iterable[tuple[Any, object]]) -> tuple[list[str | int], list[np.ndarray]]:
        """Hangar keys and arrays for ``items``, checked (ValueError/TypeError).

        Two flat lists, not a list of pairs: a bulk write of 60,000 samples
        then leaves no 60,000 tuples for the garbage collector to walk.
        """
        hkeys: list[str | int] = []
        arrays: list[np.ndarray] = []
        for key, value in items:
            hkeys.append(_hangar_key(key))
            arr = _as_sample(value)
            arrays.append(
                arr if arr is not None else to_array(value, f"column {self.name!r}, sample {key!r}")
            )
        return hkeys, arrays

    def _write(self, items: Iterable[tuple[Any, object]], replace: bool) -> None:
        """Store ``items``; with ``replace`` they become the column's only samples.

        Every key and sample is checked before anything is written, so a
        failed write stores nothing (not even a new column).
        """
        hkeys, arrays = self._prepare(items)
        if not arrays and not replace:
            return
        # A column that exists is written to as is (held open inside
        # optimize()); a new or replaced one needs the writer to itself.
        with self._store.writing(keep_held=not replace) as co:
            exists = self._hname in co.columns
            if not exists or replace:
                self._store.release_held()
            if exists and not replace:
                col = co.columns[self._hname]
                dtype, shape = np.dtype(col.dtype), tuple(col.shape)
            elif arrays:
                dtype, shape = arrays[0].dtype, arrays[0].shape
            for arr in arrays:
                self._check_fits(dtype, shape, arr)
            if exists and replace:
                del co.columns[self._hname]
            if arrays:
                if replace or not exists:
                    col = co.add_ndarray_column(
                        self._hname, prototype=arrays[0], **backend_options(arrays[0])
                    )
                with contextlib.ExitStack() as stack:
                    if self._store.optimizing:
                        self._store.hold_column(self._hname, col)
                    else:
                        stack.enter_context(col)
                    samples = zip(hkeys, arrays, strict=True)
                    for hkey, arr in track(
                        samples, total=len(arrays), desc=f"writing {self.name!r}", unit="sample"
                    ):
                        col[hkey] = arr
        self._store.mark_dirty(self._hname)

    def __delitem__(self, key: SampleKey) -> None:
        hkey = encode_sample(key)
        with self._store.writing() as co:
            if self._hname not in co.columns or hkey not in co.columns[self._hname]:
                raise KeyError(key)
            del co.columns[self._hname][hkey]
        self._store.mark_dirty(self._hname)

    def _hkeys(self) -> list[str | int]:
        with self._store.reading(column=self._hname) as co:
            if co is None or self._hname not in co.columns:
                return []
            return list(co.columns[self._hname].keys())

    def __iter__(self) -> Iterator[SampleKey]:
        return iter([decode_sample(k) for k in self._hkeys()])

    def __len__(self) -> int:
        with self._store.reading(column=self._hname) as co:
            if co is None or self._hname not in co.columns:
                return 0
            return len(co.columns[self._hname])

    def __contains__(self, key: object) -> bool:
        try:
            hkey = encode_sample(key)
        except ValueError:
            return False
        with self._store.reading(column=self._hname) as co:
            return co is not None and self._hname in co.columns and hkey in co.columns[self._hname]

    def __repr__(self) -> str:
        return f"<stock.data[{self.name!r}]: {len(self)} samples>"


class DataStore(NamedColumns, MutableMapping[str, Column]):
    """All data columns: ``stock.data["images"]`` is a :class:`Column`.

    Indexing returns a column handle even before the column exists, so that
    ``stock.data["new"][0] = array`` creates it; ``in``, ``keys()`` and
    ``len`` list only columns that exist.
    """

    PREFIX = PREFIX  # the module constant, seen by NamedColumns

    @classmethod
    def _column_name(cls, name: str) -> str:
        return column_name(name)

    def __init__(self, store: Store) -> None:
        self._store = store
        # Handles are kept: each caches its Hangar column for per-sample reads.
        self._columns: dict[str, Column] = {}

    def __getitem__(self, name: str) -> Column:
        column = self._columns.get(name) if type(name) is str else None
        if column is None:
            column = Column(self._store, name)  # checks the name
            self._columns[name] = column
        return column

    def __setitem__(self, name: str, samples: Mapping[SampleKey, object]) -> None:
        """``stock.data["x"] = {key: array, ...}`` makes these the column's samples.

        Like assigning to a dict key, it replaces the whole column (its old
        samples, dtype and shape go); an empty mapping deletes it. To add
        samples to a column, use ``stock.data["x"].update({...})``.
        """
        column = Column(self._store, name)
        if not isinstance(samples, Mapping):
            raise TypeError(
                f"assign a mapping of sample key to array to stock.data[{name!r}], "
                f"not {type(samples).__name__}; write one sample with stock.data[{name!r}][key] = array"
            )
        column._write(list(samples.items()), replace=True)

    def get(self, name: str, default: Any = None) -> Any:
        return Column(self._store, name) if name in self else default

    def __repr__(self) -> str:
        return f"<stock.data: columns {self._names()}>"
