from __future__ import annotations

import contextlib
from pathlib import Path

import click

from stockroom.core import ensure_store
from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR
from stockroom.remote import sync


def _columns(columns: tuple[str, ...], models: tuple[str, ...], tags: bool) -> set[str] | None:
    if not (columns or models or tags):
        return None  # everything
    from stockroom.storages import data, model, tag

    wanted = {data.column_name(c) for c in columns} | {model.column_name(m) for m in models}
    if tags:
        wanted.add(tag.COLUMN)
    return wanted


def pull(
    remote_name: str | None, columns: tuple[str, ...], models: tuple[str, ...], tags: bool, lazy: bool = False
) -> int:
    root = sync.stock_root()
    created = ensure_store(root)
    if created:
        click.echo("set up the stock store (.hangar) and the git hooks in this clone")
    head = sync.head_digest(root)
    if not head:
        click.echo("nothing to pull: head.stock names no stock commit yet")
        return 0
    if lazy and (columns or models or tags):
        raise StockroomError("--lazy fetches no data at all; leave out --column/--model/--tags")
    if columns or models or tags:
        _check_names(root, head, remote_name, columns, models)  # a typo fetches nothing
    wanted = _columns(columns, models, tags)
    remote, summary = sync.fetch(root, remote_name, [head], wanted, lazy=lazy)
    if lazy or wanted is None:
        from stockroom.store import samples

        samples.set_lazy_clone(root, lazy)  # what later fetches of the hooks and `stock fetch` do
    if not summary.commits and not summary.samples:
        click.echo(f"stock commit {head} is here already")
        return 0
    if lazy:
        click.echo(
            f"pulled {summary.commits} stock commit(s) from {sync.describe(remote)}, no data: "
            f"{head} is readable, each sample fetched when first read"
        )
        return 0
    click.echo(
        f"pulled {summary.commits} stock commit(s): {summary.data_samples} data sample(s), "
        f"{summary.samples} distinct content(s), "
        f"{summary.nbytes / 1e6:.1f} MB from {sync.describe(remote)}; {head} is readable"
    )
    return 0


def _commit_columns(root: Path, digest: str, remote_name: str | None) -> dict[str, str]:
    """Hangar column -> schema digest of stock commit ``digest``: from
    ``.hangar`` when the commit is here, else from the remote's manifest."""
    from stockroom.store import transfer

    local = transfer._Local(root)
    if local.has_commit(digest):
        ref = local.commit(digest)[2]
    else:
        from stockroom.remote import sync

        _, store = sync.open_remote(root, remote_name)
        ref = transfer.read_manifest(store, digest)["_records"][2]
    return {name: schema for name, (schema, _) in transfer._columns(ref).items()}


def _check_names(
    root: Path, digest: str, remote_name: str | None, columns: tuple[str, ...], models: tuple[str, ...]
) -> None:
    """Refuse ``--column``/``--model`` names stock commit ``digest`` lacks,
    naming those it has; then note that a partial pull runs here."""
    from stockroom.storages import data, model
    from stockroom.store.partial import DATA_PREFIX, MARK_FILE, MODEL_PREFIX, TAG_COLUMN, user_name

    have = _commit_columns(root, digest, remote_name)
    wrong = [f"data column {c!r}" for c in columns if data.column_name(c) not in have]
    wrong += [f"model {m!r}" for m in models if model.column_name(m) not in have]
    if wrong:
        cols = [user_name(h) for h in sorted(have) if h.startswith(DATA_PREFIX)]
        mods = [user_name(h) for h in sorted(have) if h.startswith(MODEL_PREFIX)]
        raise ValueError(
            f"stock commit {digest} has no {' and no '.join(wrong)}; it has data columns: "
            f"{', '.join(cols) or 'none'}; models: {', '.join(mods) or 'none'}"
            f"{'; and tags (--tags)' if TAG_COLUMN in have else ''}. Nothing was fetched"
        )
    with contextlib.suppress(OSError):  # only tells `stock status` to look
        (root / HANGAR_DIR / MARK_FILE).touch()
