from __future__ import annotations

import click

from stockroom.git import work_tree_root
from stockroom.install import uninstall_hooks, uninstall_merge_driver


def uninstall() -> int:
    root = work_tree_root()
    for change in uninstall_hooks(root):
        click.echo(change.describe())
    for line in uninstall_merge_driver(root):
        click.echo(line)
    return 0
