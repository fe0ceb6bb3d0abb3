"""What changed between two stock states: tags, data samples, model layers.

Works on two :class:`~stockroom.store.view.Snapshot` objects. Samples and
model units are compared by the digests Hangar and ``stock.model`` record
for them, so what did not change is never read; a changed layer is read
one stored piece (at most 2 MB) at a time from each side, so two whole
models are never in memory at once.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stockroom.keys import decode_sample, decode_text
from stockroom.storages import data as data_storage
from stockroom.storages import model as model_storage
from stockroom.storages import tag as tag_storage
from stockroom.store.view import ColumnRecords, Snapshot

ADDED, REMOVED, CHANGED, UNCHANGED = "added", "removed", "changed", "unchanged"
TYPE_CHANGED, RESHAPED, SCHEMA_CHANGED = "type changed", "reshaped", "schema changed"


@dataclass
class TagChange:
    """One tag: ``old``/``new`` are None where the tag is absent."""

    key: str
    status: str
    old: Any = None
    new: Any = None

    @property
    def abs_change(self) -> float | int | None:
        if _is_number(self.old) and _is_number(self.new):
            return self.new - self.old
        return None

    @property
    def rel_change(self) -> float | None:
        """(new - old) / |old|; None when undefined (old is 0, or not numbers)."""
        change = self.abs_change
        if change is None or self.old == 0:
            return None
        return float(change) / abs(float(self.old))


@dataclass
class ColumnChange:
    """One data column: sample keys added, removed and changed."""

    name: str
    status: str
    old_schema: tuple[str, tuple[int, ...]] | None = None
    new_schema: tuple[str, tuple[int, ...]] | None = None
    added: list[Any] = field(default_factory=list)
    removed: list[Any] = field(default_factory=list)
    changed: list[Any] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class LayerChange:
    """One tensor of a model; the norms only for layers whose values changed."""

    name: str
    status: str
    old_dtype: str | None = None
    old_shape: tuple[int, ...] | None = None
    new_dtype: str | None = None
    new_shape: tuple[int, ...] | None = None
    rel_l2: float | None = None  # ||new - old|| / ||old||
    max_abs: float | None = None  # max |new - old|


@dataclass
class ModelChange:
    name: str
    status: str
    layers: list[LayerChange] = field(default_factory=list)
    note: str = ""

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for layer in self.layers:
            found[layer.status] = found.get(layer.status, 0) + 1
        return found


@dataclass
class StockDiff:
    """Everything that differs between two stock states (and, for ``--all``, what does not)."""

    tags: list[TagChange] = field(default_factory=list)
    data: list[ColumnChange] = field(default_factory=list)
    models: list[ModelChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(
            item.status != UNCHANGED for group in (self.tags, self.data, self.models) for item in group
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ------------------------------------------------------------------ tags
def _tags(old: Snapshot, new: Snapshot) -> list[TagChange]:
    a = old.records.get(tag_storage.COLUMN, ColumnRecords()).samples
    b = new.records.get(tag_storage.COLUMN, ColumnRecords()).samples
    out: list[TagChange] = []
    for hkey in sorted(set(a) | set(b), key=str):
        key = decode_text(str(hkey))
        before = tag_storage.decode_value(old.read(tag_storage.COLUMN, hkey)) if hkey in a else None
        after = tag_storage.decode_value(new.read(tag_storage.COLUMN, hkey)) if hkey in b else None
        if hkey not in a:
            status = ADDED
        elif hkey not in b:
            status = REMOVED
        elif a[hkey] == b[hkey]:
            status = UNCHANGED
        elif type(before) is not type(after):
            status = TYPE_CHANGED
        else:
            status = CHANGED
        out.append(TagChange(key, status, before, after))
    return out


# ------------------------------------------------------------------ data
def _data(old: Snapshot, new: Snapshot) -> list[ColumnChange]:
    prefix = data_storage.PREFIX
    names = sorted({c for c in (*old.records, *new.records) if c.startswith(prefix)})
    out: list[ColumnChange] = []
    for hname in names:
        name = decode_text(hname[len(prefix) :])
        a, b = old.records.get(hname), new.records.get(hname)
        if a is None and b is not None:
            out.append(ColumnChange(name, ADDED, new_schema=new.column_schema(hname), added=_keys(b.samples)))
            continue
        if b is None and a is not None:
            out.append(
                ColumnChange(name, REMOVED, old_schema=old.column_schema(hname), removed=_keys(a.samples))
            )
            continue
        assert a is not None and b is not None
        change = ColumnChange(name, UNCHANGED)
        if a.schema != b.schema:
            change.old_schema, change.new_schema = old.column_schema(hname), new.column_schema(hname)
            if change.old_schema != change.new_schema:
                change.status = SCHEMA_CHANGED
        for hkey, digest in b.samples.items():
            before = a.samples.get(hkey)
            if before is None:
                change.added.append(decode_sample(hkey))
            elif before != digest:
                change.changed.append(decode_sample(hkey))
            else:
                change.unchanged += 1
        change.removed = [decode_sample(k) for k in a.samples if k not in b.samples]
        if change.status == UNCHANGED and (change.added or change.removed or change.changed):
            change.status = CHANGED
        for keys in (change.added, change.removed, change.changed):
            keys.sort(key=_sort_key)
        out.append(change)
    return out


def _keys(samples: dict[Any, str]) -> list[Any]:
    return sorted((decode_sample(k) for k in samples), key=_sort_key)


def _sort_key(key: Any) -> tuple[int, Any]:
    return (0, key) if isinstance(key, int) else (1, str(key))


# ---------------------------------------------------------------- models
@dataclass
class _Entry:
    """A tensor's record in a model's meta, aliases resolved."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    pieces: list[str] | None
    pack: tuple[str, int] | None


