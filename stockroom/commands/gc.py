from __future__ import annotations

import click

from stockroom.remote import sync


def gc(yes: bool) -> int:
    root = sync.stock_root()
    from stockroom.store import lazy

    head = sync.head_digest(root)
    plan = lazy.gc_plan(root, head)
    size = sum(plan.drop.values())
    if not plan.drop:
        click.echo("nothing to drop: every sample kept by lazy reads is one head.stock's commit reads")
        return 0
    why = "that head.stock's commit does not need and the remote holds"
    if plan.over_limit:
        assert plan.limit is not None
        why = (
            f"that the remote holds: {len(plan.drop) - plan.over_limit} head.stock's commit does not need, "
            f"{plan.over_limit} it reads (least recently read, past stock.cacheLimit "
            f"{plan.limit / 1e6:.1f} MB; fetched again when read)"
        )
    if not yes:
        click.echo(
            f"would drop {len(plan.drop)} sample(s), {size / 1e6:.1f} MB read on demand {why} "
            f"(dry run; `stock gc --yes` drops them)"
        )
        return 0
    freed = lazy.gc_drop(root, plan.drop)
    click.echo(f"dropped {len(plan.drop)} sample(s), {freed / 1e6:.1f} MB; the remote still holds them")
    return 0
