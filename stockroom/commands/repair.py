"""``stock repair``: finish a stock commit that a crash cut short."""

from __future__ import annotations

import warnings

import click

from stockroom.core import StockRoom


def repair() -> int:
    """Point head.stock at an interrupted commit, or drop a stale journal."""
    with warnings.catch_warnings():
        # StockRoom() warns about the interrupted commit this command repairs.
        warnings.simplefilter("ignore", UserWarning)
        stock = StockRoom()
    with stock:
        click.echo(stock._store.repair())
    return 0
