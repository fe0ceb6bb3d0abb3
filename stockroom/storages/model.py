"""``stock.model``: model weights, exact and deduplicated.

``stock.model[name] = weights`` takes a PyTorch ``state_dict`` or a Keras
weight list (``model.get_weights()``); ``stock.model[name]`` gives back the
same kind. ``save_weights``/``load_weights`` do the same for a
``torch.nn.Module`` or a ``keras.Model``.

Layout in Hangar (see docs/models.md): one bytes column per model,
``model.<encoded name>``. Each tensor's raw bytes are cut into units of at
most 2,000,000 bytes (Hangar's limit for a bytes sample; small tensors
share units), each stored under the BLAKE2b-160 of its content (Hangar's
own digest of it, computed once); the
``meta.<i>`` keys hold JSON that lists tensor names, order, dtypes, shapes,
unit digests and framework versions. Saving a new version writes only units
whose digest the column lacks, so unchanged layers cost neither hashing by
Hangar nor bytes on disk.

Neither torch nor tensorflow is imported here: ``_torch`` is imported only
for torch weights, and Keras models are recognised through ``sys.modules``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from stockroom._compat import give_digest, read_bytes_direct, read_bytes_into, take_digest
from stockroom.errors import StockroomError
from stockroom.keys import encode_text
from stockroom.progress import Progress, bar
from stockroom.storages import _keras, _nested
from stockroom.storages._named import NamedColumns
from stockroom.storages._tensors import _array_alias_key, _flatten_array, _Tensor, _unflatten_array
from stockroom.storages._tensors import _numpy_dtype as _numpy_dtype  # compare.py reads it here
from stockroom.store import Store

PREFIX = "model."
# Hangar refuses bytes samples over 2,000,000 bytes (typesystem/pybytes.py).
PIECE = 2_000_000
# Tensors smaller than this share units with their neighbours (see _plan_units).
SMALL = PIECE // 4
# LMDB, Hangar's backend for bytes columns: it fsyncs every sample, so a
# commit never names weights that did not reach the disk (Hangar's HDF5
# backend never fsyncs; its numpy one makes files of 1000 x the largest
# sample). Measurements in docs/models.md.
BACKEND = "31"
META = "meta."
FORMAT = 1
TORCH, KERAS = "torch", "keras"
# Below this many bytes, hashing in worker threads costs more than it saves.
_PARALLEL_MIN_BYTES = 8 * PIECE


class FrameworkVersionWarning(UserWarning):
    """Weights are loaded with another torch/keras/tensorflow release than saved them."""


def column_name(name: str) -> str:
    """Hangar column name for the model ``name``."""
    return PREFIX + encode_text(name, "model name", room=64 - len(PREFIX))


# ------------------------------------------------------------- preparing
def _from_state_dict(state_dict: Mapping[Any, Any]) -> tuple[dict[str, str], list[_Tensor]]:
    if not state_dict:
        return (
            {"torch": str(sys.modules["torch"].__version__).split("+")[0]} if "torch" in sys.modules else {}
        ), []
    if "torch" not in sys.modules:  # no torch imported: nothing in here can be a tensor
        key, value = next(iter(state_dict.items()))
        raise TypeError(
            f"state_dict entry {key!r} is a {type(value).__name__}, not a torch tensor; "
            f"stock.model stores tensors (keep other values in stock.tag)"
        )
    from stockroom.storages import _torch

    tensors: list[_Tensor] = []
    seen: dict[tuple[Any, ...], int] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be str, got {type(key).__name__} {key!r}")
        where = f"state_dict entry {key!r}"
        if not _torch.is_tensor(value):
            raise TypeError(
                f"{where} is a {type(value).__name__}, not a torch tensor; stock.model stores "
                f"tensors only (keep other values in stock.tag)"
            )
        alias = _torch.alias_key(value)
        if alias is not None and alias in seen:
            first = tensors[seen[alias]]
            tensors.append(_Tensor(key, first.dtype, first.shape, None, same_as=seen[alias]))
            continue
        dtype, shape, raw = _torch.flatten(value, where)
        if alias is not None:
            seen[alias] = len(tensors)
        tensors.append(_Tensor(key, dtype, shape, raw))
    return {"torch": _torch.version()}, tensors


def _from_weight_list(
    weights: list[Any] | tuple[Any, ...], names: list[str] | None = None
) -> tuple[dict[str, str], list[_Tensor]]:
    tensors: list[_Tensor] = []
    seen: dict[tuple[Any, ...], int] = {}
    for i, value in enumerate(weights):
        name = names[i] if names is not None else None
        alias = _array_alias_key(value)
        if alias is not None and alias in seen:
            first = tensors[seen[alias]]
            tensors.append(_Tensor(name, first.dtype, first.shape, None, same_as=seen[alias]))
            continue
        dtype, shape, raw = _flatten_array(value, f"weight {i}" + (f" ({name})" if name else ""))
        if alias is not None:
            seen[alias] = len(tensors)
        tensors.append(_Tensor(name, dtype, shape, raw))
    return _keras.versions(), tensors


def _prepare(weights: object) -> tuple[str, dict[str, str], list[_Tensor]]:
    if isinstance(weights, Mapping):
        return (TORCH, *_from_state_dict(weights))
    if isinstance(weights, (list, tuple)):
        return (KERAS, *_from_weight_list(weights))
    hint = ""
    if _is_torch_module(weights) or _keras.is_model(weights):
        hint = "; to store a model's weights use stock.model.save_weights(name, model)"
    raise TypeError(
        f"stock.model takes a PyTorch state_dict (model.state_dict()) or a Keras weight list "
        f"(model.get_weights()), not {type(weights).__name__}{hint}"
    )


def _is_torch_module(value: object) -> bool:
    if "torch" not in sys.modules:
        return False
    from stockroom.storages import _torch

    return _torch.is_module(value)


# ---------------------------------------------------------------- pieces
def _hash_unit(unit: np.ndarray | bytes, have: frozenset[str]) -> tuple[str, bytes | None]:
    # Hangar's own digest of a bytes sample (BLAKE2b, 20 bytes), so that it
    # need not hash the unit again (see _compat.give_digest): one pass, here,
    # in worker threads.
    digest = hashlib.blake2b(unit if isinstance(unit, bytes) else unit.data, digest_size=20).hexdigest()
    if digest in have:
        return digest, None
    return digest, (unit if isinstance(unit, bytes) else unit.tobytes())


def _hashed_units(
    units: list[np.ndarray | bytes], have: frozenset[str]
) -> Iterator[tuple[str, bytes | None]]:
    """``(BLAKE2b-160 hex, bytes, or None when ``have`` holds the digest)`` for each unit, in order.

    Hashing and copying run a few units ahead in worker threads (hashlib
    releases the GIL), overlapping with Hangar's LMDB writes in the caller;
    the window bounds the extra memory.
    """
    # The caller mostly waits for LMDB's fsyncs (the GIL released): every core hashes.
    workers = min(4, os.cpu_count() or 1)
    if workers < 1 or sum(len(u) for u in units) < _PARALLEL_MIN_BYTES:
        for unit in units:
            yield _hash_unit(unit, have)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stockroom-hash") as pool:
        pending: deque[Future[tuple[str, bytes | None]]] = deque()
        upcoming = iter(units)
        for unit in upcoming:
            pending.append(pool.submit(_hash_unit, unit, have))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().result()
            unit_next = next(upcoming, None)
            if unit_next is not None:
                pending.append(pool.submit(_hash_unit, unit_next, have))
            yield result


def _plan_units(tensors: list[_Tensor]) -> list[np.ndarray | bytes]:
    """Cut the tensors into the units stored as Hangar samples (one sample each).

    A tensor of ``SMALL`` bytes or more gets units of its own, ``PIECE``
    bytes each (the last one shorter), so an unchanged tensor maps to
    unchanged units. Smaller tensors (biases, norms, counters) are packed,
    in order, into shared units of up to ``PIECE`` bytes: every Hangar
    sample costs a write transaction with an fsync, and one per bias would
    dominate the save time of models with hundreds of small tensors.
    """
    units: list[np.ndarray | bytes] = []
    members: list[tuple[_Tensor, int]] = []
    parts: list[np.ndarray] = []
    size = 0

    def close_pack() -> None:
        nonlocal size
        if parts:
            for t, offset in members:
                t.pack = (len(units), offset)
            units.append(b"".join(parts))  # type: ignore[arg-type]  # numpy arrays are bytes-like
            members.clear()
            parts.clear()
            size = 0

    for t in tensors:
        if t.raw is None or t.raw.size == 0:
            continue
        if t.raw.size >= SMALL:
            t.units = []
            for start in range(0, t.raw.size, PIECE):
                t.units.append(len(units))
                units.append(t.raw[start : start + PIECE])
            continue
        if size + t.raw.size > PIECE:
            close_pack()
        members.append((t, size))
        parts.append(t.raw)
        size += t.raw.size
    close_pack()
    return units


def _read_whole(col: Any, raw: np.ndarray, entry: dict[str, Any]) -> None:
    """Read a tensor's units, in order, into its bytes ``raw`` (one thread)."""
    pos = 0
    for digest in entry["pieces"]:
        pos += read_bytes_into(col, digest, raw[pos:])
    if pos != raw.size:
        raise ValueError(f"{entry['name']!r}: {pos} of {raw.size} bytes")


