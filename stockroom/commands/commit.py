from __future__ import annotations

import click

from stockroom.core import StockRoom
from stockroom.headfile import HEAD_FILE


def commit(message: str) -> int:
    with StockRoom() as stock:
        digest = stock.commit(message)
    click.echo(f"stock commit {digest}; {HEAD_FILE} updated (git commit records it)")
    return 0
