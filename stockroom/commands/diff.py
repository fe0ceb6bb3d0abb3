"""``stock diff [REV1 [REV2]]``: what changed in the stock between two git revisions."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import click

from stockroom import revisions
from stockroom.core import find_root
from stockroom.errors import StockroomError
from stockroom.reports import Side
from stockroom.reports import diff_items as _items
from stockroom.reports import visible as _visible
from stockroom.store.partial import NotFetched

FORMATS = ("text", "json", "csv", "md")
_COLOURS = {"added": "green", "removed": "red", "changed": "yellow", "type changed": "magenta"}
_COLOURS.update({"reshaped": "magenta", "schema changed": "magenta"})


def _not_fetched(root: Path, exc: NotFetched, digests: list[str]) -> StockroomError:
    """A read of data that is not here, with advice that works: a revision
    behind a fetched branch tip has its records here, not its data, and
    plain `stock fetch` brings branch tips only."""
    from stockroom.store import samples

    if exc.named:  # a partial pull's left-out column: its own advice is exact
        return exc
    complete = samples.complete_commits(root)
    todo = [d for d in dict.fromkeys(digests) if d and d not in complete]
    if not todo:
        return exc
    return StockroomError(
        f"part of the stock data being compared is not here (its commit came as the history of a "
        f"fetched one, or a partial pull left it out); bring it with `stock fetch {' '.join(todo)}`"
    )


def diff(rev1: str | None, rev2: str | None, fmt: str, show_all: bool, samples: bool) -> int:
    """Compare the stock of ``rev1`` (default HEAD) with ``rev2`` (default: the work tree)."""
    from stockroom import compare as cmp
    from stockroom.store import Store
    from stockroom.store.view import snapshot_at, snapshot_of_work_tree

    root = find_root()
    rev1 = rev1 or "HEAD"
    ref1 = revisions.stock_ref(root, rev1)
    ref2 = revisions.stock_ref(root, rev2) if rev2 is not None else None
    store = Store(root)
    try:
        with contextlib.ExitStack() as stack:
            old = stack.enter_context(snapshot_at(store, ref1.digest, f"git revision {rev1!r}"))
            if ref2 is not None:
                new = stack.enter_context(snapshot_at(store, ref2.digest, f"git revision {rev2!r}"))
                side2 = Side(rev2, ref2.commit, ref2.digest)
            else:
                new = stack.enter_context(snapshot_of_work_tree(store))
                side2 = Side(None, "", new.digest, new.staged)
            try:
                result = cmp.compare(old, new)
            except NotFetched as exc:
                raise _not_fetched(root, exc, [ref1.digest, ref2.digest if ref2 else ""]) from None
    finally:
        store.close()
    side1 = Side(rev1, ref1.commit, ref1.digest)
    render = {"text": _text, "json": _json, "csv": _csv, "md": _markdown}[fmt]
    click.echo(render(result, side1, side2, show_all, samples), nl=False)
    return 0


# ------------------------------------------------------------ formatting
def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return repr(value)
    return repr(value) if isinstance(value, float) else str(value)


def _tag_change(change: Any) -> str:
    if change.status in ("added", "removed", "unchanged"):
        return change.status
    if change.status == "type changed":
        return f"type {type(change.old).__name__} -> {type(change.new).__name__}"
    delta = change.abs_change
    if delta is None:
        return "changed"
    text = f"{delta:+.6g}"
    rel = change.rel_change
    if rel is not None and math.isfinite(rel):
        text += f" ({rel:+.2%})"
    return text


def _schema(schema: tuple[str, tuple[int, ...]] | None) -> str:
    return "-" if schema is None else f"{schema[0]} {_shape(schema[1])}"


def _shape(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else str(tuple(shape))


def _layer_side(dtype: str | None, shape: tuple[int, ...] | None) -> str:
    return "-" if dtype is None else f"{_shape(shape)} {dtype}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


# How many carried-over tag keys the text and Markdown name before "...".
_CARRIED_SHOWN = 12


def _carried(result: Any, show_all: bool) -> list[str]:
    """Tags both sides have with the same value (the newer side carried them
    over), said in a line of their own; ``--all`` lists them as rows instead."""
    return [] if show_all else [t.key for t in result.tags if t.status == "unchanged"]


def _carried_line(keys: list[str]) -> str:
    shown = ", ".join(keys[:_CARRIED_SHOWN]) + (", ..." if len(keys) > _CARRIED_SHOWN else "")
    return f"{len(keys)} unchanged, carried over: {shown} (`--all` shows their values)"


def _count(n: int) -> str:
    return str(n) if n else "-"


def _table(header: list[str], rows: list[tuple[list[str], str]], status_col: int, indent: str) -> list[str]:
    """Aligned columns; the cell ``status_col`` of each row coloured by the row's status
    (click drops the colour when the output is not a terminal)."""
    # https://no-color.org: an empty value does not count.
    no_colour = bool(os.environ.get("NO_COLOR"))
    widths = [max(len(r[i]) for r in [header, *(cells for cells, _ in rows)]) for i in range(len(header))]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for cells, status in rows:
        # The last cell is not padded: no trailing blanks.
        padded = [cell.ljust(w) for cell, w in zip(cells[:-1], widths, strict=False)] + [cells[-1]]
        colour = _COLOURS.get(status)
        if colour and not no_colour:
            padded[status_col] = click.style(padded[status_col], fg=colour)
        lines.append(indent + "  ".join(padded).rstrip())
    return lines


def _column_note(col: Any) -> str:
    if col.status == "added":
        return f"column added ({_schema(col.new_schema)})"
    if col.status == "removed":
        return f"column removed ({_schema(col.old_schema)})"
    if col.status == "schema changed":
        return f"schema {_schema(col.old_schema)} -> {_schema(col.new_schema)}"
    return col.status


def _model_summary(model: Any) -> str:
    counts = model.counts()
    order = ("changed", "reshaped", "added", "removed")
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    text = {"added": "model added", "removed": "model removed"}.get(model.status, "")
    text = ", ".join(p for p in [text, *([] if model.status in ("added", "removed") else parts)] if p)
    if model.note:
        text += f" (kind {model.note})"
    unchanged = counts.get("unchanged", 0)
    if unchanged and model.status != "unchanged":
        text += f", {unchanged} layer{'s' if unchanged > 1 else ''} unchanged"
    return text or f"unchanged ({len(model.layers)} layers)"


def _text(result: Any, a: Side, b: Side, show_all: bool, samples: bool) -> str:
    title = f"{a.label()} -> {b.label()}"
    if not result.changed and not show_all:
        return f"no stock changes: {title}\n"
    out = [f"stock diff {title}"]
    tags = _visible(result.tags, show_all)
    carried = _carried(result, show_all)
    if tags or carried:
        out.append("tags")
    if tags:
        rows = [([t.key, _value(t.old), _value(t.new), _tag_change(t)], t.status) for t in tags]
        out += _table(["key", "old", "new", "change"], rows, 3, "  ")
    if carried:
        out.append(f"  {_carried_line(carried)}")
    data = _visible(result.data, show_all)
    if data:
        out.append("data")
        rows = [
            (
                [
                    c.name,
                    _count(len(c.added)),
                    _count(len(c.removed)),
                    _count(len(c.changed)),
                    _count(c.unchanged),
                    _column_note(c),
                ],
                c.status,
            )
            for c in data
        ]
        out += _table(["column", "added", "removed", "changed", "unchanged", "status"], rows, 5, "  ")
        if samples:
            for c in data:
                for kind in ("added", "removed", "changed"):
                    keys = getattr(c, kind)
                    if keys:
                        out.append(f"  {c.name}: {kind} {', '.join(_value(k) for k in keys)}")
    models = _visible(result.models, show_all)
    if models:
        out.append("models")
        for m in models:
            out.append(f"  {m.name}: {_model_summary(m)}")
            layers = _visible(m.layers, show_all)
            if m.status in ("added", "removed") and not show_all:
                continue
            if layers:
                rows = [
                    (
                        [
                            x.name,
                            x.status,
                            _layer_side(x.old_dtype, x.old_shape),
                            _layer_side(x.new_dtype, x.new_shape),
                            _number(x.rel_l2),
                            _number(x.max_abs),
                        ],
                        x.status,
                    )
                    for x in layers
                ]
                out += _table(["layer", "status", "old", "new", "rel L2", "max |diff|"], rows, 1, "    ")
    return "\n".join(out) + "\n"


def _json(result: Any, a: Side, b: Side, show_all: bool, samples: bool) -> str:
    doc: dict[str, Any] = {"from": a.as_json(), "to": b.as_json(), "changed": result.changed}
    doc.update(tags=[], data=[], models=[])
    # Tags with the same value on both sides, whatever --all says: what the newer side inherited.
    doc["tags_unchanged"] = [t.key for t in result.tags if t.status == "unchanged"]
    for section, item in _items(result, show_all, samples):
        doc[section].append(item)
    return json.dumps(doc, indent=2) + "\n"


CSV_FIELDS = [
    "kind",
    "name",
    "item",
    "status",
    "old",
    "new",
    "abs_change",
    "rel_change",
    "added",
    "removed",
    "changed",
    "rel_l2",
    "max_abs_diff",
]


def _csv(result: Any, a: Side, b: Side, show_all: bool, samples: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for section, item in _items(result, show_all, samples):
        if section == "tags":
            writer.writerow(
                {
                    "kind": "tag",
                    "name": item["key"],
                    "status": item["status"],
                    "old": "" if item["old"] is None else item["old"],
                    "new": "" if item["new"] is None else item["new"],
                    "abs_change": "" if item["abs_change"] is None else item["abs_change"],
                    "rel_change": "" if item["rel_change"] is None else item["rel_change"],
                }
            )
        elif section == "data":
            writer.writerow(
                {
                    "kind": "data",
                    "name": item["column"],
                    "status": item["status"],
                    "added": item["samples_added"],
                    "removed": item["samples_removed"],
                    "changed": item["samples_changed"],
                }
            )
            for kind in ("added", "removed", "changed") if samples else ():
                for key in item[kind]:
                    writer.writerow({"kind": "sample", "name": item["column"], "item": key, "status": kind})
        else:
            counts: dict[str, int] = {}
            for layer in item["layers"]:
                counts[layer["status"]] = counts.get(layer["status"], 0) + 1
            writer.writerow(
                {
                    "kind": "model",
                    "name": item["model"],
                    "status": item["status"],
                    "added": counts.get("added", 0),
                    "removed": counts.get("removed", 0),
                    "changed": counts.get("changed", 0) + counts.get("reshaped", 0),
                }
            )
            for layer in item["layers"]:
                writer.writerow(
                    {
                        "kind": "layer",
                        "name": item["model"],
                        "item": layer["name"],
                        "status": layer["status"],
                        "old": _layer_side(layer["old_dtype"], layer["old_shape"]),
                        "new": _layer_side(layer["new_dtype"], layer["new_shape"]),
                        "rel_l2": "" if layer["rel_l2"] is None else layer["rel_l2"],
                        "max_abs_diff": "" if layer["max_abs_diff"] is None else layer["max_abs_diff"],
                    }
                )
    return buffer.getvalue()


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _markdown(result: Any, a: Side, b: Side, show_all: bool, samples: bool) -> str:
    title = f"`{a.label()}` -> `{b.label()}`"
    if not result.changed and not show_all:
        return f"No stock changes: {title}\n"
    out = [f"### stock diff {title}", ""]
    tags = _visible(result.tags, show_all)
    carried = _carried(result, show_all)
    if tags or carried:
        out += ["**tags**", ""]
    if tags:
        out += [_md_row(["key", "old", "new", "change"]), _md_row(["---"] * 4)]
        out += [_md_row([t.key, _value(t.old), _value(t.new), _tag_change(t)]) for t in tags]
        out.append("")
    if carried:
        out += [_carried_line(carried).replace("`--all`", "`stock diff --all`"), ""]
    data = _visible(result.data, show_all)
    if data:
        header = ["column", "added", "removed", "changed", "unchanged", "status"]
        out += ["**data**", "", _md_row(header), _md_row(["---"] * 6)]
        for c in data:
            counts = [
                _count(len(c.added)),
                _count(len(c.removed)),
                _count(len(c.changed)),
                _count(c.unchanged),
            ]
            out.append(_md_row([c.name, *counts, _column_note(c)]))
        out.append("")
        for c in data if samples else ():
            for kind in ("added", "removed", "changed"):
                keys = getattr(c, kind)
                if keys:
                    out.append(f"- `{c.name}` {kind}: {', '.join(_value(k) for k in keys)}")
        if samples and any(c.added or c.removed or c.changed for c in data):
            out.append("")
    models = _visible(result.models, show_all)
    if models:
        out += ["**models**", ""]
        for m in models:
            out += [f"`{m.name}`: {_model_summary(m)}", ""]
            layers = _visible(m.layers, show_all)
            if layers and (show_all or m.status not in ("added", "removed")):
                out += [
                    _md_row(["layer", "status", "old", "new", "rel L2", "max abs diff"]),
                    _md_row(["---"] * 6),
                ]
                for x in layers:
                    old, new = _layer_side(x.old_dtype, x.old_shape), _layer_side(x.new_dtype, x.new_shape)
                    out.append(_md_row([x.name, x.status, old, new, _number(x.rel_l2), _number(x.max_abs)]))
                out.append("")
    return "\n".join(out)
