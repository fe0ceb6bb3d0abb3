"""stock.tag (SPEC section 2): a MutableMapping of exact int, float, str and bool
values, in a real Hangar store."""

from __future__ import annotations

import math
import struct
from collections.abc import MutableMapping
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stockroom
from stockroom import StockroomError
from stockroom.storages.tag import decode_value, encode_value


def bits(value: float) -> bytes:
    return struct.pack(">d", value)


NAN_PAYLOAD = struct.unpack(">d", bytes.fromhex("7ff8000000000123"))[0]
FLOATS = [0.0, -0.0, 0.1, -1.5, 1e308, 5e-324, -5e-324, math.inf, -math.inf, math.nan, NAN_PAYLOAD,
          2.0**53 + 1, 1 / 3]
INTS = [0, 1, -1, 2**63, -(2**63) - 1, 2**64, 10**5000, -(10**5000)]
STRS = ["", "x", "i:5", "b:1", "f:00", "s:", "ünïcødé 🙂", "line\nbreak\ttab", "nul\x00byte", "x" * 100_000]


def test_is_a_mutable_mapping(stock: stockroom.StockRoom) -> None:
    assert isinstance(stock.tag, MutableMapping)


@pytest.mark.parametrize("value", FLOATS, ids=repr)
def test_floats_are_bit_exact(stock: stockroom.StockRoom, value: float) -> None:
    stock.tag["f"] = value
    staged = stock.tag["f"]
    stock.commit("float")
    committed = stock.tag["f"]
    for got in (staged, committed):
        assert type(got) is float
        assert bits(got) == bits(value)


@pytest.mark.parametrize("value", INTS, ids=lambda v: f"{v:x}"[:20])
def test_ints_are_exact_whatever_their_size(stock: stockroom.StockRoom, value: int) -> None:
    stock.tag["i"] = value
    stock.commit("int")
    got = stock.tag["i"]
    assert type(got) is int and got == value


@pytest.mark.parametrize("value", STRS, ids=lambda v: repr(v)[:20])
def test_strings_are_exact(stock: stockroom.StockRoom, value: str) -> None:
    stock.tag["s"] = value
    stock.commit("str")
    got = stock.tag["s"]
    assert type(got) is str and got == value


def test_bools_stay_bools(stock: stockroom.StockRoom) -> None:
    stock.tag["t"] = True
    stock.tag["f"] = False
    stock.tag["one"] = 1
    stock.tag["zero"] = 0
    stock.commit("bools and ints")
    assert stock.tag["t"] is True and stock.tag["f"] is False
    assert type(stock.tag["one"]) is int and type(stock.tag["zero"]) is int


def test_float_and_int_subclasses_come_back_as_builtins(stock: stockroom.StockRoom) -> None:
    stock.tag["np"] = np.float64(0.25)
    stock.commit("numpy float64 is a float")
    assert type(stock.tag["np"]) is float and stock.tag["np"] == 0.25


@pytest.mark.parametrize(
    "value",
    [None, [1], {"a": 1}, (1,), b"bytes", 1j, Decimal("1.5"), Fraction(1, 3), np.complex64(1),
     np.longdouble(1) / 3, np.array([1.0]), object()],
    ids=lambda v: type(v).__name__,
)
def test_unsupported_values_are_type_errors_and_store_nothing(stock: stockroom.StockRoom, value: object) -> None:
    stock.tag["kept"] = 1
    stock.commit("one tag")
    with pytest.raises(TypeError, match="int, float, str or bool"):
        stock.tag["kept"] = value  # type: ignore[assignment]
    with pytest.raises(TypeError):
        stock.tag["new"] = value  # type: ignore[assignment]
    assert dict(stock.tag) == {"kept": 1}
    with pytest.raises(StockroomError, match="nothing to commit"):
        stock.commit("nothing was stored")


@pytest.mark.parametrize("key", ["", 5, None, b"k", "\ud800", "k" * 65, "é" * 11])
def test_invalid_keys_are_value_errors(stock: stockroom.StockRoom, key: object) -> None:
    with pytest.raises(ValueError):
        stock.tag[key] = 1  # type: ignore[index]
    with pytest.raises(ValueError):
        stock.tag[key]  # type: ignore[index]
    with pytest.raises(ValueError):
        del stock.tag[key]  # type: ignore[arg-type]
    assert key not in stock.tag
    assert len(stock.tag) == 0


