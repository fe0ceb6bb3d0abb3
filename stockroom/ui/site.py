"""The pages and assets of ``stock ui``, shared by the server and ``--export``.

A page is one HTML shell (navigation, a ``<main>`` the page script fills)
plus ``assets/app.js``; the server feeds the script from ``/api/...``, an
exported site from ``data/*.js`` files beside the pages (``file://`` allows
scripts but no ``fetch``).
"""

from __future__ import annotations

import html
import json
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from stockroom.ui import data

# page name -> (title, exported file name)
PAGES: dict[str, tuple[str, str]] = {
    "experiments": ("Experiments", "index.html"),
    "curves": ("Curves", "curves.html"),
    "parallel": ("Parallel coordinates", "parallel.html"),
    "compare": ("Compare", "compare.html"),
    "data": ("Data", "data.html"),
}
# The assets a page loads; anything else is not served (no path is ever
# joined from a request).
VENDOR = ("uPlot.iife.min.js", "uPlot.min.css")
ASSETS = ("app.js", "app.css", *VENDOR)
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def asset(name: str) -> bytes | None:
    """The bytes of asset ``name`` (one of :data:`ASSETS`), None if not installed."""
    if name not in ASSETS:
        return None
    folder = resources.files("stockroom.ui") / "assets"
    target = folder / "vendor" / name if name in VENDOR else folder / name
    try:
        return target.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def missing_vendor() -> list[str]:
    """The chart library's files that are not installed (see docs/ui.md)."""
    return [name for name in VENDOR if asset(name) is None]


def page_html(page: str, static: bool, repo_name: str) -> str:
    """The HTML shell of ``page``; ``static``: links and assets for an exported site."""
    title, _ = PAGES[page]
    nav = []
    for name, (label, file) in PAGES.items():
        href = file if static else ("/" if name == "experiments" else f"/{name}")
        current = ' aria-current="page"' if name == page else ""
        nav.append(f'<a href="{href}"{current}>{html.escape(label)}</a>')
    prefix = "assets/" if static else "/assets/"
    scripts = ""
    if static:
        scripts = "".join(f'<script src="data/{n}.js"></script>' for n in _static_data(page))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · stock ui · {html.escape(repo_name)}</title>"
        f'<link rel="stylesheet" href="{prefix}uPlot.min.css">'
        f'<link rel="stylesheet" href="{prefix}app.css"></head>\n'
        f'<body data-page="{page}" data-mode="{"static" if static else "server"}">'
        f'<header><span class="brand">stock ui</span> <span class="repo">{html.escape(repo_name)}</span>'
        f'<nav aria-label="Pages">{"".join(nav)}</nav></header>\n'
        f'<main id="main" tabindex="-1"><h1>{html.escape(title)}</h1><p class="loading">Loading…</p></main>\n'
        f"{scripts}"
        f'<script src="{prefix}uPlot.iife.min.js"></script><script src="{prefix}app.js"></script>'
        "</body></html>\n"
    )


def _static_data(page: str) -> list[str]:
    return {
        "experiments": ["experiments"],
        "curves": ["experiments", "curves"],
        "parallel": ["experiments"],
        "compare": ["experiments", "compare"],
        "data": ["experiments", "data"],
    }[page]


def error_html(status: int, message: str) -> str:
    """An error page: the status and one line saying what to do."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{status} · stock ui</title>"
        "<style>body{font:16px system-ui,sans-serif;margin:3rem;color:#1a1a1a;background:#fff}"
        "h1{font-size:1.4rem}a{color:#0645ad}</style></head>\n"
        f"<body><h1>{status}: {html.escape(_REASONS.get(status, 'error'))}</h1>"
        f'<p class="error" role="alert">{html.escape(message)}</p><p><a href="/">Experiments</a></p>'
        "</body></html>\n"
    )


_REASONS = {400: "bad request", 403: "forbidden", 404: "not found", 405: "method not allowed", 500: "error"}


class Site:
    """The repository's data for the pages, computed once per state of the
    repository (a moved ref or a new stock commit computes it again)."""

    def __init__(self, root: Path, branch_names: list[str] | None = None, source: Any = None) -> None:
        self.root = root
        self.branch_names = branch_names
        # A CurveSource other than the repository's own (a test's or a
        # bench's); None: the runs' metric store, tags per commit elsewhere.
        self._source = source
        self._lock = threading.Lock()
        self._state = ""
        self._table: dict[str, Any] | None = None
        self._runs: list[data.RunInfo] = []

    def table(self) -> dict[str, Any]:
        """The Experiments table, computed again when the repository changed."""
        state = data.fingerprint(self.root)
        with self._lock:
            if self._table is None or state != self._state:
                self._runs = data.local_runs(self.root)
                self._table = data.experiments(self.root, self.branch_names, runs=self._runs)
                self._state = state
            return self._table

    def source(self) -> Any:
        if self._source is not None:
            return self._source
        table = self.table()
        return data.RunCurves(table, self._runs)

    def curves(self, runs: list[str], metric: str, points: int) -> dict[str, Any]:
        return data.curves(self.source(), runs, metric, points)

    def curve_index(self, src: Any = None) -> dict[str, Any]:
        """Runs and metrics the Curves page offers."""
        src = self.source() if src is None else src
        kinds = getattr(src, "kinds", None)
        return {
            "runs": src.runs(),
            "metrics": src.metrics(),
            "kinds": kinds() if callable(kinds) else {r: "run" for r in src.runs()},
        }

    def first_curves(self, runs: list[str], metric: str, points: int) -> dict[str, Any]:
        """What the Curves page draws first, with the index, in one request (one
        round trip less before the chart): the given runs (else the first 10)
        and metric (else ``loss`` where there is one, else the first), chosen as
        the page chooses them."""
        src = self.source()
        index = self.curve_index(src)
        wanted = set(runs)
        names = [r for r in index["runs"] if r in wanted] or index["runs"][:10]
        metrics = index["metrics"]
        if not metrics:
            return {"index": index, "curves": None}
        if metric not in metrics:
            metric = "loss" if "loss" in metrics else metrics[0]
        return {"index": index, "curves": data.curves(src, names, metric, points)}


def to_js(name: str, doc: Any) -> str:
    """``doc`` as a script that an exported page loads (``file://`` has no fetch)."""
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    # "</" would end the script element if pasted inline; harmless in a file, kept safe anyway.
    text = text.replace("</", "<\\/")
    return f"window.STOCK_DATA=window.STOCK_DATA||{{}};window.STOCK_DATA[{json.dumps(name)}]={text};\n"
