"""Turning user keys into Hangar keys and back, without collisions.

Hangar accepts keys of at most 64 ASCII letters, digits, ``_``, ``.`` and
``-`` (and non-negative ints for samples). stockroom accepts any text: the
encoding keeps letters, digits, ``_`` and ``.`` as they are and writes every
other character (``-`` included) as ``-`` followed by the hex digits of each
of its UTF-8 bytes. ``-`` appears in an encoded key only as that escape, so
the encoding is one-to-one: no key, whatever its text, can forge another.
"""

from __future__ import annotations

import operator
import re

MAX_HANGAR_KEY = 64
_SAFE = re.compile(r"[A-Za-z0-9_.]")
_SAFE_RUN = re.compile(r"[A-Za-z0-9_.]+")
_ESCAPE = re.compile(r"-([0-9a-f]{2})")

SampleKey = str | int


def encode_text(text: object, what: str = "key", room: int = MAX_HANGAR_KEY) -> str:
    """The Hangar-safe form of the text key ``text`` (ValueError when impossible)."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a str, not {type(text).__name__}: {text!r}")
    if text == "":
        raise ValueError(f"{what} must not be empty")
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {text!r} is not valid unicode (lone surrogate); use valid text") from None
    if _SAFE_RUN.fullmatch(text):
        encoded = text
    else:
        encoded = "".join(chr(b) if b < 128 and _SAFE.match(chr(b)) else f"-{b:02x}" for b in raw)
    if len(encoded) > room:
        raise ValueError(
            f"{what} {text[:40]!r}{'...' if len(text) > 40 else ''} is too long to store: "
            f"{len(encoded)} characters once encoded, at most {room} (letters, digits, "
            f"'_' and '.' count 1, other characters 3 per UTF-8 byte); use a shorter {what}"
        )
    return encoded


def decode_text(encoded: str) -> str:
    """Inverse of :func:`encode_text`."""
    if "-" not in encoded:
        return encoded
    parts: list[bytes] = []
    pos = 0
    for match in _ESCAPE.finditer(encoded):
        parts.append(encoded[pos : match.start()].encode("ascii"))
        parts.append(bytes([int(match.group(1), 16)]))
        pos = match.end()
    parts.append(encoded[pos:].encode("ascii"))
    return b"".join(parts).decode("utf-8")


def encode_sample(key: object) -> str | int:
    """The Hangar form of a sample key: text as above, or a non-negative int."""
    if isinstance(key, str):
        return encode_text(key, "sample key")
    if isinstance(key, bool) or not hasattr(key, "__index__"):
        raise ValueError(f"sample key must be a str or an int, not {type(key).__name__}: {key!r}")
    number = operator.index(key)
    if number < 0 or number >= 10**MAX_HANGAR_KEY:
        raise ValueError(f"int sample key must be between 0 and 10**64 - 1, got {number}")
    return int(number)


def decode_sample(key: str | int) -> SampleKey:
    return key if isinstance(key, int) else decode_text(key)
