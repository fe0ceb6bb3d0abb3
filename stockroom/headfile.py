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

# Named in stockroom.layout; kept importable from here (many modules do).
from stockroom.layout import HANGAR_DIR as HANGAR_DIR
from stockroom.layout import HEAD_FILE as HEAD_FILE
from stockroom.layout import MERGE_MARKER as MERGE_MARKER

# Hangar 0.5 commit digests: "a=" and 40 lowercase hex digits.
DIGEST_RE = re.compile(r"a=[0-9a-f]{40}")
# A head.stock is one digest line; anything much bigger is not ours.
_BOM = b"\xef\xbb\xbf"
# How to leave a head.stock merge conflict. Names revisions, not --ours/--theirs:
# these work before and after `git add head.stock` (once the file is added,
# `git checkout --ours` finds no conflict left in the index and changes nothing).
# Keeping one side keeps only that side's stock, which must be said.
CONFLICT_ADVICE = (
    f"keep one side with `git checkout HEAD -- {HEAD_FILE}` (the checked-out branch's) or "
    f"`git checkout MERGE_HEAD -- {HEAD_FILE}` (the merged branch's; in a rebase, REBASE_HEAD is "
    f"your commit's), which stages it. The other side's stock writes (tags, data, models) are "
    f"then not in it: write them again and `stock commit`"
)
_MAX_HEAD_BYTES = 1024


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
    if raw.startswith(_BOM):
        raise StockroomError(
            f"{where} starts with a UTF-8 byte-order mark (an editor added it); a {HEAD_FILE} "
            f"is one plain ASCII digest line: restore it with `git checkout -- {HEAD_FILE}`"
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
            f"register the merge driver); run `stock merge` to merge both sides' stock, or "
            f"{CONFLICT_ADVICE}"
        )
    lines = text.splitlines()
    if len(lines) > 1:
        digests = sum(1 for line in lines if DIGEST_RE.fullmatch(line.strip()))
        raise StockroomError(
            f"{where} has {len(lines)} lines ({digests} of them digests), but a {HEAD_FILE} "
            f"names one stock commit on one line; restore it with `git checkout -- {HEAD_FILE}`"
        )
    shown = lines[0][:60]
    raise StockroomError(
        f"{where} does not hold a stock commit digest (found {shown!r}); "
        f"restore it with `git checkout -- {HEAD_FILE}`"
    )


def main_work_tree(root: str | os.PathLike[str]) -> str | None:
    """For a linked worktree (`git worktree add`), the main work tree's top; else None.

    Read from the files git keeps (``.git`` is a file naming the per-worktree
    git directory, whose ``commondir`` names the shared one), without running git.
    """
    dotgit = os.path.join(root, ".git")
    try:
        with open(dotgit, encoding="utf-8") as handle:
            text = handle.read().strip()
        if not text.startswith("gitdir:"):
            return None
        gdir = os.path.join(root, text[len("gitdir:") :].strip())
        with open(os.path.join(gdir, "commondir"), encoding="utf-8") as handle:
            common = os.path.normpath(os.path.join(gdir, handle.read().strip()))
    except OSError:  # a directory (a normal clone), or not a worktree
        return None
    return os.path.dirname(common) if os.path.basename(common) == ".git" else None


def no_store_advice(root: str | os.PathLike[str]) -> str:
    """How to get the stock data into a work tree that has head.stock but no .hangar
    (a fresh clone, a new `git worktree`). Never `stock init`: a new, empty store
    lacks the commit head.stock names, so every read and write would still fail."""
    main = main_work_tree(root)
    if main is not None and os.path.isdir(os.path.join(main, HANGAR_DIR)):
        copy = (
            f"copy the main work tree's store: `cp -a {_shell_word(os.path.join(main, HANGAR_DIR))} "
            f"{HANGAR_DIR}` (an independent copy: see the hooks docs on worktrees)"
        )
    else:
        copy = f"copy the {HANGAR_DIR} of a clone that has the data here (`cp -a OTHER/{HANGAR_DIR} {HANGAR_DIR}`)"
    return f"with a stock remote, run `stock pull`; or {copy}"


def _shell_word(text: str) -> str:
    return text if re.fullmatch(r"[\w@%+=:,./-]+", text) else "'" + text.replace("'", "'\\''") + "'"


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
            f"{path} is missing; restore it with `git checkout HEAD -- {HEAD_FILE}` "
            f"(in a repository whose git commits never had one: `stock init`)"
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
