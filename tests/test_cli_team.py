"""Issue 21: what the command line tells a teammate (real clones, a bare git
origin and a directory stock remote): partial pulls that say what they left
out, a missing stock commit that names `stock pull`, sample counts that
count samples, and tags carried over from the parent commit made visible."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom.store import transfer
from tests.conftest import run_git
from tests.test_remote import clone, make_project, stock_cli


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, Path, str]:
    """Alice's project (50 images, 50 labels of 10 values, a model, 2 tags),
    a directory stock remote and a bare git origin (nothing pushed yet)."""
    remote = tmp_path / "stock-remote"
    remote.mkdir()
    alice = tmp_path / "alice"
    digest = make_project(alice, remote)
    bare = tmp_path / "code.git"
    run_git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    run_git("remote", "add", "origin", str(bare), cwd=alice)
    return alice, bare, digest


def publish(alice: Path) -> str:
    """`stock push` (its output), then `git push` (whose hook finds nothing new)."""
    out = ok(stock_cli("push", cwd=alice))
    run_git("push", "-q", "origin", "HEAD:main", cwd=alice)
    return out


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def user_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


# ------------------------------------------------------------- defect 22
def test_push_and_pull_count_samples_not_distinct_contents(
    shared: tuple[Path, Path, str], tmp_path: Path
) -> None:
    alice, bare, _ = shared
    out = publish(alice)
    # 50 images + 50 labels are 100 samples, though the labels hold 10 distinct values.
    assert re.search(r"pushed 1 stock commit\(s\): 100 data sample\(s\), \d+ distinct content\(s\)", out), out
    distinct = int(re.search(r"(\d+) distinct", out).group(1))  # type: ignore[union-attr]
    assert distinct < 100  # the old "sample(s)" number: contents, models and tags included
    bob = clone(bare, tmp_path / "bob")
    out = ok(stock_cli("pull", cwd=bob))
    assert "pulled 1 stock commit(s): 100 data sample(s)" in out and f"{distinct} distinct content(s)" in out
    # A second commit: one new image, one label set to a value the remote has.
    with stockroom.StockRoom(alice) as stock:
        stock.data["img"][50] = np.full((4, 4), 200, dtype=np.uint8)
        stock.data["label"][50] = np.array(3, dtype=np.int64)  # 3: already on the remote
        stock.commit("more")
    out = ok(stock_cli("push", cwd=alice))
    assert "1 data sample(s)" in out  # only the image's content was sent


# ------------------------------------------------------------- defect 15
def test_pull_of_an_unknown_column_or_model_is_refused(
    shared: tuple[Path, Path, str], tmp_path: Path
) -> None:
    alice, bare, digest = shared
    publish(alice)
    bob = clone(bare, tmp_path / "bob")
    err = user_error(stock_cli("pull", "--column", "nosuch", cwd=bob))
    assert "has no data column 'nosuch'" in err and "data columns: img, label" in err
    assert "models: net" in err and "tags (--tags)" in err and "Nothing was fetched" in err
    assert not transfer._Local(bob).has_commit(digest)  # the commit record is not here either
    err = user_error(stock_cli("pull", "--column", "img", "--model", "nosuch", cwd=bob))
    assert "has no model 'nosuch'" in err and "models: net" in err
    # The same check once the commit record is here (read locally, no remote needed).
    ok(stock_cli("pull", "--column", "img", cwd=bob))
    err = user_error(stock_cli("pull", "--model", "nett", cwd=bob))
    assert "has no model 'nett'" in err and "models: net" in err


def test_status_and_reads_say_what_a_partial_pull_left_out(
    shared: tuple[Path, Path, str], tmp_path: Path
) -> None:
    alice, bare, _ = shared
    publish(alice)
    bob = clone(bare, tmp_path / "bob")
    ok(stock_cli("pull", "--column", "label", cwd=bob))
    status = ok(stock_cli("status", cwd=bob))
    line = next(x for x in status.splitlines() if x.startswith("stock data:"))
    assert "left out by a partial `stock pull`: data column 'img' (50 samples), model 'net', tags" in line
    assert "`stock pull --column img --model net --tags` just these" in line
    with stockroom.StockRoom(bob) as stock:
        assert int(stock.data["label"][3]) == 3
        with pytest.raises(stockroom.StockroomError) as err:
            stock.data["img"][3]
        assert "data column 'img' was left out by a partial `stock pull`" in str(err.value)
        assert "`stock pull --column img`" in str(err.value)
        with pytest.raises(stockroom.StockroomError, match=r"model 'net' .*`stock pull --model net`"):
            stock.model["net"]
        with pytest.raises(stockroom.StockroomError, match=r"tags .*`stock pull --tags`"):
            stock.tag["lr"]
    # Following the advice fetches exactly that, and status stops saying it.
    ok(stock_cli("pull", "--column", "img", "--model", "net", "--tags", cwd=bob))
    assert "left out" not in ok(stock_cli("status", cwd=bob))
    with stockroom.StockRoom(bob) as stock:
        assert stock.data["img"][3][0, 0] == 3 and stock.tag["lr"] == 0.25


def test_status_of_a_full_clone_does_not_mention_left_out_data(
    shared: tuple[Path, Path, str], tmp_path: Path
) -> None:
    alice, bare, _ = shared
    publish(alice)
    bob = clone(bare, tmp_path / "bob")
    ok(stock_cli("pull", cwd=bob))
    assert "stock data" not in ok(stock_cli("status", cwd=bob))
    assert not (bob / ".hangar" / "stockroom-partial").exists()


# ------------------------------------------------------------- defect 16
def test_status_names_stock_pull_when_the_stock_commit_is_not_here(
    shared: tuple[Path, Path, str], tmp_path: Path
) -> None:
    alice, bare, _ = shared
    publish(alice)
    bob = clone(bare, tmp_path / "bob")
    ok(stock_cli("pull", cwd=bob))
    run_git("config", "stock.autofetch", "false", cwd=bob)
    with stockroom.StockRoom(alice) as stock:
        stock.tag["lr"] = 0.5
        second = stock.commit("second")
    run_git("commit", "-q", "-am", "second", cwd=alice)
    run_git("push", "-q", "origin", "HEAD:main", cwd=alice)  # the pre-push hook pushes the stock
    run_git("pull", "-q", "--no-rebase", cwd=bob)
    err = user_error(stock_cli("status", cwd=bob))
    assert f"names stock commit {second}, which .hangar does not have" in err
    assert "with `stock pull` (from stock remote 'origin')" in err
    ok(stock_cli("pull", cwd=bob))  # the advice works as written
    assert ok(stock_cli("status", cwd=bob)).splitlines()[0] == f"stock head: {second}"


# ------------------------------------------------------------- defect 20
def run_commit(repo: Path, message: str, **tags: object) -> str:
    with stockroom.StockRoom(repo) as stock:
        stock.tag.update(tags)  # type: ignore[arg-type]
        digest = stock.commit(message)
    run_git("add", "-A", cwd=repo)
    run_git("commit", "-q", "-m", message, cwd=repo)
    return digest


def test_status_and_diff_show_which_tags_were_carried_over(stock_repo: Path) -> None:
    torch_run = run_commit(stock_repo, "torch run", lr=0.1, val_acc=0.93, train_loss=0.21)
    keras_run = run_commit(stock_repo, "keras run", val_loss=0.4, epoch=12)
    status = ok(stock_cli("status", cwd=stock_repo)).splitlines()
    assert status[1] == (
        f"tags: 2 set in this stock commit (epoch, val_loss); 3 carried over unchanged from its "
        f"parent {torch_run} (lr, train_loss, val_acc)"
    )
    # The same answer without the tag caches (from the commit records, through Hangar).
    cache = stock_repo / ".hangar" / "stockroom-tags"
    assert (cache / f"{keras_run}.json").is_file()
    for path in cache.iterdir():
        path.unlink()
    assert ok(stock_cli("status", cwd=stock_repo)).splitlines()[1] == status[1]
    # The first commit set all its tags: nothing carried over, no line.
    run_git("checkout", "-q", "HEAD~1", cwd=stock_repo)
    assert not any(x.startswith("tags:") for x in ok(stock_cli("status", cwd=stock_repo)).splitlines())
    run_git("checkout", "-q", "-", cwd=stock_repo)

    # Staged writes: what was written since the commit, and what the next one would carry over.
    with stockroom.StockRoom(stock_repo) as stock:
        stock.tag["val_acc"] = 0.88
        del stock.tag["lr"]
    staged = [x for x in ok(stock_cli("status", cwd=stock_repo)).splitlines() if x.startswith("staged tags:")]
    assert staged == [
        f"staged tags: 1 written since stock commit {keras_run} (val_acc); 1 deleted (lr); the next "
        f"commit carries over 3 unchanged (epoch, train_loss, val_loss): `del stock.tag[KEY]` drops "
        f"one this run did not set"
    ]

    # stock diff says which tags the newer side inherited, not only what changed.
    text = ok(stock_cli("diff", "HEAD~1", "HEAD", cwd=stock_repo))
    assert "  3 unchanged, carried over: lr, train_loss, val_acc (`--all` shows their values)" in text
    doc = json.loads(ok(stock_cli("diff", "--json", "HEAD~1", "HEAD", cwd=stock_repo)))
    assert doc["tags_unchanged"] == ["lr", "train_loss", "val_acc"]
    assert {t["key"] for t in doc["tags"]} == {"epoch", "val_loss"}
    md = ok(stock_cli("diff", "--md", "HEAD~1", "HEAD", cwd=stock_repo))
    assert "3 unchanged, carried over: lr, train_loss, val_acc" in md
    # --all lists them as rows instead of the line.
    every = ok(stock_cli("diff", "--all", "HEAD~1", "HEAD", cwd=stock_repo))
    assert "carried over" not in every and re.search(r"val_acc\s+0\.93\s+0\.93\s+unchanged", every)
    # Against the work tree: the staged writes are changes, the rest carried over.
    work = ok(stock_cli("diff", cwd=stock_repo))
    assert "3 unchanged, carried over: epoch, train_loss, val_loss" in work


def test_parent_separator_is_hangars() -> None:
    from hangar.constants import SEP_CMT

    from stockroom import quickread

    assert quickread.PARENT_SEP == SEP_CMT.encode()


# ------------------------------------------------------------- defect 13
def test_advice_for_an_older_stock_commit_works_as_written(
    shared: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """A commit behind a branch tip: plain `stock fetch` (branch tips) would
    not bring it, so the messages name the digest, and that command works."""
    alice, bare, first = shared
    with stockroom.StockRoom(alice) as stock:
        stock.tag["lr"] = 0.5
        stock.commit("second")
    run_git("commit", "-q", "-am", "second", cwd=alice)
    publish(alice)
    bob = clone(bare, tmp_path / "bob")
    run_git("config", "stock.autofetch", "false", cwd=bob)
    ok(stock_cli("fetch", cwd=bob))  # the tip only
    diff_err = user_error(stock_cli("diff", "HEAD~1", "HEAD", cwd=bob))
    assert f"bring it with `stock fetch {first}" in diff_err
    log_out = ok(stock_cli("log", "--tags", cwd=bob))  # a row that says so, not an error
    assert "(not fetched)" in log_out and f"`stock fetch {first}` brings it" in log_out
    ok(stock_cli("fetch", first, cwd=bob))  # the advice, as written
    log_out = ok(stock_cli("log", "--tags", cwd=bob))
    assert "not here" not in log_out and "(not fetched)" not in log_out
    assert "lr" in ok(stock_cli("diff", "HEAD~1", "HEAD", cwd=bob))
