"""What users call Hangar's columns, for messages and listings."""

from __future__ import annotations

from collections.abc import Callable

# Labels for Hangar column names in messages: storages register a whole
# column name, or a prefix ending in ".", and a function that turns the rest
# into what users call the column (``data.img`` -> "data column 'img'").
_COLUMN_LABELS: dict[str, Callable[[str], str]] = {}


def register_column_label(name: str, label: Callable[[str], str]) -> None:
    """Show the Hangar column ``name`` (or, for ``"prefix."``, the columns
    ``prefix.REST``) to users as ``label(REST)`` (``label("")`` for a name)."""
    _COLUMN_LABELS[name] = label


def column_label(hname: str) -> str:
    """What users call the Hangar column ``hname`` (its own name when unknown)."""
    if hname in _COLUMN_LABELS:
        return _COLUMN_LABELS[hname]("")
    prefix, dot, rest = hname.partition(".")
    label = _COLUMN_LABELS.get(prefix + dot) if dot else None
    if label is not None:
        try:
            return label(rest)
        except ValueError:  # a name stockroom did not encode
            pass
    return f"Hangar column {hname!r}"
