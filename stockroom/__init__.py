"""stockroom: version models, data and tags alongside your git code.

``import stockroom`` is light (no numpy, hangar, torch or tensorflow):
``StockRoom`` and ``init_repo`` load the store on first use.
"""

from __future__ import annotations

from stockroom.errors import StockroomError

# Not `from typing import ...`: the git hooks import this package on every
# commit and checkout, and importing typing costs them about 10 ms.
TYPE_CHECKING = False

__version__ = "0.1.0"
__all__ = ["StockRoom", "StockroomError", "init_repo", "__version__"]

if TYPE_CHECKING:
    from typing import Any

    from stockroom.core import StockRoom, init_repo


def __getattr__(name: str) -> Any:
    if name in ("StockRoom", "init_repo"):
        from stockroom import core

        return getattr(core, name)
    raise AttributeError(f"module 'stockroom' has no attribute {name!r}")