def test_missing_keys_are_key_errors(stock: stockroom.StockRoom) -> None:
    with pytest.raises(KeyError):
        stock.tag["missing"]  # no tag column at all yet
    with pytest.raises(KeyError):
        del stock.tag["missing"]
    stock.tag["present"] = 1
    with pytest.raises(KeyError):
        stock.tag["missing"]  # column exists, key does not (staged)
    stock.commit("one")
    with pytest.raises(KeyError) as info:
        stock.tag["missing"]  # committed
    assert info.value.args == ("missing",)
    with pytest.raises(KeyError):
        del stock.tag["missing"]
    assert stock.tag.get("missing") is None
    assert stock.tag.get("missing", 3) == 3


LOOKALIKES = ["a/b", "a-2fb", "a.b", "a_b", "a b", "-", "-2d", "ключ", "🙂", "A", "a", "tag", "data.x"]


def test_lookalike_keys_never_collide(stock: stockroom.StockRoom) -> None:
    for i, key in enumerate(LOOKALIKES):
        stock.tag[key] = i
    assert dict(stock.tag) == {k: i for i, k in enumerate(LOOKALIKES)}
    stock.commit("lookalikes")
    assert dict(stock.tag) == {k: i for i, k in enumerate(LOOKALIKES)}
    assert sorted(stock.tag) == sorted(LOOKALIKES)
    del stock.tag["a-2fb"]
    assert "a/b" in stock.tag and "a-2fb" not in stock.tag


def test_mapping_methods(stock: stockroom.StockRoom) -> None:
    stock.tag.update({"a": 1, "b": 2.5}, c="three")
    assert len(stock.tag) == 3 and set(stock.tag.keys()) == {"a", "b", "c"}
    assert stock.tag.setdefault("a", 9) == 1
    assert stock.tag.pop("b") == 2.5 and "b" not in stock.tag
    stock.tag["a"] = "replaced"
    assert dict(stock.tag.items()) == {"a": "replaced", "c": "three"}
    stock.commit("mapping")
    stock.tag.clear()
    assert len(stock.tag) == 0 and list(stock.tag) == []
    stock.commit("cleared")
    assert dict(stock.tag) == {}
    assert "tags" in repr(stock.tag)


def test_unicode_values_with_lone_surrogate_are_refused(stock: stockroom.StockRoom) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        stock.tag["s"] = "bad\udc00"
    assert "s" not in stock.tag


values = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(blacklist_categories=("Cs",))),
)


@given(values)
@settings(max_examples=300, deadline=None)
def test_value_encoding_is_exact(value: object) -> None:
    got = decode_value(encode_value(value))
    assert type(got) is type(value)
    if isinstance(value, float):
        assert bits(got) == bits(value)  # type: ignore[arg-type]
    else:
        assert got == value


@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=5), values)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_store_round_trip_any_key_any_value(stock: stockroom.StockRoom, key: str, value: object) -> None:
    stock.tag[key] = value  # type: ignore[assignment]
    got = stock.tag[key]
    assert type(got) is type(value)
    assert bits(got) == bits(value) if isinstance(value, float) else got == value  # type: ignore[arg-type]
    assert key in stock.tag


# ---------------------------------------------------------------- issue 14
NUMPY_SCALARS = [
    (np.bool_(True), True), (np.bool_(False), False), (np.int64(-7), -7), (np.uint64(2**64 - 1), 2**64 - 1),
    (np.int8(5), 5), (np.float32(0.1), float(np.float32(0.1))), (np.float16(1.5), 1.5),
    (np.float32("nan"), math.nan), (np.float64(1 / 3), 1 / 3), (np.str_("abc"), "abc"),
]


@pytest.mark.parametrize("value, want", NUMPY_SCALARS, ids=lambda v: f"{type(v).__name__}")
def test_numpy_scalars_are_stored_as_the_python_value_they_equal(
    stock: stockroom.StockRoom, value: object, want: object
) -> None:
    """Issue 14.12: metrics are usually numpy scalars; each is stored exactly, as its Python type."""
    stock.tag["m"] = value  # type: ignore[assignment]
    stock.commit("metric")
    got = stock.tag["m"]
    assert type(got) is type(want)
    if isinstance(want, float):
        assert bits(got) == bits(float(value))  # type: ignore[arg-type]
    else:
        assert got == want


def test_refused_numpy_values_name_their_numpy_type(stock: stockroom.StockRoom) -> None:
    with pytest.raises(TypeError, match=r"not numpy\.complex64"):
        stock.tag["c"] = np.complex64(1)  # type: ignore[assignment]
    with pytest.raises(TypeError, match=r"not numpy\.longdouble.*float\(value\) rounds"):
        stock.tag["c"] = np.longdouble(1) / 3  # type: ignore[assignment]


