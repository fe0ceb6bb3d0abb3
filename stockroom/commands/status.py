from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

from stockroom import quickread
from stockroom.core import StockRoom
from stockroom.errors import StockroomError
from stockroom.git import git
from stockroom.headfile import HANGAR_DIR, HEAD_FILE, parse_head
from stockroom.install import framework_runs
from stockroom.layout import PARTIAL_FILE

_RESTORE = f"restore it with `git checkout HEAD -- {HEAD_FILE}`"
# `git status --porcelain` codes for head.stock, in words.
_GIT_STATES = {
    "D ": f"deleted in git's index (`git rm`), so the next git commit drops it; {_RESTORE}",
    " D": f"deleted in the work tree; {_RESTORE}",
    "AD": f"added to git's index, then deleted in the work tree; restore it with `git checkout -- {HEAD_FILE}`",
    "UU": "merge conflict: both sides changed it (see `git status`)",
    "AA": "merge conflict: both sides added it (see `git status`)",
    "DU": "merge conflict: deleted on one side (see `git status`)",
    "UD": "merge conflict: deleted on one side (see `git status`)",
    "": "in sync with git (committed)",
    "??": "not tracked by git: run `git add head.stock`",
    "A ": "staged in git's index, not committed yet",
    "M ": "staged in git's index, not committed yet",
    " M": "changed, not staged: run `git add head.stock` (the pre-commit hook does it)",
    "MM": "changed since staged: run `git add head.stock`",
    "AM": "changed since staged: run `git add head.stock`",
}


def status() -> int:
    with StockRoom() as stock:
        from stockroom.merging import unfinished

        merging = unfinished(stock.path)
        if merging is not None:
            # head.stock holds the merge block, not a digest: show the merge, not an error.
            click.echo("\n".join(merging))
            return 0
        try:
            head = stock.head
        except StockroomError as exc:
            # Conflict markers in a merge or rebase: that is the status to show, not an error.
            # Any other unreadable head.stock is the error itself (one line, exit 1).
            if "merge-conflict markers" not in str(exc) and not _conflicted(stock.path):
                raise
            head = None
            click.echo(f"stock head: unreadable: {exc}")
        if head:
            _require_commit(stock, head)  # a digest .hangar lacks: say so, exit 1
        if head is not None:
            click.echo(f"stock head: {head or _empty_head(stock.path)}")
        if head:
            _data_here(stock.path, head)
            _left_out(stock.path, head)
            try:
                _tags_of_head(stock, head)
            except StockroomError as exc:  # a line of information: never what fails status
                click.echo(f"tags: unknown ({exc})")
        try:
            # No marker, nothing staged (it is left before any staged write):
            # then Hangar need not even be imported.
            staged = stock._store.staged_changes() if quickread.maybe_staged(stock.path) else []
        except StockroomError as exc:
            click.echo(f"staged writes: unknown ({exc})")
        else:
            if staged:
                base = stock._store.staged_base()
                if base == head:
                    click.echo("staged writes (run `stock commit -m MSG`):")
                else:
                    click.echo(
                        f"staged writes, based on stock commit {base or '(none)'}, not on "
                        f"{HEAD_FILE}'s (check out the git commit whose {HEAD_FILE} names it "
                        f"and run `stock commit -m MSG`, or drop them with `stock reset`):"
                    )
                for line in staged:
                    click.echo(f"  {line}")
                if head and base == head and any(line.startswith("tags:") for line in staged):
                    _staged_tags(stock, head)
            else:
                click.echo("staged writes: none")
        porcelain = git("status", "--porcelain", "--", HEAD_FILE, cwd=stock.path)
        code = porcelain[:2] if porcelain else ""
        state = _GIT_STATES.get(code, _in_words(code))
        if code == " M" and framework_runs(stock.path, "pre-commit"):
            # The framework stashes unstaged files before its hooks run: ours refuses instead.
            state = f"changed, not staged: run `git add {HEAD_FILE}` (under the pre-commit framework the commit is refused until you do)"
        click.echo(f"{HEAD_FILE}: {state}")
    return 0


