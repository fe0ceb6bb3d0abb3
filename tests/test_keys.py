"""stockroom.keys: any text key maps one-to-one onto a key Hangar accepts."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockroom.keys import MAX_HANGAR_KEY, decode_sample, decode_text, encode_sample, encode_text

# What Hangar 0.5.2 accepts as a key or column name (hangar.utils.is_suitable_user_key).
HANGAR_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

# Valid unicode text: everything but lone surrogates.
texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


@given(texts)
@settings(max_examples=400, deadline=None)
def test_round_trip_and_hangar_safe(text: str) -> None:
    try:
        encoded = encode_text(text)
    except ValueError as exc:  # only ever for length
        assert "too long" in str(exc)
        return
    assert HANGAR_KEY.fullmatch(encoded)
    assert decode_text(encoded) == text


@given(texts, texts)
@settings(max_examples=400, deadline=None)
def test_distinct_texts_never_collide(a: str, b: str) -> None:
    if a != b:
        try:
            assert encode_text(a, room=10_000) != encode_text(b, room=10_000)
        except ValueError:
            pytest.fail("valid text refused")


@pytest.mark.parametrize(
    "keys",
    [
        ("a/b", "a-2fb", "a-2Fb", "a_2fb", "a.b"),
        ("-", "-2d", "--", "-2d-2d"),
        ("é", "e\u0301", "-c3-a9", "-c3a9"),  # composed vs decomposed stay distinct
        ("A", "a"),
        (" ", "  ", "-20", "_"),
        ("0", "00", "0.0"),
    ],
)
def test_lookalike_keys_stay_distinct(keys: tuple[str, ...]) -> None:
    encoded = [encode_text(k) for k in keys]
    assert len(set(encoded)) == len(keys)
    assert [decode_text(e) for e in encoded] == list(keys)


def test_plain_keys_are_kept_as_they_are() -> None:
    assert encode_text("learning_rate.v2") == "learning_rate.v2"
    assert encode_text("a-b") == "a-2db"  # '-' is the escape, so it is escaped itself


@pytest.mark.parametrize("bad", ["", None, 5, b"bytes", 1.5, ("t",)])
def test_empty_or_non_str_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="must"):
        encode_text(bad)


@pytest.mark.parametrize("bad", ["\ud800", "ok\udfff", "\udc80x"])
def test_lone_surrogates_are_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        encode_text(bad)


def test_length_limit_counts_encoded_characters() -> None:
    assert encode_text("a" * MAX_HANGAR_KEY) == "a" * MAX_HANGAR_KEY
    with pytest.raises(ValueError, match="too long.*65 characters once encoded, at most 64"):
        encode_text("a" * (MAX_HANGAR_KEY + 1))
    # 'é' is two UTF-8 bytes, 3 characters each once escaped.
    assert len(encode_text("é" * 10)) == 60
    with pytest.raises(ValueError, match="too long"):
        encode_text("é" * 11)
    with pytest.raises(ValueError, match="at most 10"):
        encode_text("abcdefghijk", room=10)


def test_sample_keys_str_and_int() -> None:
    assert encode_sample(5) == 5 and isinstance(encode_sample(5), int)
    assert encode_sample("5") == "5" and isinstance(encode_sample("5"), str)
    assert encode_sample(np.int64(7)) == 7 and type(encode_sample(np.int64(7))) is int
    assert encode_sample(0) == 0
    assert encode_sample(10**64 - 1) == 10**64 - 1
    assert decode_sample(5) == 5 and decode_sample("a-2fb") == "a/b"


@pytest.mark.parametrize("bad", [-1, 10**64, True, False, 1.0, None, b"x", "", np.float64(2.0)])
def test_bad_sample_keys_are_value_errors(bad: object) -> None:
    with pytest.raises(ValueError):
        encode_sample(bad)
