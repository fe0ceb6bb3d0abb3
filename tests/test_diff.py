"""``stock diff`` (SPEC section 8): tags, data samples and model layers
between git revisions and the work tree, run as the real console script."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import stockroom
from stockroom import compare
from stockroom.store.view import Snapshot, snapshot_at

STOCK = shutil.which("stock", path=str(Path(sys.executable).parent)) or shutil.which("stock")
pytestmark = pytest.mark.skipif(STOCK is None, reason="the stock console script is not installed")


def run_git(*args: str, cwd: Path) -> str:
    return subprocess.run(("git", *args), cwd=cwd, check=True, capture_output=True, text=True).stdout


def stock_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert STOCK is not None
    return subprocess.run((STOCK, *args), cwd=cwd, capture_output=True, text=True, timeout=120)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def diff_json(repo: Path, *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ok(stock_cli("diff", "--json", *args, cwd=repo)))
    return doc


def commit_both(stock: stockroom.StockRoom, repo: Path, message: str) -> None:
    stock.commit(message)
    run_git("add", "-A", cwd=repo)
    run_git("commit", "-q", "-m", message, cwd=repo)


def by(items: list[dict[str, Any]], field: str) -> dict[str, dict[str, Any]]:
    return {item[field]: item for item in items}


# ------------------------------------------------------------------ tags
def test_tags_added_removed_changed_and_type_changed(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag.update({"lr": 0.001, "acc": 0.8, "opt": "adam", "epochs": 10, "seed": 1, "same": "x"})
    commit_both(stock, stock_repo, "first")
    stock.tag.update({"lr": 0.0003, "acc": 0.86, "opt": "sgd", "epochs": 10.0, "fresh": True})
    del stock.tag["seed"]
    commit_both(stock, stock_repo, "second")

    doc = diff_json(stock_repo, "HEAD~1", "HEAD")
    assert doc["changed"] is True
    tags = by(doc["tags"], "key")
    assert set(tags) == {"lr", "acc", "opt", "epochs", "seed", "fresh"}  # `same` is unchanged: left out
    assert tags["lr"]["status"] == "changed" and (tags["lr"]["old"], tags["lr"]["new"]) == (0.001, 0.0003)
    assert tags["lr"]["abs_change"] == pytest.approx(0.0003 - 0.001)
    assert tags["lr"]["rel_change"] == pytest.approx(-0.7)
    assert tags["opt"] == {
        **tags["opt"],
        "status": "changed",
        "old": "adam",
        "new": "sgd",
        "abs_change": None,
    }
    assert tags["epochs"]["status"] == "type changed"
    assert (tags["epochs"]["old_type"], tags["epochs"]["new_type"]) == ("int", "float")
    assert tags["seed"]["status"] == "removed" and tags["seed"]["new"] is None
    assert tags["fresh"]["status"] == "added" and tags["fresh"]["new"] is True
    assert doc["data"] == [] and doc["models"] == []

    every = by(diff_json(stock_repo, "HEAD~1", "HEAD", "--all")["tags"], "key")
    assert every["same"]["status"] == "unchanged" and every["same"]["old"] == every["same"]["new"] == "x"

    text = ok(stock_cli("diff", "HEAD~1", "HEAD", cwd=stock_repo))
    lines = text.splitlines()
    assert lines[0].startswith("stock diff HEAD~1 (") and " -> HEAD (" in lines[0]
    row = next(line for line in lines if line.split()[:1] == ["lr"])
    assert row.split()[1:] == ["0.001", "0.0003", "-0.0007", "(-70.00%)"]
    # Aligned: the "new" column starts at the same offset on every tag row.
    header = lines[lines.index("tags") + 1]
    offset = header.index("new")
    for line in lines[lines.index("tags") + 2 : lines.index("tags") + 8]:
        assert line[offset - 1] == " " and line[offset] != " ", line
    assert "\x1b[" not in text  # no colour when not on a terminal
    assert all(line == line.rstrip() for line in lines)


def test_non_finite_tags_in_json(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["loss"] = 1.0
    commit_both(stock, stock_repo, "one")
    stock.tag["loss"] = math.inf
    doc = diff_json(stock_repo)  # strict JSON: no bare Infinity
    assert by(doc["tags"], "key")["loss"]["new"] == "inf"


# ------------------------------------------------------------------ data
def test_data_samples_and_columns(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.data["img"].update({i: np.full((2, 2), i, np.uint8) for i in range(5)})
    stock.data["old"][0] = np.zeros(3)
    stock.data["shape"]["a"] = np.zeros(3, np.float32)
    commit_both(stock, stock_repo, "data v1")
    stock.data["img"][1] = np.full((2, 2), 100, np.uint8)  # changed
    stock.data["img"][3] = np.full((2, 2), 3, np.uint8)  # rewritten, same content: unchanged
    del stock.data["img"][4]
    stock.data["img"].update({"new-key": np.ones((2, 2), np.uint8), 7: np.ones((2, 2), np.uint8)})
    del stock.data["old"]
    stock.data["labels"].update({0: np.int64(1), 1: np.int64(0)})
    stock.data["shape"] = {"a": np.zeros((2, 2), np.int16)}
    commit_both(stock, stock_repo, "data v2")

    doc = diff_json(stock_repo, "HEAD~1", "HEAD", "--samples")
    data = by(doc["data"], "column")
    img = data["img"]
    assert img["status"] == "changed"
    assert (
        img["samples_added"],
        img["samples_removed"],
        img["samples_changed"],
        img["samples_unchanged"],
    ) == (
        2,
        1,
        1,
        3,
    )
    assert img["added"] == [7, "new-key"] and img["removed"] == [4] and img["changed"] == [1]
    assert data["old"]["status"] == "removed" and data["old"]["samples_removed"] == 1
    assert data["old"]["old_schema"] == {"dtype": "float64", "shape": [3]}
    assert data["labels"]["status"] == "added" and data["labels"]["added"] == [0, 1]
    assert data["labels"]["new_schema"] == {"dtype": "int64", "shape": []}
    assert data["shape"]["status"] == "schema changed"
    assert data["shape"]["old_schema"]["dtype"] == "float32" and data["shape"]["new_schema"]["shape"] == [
        2,
        2,
    ]

    text = ok(stock_cli("diff", "HEAD~1", "HEAD", "--samples", cwd=stock_repo))
    assert "  img: added 7, 'new-key'" in text and "  img: removed 4" in text
    assert "column added (int64 ())" in text and "column removed (float64 (3,))" in text
    assert "schema float32 (3,) -> int16 (2, 2)" in text

    md = ok(stock_cli("diff", "HEAD~1", "HEAD", "--samples", "--md", cwd=stock_repo))
    assert "| img | 2 | 1 | 1 | 3 | changed |" in md and "- `img` removed: 4" in md

    rows = list(
        csv.DictReader(
            io.StringIO(ok(stock_cli("diff", "HEAD~1", "HEAD", "--csv", "--samples", cwd=stock_repo)))
        )
    )
    img_row = next(r for r in rows if r["kind"] == "data" and r["name"] == "img")
    assert (img_row["added"], img_row["removed"], img_row["changed"]) == ("2", "1", "1")
    assert {r["item"] for r in rows if r["kind"] == "sample" and r["name"] == "img"} == {
        "7",
        "new-key",
        "4",
        "1",
    }


# ------------------------------------------------------------------ work tree
def test_default_is_head_against_the_work_tree_with_staged_writes(
    stock: stockroom.StockRoom, stock_repo: Path
) -> None:
    stock.tag["lr"] = 0.1
    commit_both(stock, stock_repo, "one")
    out = ok(stock_cli("diff", cwd=stock_repo))
    assert out.startswith("no stock changes: HEAD (") and out.count("\n") == 1
    assert ok(stock_cli("diff", "--md", cwd=stock_repo)).startswith("No stock changes")
    stock.tag["lr"] = 0.2  # staged, not committed
    stock.data["x"][0] = np.zeros(2)
    doc = diff_json(stock_repo)
    assert doc["to"]["rev"] is None and doc["to"]["staged"] is True
    assert by(doc["tags"], "key")["lr"]["new"] == 0.2
    assert by(doc["data"], "column")["x"]["status"] == "added"
    md = ok(stock_cli("diff", "--md", cwd=stock_repo))
    assert "| lr | 0.1 | 0.2 | +0.1 (+100.00%) |" in md
    # The live object keeps its staged writes and can still commit them.
    assert stock.commit("two")


def test_revision_before_stock_and_missing_stock_commit(git_repo: Path) -> None:
    (git_repo / "a.txt").write_text("a")
    run_git("add", "-A", cwd=git_repo)
    run_git("commit", "-q", "-m", "before stock", cwd=git_repo)
    stockroom.init_repo(install_hooks=False)
    with stockroom.StockRoom() as stock:
        stock.tag["a"] = 1
        commit_both(stock, git_repo, "first stock")
    doc = diff_json(git_repo, "HEAD~1", "HEAD")
    assert doc["from"]["stock"] == "" and by(doc["tags"], "key")["a"]["status"] == "added"
    proc = stock_cli("diff", "nope", cwd=git_repo)
    assert proc.returncode == 1 and proc.stderr.startswith("stock: error: unknown git revision 'nope'")
    (git_repo / "head.stock").write_text("a=" + "1" * 40 + "\n")
    run_git("commit", "-q", "-am", "stock from elsewhere", cwd=git_repo)
    proc = stock_cli("diff", "HEAD~1", "HEAD", cwd=git_repo)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1
    assert "stock fetch" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ models
def test_torch_layers_changed_added_reshaped_bfloat16(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    before = {
        "big.weight": torch.randn(700, 800, generator=gen),  # several stored pieces
        "big.bias": torch.randn(700, generator=gen),
        "fc.weight": torch.randn(10, 20, generator=gen),
        "fc.bias": torch.zeros(10),
        "emb": torch.randn(64, 32, generator=gen).to(torch.bfloat16),
        "steps": torch.tensor(5),
        "gone": torch.ones(3),
    }
    stock.model["net"] = before
    stock.model["same"] = {"w": torch.ones(4)}
    commit_both(stock, stock_repo, "v1")
    after = dict(before)
    after["big.weight"] = before["big.weight"].clone()
    after["big.weight"][0, :5] += 0.5  # one piece of a large layer changes
    after["fc.bias"] = torch.full((10,), 0.25)  # small, packed: old norm 0
    after["emb"] = (before["emb"].float() * 1.1).to(torch.bfloat16)
    after["fc.weight"] = torch.randn(10, 30, generator=gen)  # reshaped
    after["extra"] = torch.ones(2, dtype=torch.float64)
    del after["gone"]
    stock.model["net"] = after
    commit_both(stock, stock_repo, "v2")

    doc = diff_json(stock_repo, "HEAD~1", "HEAD")
    models = by(doc["models"], "model")
    assert set(models) == {"net"}  # `same` did not change
    layers = by(models["net"]["layers"], "name")
    assert set(layers) == {"big.weight", "fc.bias", "emb", "fc.weight", "extra", "gone"}
    for name in ("big.weight", "emb"):
        old, new = before[name].double(), after[name].double()
        assert layers[name]["status"] == "changed"
        assert layers[name]["rel_l2"] == pytest.approx(float((new - old).norm() / old.norm()), rel=1e-9)
        assert layers[name]["max_abs_diff"] == pytest.approx(float((new - old).abs().max()), rel=1e-9)
    assert layers["emb"]["old_dtype"] == "bfloat16"
    assert layers["fc.bias"]["rel_l2"] is None and layers["fc.bias"]["max_abs_diff"] == 0.25
    assert layers["fc.weight"]["status"] == "reshaped"
    assert (layers["fc.weight"]["old_shape"], layers["fc.weight"]["new_shape"]) == ([10, 20], [10, 30])
    assert layers["extra"] == {**layers["extra"], "status": "added", "new_dtype": "float64", "new_shape": [2]}
    assert layers["gone"]["status"] == "removed"

    every = by(
        by(diff_json(stock_repo, "HEAD~1", "HEAD", "--all")["models"], "model")["net"]["layers"], "name"
    )
    assert every["steps"]["status"] == every["big.bias"]["status"] == "unchanged"

    text = ok(stock_cli("diff", "HEAD~1", "HEAD", cwd=stock_repo))
    assert "net: 3 changed, 1 reshaped, 1 added, 1 removed, 2 layers unchanged" in text
    assert "fc.weight   reshaped  (10, 20) float32" in text


def test_unchanged_units_are_not_read(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    torch = pytest.importorskip("torch")
    state = {f"layer{i}": torch.randn(600, 600) for i in range(6)}  # 1.44 MB each: one piece
    stock.model["net"] = state
    commit_both(stock, stock_repo, "v1")
    first = stock.head
    state["layer2"] = state["layer2"] + 1
    stock.model["net"] = state
    commit_both(stock, stock_repo, "v2")

    reads: list[tuple[str, Any]] = []

    class Counting(Snapshot):
        def read(self, column: str, key: Any) -> Any:
            reads.append((self.digest, key))
            return super().read(column, key)

    store = stock._store
    with snapshot_at(store, first, "v1") as a, snapshot_at(store, stock.head, "v2") as b:
        result = compare.compare(Counting(**vars(a)), Counting(**vars(b)))
    changed = [layer.name for layer in result.models[0].layers if layer.status == "changed"]
    assert changed == ["layer2"]
    units = [key for _, key in reads if not str(key).startswith("meta.")]
    assert len(units) == 2  # the old and the new piece of layer2, nothing else


def test_keras_model(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    stock.model.save_weights("k", model)
    commit_both(stock, stock_repo, "keras v1")
    kernel, bias = model.layers[1].get_weights()
    model.layers[1].set_weights([kernel * 2.0, bias])
    stock.model.save_weights("k", model)
    commit_both(stock, stock_repo, "keras v2")
    layers = by(diff_json(stock_repo, "HEAD~1", "HEAD")["models"][0]["layers"], "name")
    (name,) = layers
    assert name.endswith("kernel") and layers[name]["status"] == "changed"
    assert layers[name]["rel_l2"] == pytest.approx(1.0, rel=1e-6)
    assert layers[name]["max_abs_diff"] == pytest.approx(float(np.abs(kernel).max()), rel=1e-6)


def test_staged_writes_on_another_base_are_left_out_with_a_warning(
    stock: stockroom.StockRoom, stock_repo: Path
) -> None:
    stock.tag["lr"] = 0.1
    commit_both(stock, stock_repo, "one")
    stock.tag["lr"] = 0.2
    commit_both(stock, stock_repo, "two")
    stock.tag["lr"] = 0.3  # staged on "two"
    run_git("checkout", "-q", "HEAD~1", cwd=stock_repo)  # head.stock moves to "one"
    proc = stock_cli("diff", "--json", "HEAD", cwd=stock_repo)
    doc = json.loads(ok(proc))
    assert doc["changed"] is False and doc["to"]["staged"] is False
    assert proc.stderr.startswith("stock: warning: staged stock writes are based on stock commit")
    run_git("checkout", "-q", "main", cwd=stock_repo)
    assert by(diff_json(stock_repo)["tags"], "key")["lr"]["new"] == 0.3  # back on their base: shown


def test_colour_only_on_a_terminal(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    import os
    import pty

    stock.tag["lr"] = 0.1
    commit_both(stock, stock_repo, "one")
    stock.tag["lr"] = 0.2
    stock.tag["new"] = 1

    def on_terminal(env: dict[str, str]) -> str:
        assert STOCK is not None
        parent, child = pty.openpty()
        proc = subprocess.run(
            (STOCK, "diff"), cwd=stock_repo, stdout=child, stderr=child, env=env, timeout=120
        )
        os.close(child)
        out = b""
        while True:
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # the child side is closed: all read
                break
            if not chunk:
                break
            out += chunk
        os.close(parent)
        assert proc.returncode == 0, out
        return out.decode()

    coloured = on_terminal(dict(os.environ))
    assert "\x1b[32madded" in coloured and "\x1b[33m" in coloured  # green added, yellow changed
    plain = on_terminal({**os.environ, "NO_COLOR": "1"})
    assert "\x1b[" not in plain and "added" in plain


def test_weight_lists_without_names_match_by_position(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    weights = [np.ones((3, 2), np.float32), np.zeros(2, np.float16), np.arange(4, dtype=np.int64)]
    stock.model["plain"] = weights
    stock.model["kept"] = [np.ones(2)]
    commit_both(stock, stock_repo, "v1")
    stock.model["plain"] = [weights[0], np.full(2, 0.5, np.float16), weights[2], np.ones(1)]
    commit_both(stock, stock_repo, "v2")
    doc = diff_json(stock_repo, "HEAD~1", "HEAD", "--all")
    models = by(doc["models"], "model")
    assert models["kept"]["status"] == "unchanged" and models["plain"]["status"] == "changed"
    layers = by(models["plain"]["layers"], "name")
    assert [layers[f"[{i}]"]["status"] for i in range(4)] == ["unchanged", "changed", "unchanged", "added"]
    assert layers["[1]"]["rel_l2"] is None and layers["[1]"]["max_abs_diff"] == 0.5
    assert layers["[1]"]["old_dtype"] == "float16"
    assert "kept" not in {m["model"] for m in diff_json(stock_repo, "HEAD~1", "HEAD")["models"]}
