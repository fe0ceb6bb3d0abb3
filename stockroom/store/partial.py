"""What a partial ``stock pull`` (``--column``, ``--model``, ``--tags``) left out.

SPEC 6a: a partial pull leaves out exactly what it was told to, and says so.
Three places need the same answers, so they live here:

* ``stock pull --column NAME`` checks NAME against the columns the stock
  commit has before anything is fetched (a typo fetches nothing silently;
  the check itself is in ``commands/pull.py``, these are its names);
* ``stock status`` says which columns, models and tags are left out and the
  command that fetches them;
* reading a left-out sample names its column (or model, or the tags) and
  that command.

A left-out sample is one whose Hangar record says "on the remote" (backend
50) without saying where (a lazy record says where and is read on demand:
not left out). ``stock status`` only looks when a partial pull ran here
(``layout.PARTIAL_FILE``), so a clone that never pulled part of a commit pays nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR
from stockroom.keys import decode_text
from stockroom.layout import PARTIAL_FILE

# The storages' Hangar column layouts (as stockroom.store.labels).
TAG_COLUMN = "tag"
DATA_PREFIX = "data."
MODEL_PREFIX = "model."

MARK_FILE = PARTIAL_FILE  # written by a partial `stock pull`
# Hangar's backend code of a record without data ("on the remote").
_REMOTE = b"50:"


@dataclass
class LeftOut:
    """A Hangar column of a stock commit with samples a partial pull left out."""

    hname: str
    schema: str
    samples: int  # left out
    total: int  # in the commit


def user_name(hname: str) -> str:
    return decode_text(hname.split(".", 1)[1])


def fetch_command(hnames: list[str]) -> str:
    """The ``stock pull`` that fetches the Hangar columns ``hnames``."""
    args = []
    for hname in sorted(set(hnames)):
        if hname == TAG_COLUMN:
            continue
        if hname.startswith(DATA_PREFIX):
            args.append(f"--column {_shell(user_name(hname))}")
        elif hname.startswith(MODEL_PREFIX):
            args.append(f"--model {_shell(user_name(hname))}")
        else:
            return "stock pull"  # a column no option names: only a full pull brings it
    if TAG_COLUMN in hnames:
        args.append("--tags")
    return " ".join(["stock pull", *args])


def _shell(name: str) -> str:
    import shlex

    return shlex.quote(name)


def pulled_partly(root: Path) -> bool:
    """Whether a partial ``stock pull`` ever ran here."""
    return (root / HANGAR_DIR / MARK_FILE).exists()


def left_out(root: Path, digest: str) -> list[LeftOut]:
    """The columns of stock commit ``digest`` (here) with samples left out."""
    from hangar.txnctx import TxnRegister

    from stockroom.store import lazy, transfer

    local = transfer._Local(root)
    out = []
    txn = TxnRegister().begin_reader_txn(local.env.hashenv)
    try:
        for hname, (schema, digests) in sorted(transfer._columns(local.commit(digest)[2]).items()):
            missing = 0
            for d in digests:
                val = txn.get(transfer.hash_data_db_key_from_raw_key(d), default=False)
                record = bytes(val) if val else _REMOTE  # no record at all: not here either
                if record.startswith(_REMOTE) and lazy.parse_placeholder(record[3:].decode()) is None:
                    missing += 1
            if missing:
                out.append(LeftOut(hname, schema, missing, len(digests)))
    finally:
        TxnRegister().abort_reader_txn(local.env.hashenv)
    return out


def column_label(hname: str) -> str:
    from stockroom.store.labels import column_label as label

    return label(hname)


def _what(item: LeftOut) -> str:
    label = column_label(item.hname)
    if item.hname.startswith(DATA_PREFIX):
        part = "" if item.samples == item.total else f"{item.samples} of "
        return f"{label} ({part}{item.total} sample{'s' if item.total != 1 else ''})"
    return label


def status_line(root: Path, digest: str) -> str | None:
    """``stock status``'s line on what a partial pull left out of ``digest``; None when nothing."""
    items = left_out(root, digest)
    if not items:
        return None
    command = fetch_command([i.hname for i in items])
    just = "" if command == "stock pull" else f", `{command}` just these"
    return (
        f"stock data: left out by a partial `stock pull`: {', '.join(_what(i) for i in items)}; "
        f"`stock pull` fetches everything{just}"
    )


class NotFetched(StockroomError, LookupError):
    """A sample whose data is not here: a partial pull left it out, or its
    commit came only as the history of a fetched one.

    ``named`` tells whether the message names the column left out (a
    caller that knows the revision may give better advice when not)."""

    def __init__(self, message: str, named: bool = False) -> None:
        super().__init__(message)
        self.named = named


def read_error(hangar_dir: Path, schema: str) -> NotFetched:
    """The error for reading a sample of schema ``schema`` a partial pull left
    out: names its column (when ``head.stock``'s commit tells which) and the
    command that fetches it. Never fails itself: at worst the general advice."""
    general = (
        "this sample's data was not fetched (a partial `stock pull`); run `stock pull` to fetch "
        "everything, or `stock pull --column NAME` / `--model NAME` / `--tags` for what you read"
    )
    try:
        from stockroom.headfile import read_head

        root = Path(hangar_dir).parent
        items = [i for i in left_out(root, read_head(root)) if i.schema == schema]
    except Exception:  # noqa: BLE001 - an error message must not fail in another way
        return NotFetched(general)
    if not items:
        return NotFetched(general)
    labels = " or ".join(column_label(i.hname) for i in items)
    return NotFetched(
        f"{labels} was left out by a partial `stock pull` (its data is not here); fetch it with "
        f"`{fetch_command([i.hname for i in items])}`, or everything with `stock pull`",
        named=True,
    )
