"""Push, pull and fetch as the commands and hooks use them: which stock
commits the git revisions name, which remote, and the transfer itself."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from stockroom.errors import StockroomError
from stockroom.git import git
from stockroom.headfile import DIGEST_RE, HANGAR_DIR, HEAD_FILE, parse_head, read_head
from stockroom.remote.config import Remote, get_remote, list_remotes
from stockroom.remote.objects import ObjectMissing, ObjectStore, RemoteError, open_store
from stockroom.remote.url import HOOK_TIMEOUT, redact

if TYPE_CHECKING:
    from stockroom.remote.check import Report
    from stockroom.store.transfer import Summary


def stock_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The git work tree root holding ``head.stock`` (``.hangar`` may be missing)."""
    from stockroom.git import work_tree_root

    root = work_tree_root(path)
    if not (root / HEAD_FILE).exists():
        raise StockroomError(f"{root} is not a stock repository (no {HEAD_FILE}); run `stock init` first")
    return root


def open_remote(root: Path, name: str | None, hook: bool = False) -> tuple[Remote, ObjectStore]:
    """The configured remote ``name`` (None: the default) and its object store,
    its requests bounded by ``stock.timeout`` (in a git hook: at most 10 s)."""
    remote = get_remote(root, name)
    url = remote.parsed(root, cap=HOOK_TIMEOUT if hook else None)
    return remote, open_store(url, remote.name, remote.endpoint)


def resolve_fetch_args(
    root: Path, remote_name: str | None, revs: tuple[str, ...]
) -> tuple[str | None, tuple[str, ...]]:
    """`stock fetch [REMOTE] [REV...]` with a git revision where a remote name
    is expected (``stock fetch origin/x``): that argument is a revision."""
    if remote_name is None or any(r.name == remote_name for r in list_remotes(root)):
        return remote_name, revs
    if DIGEST_RE.fullmatch(remote_name):  # `stock fetch a=...`, as messages advise
        return None, (remote_name, *revs)
    try:
        git("rev-parse", "--verify", "--quiet", f"{remote_name}^{{commit}}", cwd=root, keep_env=False)
    except StockroomError:
        get_remote(root, remote_name)  # neither: the unknown-remote error, which lists the remotes
        raise
    return None, (remote_name, *revs)


def _other_remote_having(root: Path, remote: Remote, digests: list[str], hook: bool) -> str:
    """The name of another configured remote that has every stock commit
    ``digests`` ('' when none does), for advice that leads somewhere."""
    from stockroom.store.transfer import commit_object

    for other in list_remotes(root):
        if other.name == remote.name:
            continue
        try:
            _, store = open_remote(root, other.name, hook=hook)
            if all(store.exists(commit_object(d)) for d in digests):
                return other.name
        except (StockroomError, ValueError):
            continue  # unreachable or misconfigured: not an answer
    return ""


def digest_at(root: Path, rev: str) -> str:
    """The stock commit ``head.stock`` names at git revision ``rev`` ('' if none)."""
    try:
        raw = git("show", f"{rev}:{HEAD_FILE}", cwd=root, keep_env=False)
    except StockroomError:
        return ""
    return parse_head(raw.encode(), f"{HEAD_FILE} at {rev}")


def branch_digests(root: Path) -> list[str]:
    """Stock commits named at the tip of every local git branch."""
    out = git("for-each-ref", "--format=%(objectname)", "refs/heads", cwd=root, keep_env=False)
    digests = [digest_at(root, sha) for sha in out.splitlines() if sha]
    return list(dict.fromkeys(d for d in digests if d))


def describe(remote: Remote) -> str:
    """The remote for messages: name and URL, never a secret."""
    return f"{remote.name} ({redact(remote.url)})"


def push(
    root: Path, remote_name: str | None, digests: list[str], hook: bool = False
) -> tuple[Remote, Summary]:
    """Upload ``digests`` (and ancestors, data) to the remote."""
    from stockroom.store import transfer

    remote, store = open_remote(root, remote_name, hook=hook)
    store.clean_incoming()  # what a killed push left behind
    summary = transfer.push(root, store, digests)
    remember_on_remote(root, remote, digests)
    return remote, summary


def repair(root: Path, remote_name: str | None, digests: list[str]) -> tuple[Remote, Report]:
    """Upload again whatever of ``digests`` (and ancestors) the remote has lost
    or damaged, from this clone's data (`stock push --repair`)."""
    from stockroom.remote import check

    remote, store = open_remote(root, remote_name)
    return remote, check.repair(root, store, digests)


def fsck(root: Path, remote_name: str | None) -> tuple[Remote | None, Report]:
    """Check what the local branches' stock commits need on the remote
    ``remote_name`` (None: the default; none configured: ``.hangar``)."""
    from stockroom.remote import check
    from stockroom.remote.config import default_name

    digests = branch_digests(root)
    head = head_digest(root)
    if head and head not in digests:
        digests.insert(0, head)
    if remote_name is None and default_name(root) is None:
        return None, check.check_local(root, digests)
    remote, store = open_remote(root, remote_name)
    return remote, check.check_remote(root, store, digests)


def fetch(
    root: Path,
    remote_name: str | None,
    digests: list[str],
    columns: set[str] | None = None,
    lazy: bool = False,
    hook: bool = False,
) -> tuple[Remote, Summary]:
    """Download ``digests`` (only ``columns`` of their data when given; with
    ``lazy``, their records only: data is fetched when read)."""
    from stockroom.store import transfer

    remote, store = open_remote(root, remote_name, hook=hook)
    try:
        summary = transfer.fetch(root, store, digests, columns, lazy=lazy)
    except ObjectMissing as exc:
        missing = [d for d in digests if d and f"commits/{d}" in str(exc)]
        other = _other_remote_having(root, remote, missing, hook) if missing else ""
        if not other:
            raise
        raise RemoteError(
            f"{exc}; stock remote {other} has it: fetch from there (`stock pull {other}`), "
            f"or make it this clone's default (`stock remote default {other}`)"
        ) from None
    remember_on_remote(root, remote, digests)
    return remote, summary


def head_digest(root: Path) -> str:
    """What ``head.stock`` names now."""
    return read_head(root)


def remember_on_remote(root: Path, remote: Remote, digests: list[str]) -> None:
    """Note that the remote has ``digests`` (and so their ancestors), for the
    pre-push hook's no-network "nothing new" check (see stockroom.hook)."""
    from stockroom.layout import PUSHED_FILE

    path = root / HANGAR_DIR / PUSHED_FILE
    try:
        known = set(path.read_text(encoding="utf-8").splitlines())
    except OSError:
        known = set()
    lines = [f"{d} {remote.url}" for d in digests if d and f"{d} {remote.url}" not in known]
    if lines:
        with contextlib.suppress(OSError):  # only a shortcut: without it the hook asks the remote
            with open(path, "a", encoding="utf-8") as handle:
                handle.write("".join(line + "\n" for line in lines))
