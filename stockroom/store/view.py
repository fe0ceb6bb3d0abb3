"""Reading the stock at any stock commit, without checking anything out.

* :class:`ReadOnlyStore`: a Store pinned to one stock commit, for
  ``stock.at(REV)``; the storages read through it as they read through the
  live Store, and every write is refused.
* :func:`commit_records` / :class:`Snapshot`: what a commit (or the staging
  area) holds, as Hangar's records: per column, each sample's data digest.
  Equal digests mean equal content, so ``stock diff`` recognises unchanged
  samples and model units without reading them.
* :class:`DigestReader`: reads one sample by its digests alone, without a
  checkout, for tables over hundreds of commits (``stock log --tags``).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import lmdb
from hangar.backends import backend_decoder
from hangar.columns.common import open_file_handles
from hangar.columns.constructors import column_type_object_from_schema
from hangar.records import commiting, hash_data_db_key_from_raw_key
from hangar.records.column_parsers import schema_hash_db_key_from_digest, schema_spec_from_db_val
from hangar.records.queries import RecordQuery
from hangar.txnctx import TxnRegister

from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR, atomic_write
from stockroom.store import Store
from stockroom.store.repository import Checkout, _quiet, damaged

__all__ = [
    "ColumnRecords",
    "DigestReader",
    "ReadOnlyStore",
    "Snapshot",
    "commit_records",
    "missing_commit",
    "snapshot_at",
    "snapshot_of_work_tree",
]

SampleKey = str | int
# DigestReader's cache of text samples by digest, and the most it keeps.
TEXT_CACHE = "stockroom-text-cache.json"
TEXT_CACHE_MAX = 500_000


def missing_commit(digest: str, where: str) -> StockroomError:
    """The error for a stock commit ``.hangar`` does not have."""
    return StockroomError(
        f"{where} records stock commit {digest}, which {HANGAR_DIR} does not have; bring it "
        f"with `stock fetch {digest}` (from the stock remote) or ask whoever made it to push it"
    )


class ReadOnlyStore(Store):
    """A Store pinned to the stock commit ``digest``: reads only.

    ``where`` names the revision in messages (``git revision 'HEAD~2'``).
    Every write, commit or reset raises :class:`StockroomError`.
    """

    def __init__(self, root: Path, digest: str, where: str) -> None:
        # Store.__init__ would look for an interrupted commit: that is the
        # live store's business, not a view's.
        super(Store, self).__init__(root)
        self.where = where
        self._closed = False
        self._digest = digest
        if not self.has_commit(digest):
            self.close()
            raise missing_commit(digest, where)

    def head(self) -> str:
        return self._digest

    def _read_checkout(self) -> Checkout | None:
        if self._closed:
            raise StockroomError(
                f"this view of the stock at {self.where} is closed (closed with it, or with "
                f"the StockRoom that made it); open another with stock.at(REV)"
            )
        return super()._read_checkout()

    def close(self) -> None:
        self._closed = True
        super().close()

    def _refuse(self) -> NoReturn:
        raise StockroomError(
            f"the stock at {self.where} is a read-only view; write through the live "
            f"StockRoom (check out that revision first to build on it)"
        )

    def _check_can_write(self) -> None:
        self._refuse()

    @contextlib.contextmanager
    def writing(self, check_branch: bool = True, keep_held: bool = False) -> Iterator[Checkout]:
        self._refuse()
        yield None  # pragma: no cover - unreachable

    @contextlib.contextmanager
    def _staging_area(self) -> Iterator[Checkout]:
        self._refuse()
        yield None  # pragma: no cover - unreachable

    def mark_dirty(self, column: str | None = None) -> None:
        self._refuse()

    def hangar_checkout(self, write: bool) -> Checkout:
        if write:
            self._refuse()
        return super().hangar_checkout(write)

    def commit(self, message: str, update_head: bool = True) -> str:
        self._refuse()

    def reset_staging(self) -> bool:
        self._refuse()


# ---------------------------------------------------------------- records
@dataclass
class ColumnRecords:
    """One Hangar column in one stock state: its schema digest and, per
    sample key, the digest of the sample's content."""

    schema: str = ""
    samples: dict[SampleKey, str] = field(default_factory=dict)


