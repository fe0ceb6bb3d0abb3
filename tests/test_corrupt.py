"""A corrupt or hostile head.stock, a damaged or foreign .hangar: clear errors.

Each case must give a ``StockroomError`` that names the file at fault and
says what to do, and through the ``stock`` command line one line on stderr
and exit code 1, never a traceback. A damaged store must not be "repaired"
quietly by Hangar re-creating what is missing (an empty staging area would
read as "delete everything").

The repositories are built in another process and copied per test, so each
test is the first in this process to open its store (as a user's process
would be).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import stockroom
from stockroom import StockroomError
from stockroom.cli import cli

DIGEST_MISSING = "a=" + "0123456789abcdef" * 2 + "01234567"

BUILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import stockroom
    root = sys.argv[1]
    stockroom.init_repo(name="T", email="t@example.com", path=root, install_hooks=False)
    with stockroom.StockRoom(root) as stock:
        stock.tag["a"] = 1
        stock.data["x"][0] = np.arange(3)
        print(stock.commit("first"))
    """
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("corrupt") / "template"
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    subprocess.run(("git", "init", "-q"), cwd=root, check=True, env=env)
    done = subprocess.run(
        (sys.executable, "-c", BUILD, str(root)), capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    git = {"cwd": root, "check": True, "env": {**env, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@e",
                                               "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@e"}}
    subprocess.run(("git", "add", "-A"), **git)  # type: ignore[call-overload]
    subprocess.run(("git", "commit", "-q", "-m", "first"), **git)  # type: ignore[call-overload]
    return root, done.stdout.strip()


@pytest.fixture
def repo(template: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "project"
    shutil.copytree(template[0], root, symlinks=True)
    monkeypatch.chdir(root)
    yield root


def stock_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str, *needles: str) -> None:
    lines = stderr.splitlines()
    assert code == 1, stderr
    assert len(lines) == 1 and lines[0].startswith("stock: error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ------------------------------------------------------------------ head.stock
BAD_HEADS = {
    "conflict": (b"<<<<<<< HEAD\na=1\n=======\na=2\n>>>>>>> other\n", "git checkout MERGE_HEAD -- head.stock"),
    "short digest": (b"a=0123456789abcdef\n", "git checkout -- head.stock"),
    "upper-case digest": (("A=" + "AB" * 20 + "\n").encode(), "git checkout -- head.stock"),
    "two digests": ((DIGEST_MISSING + "\n" + DIGEST_MISSING + "\n").encode(), "git checkout -- head.stock"),
    "a path": (b"/etc/passwd\n", "git checkout -- head.stock"),
    "relative path": (b"../.hangar\n", "git checkout -- head.stock"),
    "binary": (bytes(range(256)), "git checkout -- head.stock"),
    "nul bytes": (b"a=\x00\x00\x00\n", "git checkout -- head.stock"),
    "huge": (b"a" * 20_000_000, "git checkout -- head.stock"),
    "missing commit": ((DIGEST_MISSING + "\n").encode(), "fetch the stock data"),
}


@pytest.mark.parametrize("case", sorted(BAD_HEADS))
def test_bad_head_stock_is_refused_clearly(repo: Path, case: str) -> None:
    content, fix = BAD_HEADS[case]
    (repo / "head.stock").write_bytes(content)
    with stockroom.StockRoom() as stock:
        with pytest.raises(StockroomError) as read_error:
            stock.tag["a"]
        with pytest.raises(StockroomError) as write_error:
            stock.tag["b"] = 2
    for error in (read_error, write_error):
        assert "head.stock" in str(error.value) and fix in str(error.value), str(error.value)
    code, out, err = stock_cli("status")
    if case == "conflict":  # a merge's state, shown by `stock status` (issue 14.14), not an error
        assert code == 0 and "head.stock" in out and fix in out and "Traceback" not in err, err
    else:
        assert_one_line_error(code, err, "head.stock", fix)
    assert_one_line_error(*stock_cli("commit", "-m", "x")[::2], "head.stock")
    # Nothing was written anywhere: restoring head.stock gives the old state back.
    subprocess.run(("git", "checkout", "--", "head.stock"), cwd=repo, check=True)
    with stockroom.StockRoom() as stock:
        assert dict(stock.tag) == {"a": 1}
        assert stock._store.staged_changes() == []


def test_huge_head_stock_is_not_read_whole(repo: Path) -> None:
    """The message gives the real size; the file is not loaded (it is capped)."""
    with (repo / "head.stock").open("wb") as handle:
        handle.truncate(3 * 1024**3)  # 3 GiB, sparse
    with pytest.raises(StockroomError, match=r"3221225472 bytes"):
        stockroom.StockRoom().head  # noqa: B018


@pytest.mark.parametrize("content", [b"", b"   \n", b"\n\n"])
def test_empty_head_stock_reads_empty_and_refuses_writes(repo: Path, content: bytes) -> None:
    """Empty is what head.stock holds before the first stock commit (a git
    commit from then is checked out): reads see no stock, writes refuse,
    because the store already has commits to build on."""
    (repo / "head.stock").write_bytes(content)
    with stockroom.StockRoom() as stock:
        assert "a" not in stock.tag and len(stock.data) == 0
        with pytest.raises(KeyError):
            stock.tag["a"]
        with pytest.raises(StockroomError, match="head.stock is empty"):
            stock.tag["b"] = 2
    code, out, err = stock_cli("status")
    assert code == 0 and "head.stock is empty" in out, err
    assert_one_line_error(*stock_cli("commit", "-m", "x")[::2], "head.stock")


def test_head_stock_missing_or_a_directory(repo: Path) -> None:
    (repo / "head.stock").unlink()
    # Issue 14.10: .hangar is there, so the fix is restoring the file, not `stock init`.
    with pytest.raises(StockroomError, match="head.stock is missing"):
        stockroom.StockRoom()
    assert_one_line_error(*stock_cli("status")[::2], "git checkout HEAD -- head.stock")
    (repo / "head.stock").mkdir()
    with pytest.raises(StockroomError, match="head.stock"):
        stockroom.StockRoom(repo)
    assert_one_line_error(*stock_cli("status")[::2])


# -------------------------------------------------------------------- .hangar
def test_missing_hangar_says_so(repo: Path) -> None:
    shutil.rmtree(repo / ".hangar")
    with pytest.raises(StockroomError, match=r"\.hangar is missing") as error:
        stockroom.StockRoom()
    assert "stock pull" in str(error.value)  # issue 14.6: never `stock init` here
    assert_one_line_error(*stock_cli("status")[::2], ".hangar is missing")
    # The documented way out: an empty store, head.stock kept (it names data
    # that a fetch or a copy brings back).
    assert stock_cli("init", "--no-hooks")[0] == 0
    with stockroom.StockRoom() as stock:
        with pytest.raises(StockroomError, match="does not have"):
            stock.tag["a"]


@pytest.mark.parametrize(
    "victim",
    ["data", "store_data", "branch.lmdb", "ref.lmdb", "hash.lmdb", "stage_ref.lmdb", "stage_hash.lmdb",
     "config_user.ini"],
)
def test_partly_deleted_hangar_is_refused_not_rebuilt(repo: Path, victim: str) -> None:
    path = repo / ".hangar" / victim
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(StockroomError, match=r"damaged .*missing " + victim) as error:
        stockroom.StockRoom()
    assert "stock init --overwrite" in str(error.value)
    assert_one_line_error(*stock_cli("status")[::2], "damaged", victim)
    assert_one_line_error(*stock_cli("init", "--no-hooks")[::2], "damaged")
    # Nothing was re-created behind the user's back.
    assert not path.exists()
    # Starting over works, and leaves a usable (empty) store.
    code, out, err = stock_cli("init", "--no-hooks", "--overwrite")
    assert code == 0, err
    with stockroom.StockRoom() as stock:
        assert len(stock.tag) == 0
        stock.tag["new"] = 1
        assert stock.commit("start over")


def test_deleted_data_file_gives_a_clear_error(repo: Path) -> None:
    files = [p for p in (repo / ".hangar" / "data").rglob("*") if p.is_file()]
    assert files
    for path in files:
        path.unlink()
    with stockroom.StockRoom() as stock:
        with pytest.raises(StockroomError, match="damaged"):
            stock.data["x"][0]


@pytest.mark.parametrize("version", ["0.6.0", "1.0.0"])
def test_store_from_a_newer_hangar_is_refused(repo: Path, version: str) -> None:
    set_version(repo, version)
    with pytest.raises(StockroomError, match=f"Hangar {version}, newer") as error:
        stockroom.StockRoom()
    assert "upgrade stockroom" in str(error.value)
    assert_one_line_error(*stock_cli("status")[::2], "newer")


def test_store_from_an_older_incompatible_hangar_is_refused(repo: Path) -> None:
    set_version(repo, "0.4.0")
    with pytest.raises(StockroomError, match="not a readable stock repository"):
        stockroom.StockRoom()
    assert_one_line_error(*stock_cli("status")[::2], "not a readable")


def set_version(repo: Path, version: str) -> None:
    """Rewrite Hangar's version record, as another Hangar would have written it
    (this process has not opened this store: no handle to invalidate)."""
    import lmdb

    from stockroom import store

    assert store.hangar  # hangar is importable only after stockroom.store's patches
    from hangar.constants import LMDB_SETTINGS
    from hangar.records.vcompat import set_repository_software_version

    env = lmdb.open(str(repo / ".hangar" / "branch.lmdb"), **LMDB_SETTINGS)
    try:
        set_repository_software_version(env, version, overwrite=True)
    finally:
        env.close()


def test_unexpected_errors_are_one_line_too(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong, the command line answers in one line (and shows the
    traceback when asked to)."""
    (repo / ".hangar" / "ref.lmdb").write_bytes(b"not an lmdb file" * 1000)
    code, out, err = stock_cli("status")
    assert_one_line_error(code, err)
    monkeypatch.setenv("STOCKROOM_DEBUG", "1")
    result = CliRunner().invoke(cli, ["status"])
    assert result.exception is not None and not isinstance(result.exception, SystemExit)
