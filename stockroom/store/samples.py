"""What a sample is in this clone: the one place that decides it.

Every sample a stock commit names has a Hangar hash record (digest -> where
its bytes are). Its *state* here is read from that record and, for a sample
read on demand, from the lazy cache:

* ``ABSENT``: no record (its commit is not here).
* ``LOCAL``: its bytes are in ``.hangar`` (pulled in full, or written here).
* ``REMOTE``: recorded as on a remote ("50:<schema>"), not readable here: a
  records-only fetch (an ancestor of a pulled commit, a partial pull).
* ``LAZY``: on a remote in a known pack ("50:<schema>/<digest>/<pack>"),
  fetched when first read (a lazy pull; :mod:`stockroom.store.lazy`).
* ``KEPT``: ``LAZY``, read once and kept in the lazy cache (dropped again by
  ``stock.cacheLimit`` or ``stock gc``: back to ``LAZY``).
* ``PRUNED``: dropped by a training run's retention ("50:pruned",
  :mod:`stockroom.store.prune`): not here, never pushed, a read says so.

The transitions, and who makes them:

* a fetch with data (:func:`stockroom.store.transfer.fetch`): ABSENT, REMOTE,
  LAZY, KEPT -> LOCAL for the samples it is asked for (:func:`to_download`);
* a records-only fetch: ABSENT -> REMOTE, or -> LAZY in a lazy fetch, which
  also turns REMOTE into LAZY (:func:`to_record`); a record is never made worse;
* a write here (any column, through Hangar's writer; :func:`install`):
  REMOTE, LAZY, KEPT -> LOCAL, since the written bytes are at hand; so a
  value written here is readable here whatever older commit holds it;
* a push that must send samples not LOCAL here first fetches them (-> LOCAL)
  from another stock remote (``transfer._bring_for_push``);
* an on-demand read: LAZY -> KEPT, and eviction KEPT -> LAZY (the lazy cache);
* a run's retention: LOCAL, REMOTE, LAZY, KEPT -> PRUNED for the samples
  that only its pruned checkpoints name; a fetch records a sample that the
  remote's manifest lists as pruned as PRUNED (ABSENT -> PRUNED); a write of
  the same content here makes it LOCAL again.

The clone's *mode* (:func:`lazy_clone`) says which fetch the hooks, the merge
driver and ``stock fetch`` make: records only (lazy) or with data.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stockroom import layout
from stockroom.errors import StockroomError
from stockroom.git import git
from stockroom.headfile import HANGAR_DIR

REMOTE_BACKEND = "50"
_REMOTE_PREFIX = b"50:"
# The text of a PRUNED sample's record (after "50:"): no schema digest is this.
PRUNED_TEXT = "pruned"
PRUNED_RECORD = _REMOTE_PREFIX + PRUNED_TEXT.encode()
LAZY_DIR = layout.LAZY_DIR
# Written by `stock pull --lazy`, removed by a full `stock pull`.
LAZY_CLONE_FILE = "lazy-clone"
COMPLETE_FILE = "stockroom-complete"
_COMMIT_RE = re.compile(r"^a=[0-9a-f]{40}$")
_SEP = "/"


class State(enum.Enum):
    """A sample's state in this clone (see the module's doc)."""

    ABSENT = "absent"
    LOCAL = "local"
    REMOTE = "remote"
    LAZY = "lazy"
    KEPT = "kept"
    PRUNED = "pruned"


# States whose bytes a read finds here, with no network.
HERE = frozenset({State.LOCAL, State.KEPT})
# States a read can serve (LAZY: from the remote, on demand).
READABLE = frozenset({State.LOCAL, State.KEPT, State.LAZY})


# ------------------------------------------------------------ lazy records
def lazy_record(schema: str, digest: str, pack: str) -> str:
    """The text of a LAZY sample's Hangar record (after ``50:``).

    Hangar's parser takes everything after the last ``:`` and reads at most
    255 characters: the fields are joined with ``/`` and stay well short."""
    text = _SEP.join((schema, digest, pack))
    if ":" in text or len(text) > 240:
        raise StockroomError(
            f"cannot record sample {digest} for lazy reading; run `stock pull` without --lazy"
        )
    return text


def parse_lazy(text: str) -> tuple[str, str, str] | None:
    """(schema, digest, pack) of a LAZY record's text, None for a REMOTE one."""
    parts = text.split(_SEP)
    if len(parts) != 3:
        return None
    return parts[0], parts[1], parts[2]


