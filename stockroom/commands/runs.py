"""``stock runs``: the training runs of this clone (SPEC 9)."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from stockroom.remote import sync


def _best(row: dict[str, Any], checkpoints: list[Any]) -> float | None:
    monitor = row.get("monitor")
    if not monitor:
        return None
    values = [c.metrics[monitor] for c in checkpoints if not c.pruned and monitor in c.metrics]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return None
    return min(values) if row.get("mode", "min") == "min" else max(values)


def runs(as_json: bool) -> int:
    root = sync.stock_root()
    from stockroom.runs.records import Records, run_dir
    from stockroom.runs.run import list_runs

    rows = list_runs(root)
    for row in rows:
        checkpoints = Records(run_dir(root, row["name"])).items
        row["best"] = _best(row, checkpoints)
        monitor = row.get("monitor")
        row["last_value"] = row["last"].get(monitor) if monitor else None
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return 0
    if not rows:
        click.echo("no training runs in this clone yet (stock.run() starts one)")
        return 0
    head = f"{'run':20} {'branch':14} {'step':>7} {'kept':>5} {'pruned':>6} {'monitor':12} {'last':>10} {'best':>10}  state"
    click.echo(head)
    for r in rows:
        fmt = lambda v: "" if v is None else f"{v:.4g}"  # noqa: E731
        click.echo(
            f"{r['name'][:20]:20} {r['branch'][:14]:14} {'' if r['last_step'] is None else r['last_step']:>7} "
            f"{r['kept']:>5} {r['pruned']:>6} {(r.get('monitor') or '')[:12]:12} {fmt(r['last_value']):>10} "
            f"{fmt(r['best']):>10}  {'finished' if r['finished'] else 'open'}"
        )
    return 0
