"""Dropping the data of pruned training checkpoints from ``.hangar`` (SPEC 9, retention).

A run's retention picks checkpoints to prune (:mod:`stockroom.runs.retention`);
this module drops their data. The samples of the run's model column that
only pruned commits name (no other commit here, nor the staging area) get
the PRUNED record ("50:pruned", :mod:`stockroom.store.samples`): a read
says they were pruned, a push never sends them (it lists them in the
commit's manifest as pruned instead), and a write of the same content later
stores it again. Commit records stay, so history, tags and ``stock log``
are untouched.

The bytes themselves live in Hangar's LMDB data files (backend 31), one
file per checkpoint write. A file none of whose samples any record still
names is deleted whole. A file that also holds a sample still in use (a
frozen layer first written with this checkpoint) stays as it is: deleting
entries inside an LMDB file that Hangar may hold open in this process is
not safe, and would not shrink the file anyway.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hangar.constants import DIR_DATA, DIR_DATA_STORE
from hangar.records import commiting, hash_data_db_key_from_raw_key
from hangar.txnctx import TxnRegister

from stockroom.headfile import atomic_write
from stockroom.store import Store, samples
from stockroom.store.view import _parse_records, _staged_records, commit_records

_DATA_PREFIX = hash_data_db_key_from_raw_key("")
# Under .hangar: the LMDB data files a drop under way will delete (see _mark_and_delete).
PENDING_FILE = "stockroom-prune-pending"
_LMDB = b"31:"


@dataclass
class Dropped:
    """What :func:`drop` did: samples marked pruned, data files deleted, bytes freed."""

    samples: int = 0
    files: int = 0
    nbytes: int = 0


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def drop(store: Store, column: str, pruned: set[str], all_pruned: Iterable[str] = ()) -> Dropped:
    """Drop the samples of Hangar column ``column`` that only pruned commits name.

    ``pruned``: the commits whose samples are candidates (this round's);
    ``all_pruned``: every pruned commit (of every run), whose ``column`` does
    not keep a sample alive. Every other column of every commit here, and
    the staging area, do (a model saved beside a checkpoint stays whole).
    """
    env = store.repo._env
    dead = set(pruned) | set(all_pruned)
    candidates: set[str] = set()
    for commit in pruned:
        col = commit_records(store, commit).get(column)
        if col is not None:
            candidates.update(col.samples.values())
    if not candidates:
        return Dropped()
    live: set[str] = set()
    for commit in commiting.list_all_commits(env.refenv):
        for name, col in _parse_records(commiting.get_commit_ref(env.refenv, commit)).items():
            if commit not in dead or name != column:  # a pruned commit's other columns stay whole
                live.update(col.samples.values())
    for col in _staged_records(store).values():
        live.update(col.samples.values())
    return _mark_and_delete(Path(env.repo_path), env, sorted(candidates - live))


def _pending(repo_path: Path) -> Path:
    return repo_path / PENDING_FILE


def _read_pending(repo_path: Path) -> set[str]:
    try:
        return set(_pending(repo_path).read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return set()


def _mark_and_delete(repo_path: Path, env: object, victims: list[str]) -> Dropped:
    hashenv = env.hashenv  # type: ignore[attr-defined]
    done = Dropped()
    marks: list[tuple[bytes, str]] = []
    uids = _read_pending(repo_path)  # files a drop cut short left to delete
    txn = TxnRegister().begin_reader_txn(hashenv)
    try:
        for digest in victims:
            key = hash_data_db_key_from_raw_key(digest)
            record = txn.get(key, default=b"")
            record = bytes(record) if record else b""
            if not record or record == samples.PRUNED_RECORD:
                continue
            if record.startswith(_LMDB):
                uids.add(record.split(b":")[1].decode())
            marks.append((key, digest))
    finally:
        TxnRegister().abort_reader_txn(hashenv)
    if not marks and not uids:
        return done
    # The files to look at are noted before their records change: once a
    # sample is PRUNED its record no longer names its file, and a crash
    # between the two steps would leave the file behind for good.
    atomic_write(_pending(repo_path), "".join(f"{u}\n" for u in sorted(uids)).encode("ascii"))
    if marks:
        samples.forget_complete(repo_path.parent)  # no commit is "all LOCAL" on trust any more
        txn = TxnRegister().begin_writer_txn(hashenv)
        try:
            for key, _ in marks:
                txn.put(key, samples.PRUNED_RECORD)
        finally:
            TxnRegister().commit_writer_txn(hashenv)
        done.samples = len(marks)
    # Files some record still names stay (see the module's doc).
    txn = TxnRegister().begin_reader_txn(hashenv)
    try:
        with txn.cursor() as cursor:
            if cursor.set_range(_DATA_PREFIX):
                for key, value in cursor:
                    if not key.startswith(_DATA_PREFIX):
                        break
                    if value.startswith(_LMDB):
                        uids.discard(value.split(b":")[1].decode())
    finally:
        TxnRegister().abort_reader_txn(hashenv)
    data_dir = repo_path / DIR_DATA / "31"
    store_dir = repo_path / DIR_DATA_STORE / "31"
    for uid in sorted(uids):
        marker = store_dir / f"{uid}.lmdbdir"
        folder = data_dir / uid
        if not marker.is_file() or not folder.is_dir():
            continue  # not a committed file of this store's (a write in flight), or gone already
        _crash_point("prune-delete")
        # The marker first: once it is gone no reader opens the file again.
        done.nbytes += _size(folder)
        marker.unlink()
        shutil.rmtree(folder, ignore_errors=True)
        done.files += 1
    _pending(repo_path).unlink(missing_ok=True)
    return done


def _crash_point(name: str) -> None:
    # Test-only fault injection (tests/test_runs_crash.py): die here, like a SIGKILL.
    if os.environ.get("STOCK_RUN_CRASH") == name:
        os.kill(os.getpid(), 9)