def _parse_records(pairs: Any) -> dict[str, ColumnRecords]:
    columns: dict[str, ColumnRecords] = {}
    for key, value in pairs:
        kind = key[:2]
        if kind == b"f:":
            _, column, sample = key.decode().split(":", 2)
            hkey: SampleKey = int(sample[1:]) if sample.startswith("#") else sample
            columns.setdefault(column, ColumnRecords()).samples[hkey] = value.decode()
        elif kind == b"s:":
            column = key.decode().split(":")[1]
            columns.setdefault(column, ColumnRecords()).schema = value.decode()
        # Nested-layout records ("n:") are never written by stockroom.
    return columns


def commit_records(store: Store, digest: str) -> dict[str, ColumnRecords]:
    """What the stock commit ``digest`` holds, by Hangar column ({} for '')."""
    if not digest:
        return {}
    try:
        return _parse_records(commiting.get_commit_ref(store.repo._env.refenv, digest))
    except ValueError:
        raise missing_commit(digest, "this revision") from None
    except (lmdb.Error, OSError) as exc:
        raise damaged(store.root / HANGAR_DIR, f"reading commit {digest} failed: {exc}") from exc


def _staged_records(store: Store) -> dict[str, ColumnRecords]:
    query = RecordQuery(store.repo._env.stageenv)
    return _parse_records(list(query._traverse_all_records()))


@dataclass
class Snapshot:
    """One side of a comparison: its records and a checkout to read from.

    ``checkout`` is None for an empty stock state (no stock commit yet).
    """

    digest: str
    staged: bool
    records: dict[str, ColumnRecords]
    checkout: Checkout | None

    def read(self, column: str, key: SampleKey) -> Any:
        """The value of sample ``key`` of Hangar column ``column``."""
        if self.checkout is None:
            raise KeyError(key)
        return self.checkout.columns[column][key]

    def column_schema(self, column: str) -> tuple[str, tuple[int, ...]]:
        """``(dtype name, sample shape)`` of an array column."""
        if self.checkout is None:
            raise KeyError(column)
        col = self.checkout.columns[column]
        return str(col.dtype), tuple(int(n) for n in col.shape)


@contextlib.contextmanager
def snapshot_at(store: Store, digest: str, where: str) -> Iterator[Snapshot]:
    """The stock commit ``digest`` ('' for none), read through a reader checkout."""
    if not digest:
        yield Snapshot("", False, {}, None)
        return
    if not store.has_commit(digest):
        raise missing_commit(digest, where)
    records = commit_records(store, digest)
    with _quiet():
        co = store.repo.checkout(commit=digest)
    try:
        yield Snapshot(digest, False, records, co)
    finally:
        with contextlib.suppress(Exception):
            co.close()


@contextlib.contextmanager
def snapshot_of_work_tree(store: Store) -> Iterator[Snapshot]:
    """The stock of the work tree: the commit ``head.stock`` names plus the
    staged writes built on it (what ``stock commit`` would commit).

    Staged writes built on another commit belong to another checkout of the
    code; they are left out (``stock status`` tells about them).
    """
    digest = store.head()
    marker = store.root / HANGAR_DIR / "stockroom-staged"
    if marker.exists():
        with store._staging_area() as writer:
            if writer.diff.status() == "DIRTY":
                base = store.staged_base()
                if base == digest:
                    yield Snapshot(digest, True, _staged_records(store), writer)
                    return
                warnings.warn(
                    f"staged stock writes are based on stock commit {base or '(none)'}, not on "
                    f"head.stock's {digest or '(none)'}: they are not part of this comparison "
                    f"(see `stock status`)",
                    stacklevel=2,
                )
    with snapshot_at(store, digest, "head.stock") as snap:
        yield snap


