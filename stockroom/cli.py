"""The ``stock`` command line. Argument parsing lives here and only here.

Each command is a typed function in ``stockroom.commands`` that returns an
exit code; this module maps user errors to one line on stderr and exit 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from stockroom.errors import StockroomError

# Errors that are the user's to fix: one line, no traceback.
USER_ERRORS = (StockroomError, ValueError, KeyError, TypeError, OSError)


def _run(func: Callable[..., int], *args: Any, **kwargs: Any) -> None:
    try:
        code = func(*args, **kwargs)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        click.echo(f"stock: error: {message}", err=True)
        sys.exit(1)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stockroom", prog_name="stock")
def cli() -> None:
    """Version models, data and tags alongside your git code."""


@cli.command()
@click.option("--name", help="Committer name for stock commits (default: git user.name).")
@click.option("--email", help="Committer email (default: git user.email).")
@click.option("--overwrite", is_flag=True, help="Start the stock store over (deletes it).")
@click.option("--no-hooks", is_flag=True, help="Do not install the git hooks.")
def init(name: str | None, email: str | None, overwrite: bool, no_hooks: bool) -> None:
    """Make this git repository a stock repository."""
    from stockroom.commands.init import init as run

    _run(run, name=name, email=email, overwrite=overwrite, hooks=not no_hooks)


@cli.command()
@click.option("-m", "--message", required=True, help="What changed in the stock.")
def commit(message: str) -> None:
    """Commit the staged stock writes and update head.stock."""
    from stockroom.commands.commit import commit as run

    _run(run, message)


@cli.command()
def status() -> None:
    """Show the stock head, staged writes and head.stock's git state."""
    from stockroom.commands.status import status as run

    _run(run)


@cli.command()
@click.option("-n", "--max-count", default=20, show_default=True, help="How many git commits.")
def log(max_count: int) -> None:
    """List git commits beside the stock commit each one records."""
    from stockroom.commands.log import log as run

    _run(run, max_count)


@cli.command()
def reset() -> None:
    """Drop all uncommitted stock writes."""
    from stockroom.commands.reset import reset as run

    _run(run)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``stock`` script."""
    cli.main(args=argv, prog_name="stock")


if __name__ == "__main__":
    main()
