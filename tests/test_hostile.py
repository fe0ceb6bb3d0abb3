"""Hostile input, property-based: every value is stored exactly or refused cleanly.

Arbitrary key text (any unicode, stockroom's own escape character, path
separators, control characters, lone surrogates, very long), every numpy
dtype (the ones stockroom stores and the ones it refuses), odd shapes
(0-size, 0-dim, high rank, non-contiguous, big-endian) and tag values at
the edges (huge ints, subnormals, -0.0, nan payloads, long strings). Each
write either reads back exactly, or raises the documented error
(``ValueError`` for a bad key or shape, ``TypeError`` for a value of the
wrong kind) and stores nothing.

One stock repository serves the whole module (inside ``optimize()``, so
each example is fast); the last test commits and reads every stored value
back from a fresh ``StockRoom``, which proves that no two keys collided.
"""

from __future__ import annotations

import itertools
import math
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import stockroom
from stockroom import StockroomError

EXAMPLES = 100
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run and machine
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
MAX_KEY = 64


def encoded_length(text: str) -> int:
    """The documented size rule (docs/design.md): letters, digits, '_' and '.'
    count 1 when the whole key is made of them; otherwise every other
    character counts 3 per UTF-8 byte."""
    if all(c in SAFE for c in text):
        return len(text)
    return sum(1 if chr(b) in SAFE and b < 128 else 3 for b in text.encode("utf-8"))


def key_is_valid(key: object, room: int = MAX_KEY) -> bool:
    if not isinstance(key, str) or key == "":
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return encoded_length(key) <= room


@dataclass(repr=False)
class Room:
    stock: stockroom.StockRoom
    tags: dict[str, Any] = field(default_factory=dict)
    samples: dict[tuple[str, Any], np.ndarray] = field(default_factory=dict)
    refused: list[tuple[str, Any]] = field(default_factory=list)
    counter: Iterator[int] = field(default_factory=itertools.count)
    cases: dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<Room: {len(self.tags)} tags, {len(self.samples)} samples>"

    def count(self, what: str) -> None:
        self.cases[what] = self.cases.get(what, 0) + 1


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    root = tmp_path_factory.mktemp("hostile") / "project"
    root.mkdir()
    subprocess.run(("git", "init", "-q"), cwd=root, check=True)
    stockroom.init_repo(name="Hostile", email="h@example.com", path=root, install_hooks=False)
    stock = stockroom.StockRoom(root)
    with stock.optimize():
        r = Room(stock)
        yield r
    stock.close()
    print(f"\nhostile-input cases run: {sum(r.cases.values())} {r.cases}")


def same_tag(got: Any, want: Any) -> bool:
    if isinstance(want, float):
        return type(got) is float and struct.pack(">d", got) == struct.pack(">d", want)
    return type(got) is type(want) and bool(got == want)


def same_array(got: Any, want: np.ndarray) -> bool:
    native = want.astype(want.dtype.newbyteorder("="))
    return (
        isinstance(got, np.ndarray)
        and got.dtype == native.dtype
        and got.shape == native.shape
        and got.tobytes() == np.ascontiguousarray(native).tobytes()
    )


# ------------------------------------------------------------------- keys
SPECIAL_KEYS = [
    "-", "--", "-2d", "-2D", "a-2fb", "a/b", "a\\b", "a.b", "..", ".", "_", " ", "\t", "\n", "\x00",
    "\x7f", "é", "e\u0301", "\ufeff", "\U0001f600", "tag", "data.x", "model.x", "meta.0", "0", "00",
    "a" * 64, "a" * 65, "-" * 21, "-" * 22, "é" * 10, "é" * 11, "\ud800", "a\udfffb",
]
KEYS = st.one_of(
    st.sampled_from(SPECIAL_KEYS),
    st.text(max_size=40),
    st.text(alphabet="-_./\\ \x00\n2dfa", max_size=70),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=25),
    st.text(alphabet=st.characters(categories=["Cs", "Cc", "Zs", "Mn"]), max_size=8),
    st.text(alphabet="ab_.", min_size=60, max_size=70),
)
NON_STR_KEYS = st.one_of(st.none(), st.binary(max_size=4), st.floats(), st.tuples(st.text(max_size=2)))


@SETTINGS
@given(key=KEYS)
def test_any_tag_key_is_stored_exactly_or_refused(room: Room, key: str) -> None:
    room.count("tag key")
    value = next(room.counter)
    stock = room.stock
    before = len(stock.tag)
    if not key_is_valid(key):
        with pytest.raises(ValueError):
            stock.tag[key] = value
        assert len(stock.tag) == before and key not in stock.tag
        return
    stock.tag[key] = value
    room.tags[key] = value
    assert same_tag(stock.tag[key], value)
    assert key in stock.tag and key in list(stock.tag)


@SETTINGS
@given(key=NON_STR_KEYS)
def test_non_str_tag_keys_are_refused(room: Room, key: Any) -> None:
    room.count("non-str tag key")
    before = len(room.stock.tag)
    with pytest.raises(ValueError):
        room.stock.tag[key] = 1
    assert len(room.stock.tag) == before


