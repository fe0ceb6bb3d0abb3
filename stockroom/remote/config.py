"""Which stock remotes a repository knows.

Shared remotes live in ``.stockremotes`` at the stock root, a file in git's
config syntax that git tracks, so a clone knows where to pull from.
``--local`` remotes live in ``.git/config`` under ``stockremote.NAME``. The
first remote added becomes the default (``stock.defaultremote`` in the file
that received it). Neither file ever holds credentials: URLs carrying them
are refused by :func:`stockroom.remote.url.parse_url`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

from stockroom.errors import StockroomError
from stockroom.git import git
from stockroom.remote.url import DEFAULT_TIMEOUT, RemoteURL, check_endpoint, parse_url

REMOTES_FILE = ".stockremotes"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Remote:
    """One configured stock remote."""

    name: str
    url: str
    local: bool
    endpoint: str = ""

    def parsed(self, root: Path, cap: float | None = None) -> RemoteURL:
        """Where the remote is, with the request deadline ``stock.timeout``
        of the repository at ``root`` (at most ``cap`` seconds when given)."""
        url = parse_url(self.url, base=root)
        if url.kind == "dir":
            return url  # a directory is the file system: no request deadline (docs/reliability.md)
        timeout = request_timeout(root)
        if cap is not None:
            timeout = min(timeout, cap)
        return dataclasses.replace(url, timeout=timeout)


def request_timeout(root: Path) -> float:
    """``git config stock.timeout``: seconds a remote request may go without
    an answer before the command fails (default 30)."""
    try:
        text = git("config", "--get", "stock.timeout", cwd=root, keep_env=False).strip()
    except StockroomError:
        return DEFAULT_TIMEOUT  # not set
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise StockroomError(
            f"git config stock.timeout is {text!r}: give the seconds a remote may take to answer, "
            f"for example `git config stock.timeout 30`"
        )
    return value


def check_directory(root: Path, url: RemoteURL) -> None:
    """Refuse a directory remote that cannot work: missing, a file, or inside
    the work tree (git would see its objects; ``.hangar`` is in there too)."""
    if url.kind != "dir":
        return
    path = Path(url.path)
    if not path.exists():
        raise StockroomError(
            f"directory {path} does not exist; create it first (`mkdir -p {path}`) or fix the URL"
        )
    if not path.is_dir():
        raise StockroomError(f"{path} is a file, not a directory; give a directory for the stock remote")
    tree = root.resolve()
    path = path.resolve()  # through links: a link into the work tree is inside it
    if path == tree or tree in path.parents:
        raise StockroomError(
            f"{path} is inside this repository's work tree ({tree}); a stock remote must be a "
            f"directory outside it (git would see its objects, and .hangar is the store itself)"
        )


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
    check_directory(root, parsed)
    if endpoint:
        check_endpoint(endpoint)
    existing = list_remotes(root)
    if any(r.name == name for r in existing):
        raise StockroomError(
            f"a stock remote named {name!r} exists; remove it first with `stock remote remove {name}`"
        )
    stored = _stored(url, parsed)
    where = _where(root, local)
    git("config", *where, f"stockremote.{name}.url", stored, cwd=root, keep_env=False)
    if endpoint:
        git("config", *where, f"stockremote.{name}.endpoint", endpoint, cwd=root, keep_env=False)
    if not existing:
        git("config", *where, "stock.defaultremote", name, cwd=root, keep_env=False)
    return Remote(name, stored, local, endpoint)


def _stored(url: str, parsed: RemoteURL) -> str:
    return str(parsed) if parsed.kind != "dir" else url if url.startswith("file://") else parsed.path


def _where(root: Path, local: bool) -> list[str]:
    return ["--local"] if local else ["--file", str(root / REMOTES_FILE)]


def set_url(root: Path, name: str, url: str) -> Remote:
    """Point the remote ``name`` at ``url`` (checked as `stock remote add` checks it)."""
    remote = get_remote(root, name)
    parsed = parse_url(url, base=root)
    check_directory(root, parsed)
    stored = _stored(url, parsed)
    git("config", *_where(root, remote.local), f"stockremote.{name}.url", stored, cwd=root, keep_env=False)
    return Remote(name, stored, remote.local, remote.endpoint)


def rename_remote(root: Path, old: str, new: str) -> Remote:
    """Call the remote ``old`` ``new``; the default follows it."""
    remote = get_remote(root, old)
    if not _NAME_RE.match(new):
        raise ValueError(f"invalid remote name {new!r}: use letters, digits, '-' and '_'")
    if any(r.name == new for r in list_remotes(root)):
        raise StockroomError(f"a stock remote named {new!r} exists; pick another name")
    where = _where(root, remote.local)
    git(
        "config",
        *where,
        "--rename-section",
        f"stockremote.{old}",
        f"stockremote.{new}",
        cwd=root,
        keep_env=False,
    )
    for local in (True, False):
        if _get(root, "stock.defaultremote", local) == old:
            git("config", *_where(root, local), "stock.defaultremote", new, cwd=root, keep_env=False)
    _rename_for_lazy_reads(root, old, new)
    return Remote(new, remote.url, remote.local, remote.endpoint)


def _rename_for_lazy_reads(root: Path, old: str, new: str) -> None:
    # Lazy reads find their remote by the name a lazy pull recorded.
    from stockroom.headfile import HANGAR_DIR
    from stockroom.layout import LAZY_DIR

    path = root / HANGAR_DIR / LAZY_DIR / "remote"
    try:
        if path.read_text(encoding="utf-8").strip() == old:
            path.write_text(new, encoding="utf-8")
    except OSError:
        pass  # no lazy pull here


def set_default(root: Path, name: str) -> Remote:
    """Make ``name`` this clone's default remote (``.git/config``, which wins
    over the default recorded in ``.stockremotes``)."""
    remote = get_remote(root, name)
    git("config", "--local", "stock.defaultremote", name, cwd=root, keep_env=False)
    return remote


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
