"""Three-way merge of two stock commits, on Hangar's commit records only.

Hangar's own ``Repository.merge`` diffs the records of the common ancestor
against each side and applies one side's changes to the other; it works on
records (sample key -> data digest), never on the data itself. This module
does the same three-way merge of records, for three reasons Hangar's call
does not cover: it rebuilds its staging area for the merge (it refuses to run
while writes are staged, and moves branch heads), it merges every column
sample by sample (a model is one unit here: mixing layers of two trainings
is not a model), and it cannot apply a chosen side per conflict. The merged
commit is written with Hangar's own record formats and digests, and names
both sides as parents, as a Hangar merge commit does.

The unit of merging, per Hangar column:

* ``tag`` and data columns: each sample (tag key, data sample); a column's
  schema (shape, dtype) as a whole: one side deleting or re-creating a column
  that the other side changed is a conflict on the whole column;
* ``model.<name>``: the whole column (all pieces and the metadata).

For each unit with values base, ours, theirs (absent is a value too): equal
sides merge to that; a side equal to the base takes the other side; else it
is a conflict.
"""

from __future__ import annotations

import configparser
import contextlib
import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hangar.constants import CONFIG_USER_NAME
from hangar.diff import BaseUserDiff
from hangar.records import commiting
from hangar.records.parsing import (
    cmt_final_digest,
    commit_parent_db_key_from_raw_key,
    commit_parent_db_val_from_raw_val,
    commit_ref_db_key_from_raw_key,
    commit_ref_db_val_from_raw_val,
    commit_spec_db_key_from_raw_key,
    commit_spec_db_val_from_raw_val,
)
from hangar.txnctx import TxnRegister

from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR
from stockroom.keys import decode_text
from stockroom.lock import WriterLock
from stockroom.store.repository import _quiet, open_repository

OURS, THEIRS = "ours", "theirs"
# How many conflicts are described side by side (each costs a read); the
# rest are listed by key only.
DESCRIBED = 20
_MODEL = "model."
# The record of a nested state's structure (storages._nested.SKELETON, a layer
# above this one): listed beside the tensors in the model's metadata.
_NESTED_STRUCTURE = "(structure)"
_DATA = "data."
_TAG = "tag"

Records = dict[bytes, bytes]
# A column's state in one commit: its schema record value and its samples
# (record key suffix -> record value); None when the column is absent.
Column = tuple[bytes | None, dict[bytes, bytes]]


class MissingCommit(StockroomError):
    """A stock commit a merge needs is not in ``.hangar``."""

    def __init__(self, message: str, digests: list[str]) -> None:
        super().__init__(message)
        self.digests = digests


@dataclass(frozen=True)
class Unit:
    """One merge unit: a sample (``sample`` set), a whole column, or a model."""

    column: str  # Hangar column name
    sample: bytes | None = None  # record key suffix of the sample; None: the whole column

    def key(self) -> str:
        """What users call it, and type after ``stock merge --ours``: ``tag:lr``,
        ``model:cnn``, ``data:images``, ``data:images[3]``, ``data:images['cat']``."""
        col = self.column
        if col == _TAG and self.sample is not None:
            return "tag:" + decode_text(self.sample.decode().partition(":")[2])
        if col.startswith(_MODEL):
            return "model:" + decode_text(col[len(_MODEL) :])
        name = "data:" + decode_text(col[len(_DATA) :]) if col.startswith(_DATA) else "hangar:" + col
        if self.sample is None:
            return name
        raw = self.sample.decode().partition(":")[2]  # after the record kind ("f:")
        shown: object = int(raw[1:]) if raw.startswith("#") else decode_text(raw)
        return f"{name}[{shown!r}]"

    def names(self) -> set[str]:
        """The texts a user may give for it: its key, its column's key, its bare name."""
        full = self.key()
        names = {full}
        kind, _, rest = full.partition(":")
        if self.sample is not None and kind != "tag":
            names.add(Unit(self.column).key())
            rest = rest.split("[", 1)[0]
        names.add(rest)
        return names

    def encode(self) -> str:
        """A one-line ASCII form for ``head.stock``'s merge block."""
        return self.column + ("" if self.sample is None else ":" + self.sample.decode())

    @staticmethod
    def decode(text: str) -> Unit:
        column, sep, sample = text.partition(":")
        return Unit(column, sample.encode() if sep else None)


