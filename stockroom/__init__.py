"""stockroom: version models, data and tags alongside your git code.

``import stockroom`` is light (no numpy, hangar, torch or tensorflow):
``StockRoom`` and ``init_repo`` load the store on first use.
"""

from __future__ import annotations

import sys

from stockroom.errors import StockroomError

# Not `from typing import ...`: the git hooks import this package on every
# commit and checkout, and importing typing costs them about 10 ms.
TYPE_CHECKING = False

__version__ = "0.1.0"
__all__ = ["StockRoom", "StockroomError", "init_repo", "__version__"]

if TYPE_CHECKING:
    from typing import Any

    from stockroom.core import StockRoom, init_repo


class _PatchHangarOnImport:
    """Installs the hangar compatibility patches when hangar is first imported.

    So ``import stockroom; import hangar`` works for experts. Kept tiny on
    purpose: ``stockroom._compat`` itself costs tens of ms to import, which
    the git hooks (that import this package) must not pay.
    """

    @staticmethod
    def find_spec(fullname: str, path: object = None, target: object = None) -> None:
        if fullname == "hangar":
            from stockroom import _compat

            _compat.install()
        return None  # the regular finders (and now _compat's) do the loading


if not any(f is _PatchHangarOnImport for f in sys.meta_path):
    sys.meta_path.insert(0, _PatchHangarOnImport)


def __getattr__(name: str) -> Any:
    if name in ("StockRoom", "init_repo"):
        from stockroom import core

        return getattr(core, name)
    raise AttributeError(f"module 'stockroom' has no attribute {name!r}")
