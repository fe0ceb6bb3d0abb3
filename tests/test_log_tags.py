"""``stock log --tags`` (SPEC section 8): git commits as an experiment table."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import stockroom

STOCK = shutil.which("stock", path=str(Path(sys.executable).parent)) or shutil.which("stock")
pytestmark = pytest.mark.skipif(STOCK is None, reason="the stock console script is not installed")


def run_git(*args: str, cwd: Path) -> str:
    return subprocess.run(("git", *args), cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def stock_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert STOCK is not None
    return subprocess.run((STOCK, *args), cwd=cwd, capture_output=True, text=True, timeout=120)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def user_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("stock: error: ")
    return proc.stderr


def commit_both(stock: stockroom.StockRoom, repo: Path, message: str, **tags: Any) -> str:
    stock.tag.update(tags)
    stock.commit(message)
    run_git("add", "-A", cwd=repo)
    run_git("commit", "-q", "-m", message, cwd=repo)
    return run_git("rev-parse", "HEAD", cwd=repo)


@pytest.fixture
def runs(git_repo: Path) -> dict[str, str]:
    """A commit before stock, three runs on main, one on branch `wide`, and a
    commit whose head.stock names a stock commit this clone lacks."""
    (git_repo / "train.py").write_text("pass\n")
    run_git("add", "-A", cwd=git_repo)
    run_git("commit", "-q", "-m", "code only", cwd=git_repo)
    stockroom.init_repo(install_hooks=False)
    shas = {}
    with stockroom.StockRoom() as stock:
        shas["r1"] = commit_both(stock, git_repo, "run 1", lr=0.1, acc=0.71, opt="adam")
        shas["r2"] = commit_both(stock, git_repo, "run 2", lr=0.01, acc=0.83)
        shas["r3"] = commit_both(stock, git_repo, "run 3", lr=0.001, acc=0.79, note="best?")
        run_git("switch", "-q", "-c", "wide", shas["r2"], cwd=git_repo)
        shas["wide"] = commit_both(stock, git_repo, "wide", width=512, acc=0.9)
        run_git("switch", "-q", "main", cwd=git_repo)
    (git_repo / "head.stock").write_text("a=" + "2" * 40 + "\n")
    run_git("commit", "-q", "-am", "someone else's run", cwd=git_repo)
    shas["foreign"] = run_git("rev-parse", "HEAD", cwd=git_repo)
    return shas


def test_table_text(git_repo: Path, runs: dict[str, str]) -> None:
    lines = ok(stock_cli("log", "--tags", "acc,lr", cwd=git_repo)).splitlines()
    assert lines[0].split() == ["commit", "date", "stock", "acc", "lr", "subject"]
    body = lines[1:6]
    assert [line.split()[0] for line in body] == [runs[k][:10] for k in ("foreign", "r3", "r2", "r1")] + [
        run_git("rev-parse", "HEAD~4", cwd=git_repo)[:10]
    ]
    assert body[0].split()[2:5] == ["(not", "here)", "-"]
    assert body[1].split()[3:5] == ["0.79", "0.001"]
    assert body[4].split()[2] == "(no" and "code only" in body[4]
    assert lines[-1].startswith("1 commit names stock data that is not here: `stock fetch")
    # Columns line up: "acc" values start where the header's "acc" does.
    at = lines[0].index("acc")
    assert body[1][at : at + 4] == "0.79" and body[2][at : at + 4] == "0.83"


def test_table_all_tags_json_and_csv(git_repo: Path, runs: dict[str, str]) -> None:
    doc = json.loads(ok(stock_cli("log", "--tags", "--json", cwd=git_repo)))
    rows = {row["commit"]: row for row in doc}
    assert rows[runs["r3"]]["tags"] == {"acc": 0.79, "lr": 0.001, "note": "best?", "opt": "adam"}
    assert rows[runs["r1"]]["tags"] == {"acc": 0.71, "lr": 0.1, "opt": "adam"}
    assert rows[runs["foreign"]]["stock_state"] == "missing" and rows[runs["foreign"]]["tags"] == {}
    assert rows[runs["r1"]]["stock"].startswith("a=") and rows[runs["r1"]]["subject"] == "run 1"
    assert doc[-1]["stock_state"] == "no stock" and doc[-1]["stock"] is None

    table = list(csv.reader(io.StringIO(ok(stock_cli("log", "--tags", "--csv", cwd=git_repo)))))
    assert table[0] == ["commit", "date", "subject", "stock", "acc", "lr", "note", "opt"]
    r2 = next(r for r in table if r[0] == runs["r2"])
    assert r2[4:] == ["0.83", "0.01", "", "adam"]


def test_branches_and_sort(git_repo: Path, runs: dict[str, str]) -> None:
    doc = json.loads(ok(stock_cli("log", "--tags", "acc", "--branches", "--json", cwd=git_repo)))
    assert {row["branch"]: row["commit"] for row in doc} == {"main": runs["foreign"], "wide": runs["wide"]}
    assert {row["branch"]: row["tags"] for row in doc}["wide"] == {"acc": 0.9}

    doc = json.loads(ok(stock_cli("log", "--tags", "acc", "--sort", "acc", "--json", cwd=git_repo)))
    assert [row["tags"].get("acc") for row in doc][:3] == [0.71, 0.79, 0.83]
    assert all("acc" not in row["tags"] for row in doc[3:])  # rows without it stay last
    doc = json.loads(ok(stock_cli("log", "--tags", "--sort=-acc", "--json", cwd=git_repo)))
    assert [row["tags"].get("acc") for row in doc][:3] == [0.83, 0.79, 0.71]


def test_plot_png_and_html(git_repo: Path, runs: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    image_module = pytest.importorskip("PIL.Image")
    png = tmp_path / "acc.png"
    ok(stock_cli("log", "--tags", "acc", "--plot", str(png), cwd=git_repo))
    with image_module.open(png) as image:
        assert image.format == "PNG" and image.size == (800, 450)
        image.load()  # the whole file decodes
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 10  # something was drawn, not a blank canvas
    page = tmp_path / "acc.html"
    ok(stock_cli("log", "--tags", "acc,lr", "--plot", str(page), cwd=git_repo))
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "</html>" in text


def test_user_errors(git_repo: Path, runs: dict[str, str], tmp_path: Path) -> None:
    assert "go with --tags" in user_error(stock_cli("log", "--json", cwd=git_repo))
    assert "numeric tags" in user_error(
        stock_cli("log", "--tags", "opt", "--plot", str(tmp_path / "x.png"), cwd=git_repo)
    )
    assert ".png or .html" in user_error(stock_cli("log", "--tags", "--plot", "x.jpg", cwd=git_repo))
    # Plain `stock log` is unchanged by all this.
    assert ok(stock_cli("log", cwd=git_repo)).splitlines()[1].startswith(runs["r3"][:7])


def test_tag_values_cache(git_repo: Path, runs: dict[str, str]) -> None:
    cache = git_repo / ".hangar" / "stockroom-text-cache.json"
    first = ok(stock_cli("log", "--tags", "--json", cwd=git_repo))
    assert cache.is_file()
    entries = json.loads(cache.read_text())
    assert "s:best?" in entries.values()  # tag text by its digest
    assert ok(stock_cli("log", "--tags", "--json", cwd=git_repo)) == first
    cache.write_text("{not json")  # a damaged cache is rebuilt, never trusted
    assert ok(stock_cli("log", "--tags", "--json", cwd=git_repo)) == first
    assert json.loads(cache.read_text()) == entries


# ---------------------------------------------------------------- issue 21, defect 21
def test_floats_shortened_and_dates_with_time(git_repo: Path, runs: dict[str, str]) -> None:
    run_git("switch", "-q", "-c", "more", runs["r3"], cwd=git_repo)  # main's tip names foreign stock
    with stockroom.StockRoom() as stock:
        commit_both(stock, git_repo, "long float", loss=1.6942708253860475, big=123456.7, tiny=1.234567e-7)
    lines = ok(stock_cli("log", "--tags", "loss,big,tiny,acc", "-n", "2", cwd=git_repo)).splitlines()
    cells = lines[1].split()
    assert cells[3:7] == ["1.6943", "123457", "1.2346e-07", "0.79"]  # %.5g, integer part kept
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", cells[1])  # the minute, one token
    doc = json.loads(ok(stock_cli("log", "--tags", "loss", "-n", "1", "--json", cwd=git_repo)))
    assert doc[0]["tags"]["loss"] == 1.6942708253860475  # JSON keeps every bit
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d:\d\d|Z)", doc[0]["date"])
    table = list(
        csv.reader(io.StringIO(ok(stock_cli("log", "--tags", "loss", "--csv", "-n", "1", cwd=git_repo))))
    )
    assert table[1][-1] == "1.6942708253860475" and "T" in table[1][1]


def test_branches_include_remote_tracking(git_repo: Path, runs: dict[str, str], tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    run_git("init", "-q", "--bare", str(origin), cwd=git_repo)
    run_git("remote", "add", "origin", str(origin), cwd=git_repo)
    run_git("push", "-q", "origin", f"{runs['r3']}:refs/heads/main", "wide:refs/heads/teammate", cwd=git_repo)
    run_git("fetch", "-q", "origin", cwd=git_repo)
    run_git("remote", "set-head", "origin", "main", cwd=git_repo)  # origin/HEAD: an alias, not a run
    doc = json.loads(ok(stock_cli("log", "--tags", "acc", "--branches", "--json", cwd=git_repo)))
    got = {row["branch"]: (row["commit"], row["tags"]) for row in doc}
    assert got == {
        "main": (runs["foreign"], {}),
        "wide": (runs["wide"], {"acc": 0.9}),
        "origin/main": (runs["r3"], {"acc": 0.79}),
        "origin/teammate": (runs["wide"], {"acc": 0.9}),
    }
    text = ok(stock_cli("log", "--tags", "acc", "--branches", cwd=git_repo))
    assert "origin/teammate" in text and "origin/HEAD" not in text


def test_plot_branches_one_series_per_branch(git_repo: Path, runs: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from stockroom.commands import log_tags

    tips = log_tags._commits(git_repo, 20, True, "text")
    series = log_tags.branch_series(git_repo, tips, ["acc"], 20)
    by_label = {s.label: s for s in series}
    assert set(by_label) == {"main", "wide"}
    # Each line is its branch's own history, oldest first: never a point of the other branch.
    # (nan: the commit before stock, and the foreign commit whose stock is not here)
    shown = {label: [None if y != y else y for y in s.ys] for label, s in by_label.items()}
    assert shown["wide"] == [None, 0.71, 0.83, 0.9]
    assert shown["main"] == [None, 0.71, 0.83, 0.79, None]
    assert by_label["wide"].xs == sorted(by_label["wide"].xs)
    two = log_tags.branch_series(git_repo, tips, ["acc", "lr"], 20)
    assert {s.label for s in two} == {"main: acc", "main: lr", "wide: acc", "wide: lr"}
    png = tmp_path / "branches.png"
    ok(stock_cli("log", "--tags", "acc", "--branches", "--plot", str(png), cwd=git_repo))
    assert png.stat().st_size > 1000


def test_unknown_sort_and_tag_keys_refused(git_repo: Path, runs: dict[str, str]) -> None:
    err = user_error(stock_cli("log", "--tags", "acc", "--sort", "nosuch", cwd=git_repo))
    assert "--sort: no tag 'nosuch'" in err and "acc, lr, note, opt" in err
    err = user_error(stock_cli("log", "--tags", "--sort=-nosuch", cwd=git_repo))
    assert "'nosuch'" in err
    err = user_error(stock_cli("log", "--tags", "acc,nosuch", cwd=git_repo))
    assert "--tags: no tag 'nosuch'" in err and "acc, lr, note, opt" in err
    err = user_error(stock_cli("log", "--tags", "nosuch", "--branches", cwd=git_repo))
    assert "branch tips" in err and "acc, lr, opt, width" in err
    # Known keys still work, in either direction.
    ok(stock_cli("log", "--tags", "acc", "--sort", "-lr", cwd=git_repo))
