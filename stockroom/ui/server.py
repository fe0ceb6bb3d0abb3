"""The ``stock ui`` server: read-only, loopback by default, token and Host checked.

Standard library only (``http.server.ThreadingHTTPServer``): the app serves
one user on their own machine, a handful of GET routes, no forms and no
sessions beyond one cookie, so a framework would add a dependency and
nothing it needs. One thread per request keeps the pages' polling from
waiting on a slow comparison.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stockroom.errors import StockroomError
from stockroom.ui import data, site

COOKIE = "stock_ui_token"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Errors in a request that are the user's (a bad revision, key or metric): a 4xx page.
USER_ERRORS = (StockroomError, KeyError, ValueError, LookupError)


class UIServer(ThreadingHTTPServer):
    """Serves :class:`~stockroom.ui.site.Site` pages for one repository."""

    daemon_threads = True

    def __init__(self, site_: site.Site, host: str, port: int, token: str | None = None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.address_family = family
        super().__init__((host, port), Handler)
        self.site = site_
        self.token = token or secrets.token_urlsafe(24)
        self.host = host
        self.port = int(self.server_address[1])
        self.allowed_hosts = _allowed_hosts(host, self.port)
        # Cookies ignore ports: a name per port keeps two `stock ui` apart.
        self.cookie = f"{COOKIE}_{self.port}"

    def url(self) -> str:
        """The URL to open (with the token)."""
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}/?token={self.token}"


def _allowed_hosts(host: str, port: int) -> set[str]:
    """``Host`` header values this server answers (DNS rebinding defence):
    the bound address, its loopback names, and when bound to all addresses
    the machine's names; any IP literal is safe too (no DNS involved)."""
    names = {host}
    if host in LOOPBACK:
        names.update(LOOPBACK)
    if host in ("0.0.0.0", "::", ""):
        names.update((socket.gethostname(), socket.getfqdn(), *LOOPBACK))
    found = set()
    for name in names:
        shown = f"[{name}]" if ":" in name else name
        found.add(f"{shown}:{port}".lower())
    return found


def _is_ip_literal(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Handler(BaseHTTPRequestHandler):
    """GET and HEAD only; every answer is a page, an asset or JSON."""

    server: UIServer
    server_version = "stock-ui"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        # Quiet: a request log on the terminal is noise for one user; errors still print.
        return

    # ---------------------------------------------------------------- routing
    def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's name
        self._answer(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(head=False)

    def _refuse_method(self) -> None:
        self._send(405, "text/html; charset=utf-8", site.error_html(405, "stock ui is read-only").encode())

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method  # noqa: N815

    def _answer(self, head: bool) -> None:
        self._head = head
        try:
            self._route()
        except USER_ERRORS as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            self._error(404 if isinstance(exc, (KeyError, StockroomError)) else 400, str(message))
        except Exception as exc:  # noqa: BLE001 - a page says what failed, never a traceback
            print(f"stock ui: error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
            self._error(500, f"unexpected {type(exc).__name__}: {exc} (set STOCKROOM_DEBUG=1 and report it)")

    def _route(self) -> None:
        host = (self.headers.get("Host") or "").lower()
        if host not in self.server.allowed_hosts and not (
            self.server.host not in LOOPBACK and _is_ip_literal(host)
        ):
            self._error(403, f"this server answers requests for {sorted(self.server.allowed_hosts)[0]} only")
            return
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        given = query.get("token", [None])[0]
        if given is not None and hmac.compare_digest(given.encode(), self.server.token.encode()):
            # Move the token into a cookie, and out of the address bar and history.
            rest = "&".join(f"{k}={v}" for k, vs in query.items() if k != "token" for v in vs)
            self.send_response(303)
            self.send_header("Location", parts.path + (f"?{rest}" if rest else ""))
            self.send_header(
                "Set-Cookie", f"{self.server.cookie}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"
            )
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not self._has_cookie():
            self._error(403, "open the URL that `stock ui` printed: it carries the access token")
            return
        path = parts.path
        one = {k: v[-1] for k, v in query.items()}
        if path == "/" or path.lstrip("/") in site.PAGES:
            page = path.lstrip("/") or "experiments"
            self._check_page(page, one)
            body = site.page_html(page, static=False, repo_name=self.server.site.root.name).encode()
            self._send(200, "text/html; charset=utf-8", body)
        elif path.startswith("/assets/"):
            name = path[len("/assets/") :]
            content = site.asset(name)
            if content is None:
                raise KeyError(
                    f"no asset {name!r}"
                    + ("; run scripts/env.sh to build the chart library" if name in site.VENDOR else "")
                )
            ctype = site.CONTENT_TYPES[Path(name).suffix]
            self._send(200, ctype, content, cache=True)
        elif path.startswith("/api/"):
            self._json(self._api(path[len("/api/") :], one))
        else:
            raise KeyError(f"no page {path!r}; the pages are /, " + ", ".join(f"/{p}" for p in site.PAGES))

    def _check_page(self, page: str, query: dict[str, str]) -> None:
        """A page naming a bad revision (or ``RUN@STEP``) is a 4xx page, not a page that fails later."""
        from stockroom import revisions

        root = self.server.site.root
        for name in ("a", "b", "rev"):
            if query.get(name):
                revisions.stock_ref(root, query[name])

    def _api(self, name: str, q: dict[str, str]) -> Any:
        s = self.server.site
        if name == "experiments":
            return s.table()
        if name == "curves":
            if "first" in q:
                runs = [r for r in q.get("runs", "").split(",") if r]
                return s.first_curves(runs, q.get("metric", ""), int(q.get("points", data.CURVE_POINTS)))
            if "metric" not in q:
                return s.curve_index()
            runs = [r for r in q.get("runs", "").split(",") if r]
            return s.curves(runs, q["metric"], int(q.get("points", data.CURVE_POINTS)))
        if name == "compare":
            return data.compare(s.root, q.get("a") or "HEAD~1", q.get("b") or "HEAD")
        if name == "data":
            return data.data_page(s.root, q.get("rev") or "HEAD")
        if name == "version":
            return {"version": data.fingerprint(s.root)}
        raise KeyError(f"no API {name!r}")

    def _has_cookie(self) -> bool:
        raw = self.headers.get("Cookie") or ""
        for part in raw.split(";"):
            key, _, value = part.strip().partition("=")
            if key == self.server.cookie and hmac.compare_digest(value.encode(), self.server.token.encode()):
                return True
        return False

    # ---------------------------------------------------------------- replies
    def _json(self, doc: Any) -> None:
        self._send(200, "application/json", json.dumps(doc, separators=(",", ":"), allow_nan=False).encode())

    def _error(self, status: int, message: str) -> None:
        if self.path.startswith("/api/"):
            body = json.dumps({"error": message, "status": status}).encode()
            self._send(status, "application/json", body)
        else:
            self._send(status, "text/html; charset=utf-8", site.error_html(status, message).encode())

    def _send(self, status: int, ctype: str, body: bytes, cache: bool = False) -> None:
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        )
        self.end_headers()
        if not getattr(self, "_head", False):
            self.wfile.write(body)
