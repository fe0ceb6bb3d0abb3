"""What ``stock log --tags`` and ``stock diff`` report, as data.

The readers behind those two commands, shared with ``stock ui`` (which
sits beside the commands, not above them, and so imports none of them):

* the experiment table's rows (:class:`Row`) with each git commit's stock
  digest and tags (:func:`read_tags`), or the tags of any stock commits
  (:func:`digest_tags`: a run's checkpoints, which no git commit need
  record);
* a comparison of :mod:`stockroom.compare` as JSON-ready items
  (:func:`diff_items`) and its two sides (:class:`Side`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockroom import revisions

# What the stock column shows for a commit without readable stock.
NOT_HERE = "(not here)"
NOT_FETCHED = "(not fetched)"  # the commit is here, its tags' data is not
STATES = {revisions.NO_HEAD: "(no stock)", revisions.EMPTY: "(empty)", revisions.UNREADABLE: "(unreadable)"}


# ------------------------------------------------------------ tag table
@dataclass
class Row:
    """One git commit of the experiment table."""

    commit: str
    date: str
    subject: str
    branch: str = ""
    digest: str = ""
    state: str = ""  # '' when the tags were read; else what the stock column says
    tags: dict[str, Any] = field(default_factory=dict)
    checkpoint: bool = False  # a run's checkpoint (RUN@STEP in ``commit``), no git commit


def read_tags(root: Path, rows: list[Row]) -> None:
    """Fill in each row's stock digest and tags: one read per distinct tag value.

    A checkpoint's row has its stock commit already; a git commit's comes
    from its ``head.stock``."""
    refs = iter(revisions.stock_refs(root, [row.commit for row in rows if not row.checkpoint]))
    for row in rows:
        if not row.checkpoint:
            ref = next(refs)
            row.digest = ref.digest
            if not ref.digest:
                row.state = STATES[ref.state]
    found = digest_tags(root, {row.digest for row in rows if row.digest})
    for row in rows:
        if row.digest:
            row.state, row.tags = found[row.digest]


def digest_tags(root: Path, digests: Iterable[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each stock commit's ``(state, tags)``: state '' when read, :data:`NOT_HERE`
    when ``.hangar`` lacks the commit (its tags are then empty), :data:`NOT_FETCHED`
    when it has the commit's records but not its tags' data."""
    from stockroom.storages import tag as tag_storage
    from stockroom.store import Store
    from stockroom.store.partial import NotFetched
    from stockroom.store.view import DigestReader, commit_records

    wanted = list(dict.fromkeys(d for d in digests if d))
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    if not wanted:
        return found
    store = Store(root)
    reader = DigestReader(store, text_cache=True)
    try:
        for digest in wanted:
            if not store.has_commit(digest):
                found[digest] = (NOT_HERE, {})
                continue
            column = commit_records(store, digest).get(tag_storage.COLUMN)
            tags: dict[str, Any] = {}
            state = ""
            try:
                if column is not None:
                    for hkey, value_digest in sorted(column.samples.items(), key=lambda kv: str(kv[0])):
                        raw = reader.read(column.schema, value_digest)
                        tags[decode_key(str(hkey))] = tag_storage.decode_value(raw)
            except NotFetched:
                # Its records came as the history of a fetched commit, its
                # tags' data did not: a row that says so, not an error.
                state = NOT_FETCHED
            found[digest] = (state, tags)
    finally:
        reader.close()
        store.close()
    return found


def decode_key(hkey: str) -> str:
    """A tag key as the user wrote it, from Hangar's encoded sample key."""
    from stockroom.keys import decode_text

    return decode_text(hkey)


# ------------------------------------------------------------------ diff
@dataclass
class Side:
    """One side of a comparison, for headers and JSON."""

    rev: str | None  # None: the work tree
    commit: str
    digest: str
    staged: bool = False

    def label(self) -> str:
        stock = self.digest[:12] if self.digest else "no stock"
        if self.rev is None:
            return f"work tree ({stock}{', staged writes' if self.staged else ''})"
        return f"{self.rev} ({self.commit[:10]}, {stock})"

    def as_json(self) -> dict[str, Any]:
        return {"rev": self.rev, "commit": self.commit or None, "stock": self.digest, "staged": self.staged}


def visible(items: list[Any], show_all: bool) -> list[Any]:
    """``items`` that changed (all of them with ``show_all``)."""
    return items if show_all else [item for item in items if item.status != "unchanged"]


def plain(value: Any) -> Any:
    """A JSON-safe value: non-finite floats as the strings 'nan', 'inf', '-inf'."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def diff_items(result: Any, show_all: bool, samples: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """A :func:`stockroom.compare.compare` result as ``(section, item)`` pairs,
    section one of ``tags``, ``data``, ``models`` (``stock diff --json``'s lists)."""
    for t in visible(result.tags, show_all):
        yield (
            "tags",
            {
                "key": t.key,
                "status": t.status,
                "old": plain(t.old),
                "new": plain(t.new),
                "old_type": None if t.old is None else type(t.old).__name__,
                "new_type": None if t.new is None else type(t.new).__name__,
                "abs_change": plain(t.abs_change),
                "rel_change": plain(t.rel_change),
            },
        )
    for c in visible(result.data, show_all):
        entry: dict[str, Any] = {
            "column": c.name,
            "status": c.status,
            "old_schema": None
            if c.old_schema is None
            else {"dtype": c.old_schema[0], "shape": list(c.old_schema[1])},
            "new_schema": None
            if c.new_schema is None
            else {"dtype": c.new_schema[0], "shape": list(c.new_schema[1])},
            "samples_added": len(c.added),
            "samples_removed": len(c.removed),
            "samples_changed": len(c.changed),
            "samples_unchanged": c.unchanged,
        }
        if samples:
            entry.update(added=c.added, removed=c.removed, changed=c.changed)
        yield "data", entry
    for m in visible(result.models, show_all):
        yield (
            "models",
            {
                "model": m.name,
                "status": m.status,
                "note": m.note,
                "layers": [
                    {
                        "name": x.name,
                        "status": x.status,
                        "old_dtype": x.old_dtype,
                        "old_shape": plain(x.old_shape),
                        "new_dtype": x.new_dtype,
                        "new_shape": plain(x.new_shape),
                        "rel_l2": plain(x.rel_l2),
                        "max_abs_diff": plain(x.max_abs),
                    }
                    for x in visible(m.layers, show_all)
                ],
            },
        )
