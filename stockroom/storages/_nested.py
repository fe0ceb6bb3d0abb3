"""Nested training state for ``stock.model``: optimizer, scheduler, RNG, GradScaler states.

``stock.model[name] = optimizer.state_dict()`` stores a tree of mappings
(``str`` or ``int`` keys), lists and tuples whose leaves are torch tensors,
numpy arrays, numpy scalars and Python scalars (``int``, ``float``,
``bool``, ``str``, ``None``). No pickle: the tensors and arrays become the
model's ordinary tensors (same units, same per-tensor dedup, same diff),
named by their path (``state['state'][0]['exp_avg']``); everything else
becomes a JSON *skeleton*, stored as one more uint8 tensor named
:data:`SKELETON`, that records each container's type, each key's type and
each scalar's exact value. Reading rebuilds the same tree: tuples stay
tuples, int keys stay int, floats are exact (``nan``/``inf`` included),
tensors bit for bit. Anything else is a ``TypeError`` naming its path.

Which mappings are nested (and which stay plain state dicts, stored and
read exactly as before): see :func:`is_nested`.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from stockroom.storages._tensors import _array_alias_key, _flatten_array, _Tensor, _unflatten_array

KIND = "nested"
# The skeleton's tensor name; every other tensor's name starts with "state".
SKELETON = "(structure)"
_ROOT = "state"


def _is_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _is_leaf_array(value: object) -> bool:
    return _is_tensor(value) or isinstance(value, (np.ndarray, np.generic))


def is_nested(value: object) -> bool:
    """Whether ``stock.model[name] = value`` stores ``value`` as a nested state.

    A top-level tensor or array (``torch.get_rng_state()``) is one. A
    mapping is one when any of its values is a mapping, list or tuple
    (``optimizer.state_dict()``, a scheduler's, a Lightning checkpoint), or
    when none of them is a tensor or array (a GradScaler's scalars). A
    mapping of tensors, with maybe a stray non-tensor entry, is a plain
    ``state_dict`` and keeps its rules (str keys, tensors only), so that a
    mistake in a model's state dict is still caught. A top-level list or
    tuple is one when any element is neither a tensor nor an array
    (``random.getstate()``, ``np.random.get_state()``); otherwise it stays
    a Keras weight list (so a list of torch tensors alone is still refused:
    wrap it in a dict).
    """
    if _is_leaf_array(value):
        return True
    if isinstance(value, (list, tuple)):
        return any(not _is_leaf_array(v) for v in value)
    if not isinstance(value, Mapping) or not value:
        return False
    values = list(value.values())
    if any(isinstance(v, (Mapping, list, tuple)) for v in values):
        return True
    return not any(_is_leaf_array(v) for v in values)


class _Encoder:
    """Walks a state once: collects its tensors and builds its JSON skeleton."""

    def __init__(self) -> None:
        self.leaves: list[
            tuple[str, str, Any]
        ] = []  # (path, "t" torch / "a" array / "g" numpy scalar, value)
        self._seen: dict[tuple[Any, ...], int] = {}
        self.aliases: dict[int, int] = {}  # leaf index -> index of the leaf it is the very same view of

    def encode(self, value: Any, path: str) -> Any:
        kind = type(value)
        if value is None or kind is bool or kind is str:
            return value
        if kind is int:
            return value
        if kind is float:
            if math.isfinite(value):
                return value
            return {"f": struct.pack("<d", value).hex()}  # nan payload and sign kept
        if isinstance(value, Mapping):
            items: list[Any] = []
            for key, item in value.items():
                if type(key) not in (str, int):
                    raise TypeError(
                        f"{path} has a key {key!r} of type {type(key).__name__}; a stored state's "
                        f"mapping keys are str or int"
                    )
                items.append(key)
                items.append(self.encode(item, f"{path}[{key!r}]"))
            return {"od" if isinstance(value, OrderedDict) else "d": items}
        if kind is list:
            return [self.encode(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if kind is tuple:
            return {"u": [self.encode(item, f"{path}[{i}]") for i, item in enumerate(value)]}
        if _is_tensor(value):
            return {"t": self._leaf(path, "t", value)}
        if isinstance(value, np.generic):
            return {"g": self._leaf(path, "g", np.asarray(value))}
        if isinstance(value, np.ndarray):
            return {"a": self._leaf(path, "a", value)}
        hint = ""
        if isinstance(value, (list, tuple, int, float, str)):
            hint = f" (a subclass of {type(value).__mro__[1].__name__}: convert it to the plain type)"
        raise TypeError(
            f"{path} is a {kind.__name__}{hint}; a stored state holds mappings, lists and tuples of "
            f"torch tensors, numpy arrays and int, float, bool, str or None (no pickle)"
        )

    def _leaf(self, path: str, kind: str, value: Any) -> int:
        index = len(self.leaves)
        key: tuple[Any, ...] | None
        if kind == "t":
            from stockroom.storages import _torch

            key = _torch.alias_key(value)
        else:
            key = _array_alias_key(value) if kind == "a" else None
        if key is not None:
            key = (kind, *key)
            if key in self._seen:
                self.aliases[index] = self._seen[key]
            else:
                self._seen[key] = index
        self.leaves.append((path, kind, value))
        return index


def prepare(value: Any) -> tuple[str, dict[str, str], list[Any]]:
    """``(kind, versions, tensors)`` for ``ModelStore._write``; checks everything first."""
    enc = _Encoder()
    skeleton = enc.encode(value, _ROOT)
    tensors: list[_Tensor] = []
    versions: dict[str, str] = {}
    for i, (path, kind, leaf) in enumerate(enc.leaves):
        if i in enc.aliases:
            first = tensors[enc.aliases[i]]
            tensors.append(_Tensor(path, first.dtype, first.shape, None, same_as=enc.aliases[i]))
            continue
        if kind == "t":
            from stockroom.storages import _torch

            dtype, shape, raw = _torch.flatten(leaf, path)
            versions["torch"] = _torch.version()
        else:
            if leaf.dtype.kind not in "biufcV":
                raise TypeError(
                    f"{path} is a numpy array of dtype {leaf.dtype}; a stored state's arrays are "
                    f"numeric or bool (keep text in a str)"
                )
            dtype, shape, raw = _flatten_array(leaf, path)
        tensors.append(_Tensor(path, dtype, shape, raw))
    doc = {"kinds": [kind for _, kind, _ in enc.leaves], "tree": skeleton}
    text = json.dumps(doc, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
    raw_skeleton = np.frombuffer(text, dtype=np.uint8).copy()
    tensors.append(_Tensor(SKELETON, "uint8", (raw_skeleton.size,), raw_skeleton))
    return KIND, versions, tensors


def rebuild(entries: list[dict[str, Any]], raws: list[np.ndarray | None]) -> Any:
    """The state that :func:`prepare` stored, from the model's meta entries and raw bytes."""
    if not entries or entries[-1].get("name") != SKELETON or raws[-1] is None:
        raise ValueError("the nested state's structure record is missing")
    doc = json.loads(raws[-1].tobytes().decode("ascii"))
    kinds: list[str] = doc["kinds"]
    leaves: list[Any] = []
    for i, kind in enumerate(kinds):
        entry, raw = entries[i], raws[i]
        if raw is None:
            leaves.append(leaves[entry["same_as"]])
            continue
        shape = tuple(entry["shape"])
        if kind == "t":
            from stockroom.storages import _torch

            leaves.append(_torch.unflatten(raw, entry["dtype"], shape))
        elif kind == "g":
            leaves.append(_unflatten_array(raw, entry["dtype"], shape)[()])
        else:
            leaves.append(_unflatten_array(raw, entry["dtype"], shape))
    return _decode(doc["tree"], leaves)


def _decode(node: Any, leaves: list[Any]) -> Any:
    if isinstance(node, list):
        return [_decode(item, leaves) for item in node]
    if not isinstance(node, dict):
        return node
    ((tag, body),) = node.items()
    if tag in ("t", "a", "g"):
        return leaves[body]
    if tag == "f":
        return struct.unpack("<d", bytes.fromhex(body))[0]
    if tag == "u":
        return tuple(_decode(item, leaves) for item in body)
    pairs = ((body[i], _decode(body[i + 1], leaves)) for i in range(0, len(body), 2))
    return OrderedDict(pairs) if tag == "od" else dict(pairs)