SAMPLE_KEYS = st.one_of(
    KEYS,
    st.integers(min_value=-(10**70), max_value=10**70),
    st.sampled_from([0, 10**64 - 1, 10**64, -1, True, False, np.int64(7), np.uint8(3)]),
)


@SETTINGS
@given(key=SAMPLE_KEYS)
def test_any_sample_key_is_stored_exactly_or_refused(room: Room, key: Any) -> None:
    room.count("sample key")
    column = room.stock.data["keys"]
    value = np.array([next(room.counter)], dtype=np.int64)
    before = len(column)
    if isinstance(key, str):
        valid = key_is_valid(key)
    else:
        valid = not isinstance(key, bool) and 0 <= int(key) < 10**64
    if not valid:
        with pytest.raises(ValueError):
            column[key] = value
        assert len(column) == before
        return
    column[key] = value
    stored_key = key if isinstance(key, str) else int(key)
    room.samples[("keys", stored_key)] = value
    assert same_array(column[key], value)
    assert stored_key in list(column)


@SETTINGS
@given(name=KEYS)
def test_any_column_name_is_stored_exactly_or_refused(room: Room, name: str) -> None:
    room.count("column name")
    value = np.array([next(room.counter)], dtype=np.int32)
    before = set(room.stock.data)
    if not key_is_valid(name, room=MAX_KEY - len("data.")) or name in before:
        if name in before:
            return  # seen before (hypothesis repeats itself)
        with pytest.raises(ValueError):
            room.stock.data[name]["s"] = value
        assert set(room.stock.data) == before
        return
    room.stock.data[name]["s"] = value
    room.samples[(name, "s")] = value
    assert name in room.stock.data and set(room.stock.data) == before | {name}
    assert same_array(room.stock.data[name]["s"], value)


# ----------------------------------------------------------------- arrays
STORED_DTYPES = [
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64,
]
REFUSED_DTYPES = [
    np.complex64, np.complex128, np.longdouble, np.clongdouble, np.dtype("U3"), np.dtype("S3"),
    np.dtype("V4"), np.dtype("M8[s]"), np.dtype("m8[ms]"), np.dtype([("a", "i4"), ("b", "f4")]), object,
]


def dtypes() -> st.SearchStrategy[np.dtype]:
    native = st.sampled_from([np.dtype(t) for t in STORED_DTYPES + REFUSED_DTYPES])
    swapped = st.sampled_from([np.dtype(t).newbyteorder(">") for t in STORED_DTYPES[1:]])
    return st.one_of(native, swapped)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(dtypes())
    shape = draw(st.one_of(
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
        st.sampled_from([(1,) * 31, (1,) * 32, (2,) + (1,) * 30, (0,), (3, 0, 2), ()]),
    ))
    if dtype.kind in "OV" or dtype.names:
        arr = np.zeros(shape, dtype=dtype)
    else:
        arr = draw(hnp.arrays(dtype, shape, elements=None if dtype.kind != "M" else st.just(np.datetime64(1, "s"))))
    view = draw(st.sampled_from(["plain", "strided", "transposed", "readonly", "fortran"]))
    if view == "strided" and arr.ndim:
        big = np.repeat(arr, 2, axis=0)
        arr = big[::2]
    elif view == "transposed" and arr.ndim > 1:
        arr = arr.T
    elif view == "fortran":
        arr = np.asfortranarray(arr)
    elif view == "readonly":
        arr.flags.writeable = False
    return arr


def array_is_storable(arr: np.ndarray) -> bool:
    native = arr.dtype.newbyteorder("=")
    return native in {np.dtype(t) for t in STORED_DTYPES} and arr.size > 0 and arr.ndim <= 31


@settings(SETTINGS, max_examples=80)
@given(arr=arrays())
def test_any_array_is_stored_exactly_or_refused(room: Room, arr: np.ndarray) -> None:
    room.count("array")
    name = f"arr{next(room.counter)}"
    column = room.stock.data[name]
    original = arr.copy()
    if not array_is_storable(arr):
        expected = TypeError if arr.dtype.newbyteorder("=") not in {np.dtype(t) for t in STORED_DTYPES} else ValueError
        with pytest.raises(expected) as error:
            column["s"] = arr
        assert repr(name) in str(error.value), "the message names the column"
        assert name not in room.stock.data, "a refused first sample must not create the column"
        return
    column["s"] = arr
    room.samples[(name, "s")] = original
    assert same_array(column["s"], original)
    # A sample that does not fit the column: refused, nothing stored.
    other = np.zeros(original.shape + (2,), dtype=original.dtype) if original.ndim < 31 else None
    if other is not None:
        with pytest.raises(ValueError, match=repr(name)):
            column["t"] = other
        assert "t" not in column
    native = original.dtype.newbyteorder("=")
    wrong = np.zeros(original.shape, dtype=np.float32 if native != np.float32 else np.float64)
    with pytest.raises(TypeError, match=repr(name)):
        column.update({"u": original, "v": wrong})
    assert "u" not in column and "v" not in column and list(column) == ["s"]


