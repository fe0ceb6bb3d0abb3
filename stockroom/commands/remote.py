from __future__ import annotations

import click

from stockroom.remote import config
from stockroom.remote.sync import stock_root
from stockroom.remote.url import redact


def remote_add(name: str, url: str, local: bool, endpoint: str) -> int:
    root = stock_root()
    remote = config.add_remote(root, name, url, local=local, endpoint=endpoint)
    where = ".git/config (this clone only)" if local else f"{config.REMOTES_FILE} (commit it to share)"
    click.echo(f"stock remote {remote.name} -> {redact(remote.url)} recorded in {where}")
    if config.default_name(root) == remote.name:
        click.echo(f"{remote.name} is the default stock remote")
    return 0


def remote_list(verbose: bool) -> int:
    root = stock_root()
    default = config.default_name(root)
    for remote in config.list_remotes(root):
        mark = "*" if remote.name == default else " "
        line = f"{mark} {remote.name}\t{redact(remote.url)}"
        if verbose:
            line += "\t(local)" if remote.local else f"\t({config.REMOTES_FILE})"
            if remote.endpoint:
                line += f"\tendpoint={redact(remote.endpoint)}"
        click.echo(line)
    return 0


def remote_remove(name: str) -> int:
    root = stock_root()
    remote = config.remove_remote(root, name)
    click.echo(f"stock remote {remote.name} removed (its objects are left where they are)")
    return 0


def remote_set_url(name: str, url: str) -> int:
    remote = config.set_url(stock_root(), name, url)
    click.echo(f"stock remote {remote.name} -> {redact(remote.url)}")
    return 0


def remote_rename(old: str, new: str) -> int:
    remote = config.rename_remote(stock_root(), old, new)
    click.echo(f"stock remote {old} is now called {remote.name}")
    return 0


def remote_default(name: str) -> int:
    remote = config.set_default(stock_root(), name)
    click.echo(f"{remote.name} is the default stock remote of this clone (recorded in .git/config)")
    return 0
