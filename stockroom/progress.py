"""Progress bars for long operations: shown on a terminal, silent otherwise.

Bulk data imports (``stock.data[col].update(...)`` with many samples) use
:func:`track`; model save/load and other operations that advance by hand
use :func:`bar`. A bar goes to stderr and appears only when stderr is a
terminal and the operation has already run for :data:`DELAY_S` seconds, so
quick writes, scripts with redirected output, CI logs and the git hooks stay
quiet. ``STOCKROOM_PROGRESS=0`` turns bars off everywhere;
``STOCKROOM_PROGRESS=1`` shows them even when stderr is not a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from types import TracebackType
from typing import IO, Any, TypeVar

T = TypeVar("T")

ENV = "STOCKROOM_PROGRESS"
# Seconds an operation runs before its bar appears: short ones never show one.
DELAY_S = 1.0


def enabled(file: IO[str] | None = None) -> bool:
    """Whether a bar written to ``file`` (default: stderr) would be shown."""
    setting = os.environ.get(ENV, "").strip()
    if setting == "0":
        return False
    if setting == "1":
        return True
    stream = sys.stderr if file is None else file
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def _tqdm(
    total: int | None, desc: str, unit: str, file: IO[str] | None, delay: float | None, **extra: Any
) -> Any:
    from tqdm import tqdm  # only when a bar is shown: importing it costs ~50 ms

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr if file is None else file,
        delay=DELAY_S if delay is None else delay,
        dynamic_ncols=True,
        **extra,
    )


def track(
    iterable: Iterable[T],
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    *,
    file: IO[str] | None = None,
    delay: float | None = None,
) -> Iterable[T]:
    """``iterable``, with a progress bar while it is consumed (on a terminal).

    When no bar is shown the iterable itself comes back: no cost per item.
    """
    if not enabled(file):
        return iterable
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    bar_ = _tqdm(total, desc, unit, file, delay)
    return _iterate(iterable, bar_)


def _iterate(iterable: Iterable[T], bar_: Any) -> Iterable[T]:
    try:
        for item in iterable:
            yield item
            bar_.update(1)
    finally:
        bar_.close()


class Progress:
    """A bar advanced by hand: ``with bar(total, "saving model", unit="B") as p: p.update(n)``.

    Does nothing (and costs nothing) when bars are not shown.
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        unit: str = "it",
        *,
        file: IO[str] | None = None,
        delay: float | None = None,
        unit_scale: bool = False,
    ) -> None:
        self._bar = _tqdm(total, desc, unit, file, delay, unit_scale=unit_scale) if enabled(file) else None

    @property
    def shown(self) -> bool:
        """True when this progress goes to a bar (a terminal)."""
        return self._bar is not None

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` units."""
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        """Finish the bar (safe to call twice)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# The hook for model save/load: ``bar(nbytes, "saving", unit="B", unit_scale=True)``.
bar = Progress
