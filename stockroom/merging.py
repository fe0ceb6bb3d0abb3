"""The git merge driver for ``head.stock`` and the state of an unfinished stock merge.

Git runs the driver (``stock install`` registers it) when both sides of a
merge, pull, rebase, cherry-pick or revert changed ``head.stock``. It merges
the two stock commits (stockroom.store.merge) and writes the merged digest.
On a conflict it writes a block that names the three stock commits and the
sides already chosen, never a digest (a hasty ``git add`` must not commit one
side as the merge), and fails, so git reports the conflict. ``stock merge``
reads that block (or git's conflict stages, for a conflict git made without
the driver), applies ``--ours``/``--theirs`` and, once nothing conflicts,
writes the merged digest for ``git add head.stock``.

This module is what ``stock merge`` (stockroom.commands.merge) and ``stock
status`` share, so that no command imports another.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from stockroom.errors import StockroomError
from stockroom.git import git
from stockroom.headfile import DIGEST_RE, HANGAR_DIR, HEAD_FILE, MERGE_MARKER, atomic_write

_END = f">>>>>>> then `git add {HEAD_FILE}` and commit (or `git merge --abort`)"
RESOLVE_HINT = (
    f"resolve with `stock merge --ours [KEY...]` or `stock merge --theirs [KEY...]` (no KEY: every "
    f"conflict), then `git add {HEAD_FILE}` and `git commit` (or `git rebase --continue`, "
    f"`git cherry-pick --continue` while replaying)"
)


@dataclass
class Pending:
    """An unfinished stock merge: the three stock commits and the sides chosen so far."""

    base: str
    ours: str
    theirs: str
    chosen: dict[str, str] = field(default_factory=dict)  # encoded unit -> "ours"/"theirs"

    def render(self) -> str:
        lines = [
            f"{MERGE_MARKER}: run `stock status`, then `stock merge --ours|--theirs [KEY...]`",
            f"base {self.base}",
            f"ours {self.ours}",
            f"theirs {self.theirs}",
        ]
        lines += [f"chosen {side} {unit}" for unit, side in sorted(self.chosen.items())]
        return "\n".join([*lines, _END]) + "\n"


def parse_block(text: str) -> Pending | None:
    """The merge block in ``text`` (a head.stock), None when it holds none."""
    if not text.startswith(MERGE_MARKER):
        return None
    fields: dict[str, str] = {}
    chosen: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        name, _, value = line.partition(" ")
        if name == "chosen":
            side, _, unit = value.partition(" ")
            chosen[unit] = side
        elif name in ("base", "ours", "theirs"):
            fields[name] = value.strip()
    if not all(
        DIGEST_RE.fullmatch(fields.get(n, "")) or fields.get(n) == "" for n in ("base", "ours", "theirs")
    ):
        return None
    return Pending(fields["base"], fields["ours"], fields["theirs"], chosen)


def _digest_in(text: str) -> str | None:
    """The digest a head.stock version holds ('' when empty, None when not one)."""
    text = text.strip()
    if text == "" or DIGEST_RE.fullmatch(text):
        return text
    return None


def _say(message: str) -> None:
    sys.stderr.write("stockroom: " + message.replace("\n", "\n  ") + "\n")


def listing(result: object) -> list[str]:
    from stockroom.store.merge import DESCRIBED, MergeResult

    assert isinstance(result, MergeResult)
    n = len(result.conflicts)
    lines = [
        f"{n} stock conflict{'s' if n != 1 else ''} (ours: stock commit {result.ours}, "
        f"theirs: {result.theirs}):"
    ]
    for conflict in result.conflicts[:DESCRIBED]:
        lines.append(f"  {conflict.unit.key()}: ours {conflict.ours}; theirs {conflict.theirs}")
    if n > DESCRIBED:
        more = ", ".join(c.unit.key() for c in result.conflicts[DESCRIBED : DESCRIBED + 10])
        lines.append(f"  and {n - DESCRIBED} more: {more}{', ...' if n > DESCRIBED + 10 else ''}")
    return lines


def run_merge(root: Path, pending: Pending, write: bool = True) -> object:
    from stockroom.store.merge import Unit, merge

    chosen = {Unit.decode(unit): side for unit, side in pending.chosen.items()}
    return merge(root, pending.base, pending.ours, pending.theirs, chosen, write=write)


# -------------------------------------------------------------- the driver
def driver(base_file: str, ours_file: str, theirs_file: str) -> int:
    """What git runs for ``head.stock`` (``%O %A %B``): writes the result into ``ours_file``.

    Exit 0: merged. Exit 1: a conflict or an error, ``ours_file`` holds the
    merge block and the reason is on stderr.
    """
    texts = []
    for path in (base_file, ours_file, theirs_file):
        with open(path, encoding="ascii", errors="replace") as handle:
            texts.append(handle.read(4096))
    base, ours, theirs = (_digest_in(t) for t in texts)
    if ours is None or theirs is None:
        _say(f"{HEAD_FILE} does not hold a stock commit digest on both sides; resolve it by hand")
        return 1
    pending = Pending(base or "", ours, theirs)
    try:
        from stockroom.git import work_tree_root
        from stockroom.store.merge import MergeResult

        root = work_tree_root()
        if not (root / HANGAR_DIR).is_dir():
            raise StockroomError(
                f"there is no stock data here ({HANGAR_DIR} is missing): run `stock pull`, then "
                f"`stock merge` to finish this merge"
            )
        result = run_merge(root, pending)
        assert isinstance(result, MergeResult)
    except Exception as exc:  # noqa: BLE001 - git must see a conflict, never a traceback
        atomic_write(Path(ours_file), pending.render().encode("ascii"))
        _say(f"the stock merge of {HEAD_FILE} stopped: {exc}")
        return 1
    if result.conflicts:
        atomic_write(Path(ours_file), pending.render().encode("ascii"))
        _say("\n".join([*listing(result), RESOLVE_HINT]))
        return 1
    atomic_write(Path(ours_file), (result.digest + "\n").encode("ascii"))
    if result.digest not in (ours, theirs):
        _say(f"merged stock commits {ours[:14]} and {theirs[:14]} into {result.digest[:14]}")
    return 0


# ----------------------------------------------------------- stock merge
def _from_index(root: Path) -> Pending | None:
    """The stock commits of a head.stock conflict git made itself (stages 1-3)."""
    digests = []
    for stage in (1, 2, 3):
        try:
            digest = _digest_in(git("show", f":{stage}:{HEAD_FILE}", cwd=root))
        except StockroomError:  # no such stage: no base (an add/add conflict) or no conflict
            digest = "" if stage == 1 else None
        if digest is None:
            return None
        digests.append(digest)
    return Pending(digests[0], digests[1], digests[2])


def pending_merge(root: Path) -> Pending | None:
    """The unfinished stock merge in ``root``'s head.stock, None when there is none."""
    try:
        text = (root / HEAD_FILE).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    found = parse_block(text)
    if found is None and "<<<<<<<" in text:
        found = _from_index(root)
    return found


def unfinished(root: Path) -> list[str] | None:
    """Lines for ``stock status`` about an unfinished stock merge; None when there is none."""
    pending = pending_merge(root)
    if pending is None:
        return None
    lines = [f"unfinished stock merge of {pending.theirs} into {pending.ours}"]
    try:
        result = run_merge(root, pending, write=False)  # status only looks
    except StockroomError as exc:
        return [*lines, f"  {exc}"]
    from stockroom.store.merge import MergeResult

    assert isinstance(result, MergeResult)
    if not result.conflicts:
        return [*lines, "  nothing conflicts any more: run `stock merge` to finish it"]
    return [*lines, *("  " + line for line in listing(result)), "  " + RESOLVE_HINT]
