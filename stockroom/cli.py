"""The ``stock`` command line. Argument parsing lives here and only here.

Each command is a typed function in ``stockroom.commands`` that returns an
exit code; this module maps user errors to one line on stderr and exit 1.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import click

from stockroom.errors import StockroomError

# Errors that are the user's to fix: one line, no traceback.
USER_ERRORS = (StockroomError, ValueError, KeyError, TypeError, OSError)
# Set to see the traceback of an unexpected error instead of one line.
DEBUG_ENV = "STOCKROOM_DEBUG"


def _run(func: Callable[..., int], *args: Any, **kwargs: Any) -> None:
    try:
        with warnings.catch_warnings(record=True) as caught:
            # Every warning shows, except those a module silenced by message
            # on purpose (Hangar's advice to run commands stockroom lacks).
            silenced = [
                (f[1].pattern, f[2], f[3].pattern if f[3] else "", f[4])
                for f in warnings.filters
                if f[0] == "ignore" and f[1] is not None and isinstance(f[2], type)
            ]
            warnings.simplefilter("always")
            for pattern, category, module, lineno in reversed(silenced):
                warnings.filterwarnings("ignore", pattern, category, module, lineno)
            try:
                code = func(*args, **kwargs)
            finally:
                # A warning is one line too (e.g. an interrupted commit found).
                for warning in caught:
                    click.echo(f"stock: warning: {warning.message}", err=True)
    except BrokenPipeError:
        _quiet_broken_pipe()
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        click.echo(f"stock: error: {message}", err=True)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - a CLI answers in one line, never a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        click.echo(
            f"stock: error: unexpected {type(exc).__name__}: {exc} (a damaged .hangar, or a bug: "
            f"set {DEBUG_ENV}=1 to see the traceback and report it)",
            err=True,
        )
        sys.exit(1)
    sys.exit(code)


# What a shell reports for a process killed by SIGPIPE (128 + 13), as for git.
BROKEN_PIPE_EXIT = 141


def _quiet_broken_pipe() -> None:
    """The reader of our output went away (``stock log | head -1``): stop quietly, as git does.

    stdout is pointed at /dev/null first, so that Python's final flush of the
    unwritten rest does not fail again with a message at exit.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    sys.exit(BROKEN_PIPE_EXIT)


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
@click.option(
    "--tags",
    "tags",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[KEY,...]",
    help="A table with these tags as columns (all tags when none are named).",
)
@click.option(
    "--branches", is_flag=True, help="With --tags: the tip of every local and remote-tracking branch."
)
@click.option("--sort", metavar="KEY", help="With --tags: sort by this tag (-KEY: descending).")
@click.option("--json", "fmt", flag_value="json", help="With --tags: JSON.")
@click.option("--csv", "fmt", flag_value="csv", help="With --tags: CSV.")
@click.option("--plot", metavar="FILE", help="With --tags: draw the numeric tags into FILE (.png or .html).")
@click.argument("revs", nargs=-1, metavar="[REV|RUN@STEP]...")
def log(
    max_count: int,
    tags: str | None,
    branches: bool,
    sort: str | None,
    fmt: str | None,
    plot: str | None,
    revs: tuple[str, ...],
) -> None:
    """List git commits beside the stock commit each one records.

    With --tags, REV... start the table there; RUN@STEP lists that run's checkpoints up to STEP."""
    if tags is None:
        if branches or sort or fmt or plot or revs:
            raise click.UsageError("--branches, --sort, --json, --csv, --plot and REV go with --tags")
        from stockroom.commands.log import log as run

        _run(run, max_count)
        return
    from stockroom.commands.log_tags import log_tags

    keys = [k.strip() for k in tags.split(",") if k.strip()] or None
    _run(log_tags, max_count, keys, branches, sort, fmt or "text", plot, revs)