def _require_commit(stock: StockRoom, digest: str) -> None:
    """Refuse a ``head.stock`` naming a commit ``.hangar`` lacks (without
    opening the store when it is not open already), naming the command that
    brings it: a clone that got the git commit but not its stock."""
    if stock._lazy.store is not None:
        here = stock._store.has_commit(digest)
    else:
        here = quickread.has_commit(stock.path, digest)
    if here:
        return
    from stockroom.remote.config import default_name

    name = default_name(stock.path)
    fetch = (
        f"fetch the stock data that belongs to this git commit with `stock pull` (from stock remote {name!r})"
        if name
        else "add the stock remote that has it (`stock remote add NAME URL`), then fetch the stock data "
        "that belongs to this git commit with `stock pull`"
    )
    raise StockroomError(
        f"{HEAD_FILE} names stock commit {digest}, which {HANGAR_DIR} does not have (made in "
        f"another clone, not fetched here): {fetch}; or check out a git commit whose stock is here"
    )


# ------------------------------------------------------------------ tags
# How many tag keys a status line names before "...".
_NAMED_KEYS = 8


@dataclass
class TagOrigins:
    """Which tags of a stock state were set in it, and which it carried over
    unchanged from the state it builds on (its parent commit, or for staged
    writes the commit ``head.stock`` names). Keys are users' (decoded)."""

    written: list[str] = field(default_factory=list)  # new, or a value the base did not have
    carried: list[str] = field(default_factory=list)  # the value of the base (of one, for a merge)
    removed: list[str] = field(default_factory=list)  # in the base, dropped here


def tag_origins(now: Mapping[str, str], bases: Sequence[Mapping[str, str]]) -> TagOrigins:
    """Compare tags by content (encoded key -> encoded value or content
    digest, the same kind on every side): a tag written again with the value
    it had is carried over, as the stored state cannot tell it apart."""
    from stockroom.keys import decode_text

    out = TagOrigins()
    for hkey, value in sorted(now.items()):
        same = any(base.get(hkey) == value for base in bases)
        (out.carried if same else out.written).append(decode_text(hkey))
    if bases:
        out.removed = [decode_text(k) for k in sorted(set(bases[0]) - set(now))]
    return out


def _keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:_NAMED_KEYS])
    return f"({shown}{', ...' if len(keys) > _NAMED_KEYS else ''})"


def _commit_tags(stock: StockRoom, digests: list[str]) -> list[dict[str, str]]:
    """Encoded tags of each commit: their cached values when every commit's are
    cached (no Hangar), else their content digests from the commit records."""
    cached = [quickread.read_tags(stock.path, d) for d in digests]
    if all(c is not None for c in cached):
        return [c for c in cached if c is not None]
    from stockroom.storages.tag import COLUMN
    from stockroom.store.view import ColumnRecords, commit_records

    return [
        {str(k): v for k, v in commit_records(stock._store, d).get(COLUMN, ColumnRecords()).samples.items()}
        for d in digests
    ]


def _tags_of_head(stock: StockRoom, head: str) -> None:
    """When the head commit carried tags over from its parent: which, and
    which it set. A run that did not log a metric still shows the last run's
    value of it, and this line says so (no line when every tag was set in it)."""
    parents = quickread.parents(stock.path, head) or []
    now, *bases = _commit_tags(stock, [head, *parents])
    if not now:
        return
    origins = tag_origins(now, bases)
    if not origins.carried:
        return  # every tag was set in this commit: nothing to warn about
    parts = []
    if origins.written:
        parts.append(f"{len(origins.written)} set in this stock commit {_keys(origins.written)}")
    whose = "its parent " + parents[0] if len(parents) == 1 else "its parents"
    parts.append(f"{len(origins.carried)} carried over unchanged from {whose} {_keys(origins.carried)}")
    click.echo(f"tags: {'; '.join(parts)}")