@dataclass
class Conflict:
    """A unit both sides changed differently; ``ours``/``theirs`` say what each side has."""

    unit: Unit
    ours: str = ""
    theirs: str = ""


@dataclass
class MergeResult:
    """The outcome: the merged commit's digest, or the conflicts left."""

    base: str
    ours: str
    theirs: str
    digest: str = ""
    conflicts: list[Conflict] = field(default_factory=list)


# ------------------------------------------------------------------ records
def _records(repo: Any, digest: str) -> Records:
    if not digest:
        return {}
    return dict(commiting.get_commit_ref(repo._env.refenv, digest))


def _columns(records: Records) -> dict[str, Column]:
    """Group records by Hangar column: ``s:<col>:<layout>`` schemas, ``f:``/``n:`` samples."""
    out: dict[str, tuple[bytes | None, dict[bytes, bytes]]] = {}
    for key, value in records.items():
        kind, _, rest = key.partition(b":")
        column, _, sample = rest.partition(b":")
        name = column.decode()
        schema, samples = out.get(name, (None, {}))
        if kind == b"s":
            out[name] = (key + b"\0" + value, samples)  # layout suffix kept with the value
        else:
            samples[kind + b":" + sample] = value
            out[name] = (schema, samples)
    return out


def _three_way(base: Any, ours: Any, theirs: Any) -> tuple[bool, Any]:
    """(True, merged) or (False, None) for a conflict."""
    if ours == theirs:
        return True, ours
    if ours == base:
        return True, theirs
    if theirs == base:
        return True, ours
    return False, None


def _merge_records(
    base: Records, ours: Records, theirs: Records, chosen: dict[Unit, str]
) -> tuple[Records, list[Unit]]:
    """The merged records and the units still in conflict."""
    cb, co, ct = _columns(base), _columns(ours), _columns(theirs)
    merged: dict[str, Column] = {}
    conflicts: list[Unit] = []
    absent: Column = (None, {})

    def pick(unit: Unit, values: tuple[Any, Any, Any]) -> tuple[bool, Any]:
        ok, value = _three_way(*values)
        if ok:
            return True, value
        side = chosen.get(unit)
        if side is None:
            conflicts.append(unit)
            return False, None
        return True, values[1] if side == OURS else values[2]

    for name in sorted(set(cb) | set(co) | set(ct)):
        b, o, t = cb.get(name, absent), co.get(name, absent), ct.get(name, absent)
        whole = Unit(name)
        if name.startswith(_MODEL):
            ok, value = pick(whole, (b, o, t))
            if ok and value[0] is not None:
                merged[name] = value
            continue
        if o == t or t == b or o == b:
            column = o if t == b else t
            if column[0] is not None:
                merged[name] = column
            continue
        # Both sides changed the column. Samples merge one by one only when
        # both keep the same schema (shape, dtype); one side deleting or
        # re-creating it while the other changed it is one conflict.
        if o[0] != t[0]:
            ok, value = pick(whole, (b, o, t))
            if ok and value[0] is not None:
                merged[name] = value
            continue
        schema = o[0]
        if schema is None:
            continue  # both deleted it
        samples: dict[bytes, bytes] = {}
        bs, os_, ts = (b[1] if b[0] == schema else {}), o[1], t[1]
        for key in sorted(set(bs) | set(os_) | set(ts)):  # a stable order for listings
            ok, value = pick(Unit(name, key), (bs.get(key), os_.get(key), ts.get(key)))
            if ok and value is not None:
                samples[key] = value
        merged[name] = (schema, samples)

    records: Records = {}
    for name, (schema, samples) in merged.items():
        if schema is not None:
            key, _, value = schema.partition(b"\0")
            records[key] = value
        prefix = name.encode()
        for sample, value in samples.items():
            kind, _, rest = sample.partition(b":")
            records[kind + b":" + prefix + b":" + rest] = value
    return records, conflicts


# ------------------------------------------------------------------ merging
def _common_ancestor(repo: Any, ours: str, theirs: str) -> str:
    differ = BaseUserDiff(repo._env.branchenv, repo._env.refenv)
    try:
        return str(differ._determine_ancestors(mHEAD=ours, dHEAD=theirs).ancestorHEAD)
    except (IndexError, ValueError):
        return ""


def _has(repo: Any, digest: str) -> bool:
    return bool(commiting.check_commit_hash_in_history(repo._env.refenv, digest))


