from __future__ import annotations

import click

from stockroom.errors import StockroomError
from stockroom.remote import sync


def _columns(columns: tuple[str, ...], models: tuple[str, ...], tags: bool) -> set[str] | None:
    if not (columns or models or tags):
        return None  # everything
    from stockroom.storages import data, model, tag

    wanted = {data.column_name(c) for c in columns} | {model.column_name(m) for m in models}
    if tags:
        wanted.add(tag.COLUMN)
    return wanted


def pull(
    remote_name: str | None, columns: tuple[str, ...], models: tuple[str, ...], tags: bool, lazy: bool = False
) -> int:
    root = sync.stock_root()
    created = sync.ensure_store(root)
    if created:
        click.echo("set up the stock store (.hangar) and the git hooks in this clone")
    head = sync.head_digest(root)
    if not head:
        click.echo("nothing to pull: head.stock names no stock commit yet")
        return 0
    if lazy and (columns or models or tags):
        raise StockroomError("--lazy fetches no data at all; leave out --column/--model/--tags")
    if columns or models or tags:
        from stockroom import partial

        partial.check_names(root, head, remote_name, columns, models)  # a typo fetches nothing
    wanted = _columns(columns, models, tags)
    remote, summary = sync.fetch(root, remote_name, [head], wanted, lazy=lazy)
    if lazy or wanted is None:
        from stockroom.store import samples

        samples.set_lazy_clone(root, lazy)  # what later fetches of the hooks and `stock fetch` do
    if not summary.commits and not summary.samples:
        click.echo(f"stock commit {head} is here already")
        return 0
    if lazy:
        click.echo(
            f"pulled {summary.commits} stock commit(s) from {sync.describe(remote)}, no data: "
            f"{head} is readable, each sample fetched when first read"
        )
        return 0
    click.echo(
        f"pulled {summary.commits} stock commit(s): {summary.data_samples} data sample(s), "
        f"{summary.samples} distinct content(s), "
        f"{summary.nbytes / 1e6:.1f} MB from {sync.describe(remote)}; {head} is readable"
    )
    return 0