@cli.command()
@click.argument("rev1", required=False)
@click.argument("rev2", required=False)
@click.option("--json", "fmt", flag_value="json", help="Machine-readable JSON.")
@click.option("--csv", "fmt", flag_value="csv", help="One CSV row per tag, column, model and layer.")
@click.option("--md", "fmt", flag_value="md", help="Markdown tables (for pull requests, CI comments).")
@click.option("--all", "show_all", is_flag=True, help="Also show what did not change.")
@click.option("--samples", is_flag=True, help="List the keys of samples added, removed and changed.")
def diff(rev1: str | None, rev2: str | None, fmt: str | None, show_all: bool, samples: bool) -> None:
    """Show what changed in the stock between two git revisions.

    REV1 defaults to HEAD, REV2 to the work tree (staged stock writes included).
    """
    from stockroom.commands.diff import diff as run

    _run(run, rev1, rev2, fmt or "text", show_all, samples)


@cli.command()
@click.option("--port", default=8765, show_default=True, help="Port to listen on (0: any free one).")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (not loopback: a warning)."
)
@click.option("--no-browser", is_flag=True, help="Print the URL, do not open a browser.")
@click.option(
    "--export", "export_dir", metavar="DIR", help="Write the pages as a static site into DIR instead."
)
@click.option("--branch", "branches", multiple=True, help="Only these branches (repeat; default: all).")
def ui(port: int, host: str, no_browser: bool, export_dir: str | None, branches: tuple[str, ...]) -> None:
    """Browse experiments across branches in a web browser (read-only)."""
    from stockroom.commands.ui import ui as run

    _run(run, port, host, no_browser, export_dir, list(branches) or None)


@cli.command()
def reset() -> None:
    """Drop all uncommitted stock writes."""
    from stockroom.commands.reset import reset as run

    _run(run)


@cli.command()
def repair() -> None:
    """Finish a stock commit that was interrupted before head.stock named it."""
    from stockroom.commands.repair import repair as run

    _run(run)


@cli.command()
def install() -> None:
    """Install the git hooks (pre-commit, post-checkout)."""
    from stockroom.commands.install import install as run

    _run(run)


@cli.command()
def uninstall() -> None:
    """Remove the git hooks, putting back the hooks they replaced."""
    from stockroom.commands.uninstall import uninstall as run

    _run(run)


@cli.command()
@click.option("--ours", is_flag=True, help="Keep this branch's side (git's --ours).")
@click.option("--theirs", is_flag=True, help="Keep the other side (git's --theirs).")
@click.argument("keys", nargs=-1)
def merge(ours: bool, theirs: bool, keys: tuple[str, ...]) -> None:
    """Resolve an unfinished stock merge: keep one side for KEY... (default: every conflict)."""
    from stockroom.commands.merge import merge_sides as run

    _run(run, ours, theirs, list(keys))


@cli.command("merge-driver", hidden=True)
@click.argument("base")
@click.argument("ours")
@click.argument("theirs")
@click.argument("path", required=False)
def merge_driver(base: str, ours: str, theirs: str, path: str | None) -> None:
    """What git runs to merge head.stock (%O %A %B %P)."""
    from stockroom.commands.merge import driver as run

    _run(run, base, ours, theirs)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def hook(name: str, args: tuple[str, ...]) -> None:
    """Run git hook NAME with git's ARGS (what the installed hooks call)."""
    from stockroom.commands.hook import hook as run

    _run(run, name, list(args))


