"""head.stock: parsing, the errors a broken one gives, and atomic writes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import stockroom
from stockroom import StockroomError
from stockroom.headfile import HEAD_FILE, atomic_write, parse_head, read_head, write_head

DIGEST = "a=" + "0123456789abcdef" * 2 + "01234567"
OTHER = "a=" + "f" * 40


@pytest.mark.parametrize(
    "raw, want",
    [
        (b"", ""),
        (b"\n", ""),
        (b"  \n\n", ""),
        (DIGEST.encode(), DIGEST),
        (DIGEST.encode() + b"\n", DIGEST),
        (DIGEST.encode() + b"\r\n", DIGEST),  # core.autocrlf checkouts
        (b"  " + DIGEST.encode() + b"  \n", DIGEST),
    ],
)
def test_valid_contents(raw: bytes, want: str) -> None:
    assert parse_head(raw) == want


CONFLICT = f"<<<<<<< HEAD\n{DIGEST}\n=======\n{OTHER}\n>>>>>>> dev\n".encode()


@pytest.mark.parametrize(
    "raw, problem, fix",
    [
        (CONFLICT, "merge-conflict markers", "git checkout MERGE_HEAD -- head.stock"),
        (b"<<<<<<< HEAD\n" + DIGEST.encode(), "merge-conflict markers", "git checkout HEAD -- head.stock"),
        (b"\x00\xff\xfe binary", "binary data", "git checkout -- head.stock"),
        (b"x" * 5000, "5000 bytes", "git checkout -- head.stock"),
        (b"hello world\n", "'hello world'", "git checkout -- head.stock"),
        (DIGEST.upper().encode(), "does not hold a stock commit digest", "git checkout -- head.stock"),
        (DIGEST[:-1].encode(), "does not hold a stock commit digest", "git checkout -- head.stock"),
        ((DIGEST + "\n" + DIGEST).encode(), "has 2 lines (2 of them digests)", "git checkout"),
        (b"\xef\xbb\xbf" + DIGEST.encode(), "UTF-8 byte-order mark", "git checkout -- head.stock"),
        (b"b=" + b"0" * 40, "does not hold a stock commit digest", "git checkout -- head.stock"),
    ],
    ids=["conflict", "half-conflict", "binary", "huge", "text", "upper", "short", "two", "bom", "prefix"],
)
def test_corrupt_contents_name_the_file_and_the_fix(raw: bytes, problem: str, fix: str) -> None:
    with pytest.raises(StockroomError) as info:
        parse_head(raw, "/repo/head.stock")
    message = str(info.value)
    assert message.startswith("/repo/head.stock ")
    assert problem in message and fix in message


def test_read_head_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(StockroomError, match=r"head\.stock is missing; restore it with `git checkout HEAD -- head\.stock`"):
        read_head(tmp_path)
    (tmp_path / HEAD_FILE).mkdir()  # not a file: reading it fails
    with pytest.raises(StockroomError, match=r"cannot read .*head\.stock"):
        read_head(tmp_path)


def test_stockroom_reads_and_writes_refuse_a_corrupt_head(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["a"] = 1
    stock.commit("one")
    (stock_repo / HEAD_FILE).write_bytes(CONFLICT)
    for attempt in (lambda: stock.tag["a"], lambda: stock.tag.__setitem__("b", 2), lambda: stock.commit("x")):
        with pytest.raises(StockroomError, match=r"head\.stock has merge-conflict markers.*MERGE_HEAD"):
            attempt()
    (stock_repo / HEAD_FILE).unlink()
    with pytest.raises(StockroomError, match=r"head\.stock is missing"):
        stock.tag["a"]


def test_write_head_round_trip_and_format(tmp_path: Path) -> None:
    write_head(tmp_path, DIGEST)
    assert (tmp_path / HEAD_FILE).read_bytes() == DIGEST.encode() + b"\n"
    assert read_head(tmp_path) == DIGEST
    write_head(tmp_path, "")
    assert (tmp_path / HEAD_FILE).read_bytes() == b""
    assert read_head(tmp_path) == ""


@pytest.mark.parametrize("bad", ["a=123", "not a digest", DIGEST + "\n", DIGEST.upper()])
def test_write_head_refuses_non_digests_and_keeps_the_file(tmp_path: Path, bad: str) -> None:
    write_head(tmp_path, DIGEST)
    with pytest.raises(ValueError, match="not a stock commit digest"):
        write_head(tmp_path, bad)
    assert read_head(tmp_path) == DIGEST


def test_write_is_a_replace_with_normal_permissions_and_no_leftovers(tmp_path: Path) -> None:
    write_head(tmp_path, DIGEST)
    before = (tmp_path / HEAD_FILE).stat()
    write_head(tmp_path, OTHER)
    after = (tmp_path / HEAD_FILE).stat()
    assert after.st_ino != before.st_ino  # a new file renamed over the old one
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(after.st_mode) == 0o644 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == [HEAD_FILE]


def test_failed_atomic_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(target, object())  # type: ignore[arg-type]  # the write itself fails
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


READER = """
    import sys
    path, valid = sys.argv[1], set(sys.argv[2:])
    seen, bad = set(), []
    while True:
        try:
            text = open(path, "rb").read().decode()
        except FileNotFoundError:
            bad.append("missing")
            break
        if text == "stop":
            break
        if text not in valid:
            bad.append(repr(text))
        seen.add(text)
    print(len(seen), len(bad), bad[:3])
