"""``stock fsck [REMOTE]``: what the local branches' stock needs, checked."""

from __future__ import annotations

import click

from stockroom.remote import sync


def fsck(remote_name: str | None) -> int:
    """List what is missing or corrupt; exit 1 when anything is."""
    root = sync.stock_root()
    remote, report = sync.fsck(root, remote_name)
    where = sync.describe(remote) if remote is not None else "the local store (.hangar)"
    if report.cleaned:
        click.echo(f"removed {report.cleaned} temporary file(s) an interrupted push left on {where}")
    for finding in report.findings:
        click.echo(f"{finding}")
    extra = (
        f", {report.not_fetched} sample(s) not fetched here (partial or lazy pull)"
        if report.not_fetched
        else ""
    )
    if report.findings:
        fix = (
            f"`stock push --repair {remote.name}` uploads them again from a clone that has them"
            if remote is not None
            else "`stock pull` fetches them again from a stock remote"
        )
        click.echo(
            f"stock: error: {len(report.findings)} object(s) missing or corrupt on {where} "
            f"({report.commits} stock commit(s) checked{extra}); {fix}",
            err=True,
        )
        return 1
    click.echo(
        f"{where}: {report.commits} stock commit(s), {report.objects} object(s) checked, all sound{extra}"
    )
    return 0
