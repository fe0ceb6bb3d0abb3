"""Retention of a run's checkpoints: keep_last / keep_best by a monitored metric.

A checkpoint that is neither among the last ``keep_last`` nor the best
``keep_best`` (by ``monitor``, ``mode``) is pruned: its record, metrics and
tags stay; the data only pruned checkpoints name is dropped from ``.hangar``
(:mod:`stockroom.store.prune`) and never pushed; reading it says it was
pruned. A checkpoint whose stock commit a git commit recorded is never pruned.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from stockroom.runs.records import MODEL_PREFIX, Checkpoint

if TYPE_CHECKING:
    from stockroom.store.prune import Dropped

# `run` below is a stockroom.runs.run.Run, not imported: run.py imports this module.


def choose(run: Any, recorded: set[str]) -> list[Checkpoint]:
    """The checkpoints of ``run`` to prune now."""
    if run.keep_last is None and run.keep_best is None:
        return []
    items = run.records.items
    keep: set[int] = set()
    if run.keep_last:
        keep.update(range(max(0, len(items) - run.keep_last), len(items)))
    if run.keep_best and run.monitor:
        monitor = run.monitor
        scored = [
            i for i, c in enumerate(items) if monitor in c.metrics and not math.isnan(c.metrics[monitor])
        ]
        sign = 1.0 if run.mode == "min" else -1.0
        # ties: the earlier checkpoint ranks first (it reached the value first)
        scored.sort(key=lambda i: (sign * items[i].metrics[monitor], i))
        keep.update(scored[: run.keep_best])
    keep.add(len(items) - 1)  # the latest is what a resume needs
    return [c for i, c in enumerate(items) if i not in keep and not c.pruned and c.commit not in recorded]


def git_recorded(run: Any) -> set[str]:
    """Stock commits that some git commit's ``head.stock`` records (never pruned)."""
    from stockroom import revisions
    from stockroom.git import git
    from stockroom.headfile import HEAD_FILE

    root = run.stock.path
    try:
        shas = git("log", "--all", "--format=%H", "--", HEAD_FILE, cwd=root).split()
    except Exception:  # noqa: BLE001 - no history yet: nothing recorded
        return set()
    return {ref.digest for ref in revisions.stock_refs(root, shas) if ref.digest}


def apply(run: Any) -> list[Checkpoint]:
    """Prune what :func:`choose` picks: mark their records pruned (then :func:`drop_data`)."""
    if run.keep_last is None and run.keep_best is None:
        return []
    victims = choose(run, git_recorded(run))
    if not victims:
        return []
    # Marked first: reading a pruned checkpoint then says it was pruned,
    # and a crash before the drop below leaves only bytes to drop later.
    for c in victims:
        c.pruned = True
    run.records.save()
    return victims


def drop_data(run: Any) -> Dropped:
    """Drop the data of the run's pruned checkpoints that nothing else here names.

    Every pruned checkpoint of the run is looked at again (after a crash
    between marking and dropping, the next save finishes the job; samples
    already dropped cost nothing). Pruned checkpoints of the other runs in
    this clone do not keep a sample alive either.
    """
    from stockroom.runs.records import Records, runs_dir
    from stockroom.storages.model import column_name
    from stockroom.store import prune

    mine = {c.commit for c in run.records.items if c.pruned and c.commit not in run.records.dropped}
    if not mine:
        return prune.Dropped()
    everyone: set[str] = set()
    base = runs_dir(run.stock.path)
    for folder in base.iterdir() if base.is_dir() else ():
        if (folder / "checkpoints.json").is_file():
            everyone.update(c.commit for c in Records(folder).items if c.pruned)
    everyone.update(c.commit for c in run.records.items if c.pruned)
    done = prune.drop(run.stock._store, column_name(MODEL_PREFIX + run.name), mine, everyone)
    run.records.dropped.update(mine)
    run.records.save()
    return done
