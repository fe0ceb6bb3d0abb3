"""Which stock remotes a repository knows.

Shared remotes live in ``.stockremotes`` at the stock root, a file in git's
config syntax that git tracks, so a clone knows where to pull from.
``--local`` remotes live in ``.git/config`` under ``stockremote.NAME``. The
first remote added becomes the default (``stock.defaultremote`` in the file
that received it). Neither file ever holds credentials: URLs carrying them
are refused by :func:`stockroom.remote.url.parse_url`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stockroom.errors import StockroomError
from stockroom.git import git
from stockroom.remote.url import RemoteURL, parse_url

REMOTES_FILE = ".stockremotes"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Remote:
    """One configured stock remote."""

    name: str
    url: str
    local: bool
    endpoint: str = ""

    def parsed(self, root: Path) -> RemoteURL:
        return parse_url(self.url, base=root)


def _read(root: Path, local: bool) -> list[tuple[str, str]]:
    args = ["config", "--get-regexp", r"^stockremote\."]
    if local:
        args[1:1] = ["--local"]
    else:
        path = root / REMOTES_FILE
        if not path.exists():
            return []
        args[1:1] = ["--file", str(path)]
    try:
        out = git(*args, cwd=root, keep_env=False)
    except StockroomError:
        return []  # no matching entries
    pairs = []
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        pairs.append((key, value))
    return pairs


def _collect(root: Path, local: bool) -> list[Remote]:
    urls: dict[str, str] = {}
    endpoints: dict[str, str] = {}
    for key, value in _read(root, local):
        _, _, rest = key.partition(".")
        name, _, field = rest.rpartition(".")
        if field == "url":
            urls[name] = value
        elif field == "endpoint":
            endpoints[name] = value
    return [Remote(n, u, local, endpoints.get(n, "")) for n, u in urls.items()]


def list_remotes(root: Path) -> list[Remote]:
    """Every configured remote: tracked ones first, then local ones."""
    return _collect(root, False) + _collect(root, True)


def default_name(root: Path) -> str | None:
    """The default remote's name, or None when there is none."""
    remotes = list_remotes(root)
    names = {r.name for r in remotes}
    for local in (True, False):
        value = _get(root, "stock.defaultremote", local)
        if value and value in names:
            return value
    return remotes[0].name if remotes else None


def _get(root: Path, key: str, local: bool) -> str | None:
    where = ["--local"] if local else ["--file", str(root / REMOTES_FILE)]
    if not local and not (root / REMOTES_FILE).exists():
        return None
    try:
        return git("config", *where, "--get", key, cwd=root, keep_env=False) or None
    except StockroomError:
        return None


def get_remote(root: Path, name: str | None) -> Remote:
    """The remote called ``name`` (None: the default one)."""
    remotes = list_remotes(root)
    if name is None:
        name = default_name(root)
        if name is None:
            raise StockroomError("no stock remote is configured; add one with `stock remote add NAME URL`")
    for remote in remotes:
        if remote.name == name:
            return remote
    known = ", ".join(r.name for r in remotes) or "none"
    raise StockroomError(f"no stock remote named {name!r} (known: {known}); see `stock remote list`")


def add_remote(root: Path, name: str, url: str, local: bool = False, endpoint: str = "") -> Remote:
    """Record a remote; the first one becomes the default."""
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid remote name {name!r}: use letters, digits, '-' and '_'")
    parsed = parse_url(url, base=root)  # refuses credentials before anything is written
    if endpoint:
        if "@" in urlsplit(endpoint).netloc:
            raise ValueError(
                "the endpoint URL holds credentials; remove them and use the AWS credential chain"
            )
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError("the endpoint must be an http:// or https:// URL")
    existing = list_remotes(root)
    if any(r.name == name for r in existing):
        raise StockroomError(
            f"a stock remote named {name!r} exists; remove it first with `stock remote remove {name}`"
        )
    stored = str(parsed) if parsed.kind == "s3" else url if url.startswith("file://") else parsed.path
    where = ["--local"] if local else ["--file", str(root / REMOTES_FILE)]
    git("config", *where, f"stockremote.{name}.url", stored, cwd=root, keep_env=False)
    if endpoint:
        git("config", *where, f"stockremote.{name}.endpoint", endpoint, cwd=root, keep_env=False)
    if not existing:
        git("config", *where, "stock.defaultremote", name, cwd=root, keep_env=False)
    return Remote(name, stored, local, endpoint)


def remove_remote(root: Path, name: str) -> Remote:
    """Forget the remote ``name`` (its objects stay where they are)."""
    remote = get_remote(root, name)
    where = ["--local"] if remote.local else ["--file", str(root / REMOTES_FILE)]
    git("config", *where, "--remove-section", f"stockremote.{name}", cwd=root, keep_env=False)
    if _get(root, "stock.defaultremote", remote.local) == name:
        git("config", *where, "--unset", "stock.defaultremote", cwd=root, keep_env=False)
        rest = list_remotes(root)
        if rest:
            other = ["--local"] if rest[0].local else ["--file", str(root / REMOTES_FILE)]
            git("config", *other, "stock.defaultremote", rest[0].name, cwd=root, keep_env=False)
    return remote