def _model_meta(snap: Snapshot, hname: str, records: ColumnRecords) -> dict[str, Any]:
    parts: list[bytes] = []
    while f"{model_storage.META}{len(parts)}" in records.samples:
        parts.append(snap.read(hname, f"{model_storage.META}{len(parts)}"))
    meta: dict[str, Any] = json.loads(b"".join(parts).decode("utf-8"))
    return meta


def _entries(meta: dict[str, Any]) -> dict[str, _Entry]:
    found: dict[str, _Entry] = {}
    raw = meta.get("tensors", [])
    for i, entry in enumerate(raw):
        name = entry.get("name")
        label = str(name) if name is not None else f"[{i}]"
        target = raw[entry["same_as"]] if "same_as" in entry else entry
        found[label] = _Entry(
            target["dtype"],
            tuple(target["shape"]),
            int(target["nbytes"]),
            list(target["pieces"]) if "pieces" in target else None,
            (target["pack"], int(target["offset"])) if "pack" in target else None,
        )
    return found


class _Chunks:
    """A tensor's raw bytes from one side; shared units are read once."""

    def __init__(self, snap: Snapshot, hname: str) -> None:
        self.snap = snap
        self.hname = hname
        self._packs: dict[str, bytes] = {}

    def unit(self, digest: str) -> np.ndarray:
        return np.frombuffer(self.snap.read(self.hname, digest), np.uint8)

    def whole(self, entry: _Entry) -> np.ndarray:
        if entry.nbytes == 0:
            return np.empty(0, np.uint8)
        if entry.pack is not None:
            digest, offset = entry.pack
            if digest not in self._packs:
                self._packs[digest] = self.snap.read(self.hname, digest)
            return np.frombuffer(self._packs[digest], np.uint8, count=entry.nbytes, offset=offset)
        return np.concatenate([self.unit(d) for d in entry.pieces or ()])


def _as_numbers(raw: np.ndarray, dtype: str) -> np.ndarray | None:
    """Raw little-endian bytes of ``dtype`` as float64 (complex128) values; None if unknown."""
    if dtype == "bfloat16":  # torch's: no numpy dtype, but it is the top half of a float32
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    try:
        dt = model_storage._numpy_dtype(dtype).newbyteorder("<")
    except (ImportError, TypeError):
        return None
    return raw.view(dt).astype(np.complex128 if dt.kind == "c" else np.float64)