def _read_pieces(col: Any, whole: list[tuple[np.ndarray, dict[str, Any]]]) -> None:
    """Read the units of the tensors ``whole`` ((bytes, meta entry)) into their bytes.

    Each unit is copied straight from LMDB's map into its tensor's bytes and
    checked there (one copy, no 2 MB ``bytes``), several units at once: the
    first read after a commit maps the new pages of the data file, and that,
    the copy and the checksum spread over cores (all three run without the
    GIL) rather than queue in one thread, which made it 2.4x ``torch.load``
    (issue 21 #25). A unit that cannot be read so (another backend, a file
    not open yet, a length other than ``PIECE`` as ``_plan_units`` cuts them)
    sends its tensor to the one-thread path, whose errors say what is wrong.
    """
    workers = min(4, os.cpu_count() or 1)
    if workers < 2 or sum(raw.size for raw, _ in whole) < _PARALLEL_MIN_BYTES:
        for raw, entry in whole:
            _read_whole(col, raw, entry)
        return
    jobs = [
        (i, raw[k * PIECE : (k + 1) * PIECE], digest)
        for i, (raw, entry) in enumerate(whole)
        for k, digest in enumerate(entry["pieces"])
    ]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stockroom-read") as pool:
        got = list(pool.map(lambda job: read_bytes_direct(col, job[2], job[1]), jobs))
    redo = {i for (i, part, _), n in zip(jobs, got, strict=True) if n != part.size or part.size == 0}
    redo.update(i for i, (raw, entry) in enumerate(whole) if len(entry["pieces"]) * PIECE < raw.size)
    for i in sorted(redo):
        _read_whole(col, *whole[i])


