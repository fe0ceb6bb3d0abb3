from __future__ import annotations

import click

from stockroom.core import ensure_store
from stockroom.headfile import DIGEST_RE
from stockroom.remote import sync


def fetch(remote_name: str | None, revs: tuple[str, ...]) -> int:
    root = sync.stock_root()
    ensure_store(root)
    remote_name, revs = sync.resolve_fetch_args(root, remote_name, revs)  # `stock fetch origin/x`
    if revs:
        # A stock commit digest (``a=...``, as error messages print it) is
        # taken as itself, so the advice "stock fetch a=..." works as written.
        found = (r if DIGEST_RE.fullmatch(r) else sync.digest_at(root, r) for r in revs)
        digests = list(dict.fromkeys(d for d in found if d))
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