def test_torch_and_odd_containers(room: Room) -> None:
    """Lists, scalars and tensors convert; ragged lists and strings are refused."""
    torch = pytest.importorskip("torch")
    data = room.stock.data
    cases: list[tuple[object, np.ndarray]] = [
        ([[1, 2], [3, 4]], np.array([[1, 2], [3, 4]])),
        (3.5, np.array(3.5)),
        (True, np.array(True)),
        (torch.arange(6, dtype=torch.int16).reshape(2, 3).t(), np.arange(6, dtype=np.int16).reshape(2, 3).T),
    ]
    for value, want in cases:
        name = f"odd{next(room.counter)}"
        data[name]["s"] = value
        room.samples[(name, "s")] = want
        assert same_array(data[name]["s"], want)
    for bad in ([[1, 2], [3]], "text", b"bytes", {"a": 1}, None, torch.zeros(2, dtype=torch.bfloat16),
                torch.zeros(2, dtype=torch.complex64)):
        name = f"odd{next(room.counter)}"
        with pytest.raises(TypeError, match=repr(name)):
            data[name]["s"] = bad
        assert name not in data
    room.count("odd container")


# ------------------------------------------------------------------- tags
def nan_with_payload(bits: int, sign: int) -> float:
    return float(struct.unpack(">d", struct.pack(">Q", (sign << 63) | (0x7FF << 52) | (bits or 1)))[0])


TAG_VALUES = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**4000), max_value=2**4000),
    st.sampled_from([10**5000, -(10**5000), 2**63, -(2**63) - 1, 2**64, 0, -0]),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.sampled_from([-0.0, 5e-324, -5e-324, 2.2250738585072009e-308, math.inf, -math.inf, 1.7976931348623157e308]),
    st.builds(nan_with_payload, st.integers(min_value=0, max_value=2**52 - 1), st.integers(0, 1)),
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=5000),
    st.sampled_from(["", "\x00", "b:1", "i:ff", "f:", "s:x", "\ud800", "x" * 1_000_000]),
    st.builds(np.float64, st.floats()),
)
REFUSED_TAGS = st.one_of(
    st.none(), st.binary(max_size=5), st.lists(st.integers(), max_size=2), st.complex_numbers(),
    st.builds(np.complex64, st.complex_numbers(allow_nan=False, allow_infinity=False, max_magnitude=1e30)),
    st.just(np.longdouble(1) / 3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1), st.decimals(allow_nan=False),
)


@SETTINGS
@given(value=TAG_VALUES)
def test_any_tag_value_is_stored_exactly_or_refused(room: Room, value: Any) -> None:
    room.count("tag value")
    key = f"v{next(room.counter)}"
    stock = room.stock
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            with pytest.raises(ValueError):
                stock.tag[key] = value
            assert key not in stock.tag
            return
    stock.tag[key] = value
    want = float(value) if isinstance(value, float) else value
    room.tags[key] = want
    assert same_tag(stock.tag[key], want), (stock.tag[key], want)


@SETTINGS
@given(value=REFUSED_TAGS)
def test_other_tag_values_are_refused(room: Room, value: Any) -> None:
    room.count("refused tag value")
    key = f"r{next(room.counter)}"
    with pytest.raises(TypeError):
        room.stock.tag[key] = value
    assert key not in room.stock.tag


# ---------------------------------------------------------- all of it, again
def test_everything_stored_reads_back_after_commit(room: Room) -> None:
    """Commit, then read every value back through a fresh StockRoom (committed
    data, another reader): nothing collided, nothing changed on the way."""
    stock = room.stock
    assert room.tags and room.samples
    stock.commit("hostile input")
    with stockroom.StockRoom(stock.path) as fresh:
        assert set(fresh.tag) == set(room.tags)
        for key, value in room.tags.items():
            assert same_tag(fresh.tag[key], value), key
        columns = {column for column, _ in room.samples}
        assert set(fresh.data) == columns
        for (column, key), value in room.samples.items():
            assert same_array(fresh.data[column][key], value), (column, key)
        assert sum(len(fresh.data[c]) for c in columns) == len(room.samples)
    # Nothing is staged that the test did not write (refused writes left nothing).
    with pytest.raises(StockroomError, match="nothing to commit"):
        stock.commit("again")
    room.count("final check")


def test_hostile_repository_path_and_messages(tmp_path: Path) -> None:
    """A repository under a path with spaces, unicode and a newline works."""
    root = tmp_path / "dir with space é\nnewline"
    root.mkdir()
    subprocess.run(("git", "init", "-q"), cwd=root, check=True)
    stockroom.init_repo(name="H", email="h@e", path=root, install_hooks=False)
    with stockroom.StockRoom(root) as stock:
        stock.tag["k"] = 1
        stock.commit("c")
    with stockroom.StockRoom(root) as stock:
        assert stock.tag["k"] == 1