def _fetch_missing(root: Path, missing: list[str]) -> None:
    """Bring missing stock commits from the default stock remote, where
    stockroom has remotes; else say which command fixes it.

    With their data (records only in a lazy clone, each sample fetched when
    read), as a checkout would: the merged commit names the other side's
    samples, and they must be readable here once the merge is done."""
    reason = ""
    try:  # stock remotes (stockroom.remote) may not be part of this stockroom
        sync: Any = importlib.import_module("stockroom.remote.sync")
    except ImportError:
        sync = None
    from stockroom.git import config_value

    if sync is not None and config_value("stock.autofetch", root) != "false":
        try:
            from stockroom.store import samples

            sync.fetch(root, None, missing, lazy=samples.lazy_clone(root))
            return
        except StockroomError as exc:
            reason = f" (fetching it from the stock remote failed: {exc})"
    raise MissingCommit(
        f"stock commit {', '.join(missing)} is not in {HANGAR_DIR}{reason}; run `stock fetch {' '.join(missing)}` to bring "
        f"{'them' if len(missing) > 1 else 'it'} from the stock remote (or copy that stock data here), then `stock merge` to finish this merge",
        missing,
    )


def merge(
    root: Path,
    base: str,
    ours: str,
    theirs: str,
    chosen: dict[Unit, str] | None = None,
    lock_timeout: float | None = None,
    write: bool = True,
) -> MergeResult:
    """Three-way merge the stock commits ``ours`` and ``theirs`` (``base``: the
    stock commit of the git merge base, '' when unknown).

    Conflicting units listed in ``chosen`` take that side. Reads commit
    records only, never sample data (conflicts are described by reading the
    few samples concerned). Writes the merged commit when nothing conflicts
    (with ``write`` off, only says whether something does: ``digest`` stays '').
    """
    chosen = chosen or {}
    repo = open_repository(root)
    missing = [d for d in dict.fromkeys((ours, theirs)) if d and not _has(repo, d)]
    if missing:
        _fetch_missing(root, missing)
    if base and not _has(repo, base):
        base = ""  # a merge base we lack: Hangar's own common ancestor does
    if not base and ours and theirs:
        base = _common_ancestor(repo, ours, theirs)
    result = MergeResult(base, ours, theirs)
    if ours == theirs or theirs == base:
        result.digest = ours
        return result
    if ours == base and not chosen:
        result.digest = theirs
        return result
    records, conflicts = _merge_records(
        _records(repo, base), _records(repo, ours), _records(repo, theirs), chosen
    )
    if conflicts:
        result.conflicts = [Conflict(unit) for unit in conflicts]
        _describe(repo, result)
        return result
    if not write:
        return result
    if records == _records(repo, ours):
        result.digest = ours
    elif records == _records(repo, theirs):
        result.digest = theirs
    else:
        result.digest = _write_commit(root, repo, records, ours, theirs, lock_timeout)
    return result


def _write_commit(
    root: Path, repo: Any, records: Records, ours: str, theirs: str, timeout: float | None
) -> str:
    """Write a Hangar merge commit of ``records`` with parents ``ours`` and ``theirs``.

    Its time is the later parent's, so the same merge made again (after a
    ``git merge --abort``, or by a teammate) is the very same commit.
    """
    refenv = repo._env.refenv
    cfg = configparser.ConfigParser()
    cfg.read(Path(repo._repo_path, CONFIG_USER_NAME))
    when = max(commiting.get_commit_spec(refenv, d).commit_time for d in (ours, theirs))
    spec = commit_spec_db_val_from_raw_val(
        commit_time=when,
        commit_message=f"stock merge of {theirs} into {ours}",
        commit_user=cfg["USER"]["name"],
        commit_email=cfg["USER"]["email"],
    )
    parent = commit_parent_db_val_from_raw_val(
        master_ancestor=ours, dev_ancestor=theirs, is_merge_commit=True
    )
    refs = commit_ref_db_val_from_raw_val(sorted(records.items()))
    digest = str(
        cmt_final_digest(parent_digest=parent.digest, spec_digest=spec.digest, refs_digest=refs.digest)
    )
    # Commit records go in last, in one transaction: a reader never sees half
    # a commit. The writer lock keeps stockroom's own commits out meanwhile.
    lock = WriterLock(root / HANGAR_DIR, timeout)
    lock.acquire()
    try:
        txn = TxnRegister().begin_writer_txn(refenv)
        try:
            txn.put(commit_spec_db_key_from_raw_key(digest), spec.raw, overwrite=False)
            txn.put(commit_parent_db_key_from_raw_key(digest), parent.raw, overwrite=False)
            txn.put(commit_ref_db_key_from_raw_key(digest), refs.raw, overwrite=False)
        finally:
            TxnRegister().commit_writer_txn(refenv)
    finally:
        lock.release()
    return digest


