from __future__ import annotations

import click

from stockroom.core import StockRoom


def reset() -> int:
    with StockRoom() as stock:
        dropped = stock.reset()
    click.echo("uncommitted stock writes dropped" if dropped else "nothing staged; nothing to drop")
    return 0