def lazy_text(record: bytes) -> str | None:
    """The text of a LAZY sample's whole Hangar record, None for any other."""
    if not record.startswith(_REMOTE_PREFIX):
        return None
    text = record[3:].decode("utf-8", "replace")
    return text if parse_lazy(text) is not None else None


# ------------------------------------------------------------------ states
def state_of(record: bytes | None, kept: bool = False) -> State:
    """The state of a sample whose Hangar hash record is ``record`` (None or
    empty: none); ``kept``: its bytes are in the lazy cache."""
    if not record:
        return State.ABSENT
    if not record.startswith(_REMOTE_PREFIX):
        return State.LOCAL
    if record == PRUNED_RECORD:
        return State.PRUNED
    if lazy_text(record) is None:
        return State.REMOTE
    return State.KEPT if kept else State.LAZY


def records(env: Any, digests: Iterable[str]) -> dict[str, bytes]:
    """Digest -> its Hangar hash record in the store ``env`` (b'' when none), in one read."""
    from hangar.records import hash_data_db_key_from_raw_key
    from hangar.txnctx import TxnRegister

    out: dict[str, bytes] = {}
    txn = TxnRegister().begin_reader_txn(env.hashenv)
    try:
        for digest in digests:
            val = txn.get(hash_data_db_key_from_raw_key(digest), default=False)
            out[digest] = bytes(val) if val else b""
    finally:
        TxnRegister().abort_reader_txn(env.hashenv)
    return out


def kept_digests(hangar_dir: Path) -> set[str]:
    """Digests whose bytes the lazy cache keeps."""
    try:
        return {name for name in os.listdir(hangar_dir / LAZY_DIR / "objects") if not name.startswith(".")}
    except FileNotFoundError:
        return set()


def states(env: Any, digests: Iterable[str], hangar_dir: Path | None = None) -> dict[str, State]:
    """Digest -> :class:`State` of each of ``digests`` in the store ``env``
    (``hangar_dir`` given: LAZY samples the cache keeps are KEPT)."""
    recs = records(env, digests)
    kept = kept_digests(hangar_dir) if hangar_dir is not None else set()
    return {d: state_of(rec, d in kept) for d, rec in recs.items()}


# ------------------------------------------------------------- transitions
def to_download(state: State) -> bool:
    """A fetch asked for a sample's data downloads it: everything not LOCAL.
    (KEPT too: the cache may drop it, a pulled sample stays.)"""
    return state is not State.LOCAL


def to_record(state: State, lazy: bool) -> bool:
    """A records-only fetch (``lazy``: one that records where each sample is)
    writes a sample's record: where there is none, and in a lazy fetch over a
    REMOTE one too (which it makes readable on demand). Never over LOCAL,
    LAZY or KEPT: a record is never made worse."""
    return state is State.ABSENT or (lazy and state is State.REMOTE)


def replaced_on_write(record: bytes) -> bool:
    """A write of this content here stores its bytes though the record exists:
    REMOTE, LAZY and KEPT records (the bytes are not, or not surely, here)."""
    return record[:3] == _REMOTE_PREFIX


