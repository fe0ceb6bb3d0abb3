"""What users call Hangar's columns, for messages and listings.

The storages' column layouts are known here, not registered by the storage
modules: the git hooks and ``stock status`` list staged changes without
importing the storages (and numpy with them), and must still show the
names users gave, never Hangar's encoded column names or model units.
"""

from __future__ import annotations

from collections.abc import Callable

from stockroom.keys import decode_text

# The Hangar column layout of each storage (see stockroom.storages).
TAG_COLUMN = "tag"
DATA_PREFIX = "data."
MODEL_PREFIX = "model."

# Labels for Hangar column names in messages: a whole column name, or a
# prefix ending in ".", and a function that turns the rest into what users
# call the column (``data.img`` -> "data column 'img'").
_COLUMN_LABELS: dict[str, Callable[[str], str]] = {
    TAG_COLUMN: lambda _: "tags",
    DATA_PREFIX: lambda rest: f"data column {decode_text(rest)!r}",
    MODEL_PREFIX: lambda rest: f"model {decode_text(rest)!r}",
}


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


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def describe_change(hname: str, kinds: dict[str, int]) -> str:
    """One line for the staged changes of the Hangar column ``hname``, in the
    user's names and units.

    ``kinds`` counts Hangar's changes: ``added``/``mutated``/``deleted``
    samples, and ``new column``/``column deleted``/``column changed``.
    A model is one thing to its user (its samples are storage units): it is
    new, changed or deleted. Tags are counted as tags, samples as samples.
    """
    label = column_label(hname)
    new, gone = "new column" in kinds, "column deleted" in kinds
    if hname.startswith(MODEL_PREFIX):
        state = "new" if new and not gone else "deleted" if gone and not new else "changed"
        return f"{label}: {state}"
    counts = [
        (kinds.get(k, 0), shown)
        for k, shown in (("added", "added"), ("mutated", "changed"), ("deleted", "deleted"))
    ]
    if hname == TAG_COLUMN:
        parts = [f"{n} {shown}" for n, shown in counts if n]
        return f"{label}: {', '.join(parts) or 'changed'}"
    parts = []
    if new and not gone:
        parts.append("new")
    elif gone and not new:
        parts.append("column deleted")
    elif new or gone or "column changed" in kinds:
        parts.append("column replaced")
    parts += [f"{_plural(n, 'sample')} {shown}" for n, shown in counts if n]
    return f"{label}: {', '.join(parts) or 'changed'}"


def describe_changes(counts: dict[str, dict[str, int]]) -> list[str]:
    """:func:`describe_change` for each column, sorted by what users call them."""
    return [describe_change(h, counts[h]) for h in sorted(counts, key=column_label)]
