from __future__ import annotations

import click

from stockroom.remote import sync


def fetch(remote_name: str | None, revs: tuple[str, ...]) -> int:
    root = sync.stock_root()
    sync.ensure_store(root)
    remote_name, revs = sync.resolve_fetch_args(root, remote_name, revs)  # `stock fetch origin/x`
    if revs:
        digests = list(dict.fromkeys(d for d in (sync.digest_at(root, r) for r in revs) if d))
    else:
        digests = sync.branch_digests(root)
    if not digests:
        click.echo("nothing to fetch: no stock commit named at those revisions")
        return 0
    from stockroom.store import samples

    # A lazy clone stays lazy: records only, each sample fetched when read.
    remote, summary = sync.fetch(root, remote_name, digests, lazy=samples.lazy_clone(root))
    click.echo(
        f"fetched {summary.commits} stock commit(s): {summary.data_samples} data sample(s), "
        f"{summary.samples} distinct content(s), "
        f"{summary.nbytes / 1e6:.1f} MB from {sync.describe(remote)}"
    )
    return 0
