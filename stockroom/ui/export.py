"""``stock ui --export DIR``: the pages as a static site that opens from ``file://``.

Each page loads its data from ``data/*.js`` (a script, since ``file://``
forbids ``fetch``). What needs a choice of revisions on the server
(Compare, Data) is written for a fixed set: each branch tip against the
current ``HEAD``, and the Data page of ``HEAD`` and each branch tip.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from stockroom.errors import StockroomError
from stockroom.ui import data, site

# At most this many branch tips get a Compare and a Data page in an export.
EXPORT_REVS = 12


def export(
    root: Path, target: Path, branch_names: list[str] | None = None, source: Any = None
) -> dict[str, int]:
    """Write the static site into ``target`` (made if missing; files of ours
    are replaced, nothing else there is touched). Returns counts for the summary."""
    missing = site.missing_vendor()
    if missing:
        raise StockroomError(
            f"the chart library is not built ({', '.join(missing)} missing); run scripts/env.sh "
            f"(or `python -m stockroom.ui.vendor`) and export again"
        )
    if target.exists() and not target.is_dir():
        raise StockroomError(f"{target} is a file; name a directory to export into")
    s = site.Site(root, branch_names, source)
    table = s.table()
    (target / "assets").mkdir(parents=True, exist_ok=True)
    (target / "data").mkdir(exist_ok=True)
    for name in site.ASSETS:
        content = site.asset(name)
        assert content is not None  # checked above (vendor) or shipped (ours)
        _write(target / "assets" / name, content)
    for page, (_, file) in site.PAGES.items():
        _write(target / file, site.page_html(page, static=True, repo_name=root.name).encode())

    index = s.curve_index()
    # One source for every metric (each s.curves would fingerprint the repository
    # again), and each metric with the runs that have it (a tag of one run is no
    # curve of the 99 others).
    src = s.source()
    has = getattr(src, "has", None)
    curves = {
        m: data.curves(src, [r for r in index["runs"] if has is None or has(r, m)], m, data.CURVE_POINTS)
        for m in index["metrics"]
    }
    revs = _revisions(root, table)
    pairs = []
    head = revs[0] if revs else None
    for rev in revs[1:]:
        assert head is not None
        try:
            pairs.append(data.compare(root, head, rev))
        except StockroomError as exc:
            pairs.append({"from": {"rev": head}, "to": {"rev": rev}, "error": str(exc)})
    pages: dict[str, Any] = {}
    for rev in revs:
        try:
            pages[rev] = data.data_page(root, rev)
        except StockroomError as exc:
            pages[rev] = {"rev": rev, "error": str(exc)}
    docs = {
        "experiments": table,
        "curves": {"index": index, "series": curves},
        "compare": {"pairs": pairs},
        "data": {"revs": pages},
    }
    for name, doc in docs.items():
        _write(target / "data" / f"{name}.js", site.to_js(name, doc).encode())
    return {"rows": len(table["rows"]), "branches": len(table["branches"]), "compares": len(pairs)}


def _revisions(root: Path, table: dict[str, Any]) -> list[str]:
    """HEAD (when it records stock), then each chosen branch tip that differs from it."""
    from stockroom import revisions

    found: list[str] = []
    try:
        head = revisions.stock_ref(root, "HEAD")
        if head.digest:
            found.append("HEAD")
    except StockroomError:
        head = None
    for b in table["branches"]:
        if len(found) > EXPORT_REVS:
            break
        if head is None or b["commit"] != head.commit:
            found.append(b["name"])
    return found


def _write(path: Path, content: bytes) -> None:
    """Write through a temporary file, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(content)
    os.replace(tmp, path)