class _Difference:
    """Sums over a tensor, fed piece by piece: is it equal, ||old||, ||new - old||, max |new - old|."""

    def __init__(self, old_dtype: str, new_dtype: str) -> None:
        self.dtypes = (old_dtype, new_dtype)
        self.equal = True
        self.known = True
        self.old_sq = self.diff_sq = self.max_abs = 0.0

    def add(self, raw_a: np.ndarray, raw_b: np.ndarray | None) -> None:
        """One piece of the old tensor and the matching new one (None: the same bytes)."""
        values_a = _as_numbers(raw_a, self.dtypes[0])
        if values_a is None:
            self.known = False
        else:
            self.old_sq += float(np.sum(np.abs(values_a) ** 2))
        if raw_b is None or np.array_equal(raw_a, raw_b):
            return
        self.equal = False
        values_b = _as_numbers(raw_b, self.dtypes[1])
        if values_a is None or values_b is None:
            return
        delta = np.abs(values_b - values_a)
        self.diff_sq += float(np.sum(delta**2))
        if delta.size:
            self.max_abs = max(self.max_abs, float(np.max(delta)))

    def result(self) -> tuple[bool, float | None, float | None]:
        """(equal, relative L2 of the difference, largest absolute difference)."""
        if self.equal or not self.known:
            return self.equal, None, None
        # An all-zero old tensor has no relative change: None.
        rel = math.sqrt(self.diff_sq) / math.sqrt(self.old_sq) if self.old_sq > 0 else None
        return False, rel, self.max_abs


def _compare_values(
    old: _Chunks, new: _Chunks, a: _Entry, b: _Entry
) -> tuple[bool, float | None, float | None]:
    """Compare one tensor of each side, one stored piece at a time where both are cut alike."""
    diff = _Difference(a.dtype, b.dtype)
    if a.pieces is not None and b.pieces is not None and len(a.pieces) == len(b.pieces):
        for da, db in zip(a.pieces, b.pieces, strict=True):
            # A piece with the same digest on both sides is read once (for ||old||).
            diff.add(old.unit(da), None if da == db else new.unit(db))
    else:
        diff.add(old.whole(a), new.whole(b))
    return diff.result()


def _same_content(x: _Entry, y: _Entry) -> bool:
    """Whether the digests alone say two tensors of one dtype and shape hold the same bytes."""
    if x.nbytes == 0:
        return True
    if x.pieces is not None and x.pieces == y.pieces:
        return True
    return x.pack is not None and x.pack == y.pack


def _model(old: Snapshot, new: Snapshot, hname: str, name: str) -> ModelChange:
    a, b = old.records.get(hname), new.records.get(hname)
    if a is not None and b is not None and a.samples == b.samples:
        change = ModelChange(name, UNCHANGED)
        for label, e in _entries(_model_meta(new, hname, b)).items():
            change.layers.append(LayerChange(label, UNCHANGED, e.dtype, e.shape, e.dtype, e.shape))
        return change
    meta_a = _model_meta(old, hname, a) if a is not None else {"tensors": []}
    meta_b = _model_meta(new, hname, b) if b is not None else {"tensors": []}
    change = ModelChange(name, ADDED if a is None else REMOVED if b is None else CHANGED)
    if a is not None and b is not None and meta_a.get("kind") != meta_b.get("kind"):
        change.note = f"{meta_a.get('kind')} -> {meta_b.get('kind')}"
    ea, eb = _entries(meta_a), _entries(meta_b)
    old_chunks, new_chunks = _Chunks(old, hname), _Chunks(new, hname)
    for label in [*ea, *(k for k in eb if k not in ea)]:
        x, y = ea.get(label), eb.get(label)
        if x is None:
            assert y is not None
            change.layers.append(LayerChange(label, ADDED, new_dtype=y.dtype, new_shape=y.shape))
            continue
        if y is None:
            change.layers.append(LayerChange(label, REMOVED, old_dtype=x.dtype, old_shape=x.shape))
            continue
        layer = LayerChange(label, UNCHANGED, x.dtype, x.shape, y.dtype, y.shape)
        if (x.dtype, x.shape) != (y.dtype, y.shape):
            layer.status = RESHAPED
        elif not _same_content(x, y):
            equal, layer.rel_l2, layer.max_abs = _compare_values(old_chunks, new_chunks, x, y)
            if not equal:
                layer.status = CHANGED
        change.layers.append(layer)
    if change.status == CHANGED and not change.note and all(x.status == UNCHANGED for x in change.layers):
        change.status = UNCHANGED  # re-saved, same values (e.g. another tensor order)
    return change


def _models(old: Snapshot, new: Snapshot) -> list[ModelChange]:
    prefix = model_storage.PREFIX
    names = sorted({c for c in (*old.records, *new.records) if c.startswith(prefix)})
    return [_model(old, new, hname, decode_text(hname[len(prefix) :])) for hname in names]


def compare(old: Snapshot, new: Snapshot) -> StockDiff:
    """Everything that differs from ``old`` to ``new`` (unchanged items included, marked so)."""
    return StockDiff(tags=_tags(old, new), data=_data(old, new), models=_models(old, new))
