from __future__ import annotations

import click

from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR
from stockroom.remote import sync


def push(remote_name: str | None, all_branches: bool, repair: bool = False) -> int:
    root = sync.stock_root()
    if not (root / HANGAR_DIR).exists():
        raise StockroomError(f"{HANGAR_DIR} is missing: nothing to push; run `stock pull` first")
    if remote_name is not None:
        sync.get_remote(root, remote_name)  # a misspelt remote is an error even with nothing to push
    digests = sync.branch_digests(root) if all_branches else []
    head = sync.head_digest(root)
    if head and head not in digests:
        digests.insert(0, head)
    if not digests:
        click.echo("nothing to push: head.stock names no stock commit yet")
        return 0
    if repair:
        remote, report = sync.repair(root, remote_name, digests)
        if report.findings:
            click.echo(f"repaired on {sync.describe(remote)}:")
            for finding in report.findings:
                click.echo(f"  {finding}")
        else:
            click.echo(
                f"nothing to repair on {sync.describe(remote)}: every object these commits need is sound"
            )
    remote, summary = sync.push(root, remote_name, digests)
    if not summary.commits:
        click.echo(f"stock remote {sync.describe(remote)} is up to date")
        return 0
    click.echo(
        f"pushed {summary.commits} stock commit(s): {summary.data_samples} data sample(s), "
        f"{summary.samples} distinct content(s), {summary.objects} object(s), {summary.nbytes / 1e6:.1f} MB to {sync.describe(remote)}"
    )
    return 0
