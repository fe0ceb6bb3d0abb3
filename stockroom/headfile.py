"""Reading and writing ``head.stock``: the git-tracked pointer to a Hangar commit.

Light on purpose (no numpy, hangar or GitPython): the git hooks use it on
their fast path.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from stockroom.errors import StockroomError

HEAD_FILE = "head.stock"
HANGAR_DIR = ".hangar"

# Hangar 0.5 commit digests: "a=" and 40 lowercase hex digits.
DIGEST_RE = re.compile(r"a=[0-9a-f]{40}")
# A head.stock is one digest line; anything much bigger is not ours.
_MAX_HEAD_BYTES = 1024
# First line of the block the merge driver leaves in head.stock when a stock
# merge has conflicts (stockroom.commands.merge): never a digest, so neither a
# read nor a commit can take it for one side's stock state.
MERGE_MARKER = "<<<<<<< unfinished stock merge"


def unfinished_merge(where: Path | str) -> StockroomError:
    """The error for a head.stock that holds an unfinished stock merge."""
    return StockroomError(
        f"{where} holds an unfinished stock merge: run `stock status` to see the conflicts, "
        f"`stock merge --ours|--theirs [KEY...]` to resolve them, then `git add {HEAD_FILE}` "
        f"and commit (or `git merge --abort`)"
    )


def parse_head(raw: bytes, where: Path | str = HEAD_FILE) -> str:
    """The digest in ``raw`` (the bytes of a head.stock), '' when empty.

    Raises :class:`StockroomError` naming the file and the fix when the
    content is not a digest (merge-conflict markers, binary data, ...).
    """
    if raw.startswith(MERGE_MARKER.encode()):
        raise unfinished_merge(where)
    if len(raw) > _MAX_HEAD_BYTES:
        raise StockroomError(
            f"{where} is {len(raw)} bytes, not a stock commit digest; "
            f"restore it with `git checkout -- {HEAD_FILE}`"
        )
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise StockroomError(
            f"{where} holds binary data, not a stock commit digest; "
            f"restore it with `git checkout -- {HEAD_FILE}`"
        ) from None
    if text == "" or DIGEST_RE.fullmatch(text):
        return text
    if "<<<<<<<" in text or ">>>>>>>" in text:
        raise StockroomError(
            f"{where} has merge-conflict markers (git merged it as text: run `stock install` to "
            f"register the merge driver); run `stock merge` to merge both sides' stock, or keep one "
            f"side with `git checkout --ours {HEAD_FILE}` (or --theirs), then `git add {HEAD_FILE}`"
        )
    shown = text.splitlines()[0][:60]
    raise StockroomError(
        f"{where} does not hold a stock commit digest (found {shown!r}); "
        f"restore it with `git checkout -- {HEAD_FILE}`"
    )


def read_head(root: Path) -> str:
    """The digest named by ``root/head.stock`` ('' before the first stock commit)."""
    path = root / HEAD_FILE
    try:
        with open(path, "rb") as handle:
            # Capped: head.stock is one line, and a huge file is refused unread.
            raw = handle.read(_MAX_HEAD_BYTES + 1)
            if len(raw) > _MAX_HEAD_BYTES and not raw.startswith(MERGE_MARKER.encode()):
                raise StockroomError(
                    f"{path} is {os.fstat(handle.fileno()).st_size} bytes, not a stock commit "
                    f"digest; restore it with `git checkout -- {HEAD_FILE}`"
                )
    except FileNotFoundError:
        raise StockroomError(
            f"{path} is missing; run `stock init` in {root} or restore it with `git checkout -- {HEAD_FILE}`"
        ) from None
    except OSError as exc:
        raise StockroomError(f"cannot read {path}: {exc.strerror}; check its permissions") from None
    return parse_head(raw, path)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or new file, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=_temp_dir(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, 0o644 & ~_umask())
        except OSError:  # pragma: no cover - exotic file systems
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _temp_dir(path: Path) -> Path:
    """Where to write ``path``'s temporary file: the git-ignored ``.hangar``
    beside it when that is on the same file system (a rename cannot cross
    one), so that a process killed mid-write leaves nothing in `git status`."""
    hidden = path.parent / HANGAR_DIR
    try:
        if hidden.is_dir() and os.stat(hidden).st_dev == os.stat(path.parent).st_dev:
            return hidden
    except OSError:
        pass
    return path.parent


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_head(root: Path, digest: str) -> None:
    """Point ``root/head.stock`` at ``digest`` ('' for none), atomically."""
    if digest and not DIGEST_RE.fullmatch(digest):
        raise ValueError(f"not a stock commit digest: {digest!r}")
    atomic_write(root / HEAD_FILE, (digest + "\n").encode("ascii") if digest else b"")