@cli.group()
def remote() -> None:
    """Manage stock remotes (where `stock push`/`stock pull` go)."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option(
    "--local", is_flag=True, help="Record it in .git/config only, not in the tracked .stockremotes."
)
@click.option(
    "--endpoint",
    default="",
    help="Object-store endpoint URL (S3: MinIO, Ceph, R2...; Azure: the account's blob URL; GCS: the base URL).",
)
def remote_add(name: str, url: str, local: bool, endpoint: str) -> None:
    """Add stock remote NAME at URL (a directory, file:///path, s3://bucket/prefix,
    az://container/prefix or gs://bucket/prefix)."""
    from stockroom.commands.remote import remote_add as run

    _run(run, name, url, local, endpoint)


@remote.command("list")
@click.option("-v", "--verbose", is_flag=True, help="Also say where each remote is recorded.")
def remote_list(verbose: bool) -> None:
    """List stock remotes; * marks the default."""
    from stockroom.commands.remote import remote_list as run

    _run(run, verbose)


@remote.command("remove")
@click.argument("name")
def remote_remove(name: str) -> None:
    """Forget stock remote NAME."""
    from stockroom.commands.remote import remote_remove as run

    _run(run, name)


@remote.command("set-url")
@click.argument("name")
@click.argument("url")
def remote_set_url(name: str, url: str) -> None:
    """Point stock remote NAME at URL."""
    from stockroom.commands.remote import remote_set_url as run

    _run(run, name, url)


@remote.command("rename")
@click.argument("old")
@click.argument("new")
def remote_rename(old: str, new: str) -> None:
    """Call stock remote OLD NEW."""
    from stockroom.commands.remote import remote_rename as run

    _run(run, old, new)


@remote.command("default")
@click.argument("name")
def remote_default(name: str) -> None:
    """Make NAME this clone's default stock remote."""
    from stockroom.commands.remote import remote_default as run

    _run(run, name)


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@click.option("--all", "all_branches", is_flag=True, help="Push the stock of every local git branch.")
@click.option("--repair", is_flag=True, help="First upload again what the remote lost or has damaged.")
def push(remote_name: str | None, all_branches: bool, repair: bool) -> None:
    """Upload the stock commit head.stock names, its ancestors and their data."""
    from stockroom.commands.push import push as run

    _run(run, remote_name, all_branches, repair)


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", required=False)
def fsck(remote_name: str | None) -> None:
    """Check that what the local branches' stock needs is on REMOTE, sound."""
    from stockroom.commands.fsck import fsck as run

    _run(run, remote_name)


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@click.option("--column", "columns", multiple=True, help="Fetch only this data column (repeatable).")
@click.option("--model", "models", multiple=True, help="Fetch only this model (repeatable).")
@click.option("--tags", is_flag=True, help="Fetch the tags (with --column/--model).")
@click.option("--lazy", is_flag=True, help="Fetch the commit records only; data is fetched when read.")
def pull(
    remote_name: str | None, columns: tuple[str, ...], models: tuple[str, ...], tags: bool, lazy: bool
) -> None:
    """Make the stock state head.stock names readable here."""
    from stockroom.commands.pull import pull as run

    _run(run, remote_name, columns, models, tags, lazy)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON list, for scripts.")
def runs(as_json: bool) -> None:
    """List training runs: steps, checkpoints kept/pruned, last and best monitored value."""
    from stockroom.commands.runs import runs as run

    _run(run, as_json)


@cli.command()
@click.option("--yes", is_flag=True, help="Drop them (without it: only say what would go).")
def gc(yes: bool) -> None:
    """Drop data read on demand that head.stock's commit does not need (the remote keeps it)."""
    from stockroom.commands.gc import gc as run

    _run(run, yes)


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@click.argument("revs", nargs=-1)
def fetch(remote_name: str | None, revs: tuple[str, ...]) -> None:
    """Bring the stock commits git REVs name (default: every local branch)."""
    from stockroom.commands.fetch import fetch as run

    _run(run, remote_name, revs)


# click >= 8.2 raises this (a UsageError) for a bare group; older click exits 0.
_NO_ARGS_IS_HELP: type[click.UsageError] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("_Never", (click.UsageError,), {})
)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``stock`` script."""
    try:
        code = cli.main(args=argv, prog_name="stock", standalone_mode=False)
    except _NO_ARGS_IS_HELP as exc:  # plain `stock`: the help, as click < 8.2 did
        click.echo(exc.format_message())
        sys.exit(0)
    except click.UsageError as exc:
        # A mistyped command line is a user error too: one line, exit 1
        # (click's own format is several lines and exit 2).
        where = exc.ctx.command_path if exc.ctx is not None else "stock"
        click.echo(f"stock: error: {exc.format_message()} (see `{where} --help`)", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"stock: error: {exc.format_message()}", err=True)
        sys.exit(1)
    except click.Abort:
        click.echo("stock: error: aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