def _meta_pieces(meta: bytes) -> list[bytes]:
    return [meta[i : i + PIECE] for i in range(0, len(meta), PIECE)] or [b""]


def _encode_meta(kind: str, versions: dict[str, str], tensors: list[_Tensor], digests: list[str]) -> bytes:
    entries: list[dict[str, Any]] = []
    for t in tensors:
        if t.same_as is not None:
            entries.append({"name": t.name, "same_as": t.same_as})
            continue
        assert t.raw is not None
        entry: dict[str, Any] = {
            "name": t.name,
            "dtype": t.dtype,
            "shape": list(t.shape),
            "nbytes": int(t.raw.size),
        }
        if t.pack is not None:
            entry["pack"], entry["offset"] = digests[t.pack[0]], t.pack[1]
        else:
            entry["pieces"] = [digests[i] for i in t.units or ()]
        entries.append(entry)
    doc = {"format": FORMAT, "kind": kind, "versions": versions, "tensors": entries}
    try:
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a tensor name is not valid unicode (lone surrogate); rename it") from None


# ----------------------------------------------------------------- store
class ModelStore(NamedColumns, MutableMapping[str, Any]):
    """Model weights by name: ``stock.model["resnet"] = net.state_dict()``.

    Values are PyTorch state dicts (returned as an ``OrderedDict`` of CPU
    tensors) or Keras weight lists (returned as a list of numpy arrays),
    exact to the bit. Storing a name again replaces it wholly.
    """

    PREFIX = PREFIX  # the module constant, seen by NamedColumns

    @classmethod
    def _column_name(cls, name: str) -> str:
        return column_name(name)

    def __init__(self, store: Store) -> None:
        self._store = store

    # ------------------------------------------------------------ writing
    def __setitem__(self, name: str, weights: Any) -> None:
        column_name(name)  # a bad name fails before any work
        if _nested.is_nested(weights):  # optimizer/scheduler/RNG states (SPEC 9)
            kind, versions, tensors = _nested.prepare(weights)
        else:
            kind, versions, tensors = _prepare(weights)
        self._write(name, kind, versions, tensors)

    def save_weights(self, name: str, model: Any) -> None:
        """Store the weights of a ``torch.nn.Module`` or a ``keras.Model`` under ``name``."""
        column_name(name)
        if _is_torch_module(model):
            from stockroom.storages import _torch

            self[name] = _torch.state_dict_of(model)
        elif _keras.is_model(model):
            names, values = _keras.weights_of(model)
            versions, tensors = _from_weight_list(values, names)
            self._write(name, KERAS, versions, tensors)
        else:
            raise TypeError(
                f"save_weights takes a torch.nn.Module or a keras.Model, not {type(model).__name__}; "
                f"store a state_dict or weight list with stock.model[name] = weights"
            )

    def _write(self, name: str, kind: str, versions: dict[str, str], tensors: list[_Tensor]) -> None:
        hname = column_name(name)
        units = _plan_units(tensors)
        opened = False
        try:
            with self._store.writing() as co:
                opened = True
                created = hname not in co.columns
                if created:
                    co.add_bytes_column(hname, backend=BACKEND)
                col = co.columns[hname]
                before = frozenset(col.keys())
                old_meta = {k: col[k] for k in before if k.startswith(META)}
                added: list[str] = []
                digests: list[str] = []
                total = sum(len(u) if isinstance(u, bytes) else u.nbytes for u in units)
                try:
                    with col, bar(total, f"saving model {name!r}", unit="B", unit_scale=True) as progress:
                        for digest, payload in _hashed_units(units, before):
                            digests.append(digest)
                            if payload is not None and digest not in col:
                                give_digest(payload, "3=" + digest)  # Hangar's form of it
                                try:
                                    col[digest] = payload
                                finally:
                                    take_digest(payload)
                                added.append(digest)
                            progress.update(len(payload) if payload is not None else 0)
                        meta = _meta_pieces(_encode_meta(kind, versions, tensors, digests))
                        for i, piece in enumerate(meta):
                            col[f"{META}{i}"] = piece
                except BaseException:
                    self._roll_back(co, hname, created, added, old_meta)
                    raise
                # The new version is complete; what it no longer uses goes.
                keep = {f"{META}{i}" for i in range(len(meta))}
                keep.update(digests)
                stale = [key for key in before if key not in keep]
                if stale:
                    with col:
                        for key in stale:
                            del col[key]
        finally:
            if opened:  # something may be staged, even after a failure
                self._store.mark_dirty()

    @staticmethod
    def _roll_back(co: Any, hname: str, created: bool, added: list[str], old_meta: dict[str, bytes]) -> None:
        """Put the column back as it was before a failed write (best effort)."""
        try:
            if created:
                del co.columns[hname]
                return
            col = co.columns[hname]
            with col:
                for key in added:
                    if key in col:
                        del col[key]
                for key in [k for k in col.keys() if k.startswith(META) and k not in old_meta]:
                    del col[key]
                for key, value in old_meta.items():
                    col[key] = value
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass

    # ------------------------------------------------------------ reading
    def _read(self, name: str) -> tuple[dict[str, Any], list[np.ndarray | None]]:
        hname = column_name(name)
        with self._store.reading() as co:
            if co is None or hname not in co.columns:
                raise KeyError(name)
            col = co.columns[hname]
            progress: Progress | None = None
            try:
                meta = self._read_meta(col, name)
                raws: list[np.ndarray | None] = []
                packs: dict[str, bytes] = {}
                whole: list[tuple[np.ndarray, dict[str, Any]]] = []  # tensors with units of their own
                total = sum(e.get("nbytes", 0) for e in meta["tensors"] if "same_as" not in e)
                progress = bar(total, f"loading model {name!r}", unit="B", unit_scale=True)
                for entry in meta["tensors"]:
                    progress.update(entry.get("nbytes", 0) if "same_as" not in entry else 0)
                    if "same_as" in entry:
                        raws.append(None)
                        continue
                    raw = np.empty(entry["nbytes"], dtype=np.uint8)
                    if "pieces" in entry:
                        whole.append((raw, entry))
                        raws.append(raw)
                        continue
                    if "pack" in entry:
                        digest = entry["pack"]
                        if digest not in packs:
                            packs[digest] = col[digest]
                        raw[:] = np.frombuffer(
                            packs[digest], np.uint8, count=raw.size, offset=entry["offset"]
                        )
                        raws.append(raw)
                        continue
                    raise ValueError(f"{entry.get('name')!r} names neither pieces nor a pack")
                _read_pieces(col, whole)
            except (KeyError, ValueError, TypeError, RuntimeError) as exc:
                # RuntimeError: Hangar's "DATA CORRUPTION" (a unit's checksum).
                raise StockroomError(
                    f"stock.model[{name!r}] is damaged in this stock commit ({exc}); store the "
                    f"weights again, or check out a stock commit where they are whole"
                ) from None
            finally:
                if progress is not None:
                    progress.close()
        return meta, raws

    @staticmethod
    def _read_meta(col: Any, name: str) -> dict[str, Any]:
        parts: list[bytes] = []
        while f"{META}{len(parts)}" in col:
            parts.append(col[f"{META}{len(parts)}"])
        meta: dict[str, Any] = json.loads(b"".join(parts).decode("utf-8"))
        if meta.get("format", 0) > FORMAT:
            raise StockroomError(
                f"stock.model[{name!r}] was written by a newer stockroom (format "
                f"{meta.get('format')}); upgrade stockroom (pip install -U stockroom) to read it"
            )
        return meta

    def _warn_versions(self, name: str, saved: dict[str, str], current: dict[str, str | None]) -> None:
        for framework, then in saved.items():
            now = current.get(framework)
            if now is not None and then and now != then:
                warnings.warn(
                    f"stock.model[{name!r}] was saved with {framework} {then} and is loaded with "
                    f"{framework} {now}; check that the weights behave as before (saving them "
                    f"again with {framework} {now} silences this warning)",
                    FrameworkVersionWarning,
                    stacklevel=3,
                )

    def __getitem__(self, name: str) -> Any:
        meta, raws = self._read(name)
        entries = meta["tensors"]
        saved: dict[str, str] = meta.get("versions", {})
        if meta["kind"] == _nested.KIND:
            if "torch" in saved:
                from stockroom.storages import _torch

                self._warn_versions(name, saved, {"torch": _torch.version()})
            try:
                return _nested.rebuild(entries, raws)
            except (KeyError, ValueError, IndexError) as exc:
                raise StockroomError(
                    f"stock.model[{name!r}] is damaged in this stock commit ({exc}); store it again"
                ) from None
        if meta["kind"] == TORCH:
            from stockroom.storages import _torch

            self._warn_versions(name, saved, {"torch": _torch.version()})
            state: OrderedDict[str, Any] = OrderedDict()
            built: list[Any] = []
            for entry, raw in zip(entries, raws, strict=True):
                if raw is None:
                    tensor = built[entry["same_as"]]
                else:
                    tensor = _torch.unflatten(raw, entry["dtype"], tuple(entry["shape"]))
                built.append(tensor)
                state[entry["name"]] = tensor
            return state
        if meta["kind"] == KERAS:
            self._warn_versions(name, saved, {f: _keras.installed_version(f) for f in saved})
            arrays: list[np.ndarray] = []
            for entry, raw in zip(entries, raws, strict=True):
                if raw is None:
                    arrays.append(arrays[entry["same_as"]])
                else:
                    arrays.append(_unflatten_array(raw, entry["dtype"], tuple(entry["shape"])))
            return arrays
        raise StockroomError(
            f"stock.model[{name!r}] holds weights of kind {meta['kind']!r}, which this stockroom "
            f"does not know; upgrade stockroom (pip install -U stockroom)"
        )

    def load_weights(self, name: str, model: Any) -> None:
        """Load the weights stored under ``name`` into ``model`` in place (returns None)."""
        column_name(name)
        if _is_torch_module(model):
            from stockroom.storages import _torch

            weights = self[name]
            if not isinstance(weights, Mapping):
                raise ValueError(
                    f"stock.model[{name!r}] holds a Keras weight list; load it into a keras.Model, "
                    f"or read it with stock.model[{name!r}]"
                )
            _torch.load_into(model, weights, name)  # type: ignore[arg-type]
        elif _keras.is_model(model):
            weights = self[name]
            if not isinstance(weights, list):
                raise ValueError(
                    f"stock.model[{name!r}] holds a PyTorch state_dict; load it into a "
                    f"torch.nn.Module, or read it with stock.model[{name!r}]"
                )
            _keras.load_into(model, weights, name)
        else:
            raise TypeError(
                f"load_weights takes a torch.nn.Module or a keras.Model, not {type(model).__name__}; "
                f"read the weights themselves with stock.model[name]"
            )

    # ------------------------------------------------------------ listing
    def __repr__(self) -> str:
        return f"<stock.model: {self._names()}>"