@pytest.mark.parametrize(
    "value, match",
    [
        ("x" * 10_000_000, r"at most 1,999,998 bytes of UTF-8 text; this one is 10,000,000 bytes"),
        ("é" * (1024 * 1024), r"at most 1,999,998 bytes of UTF-8 text; this one is 2,097,152 bytes"),
        (1 << 8_000_000, r"an int tag can have at most 7,999,988 bits; this one has 8,000,001"),
    ],
    ids=["ascii", "utf8", "int"],
)
def test_oversized_tags_get_the_real_limit_in_the_users_terms(
    stock: stockroom.StockRoom, value: object, match: str
) -> None:
    """Issue 14.8: stockroom's own message (not Hangar's 'recieved 1.05 MB'), nothing stored."""
    with pytest.raises(ValueError, match=match) as info:
        stock.tag["big"] = value  # type: ignore[assignment]
    assert "recieved" not in str(info.value)
    assert "big" not in stock.tag


def test_largest_tags_fit(stock: stockroom.StockRoom) -> None:
    from stockroom.storages.tag import MAX_INT_BITS, MAX_TEXT_BYTES

    text = "é" * (MAX_TEXT_BYTES // 2)
    big = -((1 << MAX_INT_BITS) - 1)
    stock.tag["t"] = text
    stock.tag["i"] = big
    stock.commit("largest")
    assert stock.tag["t"] == text and stock.tag["i"] == big


# ------------------------------------------------ many tags: optimize() and update
def test_tags_inside_optimize_read_back_and_commit(stock: stockroom.StockRoom) -> None:
    want: dict[str, object] = {f"m{i}": i * 0.25 for i in range(300)}
    with stock.optimize():
        for key, value in want.items():
            stock.tag[key] = value
            assert stock.tag[key] == value
        stock.data["d"][0] = np.arange(2)  # another column in between
        stock.tag["flag"] = True
        del stock.tag["m0"]
        stock.tag["m1"] = "replaced"
        with pytest.raises(KeyError):
            stock.tag["m0"]
        stock.commit("metrics")
        stock.tag["late"] = 7
    want.pop("m0")
    want.update(m1="replaced", flag=True, late=7)
    assert dict(stock.tag) == want
    stock.commit("late")
    with stockroom.StockRoom(stock.path) as fresh:
        assert dict(fresh.tag) == want


def test_tag_update_is_all_or_nothing(stock: stockroom.StockRoom) -> None:
    stock.tag.update({f"k{i}": i for i in range(500)}, extra="x")
    assert len(stock.tag) == 501 and stock.tag["k499"] == 499 and stock.tag["extra"] == "x"
    stock.commit("many")
    with pytest.raises(TypeError):
        stock.tag.update({"good": 1, "bad": [1, 2]})
    with pytest.raises(ValueError):
        stock.tag.update([("fine", 1), ("", 2)])
    assert "good" not in stock.tag and "fine" not in stock.tag
    with stock.optimize():
        stock.tag.update((f"o{i}", float(i)) for i in range(100))
        assert stock.tag["o99"] == 99.0
    stock.commit("more")
    with stockroom.StockRoom(stock.path) as fresh:
        assert len(fresh.tag) == 601 and fresh.tag["o5"] == 5.0


def test_staged_tags_outside_optimize_leave_other_columns_on_the_reader(stock: stockroom.StockRoom) -> None:
    """A staged tag is read back through the tag column alone, and reads of
    other columns keep using the committed reader: they need no writer lock,
    so they work while another StockRoom holds the writer."""
    stock.data["c"].update({i: np.full(3, i) for i in range(5)})
    stock.tag["seed"] = 1
    stock.commit("base")
    with stockroom.StockRoom(stock.path, lock_timeout=0.2) as mine:
        mine.tag["lr"] = 0.5
        mine.tag.update(a=1, b="two")
        del mine.tag["a"]
        assert mine.tag["lr"] == 0.5 and mine.tag["seed"] == 1 and "a" not in mine.tag
        assert dict(mine.tag) == {"seed": 1, "lr": 0.5, "b": "two"}
        with stockroom.StockRoom(stock.path) as other, other.optimize():
            other.data["c"][9] = np.full(3, 9)  # holds the writer lock
            np.testing.assert_array_equal(mine.data["c"][3], np.full(3, 3))
            assert len(mine.data["c"]) == 5 and 9 not in mine.data["c"]
            with pytest.raises(StockroomError, match="writer is held"):
                mine.tag["lr"]  # its own staged tags need the staging area
        assert mine.tag["lr"] == 0.5
        mine.commit("tags")
    with stockroom.StockRoom(stock.path) as fresh:
        assert dict(fresh.tag) == {"seed": 1, "lr": 0.5, "b": "two"}
        assert 9 in fresh.data["c"]  # the other StockRoom's staged sample, committed with them
