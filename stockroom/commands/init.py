from __future__ import annotations

import click

from stockroom.core import init_repo


def init(name: str | None, email: str | None, overwrite: bool, hooks: bool) -> int:
    root = init_repo(name=name, email=email, overwrite=overwrite, install_hooks=hooks)
    click.echo(f"stock repository ready in {root}")
    if hooks:
        click.echo("git hooks installed: commits record head.stock, checkouts follow it")
    return 0
