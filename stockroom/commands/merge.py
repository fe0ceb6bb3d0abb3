"""``stock merge [--ours|--theirs] [KEY...]``: resolve an unfinished stock merge
(the driver and the merge block are stockroom.merging)."""

from __future__ import annotations

from stockroom.errors import StockroomError
from stockroom.headfile import HEAD_FILE, atomic_write, write_head
from stockroom.merging import RESOLVE_HINT, driver, listing, pending_merge, run_merge

__all__ = ["driver", "merge", "merge_sides"]


def merge_sides(ours: bool, theirs: bool, keys: list[str]) -> int:
    """``stock merge`` as typed: ``--ours`` and ``--theirs`` are two flags, so
    that both at once is refused here instead of the last one winning."""
    if ours and theirs:
        raise ValueError(
            "--ours and --theirs together keep nothing: give one of them (per KEY, run "
            "`stock merge --ours KEY...` and `stock merge --theirs KEY...` one after the other)"
        )
    return merge("ours" if ours else "theirs" if theirs else None, keys)


def merge(side: str | None, keys: list[str]) -> int:
    """``stock merge [--ours|--theirs] [KEY...]``: resolve an unfinished stock merge."""
    import click

    from stockroom.core import find_root
    from stockroom.store.merge import MergeResult, Unit

    root = find_root()
    pending = pending_merge(root)
    if pending is None:
        raise StockroomError(f"there is no unfinished stock merge here ({HEAD_FILE} holds a stock commit)")
    if keys and side is None:
        raise ValueError("say which side to keep for those keys: --ours or --theirs")
    result = run_merge(root, pending)
    assert isinstance(result, MergeResult)
    if side is not None and result.conflicts:
        units = [c.unit for c in result.conflicts]
        picked: list[Unit] = []
        for key in keys:
            found = [u for u in units if key in u.names()]
            if not found:
                raise ValueError(
                    f"{key!r} is not among the conflicting keys: {', '.join(u.key() for u in units[:20])}"
                )
            picked += found
        for unit in picked if keys else units:
            pending.chosen[unit.encode()] = side
        result = run_merge(root, pending)
        assert isinstance(result, MergeResult)
    if result.conflicts:
        atomic_write(root / HEAD_FILE, pending.render().encode("ascii"))
        click.echo("\n".join([*listing(result), RESOLVE_HINT]))
        return 1 if side is None else 0
    write_head(root, result.digest)
    click.echo(
        f"{HEAD_FILE} now names the merged stock commit {result.digest}; run `git add {HEAD_FILE}` "
        f"and `git commit` (or `git rebase --continue` / `git cherry-pick --continue`)"
    )
    return 0