def _staged_tags(stock: StockRoom, head: str) -> None:
    """For staged tag writes: those written since the head commit, and those
    the next commit would carry over from it unchanged."""
    from stockroom.storages.tag import COLUMN
    from stockroom.store.view import column_of_commit, column_of_work_tree

    store = stock._store
    # The tag column alone: what the rest of the store holds costs nothing here.
    now = {str(k): v for k, v in column_of_work_tree(store, COLUMN).items()}
    base = {str(k): v for k, v in column_of_commit(store, head, COLUMN).items()}
    origins = tag_origins(now, [base])
    if not origins.carried:
        return  # the next commit sets every tag it has: the staged lines above say it all
    parts = [f"{len(origins.written)} written since stock commit {head} {_keys(origins.written)}"]
    if origins.removed:
        parts.append(f"{len(origins.removed)} deleted {_keys(origins.removed)}")
    parts.append(
        f"the next commit carries over {len(origins.carried)} unchanged {_keys(origins.carried)}: "
        f"`del stock.tag[KEY]` drops one this run did not set"
    )
    click.echo(f"staged tags: {'; '.join(parts)}")


def _left_out(root: Path, head: str) -> None:
    """What a partial ``stock pull`` left out of the head commit, and the command that fetches it."""
    if not (root / HANGAR_DIR / PARTIAL_FILE).exists():
        return  # no partial pull ran here: a full clone need not open Hangar for this
    from stockroom.store import partial

    line = partial.status_line(root, head)
    if line is not None:
        click.echo(line)


def _data_here(root: Path, head: str) -> None:
    """How much of the commit's data is here, in a clone that reads on demand."""
    # Looked at before importing the store, which imports Hangar: a clone
    # that never pulled lazily keeps `stock status` light.
    if not (root / HANGAR_DIR / "stockroom-lazy").exists():
        return  # no lazy pull here: all data pulled or written here
    from stockroom.store import lazy

    lazy.cache_limit(root)  # a value that is not a size: said now, in one line (not at the first read)
    w = lazy.where(root, head)
    click.echo(
        f"stock data: {w.local + w.fetched} of {w.samples} sample(s) local "
        f"({w.fetched} read on demand, {w.fetched_bytes / 1e6:.1f} MB), "
        f"{w.remote_only} remote-only ({w.remote_only_bytes / 1e6:.1f} MB, fetched when read)"
        + (f", {w.unfetched} not fetched (run `stock pull`)" if w.unfetched else "")
    )


_LETTERS = {"M": "modified", "T": "type changed", "A": "added", "D": "deleted", "R": "renamed", "C": "copied"}


def _in_words(code: str) -> str:
    """A porcelain code not listed above, said in words instead of shown raw."""
    padded = code + "  "
    index, work = padded[0], padded[1]
    parts = []
    if index in _LETTERS:
        parts.append(f"{_LETTERS[index]} in git's index")
    if work in _LETTERS:
        parts.append(f"{_LETTERS[work]} in the work tree")
    if "U" in code:
        parts.append("in a merge conflict")
    return (", ".join(parts) or "in an unusual git state") + " (see `git status`)"


def _empty_head(root: Path) -> str:
    """What an empty head.stock means: before the first stock commit, or emptied by mistake."""
    try:
        committed = parse_head(git("show", f"HEAD:{HEAD_FILE}", cwd=root).encode())
    except StockroomError:  # no git commit yet, none with head.stock, or an unreadable one
        committed = ""
    if not committed:
        return "(no stock commit yet)"
    return f"(none: {HEAD_FILE} is empty, but git's HEAD records stock commit {committed}; {_RESTORE})"


def _conflicted(root: Path) -> bool:
    """Whether git holds head.stock as a merge conflict (a merge, rebase or cherry-pick)."""
    out = git("status", "--porcelain", "--", HEAD_FILE, cwd=root)
    code = out[:2] if out else ""
    return "U" in code or code in ("AA", "DD")
