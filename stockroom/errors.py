"""Exceptions raised by stockroom."""

from __future__ import annotations


class StockroomError(RuntimeError):
    """The repository is in a state where the operation cannot go on.

    The message always says what to do about it.
    """