"""


def test_readers_never_see_a_half_written_head(tmp_path: Path) -> None:
    """A reader process looping over head.stock while it is rewritten sees only
    whole contents: the old digest or the new one, never a mix or nothing."""
    write_head(tmp_path, DIGEST)
    valid = [DIGEST + "\n", OTHER + "\n"]
    reader = subprocess.Popen(
        (sys.executable, "-c", textwrap.dedent(READER), str(tmp_path / HEAD_FILE), *valid),
        stdout=subprocess.PIPE, text=True,
    )
    for i in range(400):
        write_head(tmp_path, OTHER if i % 2 else DIGEST)
    atomic_write(tmp_path / HEAD_FILE, b"stop")
    out, _ = reader.communicate(timeout=60)
    seen, bad, examples = out.split(" ", 2)
    assert bad == "0", examples
    assert int(seen) >= 1


# ---------------------------------------------------------------- issue 14
def _conflicting_merge(repo: Path) -> tuple[str, str]:
    """main and feature both changed the stock: `git merge feature` conflicts in head.stock."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(("git", *args), cwd=repo, capture_output=True, text=True, check=False)

    def stock_commit(value: int) -> str:
        with stockroom.StockRoom(repo) as room:
            room.tag["lr"] = value
            digest = room.commit(f"lr {value}")
        git("commit", "-q", "-am", f"lr {value}")
        return digest

    stock_commit(1)
    git("checkout", "-q", "-b", "feature")
    theirs = stock_commit(2)
    git("checkout", "-q", "main")
    ours = stock_commit(3)
    assert git("merge", "feature").returncode == 1
    return ours, theirs


@pytest.mark.parametrize("added", [False, True], ids=["conflicted", "after-git-add"])
@pytest.mark.parametrize("side", [0, 1], ids=["ours", "theirs"])
def test_conflict_advice_works_before_and_after_git_add(stock_repo: Path, added: bool, side: int) -> None:
    """Issue 14.4: the commands the conflict message names resolve it in both states."""
    import re
    import shlex

    wanted = _conflicting_merge(stock_repo)[side]
    if added:
        subprocess.run(("git", "add", HEAD_FILE), cwd=stock_repo, check=True)
    with pytest.raises(StockroomError) as info:
        read_head(stock_repo)
    commands = re.findall(r"`(git checkout [^`]*)`", str(info.value))
    assert len(commands) == 2
    subprocess.run(shlex.split(commands[side]), cwd=stock_repo, check=True, capture_output=True)
    assert read_head(stock_repo) == wanted
    staged = subprocess.run(
        ("git", "diff", "--cached", "--name-only", "--diff-filter=U"), cwd=stock_repo, capture_output=True, text=True
    )
    assert staged.stdout == ""  # no conflict left: `git commit` can go on
    assert "not in it" in str(info.value)  # says what choosing one side loses
