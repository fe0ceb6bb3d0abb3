"""The staged tag log: tag writes outside ``optimize()``, kept beside Hangar
until the next use of Hangar's staging area.

Staging one tag in Hangar costs about 3 ms whatever its size: Hangar opens
the tag column's three LMDB environments, writes the value, its hash record
and its staged record, and commits each with a sync. A notebook or training
loop logs metrics one at a time, so ``stock.tag["acc"] = ...`` outside
``optimize()`` instead appends one line to ``.hangar/stockroom-staged-tags``
(no sync, under the stock writer lock). Every stockroom operation that
opens Hangar's staging area (a write to data or models, ``optimize()``,
``stock status``, a commit, a reset, ``stock diff``, an expert's writer)
first *folds* the log: it writes the logged tags into Hangar's tag column,
in order, then empties the log. So Hangar's staging area is exact whenever
anyone looks at it, and the log only ever holds tag writes newer than it.

Durability is the same as Hangar's staging area gives: a staged write
becomes durable at ``stock commit``, which folds the log before it commits.
After a crash, what reached the log is folded by the next writer (the page
cache kept it, or the file system lost its tail). A torn last line is
ignored: each record carries a CRC-32 and starts on a new line, so a record
written after a torn one is still read.

Records: ``"\\n" + crc + " " + json([base, [[key, value-or-null], ...]])``.
``base`` is the stock commit that ``head.stock`` named (and the staging
area was based on) when the record was written: reads apply a record only
while ``head.stock`` still names it. Keys and values are stockroom's
encoded tag keys and values (see :mod:`stockroom.storages.tag`); a null
value is a deletion.

Light on purpose (no numpy or hangar): ``stock.tag`` reads it without
opening Hangar.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

from stockroom.quickread import racy

LOG_FILE = "stockroom-staged-tags"
# Past this size an append folds the log into Hangar at once, so reading it
# (which parses it whole when it changed) stays cheap.
FOLD_AT = 8 * 1024

Ops = list[tuple[str, str | None]]
_Key = tuple[int, int, int, int]
# Per log path: (stat key, records as (base, ops)).
_CACHE: dict[str, tuple[_Key, list[tuple[str, Ops]]]] = {}


def log_path(hangar_dir: Path | str) -> str:
    return os.path.join(hangar_dir, LOG_FILE)


def _stat_key(st: os.stat_result) -> _Key:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _encode(base: str, ops: Ops) -> bytes:
    payload = json.dumps([base, [list(op) for op in ops]], separators=(",", ":")).encode()
    return b"\n%08x " % zlib.crc32(payload) + payload


def _decode(data: bytes) -> list[tuple[str, Ops]]:
    records: list[tuple[str, Ops]] = []
    for line in data.split(b"\n"):
        if len(line) < 10 or line[8:9] != b" ":
            continue  # empty, or a torn record
        payload = line[9:]
        try:
            if int(line[:8], 16) != zlib.crc32(payload):
                continue
            base, ops = json.loads(payload)
            records.append((str(base), [(str(k), None if v is None else str(v)) for k, v in ops]))
        except (ValueError, TypeError):
            continue
    return records


def records(hangar_dir: Path | str, fresh: bool = False) -> list[tuple[str, Ops]]:
    """The log's intact records, oldest first (empty when there is no log).

    Parsed again only when the file changed (its inode, size or times), or
    may have changed without its stat showing it: emptied and refilled to
    the same size within one timestamp tick (:func:`quickread.racy`), or
    when ``fresh`` (a fold, which must see every record)."""
    path = log_path(hangar_dir)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is None or st.st_size == 0:  # the usual case at a fold: nothing to open
        _CACHE.pop(path, None)
        return []
    key = _stat_key(st)
    cached = _CACHE.get(path)
    if not fresh and cached is not None and cached[0] == key and not racy(st):
        return cached[1]
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        found = _decode(f.read())
    _CACHE[path] = (_stat_key(st), found)
    return found


def overlay(hangar_dir: Path | str, base: str) -> dict[str, str | None]:
    """Key -> value (None: deleted) of the logged writes on ``base``, the
    last write of each key winning, in the order keys were first written."""
    out: dict[str, str | None] = {}
    for rec_base, ops in records(hangar_dir):
        if rec_base == base:
            for key, value in ops:
                out[key] = value
    return out


def append(hangar_dir: Path | str, base: str, ops: Ops) -> int:
    """Append one record (writer lock held); returns the log's size after it.

    Not synced: staged writes become durable at ``stock commit``, as in
    Hangar's staging area."""
    path = log_path(hangar_dir)
    data = _encode(base, ops)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        before_st = os.fstat(fd)
        before = _stat_key(before_st)
        cached = _CACHE.get(path)
        written = os.write(fd, data)
        if written != len(data):  # a full disk: take the torn record back, and say so
            os.ftruncate(fd, before_st.st_size)
            raise OSError(
                f"could not append a staged tag to {path} (disk full?): the write was not staged; "
                f"free some space and write it again"
            )
        after = os.fstat(fd)
    finally:
        os.close(fd)
    # A new log, or one nobody changed since it was parsed here: extend the
    # parse instead of reading the file again at the next read.
    same = cached is not None and cached[0] == before and not racy(before_st)
    prior = [] if before[1] == 0 else cached[1] if same and cached is not None else None
    if prior is not None:
        _CACHE[path] = (_stat_key(after), [*prior, (base, list(ops))])
    else:
        _CACHE.pop(path, None)
    return after.st_size


def clear(hangar_dir: Path | str) -> None:
    """Empty the log (writer lock held), once it is folded or dropped.

    Emptied, not removed: creating the file again for the next write after a
    commit would cost an inode allocation (1.1 ms under strace here, four
    times an append)."""
    path = log_path(hangar_dir)
    _CACHE.pop(path, None)
    try:
        if os.stat(path).st_size:
            os.truncate(path, 0)
    except FileNotFoundError:
        pass


def exists(hangar_dir: Path | str) -> bool:
    """Whether the log holds anything (intact or not)."""
    try:
        return os.stat(log_path(hangar_dir)).st_size > 0
    except FileNotFoundError:
        return False