# ---------------------------------------------------- commits all LOCAL
def complete_commits(root: Path) -> set[str]:
    """Stock commits known to have every sample LOCAL."""
    try:
        return set((root / HANGAR_DIR / COMPLETE_FILE).read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return set()


def mark_complete(root: Path, digests: Iterable[str]) -> None:
    """Note that ``digests`` have every sample LOCAL, so a later pull of them
    returns at once instead of looking at each sample's record."""
    lines = "".join(f"{d}\n" for d in digests if _COMMIT_RE.match(d))
    if lines:
        with contextlib.suppress(OSError):  # only a shortcut: without it the records are checked
            with open(root / HANGAR_DIR / COMPLETE_FILE, "a", encoding="ascii") as handle:
                handle.write(lines)


def forget_complete(root: Path) -> None:
    """Drop every "all LOCAL" note; called before anything writes a record
    that is not LOCAL (a REMOTE or LAZY one)."""
    with contextlib.suppress(FileNotFoundError):
        (root / HANGAR_DIR / COMPLETE_FILE).unlink()


# -------------------------------------------------------------- clone mode
def _lazy_config(root: Path) -> str:
    try:
        return git("config", "--type=bool", "--get", "stock.lazy", cwd=root, keep_env=False).strip()
    except StockroomError:  # unset (or not a boolean): not lazy
        return ""


def lazy_clone(root: Path) -> bool:
    """Whether fetches that no one asked data of (hooks, the merge driver,
    ``stock fetch``) bring records only, each sample fetched when read:
    ``git config stock.lazy`` when set, else whether the clone was set up by
    ``stock pull --lazy`` (and not fully pulled since)."""
    configured = _lazy_config(root)
    if configured:
        return configured == "true"
    return (root / HANGAR_DIR / LAZY_DIR / LAZY_CLONE_FILE).exists()


def set_lazy_clone(root: Path, lazy: bool) -> None:
    """Record the mode a pull of the whole ``head.stock`` chose (see :func:`lazy_clone`)."""
    path = root / HANGAR_DIR / LAZY_DIR / LAZY_CLONE_FILE
    if lazy:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# ------------------------------------------------------ Hangar's read/write
class _WriteHashes:
    """A writer's hash-record transaction in which REMOTE, LAZY and KEPT records
    read as absent: Hangar's writer then stores the written bytes and replaces
    the record (-> LOCAL). Everything else is the transaction's own."""

    __slots__ = ("_txn", "put")

    def __init__(self, txn: Any) -> None:
        self._txn = txn
        self.put = txn.put  # once per sample written: no __getattr__ on the way

    def get(self, key: bytes, default: Any = None) -> Any:
        val = self._txn.get(key, default)
        if val is not default and val is not None and replaced_on_write(val):
            return default
        return val

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)


def _read_remote(self: Any, hashVal: Any) -> Any:  # noqa: N803 - Hangar's signature
    # A LAZY record is read from the remote; a REMOTE one says what to pull.
    if hashVal.schema_hash == PRUNED_TEXT:
        raise StockroomError(
            "this state's data was pruned by a training run's retention (keep_last/keep_best): its "
            "records and tags remain, its tensors do not; read a kept checkpoint (`stock runs`)"
        )
    from stockroom.store import lazy as lazy_reads

    return lazy_reads.read_placeholder(Path(self.repo_path), hashVal.schema_hash)


def install() -> None:
    """Make Hangar's reads and writes follow these states (once per process):
    a read of a REMOTE or LAZY sample goes to :mod:`stockroom.store.lazy`, a
    write over such a record stores the bytes (:class:`_WriteHashes`)."""
    import warnings

    from hangar.backends.remote_50 import REMOTE_50_Handler
    from hangar.columns.common import ColumnTxn

    # Hangar's own messages name commands Hangar has and stockroom does not;
    # stockroom's error says what to run when such a sample is read.
    warnings.filterwarnings("ignore", message=r"Column: .* contains `reference-only` samples")
    REMOTE_50_Handler.read_data = _read_remote
    if getattr(ColumnTxn.open_write, "_stockroom", False):
        return
    open_write = ColumnTxn.open_write

    def open_write_storing_remote_samples(self: Any) -> Any:
        out = open_write(self)
        self.hashTxn = _WriteHashes(self.hashTxn)
        return out

    open_write_storing_remote_samples._stockroom = True  # type: ignore[attr-defined]
    open_write_storing_remote_samples.__wrapped__ = open_write  # type: ignore[attr-defined]
    ColumnTxn.open_write = open_write_storing_remote_samples
