from __future__ import annotations

import click

from stockroom.core import StockRoom
from stockroom.errors import StockroomError
from stockroom.git import git
from stockroom.headfile import HEAD_FILE

_GIT_STATES = {
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
        from stockroom.commands.merge import unfinished

        merging = unfinished(stock.path)
        if merging is not None:
            # head.stock holds the merge block, not a digest: show the merge, not an error.
            click.echo("\n".join(merging))
            return 0
        head = stock.head
        if head:
            stock._store._require_commit(head)  # a digest .hangar lacks: say so, exit 1
        click.echo(f"stock head: {head or '(no stock commit yet)'}")
        try:
            staged = stock._store.staged_changes()
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
            else:
                click.echo("staged writes: none")
        porcelain = git("status", "--porcelain", "--", HEAD_FILE, cwd=stock.path)
        code = porcelain[:2] if porcelain else ""
        click.echo(f"{HEAD_FILE}: {_GIT_STATES.get(code, f'git status {code!r}')}")
    return 0
