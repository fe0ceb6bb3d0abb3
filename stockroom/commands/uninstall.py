from __future__ import annotations

import click

from stockroom.git import work_tree_root
from stockroom.install import uninstall_hooks


def uninstall() -> int:
    for change in uninstall_hooks(work_tree_root()):
        click.echo(change.describe())
    return 0