def column_of_work_tree(store: Store, column: str) -> dict[SampleKey, str]:
    """One flat column's records (sample key -> content digest) in the stock
    of the work tree, as :func:`snapshot_of_work_tree` gives them, at the cost
    of that column alone (no checkout, no other column's records)."""
    from stockroom.store import commitrefs

    digest = store.head()
    marker = store.root / HANGAR_DIR / "stockroom-staged"
    pairs: list[tuple[bytes, bytes]] | None = None
    if marker.exists() and store._writer is None and not store.optimizing:
        store._check_not_lent()
        store.lock.acquire()
        try:
            store._fold_tags()  # the staged tag log is part of what is staged
            base = store.staged_base()
            if base == digest:
                pairs = commitrefs.staged_column(store.repo, column)
        finally:
            store.lock.release()
        if pairs is None and store.staged_status() == "DIRTY":
            warnings.warn(
                f"staged stock writes are based on stock commit {base or '(none)'}, not on "
                f"head.stock's {digest or '(none)'}: they are not part of this comparison "
                f"(see `stock status`)",
                stacklevel=2,
            )
    elif marker.exists():
        with snapshot_of_work_tree(store) as snap:
            return dict(snap.records.get(column, ColumnRecords()).samples)
    if pairs is None:
        return column_of_commit(store, digest, column)
    return _parse_records(pairs).get(column, ColumnRecords()).samples


def column_of_commit(store: Store, digest: str, column: str) -> dict[SampleKey, str]:
    """One flat column's records in the stock commit ``digest`` ({} for '')."""
    from stockroom.store import commitrefs

    if not digest:
        return {}
    try:
        pairs = commitrefs.committed_column(store.repo, digest, column)
    except ValueError:
        raise missing_commit(digest, "this revision") from None
    return _parse_records(pairs).get(column, ColumnRecords()).samples


# ---------------------------------------------------------- digest reader
class DigestReader:
    """Reads committed samples by ``(schema digest, data digest)``, no checkout.

    Opening a reader checkout unpacks the whole commit (milliseconds each);
    a table over hundreds of commits needs only a few values from each.
    """

    def __init__(self, store: Store, text_cache: bool = False) -> None:
        self._store = store
        self._schemas: dict[str, Any] = {}
        self._handles: dict[tuple[str, str], Any] = {}
        self._values: dict[str, Any] = {}
        # Text samples (tags) seen before, kept in .hangar by digest: a
        # digest names its content, so an entry never goes stale, and a
        # second table over the same commits reads no data file at all.
        self._cache_path = store.root / HANGAR_DIR / TEXT_CACHE if text_cache else None
        self._cached = 0
        if self._cache_path is not None:
            try:
                loaded = json.loads(self._cache_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = {}  # none yet, or unreadable: start over
            if isinstance(loaded, dict):
                self._values.update((k, v) for k, v in loaded.items() if isinstance(v, str))
            self._cached = len(self._values)

    def _lookup(self, key: bytes) -> bytes:
        env = self._store.repo._env.hashenv
        txn = TxnRegister().begin_reader_txn(env)
        try:
            raw = txn.get(key, default=None)
        finally:
            TxnRegister().abort_reader_txn(env)
        if raw is None:
            raise KeyError(key.decode())
        return bytes(raw)

    def read(self, schema_digest: str, data_digest: str) -> Any:
        """The sample whose content has digest ``data_digest`` (cached)."""
        if data_digest in self._values:
            return self._values[data_digest]
        schema = self._schemas.get(schema_digest)
        if schema is None:
            spec = schema_spec_from_db_val(self._lookup(schema_hash_db_key_from_digest(schema_digest)))
            schema = self._schemas[schema_digest] = column_type_object_from_schema(spec)
        location = backend_decoder(self._lookup(hash_data_db_key_from_raw_key(data_digest)))
        handle_key = (schema_digest, location.backend)
        handles = self._handles.get(handle_key)
        if handles is None:
            handles = open_file_handles(
                backends={location.backend}, path=self._store.repo._repo_path, mode="r", schema=schema
            )
            if location.backend not in handles:
                raise StockroomError(
                    f"sample {data_digest} is not stored here (fetched only partially); "
                    f"run `stock pull` to fetch its data"
                )
            self._handles[handle_key] = handles
        value = handles[location.backend].read_data(location)
        self._values[data_digest] = value
        return value

    def close(self) -> None:
        """Close the data files; save new text values to the cache (best effort)."""
        if self._cache_path is not None and len(self._values) > self._cached:
            texts = {k: v for k, v in self._values.items() if isinstance(v, str)}
            if len(texts) <= TEXT_CACHE_MAX:
                with contextlib.suppress(OSError):
                    atomic_write(self._cache_path, json.dumps(texts).encode("utf-8"))
            self._cached = len(self._values)
        for handles in self._handles.values():
            for handle in handles.values():
                with contextlib.suppress(Exception):
                    handle.close()
        self._handles.clear()
