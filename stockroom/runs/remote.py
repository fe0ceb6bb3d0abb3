"""A run's latest checkpoint recorded on the default stock remote (resume anywhere).

After each checkpoint is pushed, a small JSON *pointer* is written to
``runs/<hex of the run name>/<seq>`` with the remote's create-only put
(``put_new``: a hard link on a directory remote, ``If-None-Match: *`` on
S3), ``seq`` counting up from 1. The latest checkpoint is the pointer with
the highest ``seq``, found with O(log n) existence probes. Two writers can
never overwrite each other's pointer: the second one to take a ``seq``
gets ``False`` back and its save fails with a clear error (one writer per
run; a second machine should use another run name).
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from stockroom.errors import StockroomError
from stockroom.runs.records import Checkpoint

if TYPE_CHECKING:
    from stockroom.remote.objects import ObjectStore


# `run` below is a stockroom.runs.run.Run, not imported: run.py imports this module.


def _prefix(name: str) -> str:
    return "runs/" + name.encode("utf-8").hex()


def _object(name: str, seq: int) -> str:
    return f"{_prefix(name)}/{seq:010d}"


def _last_seq(store: ObjectStore, name: str, hint: int = 0) -> int:
    """The highest ``seq`` written for run ``name`` (0: none), by galloping then bisecting."""
    lo = hint if hint > 0 and store.exists(_object(name, hint)) else 0
    step = 1
    hi = lo + step
    while store.exists(_object(name, hi)):
        lo = hi
        step *= 2
        hi = lo + step
    while hi - lo > 1:  # exists(lo) (or lo == 0), not exists(hi)
        mid = (lo + hi) // 2
        if store.exists(_object(name, mid)):
            lo = mid
        else:
            hi = mid
    return lo


def publish(run: Any, digest: str, step: int, finished: bool = False) -> None:
    """Push checkpoint ``digest`` to the default remote and record it as the run's latest."""
    from stockroom.remote import sync

    root = run.stock.path
    remote, store = sync.open_remote(root, None)
    if not finished:
        sync.push(root, None, [digest])
    hint = int(run.records.info.get("remote_seq", 0))
    seq = _last_seq(store, run.name, hint) + 1
    doc = {
        "run": run.name,
        "commit": digest,
        "step": int(step),
        "finished": finished,
        "time": time.time(),
        "writer": f"{socket.gethostname()}:{os.getpid()}",
    }
    if not store.put_new(_object(run.name, seq), json.dumps(doc).encode("utf-8")):
        raise StockroomError(
            f"run {run.name!r} was saved to stock remote {remote.name} by another process at the same "
            f"time; one run has one writer: give one of them another name (stock.run(name=...))"
        )
    run.records.info["remote_seq"] = seq
    run.records.save()


def latest(run: Any) -> dict[str, Any] | None:
    """The run's latest pointer on the default remote (None: no remote, or none recorded)."""
    from stockroom.remote import config, sync

    root = run.stock.path
    if config.default_name(root) is None:
        return None
    remote, store = sync.open_remote(root, None)
    seq = _last_seq(store, run.name)
    if seq == 0:
        return None
    try:
        doc = json.loads(store.get(_object(run.name, seq)))
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("commit"), str)
            or not isinstance(doc.get("step"), int)
        ):
            raise ValueError("fields")
    except ValueError:
        raise StockroomError(
            f"stock remote {remote.name}: the latest-checkpoint record of run {run.name!r} "
            f"({_object(run.name, seq)}) is unreadable; remove it there to fall back to the previous one"
        ) from None
    from stockroom.store.transfer import commit_object  # digest syntax checked as for any commit

    commit_object(doc["commit"])
    return doc


def find_latest(run: Any) -> Checkpoint | None:
    """The remote's latest checkpoint of ``run``, its commit records fetched (no data: lazy)."""
    from stockroom.remote import sync

    doc = latest(run)
    if doc is None:
        return None
    found = Checkpoint(
        int(doc["step"]), doc["commit"], {}, float(doc.get("time", 0.0)), finished=bool(doc["finished"])
    )
    if found.finished:
        return found
    root = run.stock.path
    if not run.stock._store.has_commit(found.commit):
        sync.fetch(root, None, [found.commit], lazy=True)
    run.records.items.append(found)
    run.records.save()
    return found