# --------------------------------------------------------------- describing
@contextlib.contextmanager
def _checkouts(repo: Any, digests: tuple[str, str, str]) -> Iterator[list[Any]]:
    opened: list[Any] = []
    try:
        for digest in digests:
            if digest:
                with _quiet():
                    opened.append(repo.checkout(commit=digest))
            else:
                opened.append(None)
        yield opened
    finally:
        for co in opened:
            if co is not None:
                with contextlib.suppress(Exception):
                    co.close()


def _sample_key(raw: bytes) -> str | int:
    text = raw.decode().partition(":")[2]
    return int(text[1:]) if text.startswith("#") else text


def _describe(repo: Any, result: MergeResult) -> None:
    """Fill in what each side has for the first few conflicts (best effort)."""
    try:
        with _checkouts(repo, (result.base, result.ours, result.theirs)) as (base, ours, theirs):
            for conflict in result.conflicts[:DESCRIBED]:
                conflict.ours = _what(ours, base, conflict.unit)
                conflict.theirs = _what(theirs, base, conflict.unit)
    except Exception as exc:  # noqa: BLE001 - the keys alone still let the user resolve
        for conflict in result.conflicts[:DESCRIBED]:
            conflict.ours = conflict.ours or f"(not shown: {exc})"


def _what(co: Any, base: Any, unit: Unit) -> str:
    if co is None or unit.column not in co.columns:
        return "deleted" if base is not None and unit.column in base.columns else "absent"
    col = co.columns[unit.column]
    if unit.column.startswith(_MODEL):
        return _describe_model(
            col, base.columns[unit.column] if base is not None and unit.column in base.columns else None
        )
    if unit.sample is None:
        return f"column of {len(col)} samples" + _schema_text(col)
    key = _sample_key(unit.sample)
    if key not in col:
        return "deleted"
    value = col[key]
    if unit.column == _TAG:
        return repr(_tag_value(value))
    return f"array {getattr(value, 'dtype', '?')} {tuple(getattr(value, 'shape', ()))}"


def _schema_text(col: Any) -> str:
    with contextlib.suppress(Exception):
        return f" ({col.dtype} {tuple(col.shape)})"
    return ""


def _tag_value(raw: str) -> object:
    # The typed text stockroom.storages.tag writes ("i:1f", "f:<bits>", "s:text", "b:1").
    import struct

    kind, text = raw[:2], raw[2:]
    if kind == "i:":
        return int(text, 16)
    if kind == "f:":
        return struct.unpack(">d", bytes.fromhex(text))[0]
    if kind == "b:":
        return text == "1"
    return text


def _model_layers(col: Any) -> dict[str, str]:
    parts: list[bytes] = []
    while f"meta.{len(parts)}" in col:
        parts.append(col[f"meta.{len(parts)}"])
    meta = json.loads(b"".join(parts).decode("utf-8"))
    layers = {}
    nested = meta.get("kind") == "nested"  # a training state (storages/_nested.py)
    for i, entry in enumerate(meta.get("tensors", [])):
        name = entry.get("name") or f"#{i}"
        if nested and name == _NESTED_STRUCTURE:
            continue  # its scalars and layout, not a layer (a change there shows as 0 layers)
        if "pieces" in entry:
            sign = ",".join(entry["pieces"])
        elif "pack" in entry:
            import hashlib

            pack = col[entry["pack"]]
            sign = hashlib.sha256(pack[entry["offset"] : entry["offset"] + entry["nbytes"]]).hexdigest()
        else:
            sign = f"same as {entry.get('same_as')}"
        layers[name] = f"{entry.get('dtype')} {tuple(entry.get('shape', ()))} {sign}"
    return layers


def _describe_model(col: Any, base: Any) -> str:
    try:
        layers = _model_layers(col)
        old = _model_layers(base) if base is not None else {}
    except Exception:  # noqa: BLE001 - a model written by another tool: say less
        return f"model of {len(col)} pieces"
    changed = [name for name, sign in layers.items() if old.get(name) != sign]
    if not old:
        return f"new model, {len(layers)} layers"
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return f"{len(changed)} of {len(layers)} layers changed" + (f": {shown}" if changed else "")
