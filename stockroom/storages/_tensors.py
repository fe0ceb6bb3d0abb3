"""Tensors on their way in or out of a model column: flattened little-endian bytes.

Shared by ``model`` (state dicts, weight lists) and ``_nested`` (training
states), so that neither imports the other.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from stockroom.storages import _keras


@dataclass
class _Tensor:
    """One tensor on its way in or out: raw bytes plus what it takes to rebuild it."""

    name: str | None
    dtype: str
    shape: tuple[int, ...]
    raw: np.ndarray | None  # flat uint8; None for an alias
    same_as: int | None = None  # index of the tensor this one is the very same view of
    units: list[int] | None = None  # indices of its own units (large tensors)
    pack: tuple[int, int] | None = None  # (unit index, byte offset) in a shared unit (small ones)


# ------------------------------------------------------------ numpy arrays
def _flatten_array(value: object, where: str) -> tuple[str, tuple[int, ...], np.ndarray]:
    if not isinstance(value, (np.ndarray, np.generic)):
        raise TypeError(
            f"{where} is a {type(value).__name__}; a weight list holds numpy arrays "
            f"(keras model.get_weights()); for PyTorch store model.state_dict()"
        )
    arr = np.asarray(value)
    dt = arr.dtype
    # ml_dtypes (bfloat16, float8...) is how Keras/JAX give numpy low-precision floats.
    extended = dt.kind == "V" and getattr(dt.type, "__module__", "").startswith("ml_dtypes")
    if dt.kind not in "biufc" and not extended:
        raise TypeError(
            f"{where} has dtype {dt}, which is not a numeric weight dtype; store bool, "
            f"int, uint, float or complex arrays"
        )
    if dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big"):
        arr = arr.astype(dt.newbyteorder("<"))  # stored little-endian everywhere
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    return dt.name, tuple(int(n) for n in arr.shape), arr.reshape(-1).view(np.uint8)


def _numpy_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:
        pass
    try:
        import ml_dtypes
    except ImportError:
        raise ImportError(
            f"these weights have dtype {name}, which needs the ml_dtypes package; {_keras.EXTRA_HINT}"
        ) from None
    found = getattr(ml_dtypes, name, None)
    if found is None:
        raise TypeError(f"unknown weight dtype {name!r}; upgrade ml_dtypes (pip install -U ml_dtypes)")
    return np.dtype(found)


def _unflatten_array(raw: np.ndarray, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    dt = _numpy_dtype(dtype).newbyteorder("<")
    arr = raw.view(dt).reshape(shape) if raw.size else np.empty(shape, dtype=dt)
    if sys.byteorder == "big":  # pragma: no cover - no big-endian CI
        arr = arr.astype(dt.newbyteorder("="))
    return arr


def _array_alias_key(arr: object) -> tuple[Any, ...] | None:
    if not isinstance(arr, np.ndarray) or arr.size == 0:
        return None
    return (arr.__array_interface__["data"][0], arr.shape, arr.strides, arr.dtype.str)
