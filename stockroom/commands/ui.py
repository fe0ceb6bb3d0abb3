"""``stock ui``: the repository's experiments in a browser (SPEC section 11)."""

from __future__ import annotations

import time
import webbrowser
from pathlib import Path

import click

from stockroom.core import find_root
from stockroom.errors import StockroomError


def ui(port: int, host: str, no_browser: bool, export_dir: str | None, branches: list[str] | None) -> int:
    """Serve the read-only web app of this repository, or export it as a static site."""
    from stockroom.ui import site
    from stockroom.ui.server import LOOPBACK, UIServer

    root = find_root()
    if export_dir is not None:
        from stockroom.ui.export import export

        start = time.perf_counter()
        counts = export(root, Path(export_dir), branches)
        click.echo(
            f"exported {counts['rows']} commits of {counts['branches']} branches to {export_dir} "
            f"in {time.perf_counter() - start:.1f} s; open {Path(export_dir, 'index.html')} in a browser"
        )
        return 0
    missing = site.missing_vendor()
    if missing:
        # Printed now, not as a warning: `stock`'s warnings print when a command ends.
        click.echo(
            f"stock: warning: the chart library is not built ({', '.join(missing)}): tables work, "
            f"charts do not; run scripts/env.sh",
            err=True,
        )
    if host not in LOOPBACK:
        click.echo(
            f"stock: warning: serving on {host}: anyone who can reach this address and has the URL's "
            f"token can read this repository's stock (the default, 127.0.0.1, is this machine only)",
            err=True,
        )
    s = site.Site(root, branches)
    s.table()  # read the table before the URL is printed: the first page is then quick
    try:
        server = UIServer(s, host, port)
    except OSError as exc:
        raise StockroomError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another with --port N "
            f"(0: any free port)"
        ) from None
    url = server.url()
    click.echo(f"stock ui: serving {root.name} read-only at {url}  (Ctrl-C stops it)", err=False)
    if not no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
