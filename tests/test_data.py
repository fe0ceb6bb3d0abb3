"""stock.data (SPEC section 2): columns of numpy samples in a real Hangar store,
with MutableMapping semantics on the columns and on each column."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import MutableMapping
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom import StockroomError

DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
          np.float16, np.float32, np.float64]
SHAPES = [(), (1,), (7,), (2, 3, 4)]


def sample(dtype: type, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Values that use the dtype's whole range, including its extremes."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        arr = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
        if arr.size >= 2:
            arr.flat[0], arr.flat[1] = info.min, info.max
        return arr
    arr = rng.standard_normal(size=shape).astype(dt)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, np.finfo(dt).tiny, np.finfo(dt).max], dtype=dt)
    n = min(arr.size, specials.size)
    arr.flat[:n] = specials[:n]
    return arr


def assert_exact(got: np.ndarray, want: np.ndarray) -> None:
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype and got.shape == want.shape
    # Byte comparison: nan == nan and -0.0 != 0.0 here, as they should.
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()


def test_storages_are_mutable_mappings(stock: stockroom.StockRoom) -> None:
    assert isinstance(stock.data, MutableMapping)
    assert isinstance(stock.data["c"], MutableMapping)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_dtype_and_shape_round_trips(stock: stockroom.StockRoom, dtype: type) -> None:
    want = {shape: sample(dtype, shape, seed=i) for i, shape in enumerate(SHAPES)}
    for shape, arr in want.items():
        stock.data[f"c{len(shape)}_{arr.size}"][0] = arr
    for shape, arr in want.items():
        assert_exact(stock.data[f"c{len(shape)}_{arr.size}"][0], arr)  # staged
    stock.commit(f"{np.dtype(dtype).name} samples")
    for shape, arr in want.items():
        assert_exact(stock.data[f"c{len(shape)}_{arr.size}"][0], arr)  # committed


def test_zero_dim_and_python_values(stock: stockroom.StockRoom) -> None:
    stock.data["scalar"][0] = np.float32(2.5)
    stock.data["list"][0] = [[1, 2], [3, 4]]
    stock.data["bools"][0] = [True, False]
    stock.data["pyfloat"][0] = 1.25
    stock.commit("python values")
    assert_exact(stock.data["scalar"][0], np.array(2.5, dtype=np.float32))
    assert_exact(stock.data["list"][0], np.array([[1, 2], [3, 4]]))
    assert_exact(stock.data["bools"][0], np.array([True, False]))
    assert_exact(stock.data["pyfloat"][0], np.array(1.25))


def test_non_contiguous_and_byte_swapped_inputs(stock: stockroom.StockRoom) -> None:
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    stock.data["strided"][0] = base[:, ::2]
    stock.data["fortran"][0] = np.asfortranarray(base)
    stock.data["bigendian"][0] = base.astype(">i4")
    stock.commit("layouts")
    assert_exact(stock.data["strided"][0], np.ascontiguousarray(base[:, ::2]))
    assert_exact(stock.data["fortran"][0], base)
    got = stock.data["bigendian"][0]
    assert got.dtype == np.dtype("int32") and np.array_equal(got, base.astype(np.int32))


def test_torch_tensors_are_stored_as_arrays(stock: stockroom.StockRoom) -> None:
    torch = pytest.importorskip("torch")
    weights = torch.randn(3, 4, requires_grad=True)
    stock.data["t"][0] = weights
    stock.data["t"][1] = weights.detach() * 2
    stock.data["tbool"][0] = torch.tensor([True, False])
    stock.data["t0"][0] = torch.tensor(7, dtype=torch.int16)
    stock.commit("torch")
    assert_exact(stock.data["t"][0], weights.detach().numpy())
    assert_exact(stock.data["tbool"][0], np.array([True, False]))
    assert_exact(stock.data["t0"][0], np.array(7, dtype=np.int16))
    with pytest.raises(TypeError, match="column 'bf'"):
        stock.data["bf"][0] = torch.zeros(2, dtype=torch.bfloat16)  # Hangar has no bfloat16
    assert "bf" not in stock.data


def test_tensorflow_tensors_are_stored_as_arrays(stock: stockroom.StockRoom) -> None:
    tf = pytest.importorskip("tensorflow")
    tensor = tf.constant([[1.5, 2.5], [3.5, -0.0]], dtype=tf.float32)
    stock.data["tf"]["x"] = tensor
    stock.data["tf"]["v"] = tf.Variable(tf.ones((2, 2)))
    stock.commit("tensorflow")
    assert_exact(stock.data["tf"]["x"], tensor.numpy())
    assert_exact(stock.data["tf"]["v"], np.ones((2, 2), dtype=np.float32))


@pytest.mark.parametrize(
    "value",
    [np.array([1 + 2j]), np.array(["text"]), np.array([b"b"]), np.array([object()], dtype=object),
     {"a": 1}, None, "text", np.array([1], dtype=np.longdouble)],
    ids=["complex", "unicode", "bytes", "object", "dict", "None", "str", "longdouble"],
)
def test_unsupported_values_are_type_errors(stock: stockroom.StockRoom, value: object) -> None:
    with pytest.raises(TypeError, match="column 'c'"):
        stock.data["c"][0] = value
    assert "c" not in stock.data
    with pytest.raises(StockroomError, match="nothing to commit"):
        stock.commit("nothing stored")


def test_sample_that_does_not_fit_names_the_column(stock: stockroom.StockRoom) -> None:
    stock.data["images"][0] = np.zeros((2, 3), dtype=np.float32)
    stock.commit("first image")
    with pytest.raises(TypeError, match=r"column 'images'.*float32.*float64"):
        stock.data["images"][1] = np.zeros((2, 3), dtype=np.float64)
    with pytest.raises(ValueError, match=r"column 'images'.*\(2, 3\).*\(3, 2\)"):
        stock.data["images"][1] = np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"column 'images'.*\(2, 3\).*\(2, 3, 1\)"):
        stock.data["images"][1] = np.zeros((2, 3, 1), dtype=np.float32)
    with pytest.raises(ValueError, match=r"column 'images'.*\(2, 3\)"):
        stock.data["images"][0] = np.zeros((), dtype=np.float32)
    assert list(stock.data["images"]) == [0]
    with pytest.raises(StockroomError, match="nothing to commit"):
        stock.commit("nothing stored")


def test_failed_bulk_write_stores_nothing(stock: stockroom.StockRoom) -> None:
    good = np.zeros(3, dtype=np.float32)
    # New column: the bad sample is the last one.
    with pytest.raises(ValueError, match="column 'new'"):
        stock.data["new"] = {0: good, 1: good, 2: np.zeros(4, dtype=np.float32)}
    with pytest.raises(TypeError, match="column 'new'"):
        stock.data["new"].update({0: good, 1: np.zeros(3, dtype=np.int8)})
    with pytest.raises(TypeError, match="column 'new'"):
        stock.data["new"].update({0: good, 1: "not an array"})
    with pytest.raises(ValueError):
        stock.data["new"].update({0: good, -1: good})  # bad key last
    assert "new" not in stock.data and len(stock.data) == 0
    with pytest.raises(StockroomError, match="nothing to commit"):
        stock.commit("nothing stored")
    # Existing column: a bad sample anywhere in the batch stores none of it.
    stock.data["old"][0] = good
    stock.commit("one sample")
    with pytest.raises(TypeError, match="column 'old'"):
        stock.data["old"].update({1: good, 2: np.ones(3, dtype=np.float64)})
    assert list(stock.data["old"]) == [0]
    with pytest.raises(StockroomError, match="nothing to commit"):
        stock.commit("nothing stored")


def test_int_and_str_sample_keys_are_distinct(stock: stockroom.StockRoom) -> None:
    col = stock.data["c"]
    col[5] = np.array([5])
    col["5"] = np.array([55])
    col[np.int64(6)] = np.array([6])
    stock.commit("keys")
    assert col[5][0] == 5 and col["5"][0] == 55 and col[6][0] == 6
    keys = list(col)
    assert sorted(keys, key=repr) == sorted([5, "5", 6], key=repr)
    assert {type(k) for k in keys} == {int, str}
    del col["5"]
    assert 5 in col and "5" not in col and len(col) == 2


LOOKALIKES = ["a/b", "a-2fb", "a.b", "-", "-2d", "ключ", "🙂", "A", "a", "0", "00"]


def test_lookalike_sample_keys_and_column_names_never_collide(stock: stockroom.StockRoom) -> None:
    for i, key in enumerate(LOOKALIKES):
        stock.data["c"][key] = np.array([i])
        stock.data[key][0] = np.array([i])
    stock.commit("lookalikes")
    assert sorted(stock.data["c"]) == sorted(LOOKALIKES)
    assert sorted(stock.data) == sorted(["c", *LOOKALIKES])
    for i, key in enumerate(LOOKALIKES):
        assert stock.data["c"][key][0] == i
        assert stock.data[key][0][0] == i


@pytest.mark.parametrize("key", ["", None, -1, 10**64, True, 1.5, b"k", "\ud800", "k" * 65])
def test_invalid_sample_keys_are_value_errors(stock: stockroom.StockRoom, key: object) -> None:
    with pytest.raises(ValueError):
        stock.data["c"][key] = np.zeros(1)  # type: ignore[index]
    with pytest.raises(ValueError):
        stock.data["c"][key]  # type: ignore[index]
    with pytest.raises(ValueError):
        del stock.data["c"][key]  # type: ignore[arg-type]
    assert key not in stock.data["c"]
    assert "c" not in stock.data


@pytest.mark.parametrize("name", ["", None, 3, "\udfff", "n" * 60])
def test_invalid_column_names_are_value_errors(stock: stockroom.StockRoom, name: object) -> None:
    with pytest.raises(ValueError):
        stock.data[name][0] = np.zeros(1)  # type: ignore[index]
    with pytest.raises(ValueError):
        stock.data[name] = {0: np.zeros(1)}  # type: ignore[index]
    with pytest.raises(ValueError):
        del stock.data[name]  # type: ignore[arg-type]
    assert name not in stock.data


def test_longest_column_name_and_key(stock: stockroom.StockRoom) -> None:
    name = "n" * 59  # 64 minus the internal "data." prefix
    stock.data[name]["k" * 64] = np.zeros(1)
    stock.commit("long names")
    assert list(stock.data) == [name] and list(stock.data[name]) == ["k" * 64]


def test_missing_samples_and_columns_are_key_errors(stock: stockroom.StockRoom) -> None:
    with pytest.raises(KeyError):
        stock.data["none"][0]
    with pytest.raises(KeyError):
        del stock.data["none"][0]
    with pytest.raises(KeyError):
        del stock.data["none"]
    stock.data["c"][0] = np.zeros(1)
    with pytest.raises(KeyError):
        stock.data["c"][1]  # staged column, missing sample
    with pytest.raises(KeyError):
        stock.data["c"]["0"]  # str "0" is not int 0
    stock.commit("one")
    with pytest.raises(KeyError) as info:
        stock.data["c"][1]
    assert info.value.args == (1,)
    with pytest.raises(KeyError):
        del stock.data["c"][1]
    assert stock.data["c"].get(1) is None
    assert stock.data.get("none") is None
    assert stock.data.get("c") is not None


def test_iteration_len_in_del_on_data_and_columns(stock: stockroom.StockRoom) -> None:
    assert len(stock.data) == 0 and list(stock.data) == [] and "x" not in stock.data
    stock.data["x"].update({i: np.full(2, i) for i in range(5)})
    stock.data["y"]["only"] = np.zeros(1)
    assert len(stock.data) == 2 and sorted(stock.data.keys()) == ["x", "y"]
    assert "x" in stock.data and "z" not in stock.data
    assert len(stock.data["x"]) == 5 and sorted(stock.data["x"]) == list(range(5))
    assert 3 in stock.data["x"] and 7 not in stock.data["x"]
    stock.commit("two columns")
    del stock.data["x"][3]
    assert 3 not in stock.data["x"] and len(stock.data["x"]) == 4
    del stock.data["y"]
    assert list(stock.data) == ["x"]
    stock.commit("deletes")
    assert list(stock.data) == ["x"] and sorted(stock.data["x"]) == [0, 1, 2, 4]
    for key, arr in stock.data["x"].items():
        assert_exact(arr, np.full(2, key))
    # A deleted column can come back with another dtype and shape.
    stock.data["y"][0] = np.zeros((2, 2), dtype=np.uint8)
    stock.commit("y again")
    assert_exact(stock.data["y"][0], np.zeros((2, 2), dtype=np.uint8))
    assert "x" in repr(stock.data) and "4 samples" in repr(stock.data["x"])


def test_bulk_assignment_replaces_the_column(stock: stockroom.StockRoom) -> None:
    stock.data["c"] = {0: np.zeros(3), "a": np.ones(3)}
    assert sorted(stock.data["c"], key=repr) == sorted([0, "a"], key=repr)
    stock.commit("bulk")
    stock.data["c"] = {1: np.full(2, 7, dtype=np.int8)}  # new dtype and shape: a new column
    assert list(stock.data["c"]) == [1]
    stock.commit("replaced")
    assert list(stock.data["c"]) == [1]
    assert_exact(stock.data["c"][1], np.full(2, 7, dtype=np.int8))
    with pytest.raises(TypeError, match="mapping"):
        stock.data["c"] = np.zeros(3)  # type: ignore[assignment]
    with pytest.raises(TypeError, match="mapping"):
        stock.data["c"] = [np.zeros(3)]  # type: ignore[assignment]
    assert list(stock.data["c"]) == [1]
    stock.data["c"] = {}  # nothing left: no column
    assert "c" not in stock.data and len(stock.data["c"]) == 0
    stock.commit("emptied")
    assert list(stock.data) == []


def test_update_adds_samples_to_a_column(stock: stockroom.StockRoom) -> None:
    stock.data["c"][0] = np.zeros(2)
    stock.data["c"].update({1: np.ones(2)}, **{"named": np.full(2, 2.0)})
    stock.data["c"].update([(2, np.full(2, 3.0))])
    assert sorted(stock.data["c"], key=repr) == sorted([0, 1, 2, "named"], key=repr)


# ---------------------------------------------------------------- issue 14
def test_missing_column_names_the_column(stock: stockroom.StockRoom) -> None:
    """Issue 14.12: a read from a column that does not exist says so, not `KeyError: 0`."""
    stock.data["c"][0] = np.zeros(1)
    for when in ("staged", "committed"):
        with pytest.raises(KeyError, match="stock.data has no column 'typo'"):
            stock.data["typo"][0]
        with pytest.raises(KeyError, match="stock.data has no column 'typo'"):
            stock.data["typo"].get_many([0])
        assert stock.data["typo"].get(0) is None
        if when == "staged":
            stock.commit("one")


@pytest.mark.parametrize("dirty", [False, True], ids=["committed", "read-your-writes"])
def test_deleted_data_directory_reads_as_damage_not_a_missing_sample(
    stock: stockroom.StockRoom, stock_repo: Path, dirty: bool
) -> None:
    """Issue 14.7: `rm -rf .hangar/store_data/10` gives the "damaged" error naming the column."""
    stock.data["nc"].update({0: np.zeros(3), 1: np.ones(3)})
    stock.commit("x")
    for directory in (stock_repo / ".hangar" / "store_data").iterdir():
        shutil.rmtree(directory)
    if dirty:
        stock.tag["staged"] = 1
    reads = (lambda: stock.data["nc"][0], lambda: stock.data["nc"].get_many([0, 1]))
    for read in reads:
        with pytest.raises(StockroomError, match=r"is damaged \(data file '\w+' of data column 'nc' is missing\)"):
            read()


# ------------------------------------------------ per-sample writes inside optimize()
def _age(*paths: Path) -> None:
    """Make files look old, so that stockroom trusts (caches) their stat."""
    for path in paths:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))


def test_per_sample_writes_inside_optimize_read_back_check_and_commit(stock: stockroom.StockRoom) -> None:
    want = {i: np.full((3, 2), i, dtype=np.int16) for i in range(40)}
    with stock.optimize():
        col = stock.data["px"]
        for key, arr in want.items():
            col[key] = arr
            assert_exact(col[key], arr)  # read your own write at once
        col["named"] = want[1]
        with pytest.raises(TypeError, match="int16"):
            col[99] = np.zeros((3, 2), dtype=np.float32)
        with pytest.raises(ValueError, match=r"\(3, 2\)"):
            col[99] = np.zeros((2, 3), dtype=np.int16)
        with pytest.raises(KeyError):
            col[99]  # the refused writes stored nothing
        stock.tag["between"] = 1  # other columns and bulk writes in between
        col.update({100: want[2]})
        del col["named"]
        col[101] = want[3]
        first = stock.commit("inside")
        col[102] = want[4]  # keeps writing on the new commit
        assert len(col) == 43
    # Leaving optimize() committed the held column's transactions to the
    # staging area: another StockRoom commits them.
    with stockroom.StockRoom(stock.path) as other:
        assert other.commit("after") != first
    with stockroom.StockRoom(stock.path) as fresh:
        got = fresh.data["px"]
        assert sorted(k for k in got if isinstance(k, int)) == [*range(40), 100, 101, 102]
        assert "named" not in got and 99 not in got
        for key, arr in want.items():
            assert_exact(got[key], arr)
        assert_exact(got[102], want[4])


def test_per_sample_write_inside_optimize_sees_head_stock_move(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.data["c"][0] = np.arange(3)
    old = stock.commit("old")
    with stock.optimize():
        stock.data["c"][1] = np.arange(3)
        stock.commit("new")
        stock.data["c"][2] = np.arange(3)
        _age(stock_repo / "head.stock", stock_repo / ".git" / "HEAD")
        stock.data["c"][3] = np.arange(3)  # the held column, stat cached
        (stock_repo / "head.stock").write_text(old + "\n")  # what a git checkout does
        with pytest.raises(StockroomError, match="moved"):
            stock.data["c"][4] = np.arange(3)
        # Reads follow head.stock at once: the old commit has only sample 0.
        assert_exact(stock.data["c"][0], np.arange(3))
        with pytest.raises(KeyError):
            stock.data["c"][3]


def test_per_sample_write_inside_optimize_refused_on_detached_head(
    stock: stockroom.StockRoom, stock_repo: Path
) -> None:
    stock.data["c"][0] = np.arange(3)
    stock.commit("one")
    subprocess.run(["git", "add", "head.stock"], cwd=stock_repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "one"], cwd=stock_repo, check=True)
    with stock.optimize():
        stock.data["c"][1] = np.arange(3)
        stock.tag["t"] = 1
        _age(stock_repo / "head.stock", stock_repo / ".git" / "HEAD")
        stock.data["c"][2] = np.arange(3)
        subprocess.run(["git", "checkout", "-q", "--detach"], cwd=stock_repo, check=True)
        with pytest.raises(StockroomError, match="check out a branch"):
            stock.data["c"][3] = np.arange(3)
        with pytest.raises(StockroomError, match="check out a branch"):
            stock.tag["t"] = 2
        assert_exact(stock.data["c"][2], np.arange(3))  # reads still work
        assert stock.tag["t"] == 1
