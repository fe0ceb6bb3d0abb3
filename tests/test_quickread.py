"""Cold paths without Hangar: committed tag reads from the per-commit cache,
`stock status` with nothing staged, and the checks that replace opening the store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import stockroom
from stockroom import quickread
from tests.conftest import run_git

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("STOCKROOM_")}


def python(code: str, cwd: Path) -> str:
    proc = subprocess.run(
        (sys.executable, "-c", textwrap.dedent(code)),
        cwd=cwd, env=CLEAN_ENV, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_names_agree_with_hangar() -> None:
    from stockroom import store

    assert store.hangar
    from hangar import constants

    assert quickread.HANGAR_FILES == (
        constants.LMDB_BRANCH_NAME,
        constants.LMDB_REF_NAME,
        constants.LMDB_HASH_NAME,
        constants.LMDB_STAGE_REF_NAME,
        constants.LMDB_STAGE_HASH_NAME,
        constants.CONFIG_USER_NAME,
    )
    assert quickread.HANGAR_DIRS == (constants.DIR_DATA, constants.DIR_DATA_STORE)
    assert quickread.VERSION_KEY.decode() == constants.K_VERSION
    assert {k: v for k, v in constants.LMDB_SETTINGS.items() if k in quickread.LMDB_OPTIONS} == quickread.LMDB_OPTIONS
    assert tuple(int(p) for p in store.hangar.__version__.split(".")[:2]) == quickread.HANGAR_RELEASE
    assert quickread.STAGED_MARKER == store.STAGED_MARKER
    from stockroom.storages.tag import COLUMN
    from stockroom.store.labels import TAG_COLUMN

    assert COLUMN == TAG_COLUMN


def test_committed_tag_read_in_a_new_process_imports_no_hangar(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag.update({"lr": 0.25, "name": "run", "ok": True, "n": 2**70})
    stock.commit("tags")
    out = python(
        """
        import sys, stockroom
        s = stockroom.StockRoom()
        print(repr(s.tag["lr"]), repr(s.tag["name"]), s.tag["ok"] is True, s.tag["n"] == 2**70,
              "nope" in s.tag, sorted(s.tag), len(s.tag))
        print("hangar" in sys.modules, "numpy" in sys.modules)
        try:
            s.tag["nope"]
        except KeyError as exc:
            print("KeyError", exc)
        """,
        stock_repo,
    ).splitlines()
    assert out[0] == "0.25 'run' True True False ['lr', 'n', 'name', 'ok'] 4"
    assert out[1] == "False False"
    assert out[2] == "KeyError 'nope'"


def test_status_with_nothing_staged_imports_no_hangar(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["a"] = 1
    stock.commit("one")
    out = python(
        """
        import sys
        from stockroom.cli import main
        try:
            main(["status"])
        except SystemExit:
            pass
        print("hangar" in sys.modules)
        """,
        stock_repo,
    ).splitlines()
    assert out[0] == f"stock head: {stock.head}"
    assert out[1] == "staged writes: none"
    assert out[-1] == "False"


def test_cache_follows_head_and_is_rebuilt_when_missing(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["lr"] = 1
    first = stock.commit("one")
    run_git("add", "head.stock", cwd=stock_repo)
    run_git("commit", "-qm", "one", cwd=stock_repo)
    stock.tag["lr"] = 2
    stock.tag["extra"] = "x"
    second = stock.commit("two")
    cache = stock_repo / ".hangar" / quickread.TEXTS_DIR
    assert {p.name for p in cache.iterdir()} >= {f"{first}.json", f"{second}.json"}
    for path in cache.iterdir():
        path.unlink()  # a commit made elsewhere (pulled, merged): not cached yet
    with stockroom.StockRoom() as other:
        assert other.tag["lr"] == 2 and other.tag["extra"] == "x"
        assert (cache / f"{second}.json").is_file()  # the slow read wrote it
        run_git("checkout", "-q", "HEAD", "--", "head.stock", cwd=stock_repo)  # back to the first commit
        assert other.head == first
        assert other.tag["lr"] == 1 and "extra" not in other.tag
        other.tag["lr"] = 3  # staged: read your writes, not the cache
        assert other.tag["lr"] == 3 and len(other.tag) == 1
    assert stock.tag["lr"] == 1  # another object's staged writes are not this one's


def test_a_closed_stockroom_refuses_committed_tag_reads(stock_repo: Path) -> None:
    with stockroom.StockRoom() as stock:
        stock.tag["a"] = 1
        stock.commit("one")
    fresh = stockroom.StockRoom()
    fresh.close()
    for room in (stock, fresh):
        with pytest.raises(stockroom.StockroomError, match="closed"):
            room.tag["a"]


def test_status_still_lists_staged_writes(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["a"] = 1
    stock.commit("one")
    stock.tag["b"] = 2
    out = python(
        """
        from stockroom.cli import main
        try:
            main(["status"])
        except SystemExit:
            pass
        """,
        stock_repo,
    )
    assert "tags: 1 added" in out
