from __future__ import annotations

import click

from stockroom.git import work_tree_root
from stockroom.install import hooks_dir, install_hooks, install_merge_driver


def install() -> int:
    root = work_tree_root()
    for change in install_hooks(root):
        click.echo(change.describe())
    for line in install_merge_driver(root):
        click.echo(line)
    click.echo(f"git runs stockroom's hooks from {hooks_dir(root)}; `stock uninstall` removes them")
    return 0
