"""Base58 decoding (the folding rounds of ``indexer.decode.base58``) against the definition.

The decoder folds all digit pairs at once with big-integer masks; these tests hold it to
the textbook digit-by-digit reading, to solders' own parsing of keys and signatures, and
to round trips through the encoder, at every length the rounds treat differently (one
digit, powers of two and their neighbours, longer than the precomputed masks).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from solders.pubkey import Pubkey
from solders.signature import Signature

from indexer.decode.base58 import ALPHABET, b58decode, b58encode


def reference_decode(text: str) -> bytes:
    """Base58 by its definition: one digit at a time, each leading '1' a zero byte."""
    number = 0
    for char in text:
        number = number * 58 + ALPHABET.index(char)
    zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * zeros + (number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b"")


LENGTHS = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 44, 63, 64, 65, 79, 88, 127, 128, 129]
LONG_LENGTHS = [255, 256, 257, 1024, 1683, 2047, 2048, 2049, 4097]


@pytest.mark.parametrize("length", LENGTHS + LONG_LENGTHS)
def test_every_length_matches_the_definition(length: int) -> None:
    highest = "z" * length  # every digit 57: the largest value, the fullest fields
    mixed = "".join(ALPHABET[(i * 31 + 7) % 58] for i in range(length))
    leading = "1" * (length // 3) + mixed[length // 3 :]
    for text in (highest, mixed, leading, "1" * length):
        assert b58decode(text) == reference_decode(text)


@given(st.text(alphabet=ALPHABET, max_size=300))
def test_any_base58_text_matches_the_definition(text: str) -> None:
    assert b58decode(text) == reference_decode(text)


@given(st.binary(max_size=400), st.integers(0, 5))
def test_round_trip(data: bytes, zeros: int) -> None:
    data = b"\x00" * zeros + data
    assert b58decode(b58encode(data)) == data


def test_known_values() -> None:
    assert b58decode("") == b""
    assert b58decode("1") == b"\x00"
    assert b58decode("112") == b"\x00\x00\x01"
    assert b58decode("z") == bytes([57])
    assert b58decode("211") == (58 * 58).to_bytes(2, "big")
    assert b58decode("11111111111111111111111111111111") == bytes(32)  # the System Program
    key = Pubkey(bytes(range(32)))
    assert b58decode(str(key)) == bytes(key)
    signature = Signature(bytes(range(255, 191, -1)))
    assert b58decode(str(signature)) == bytes(signature)
    memo = b"amoca:1:payment;task=3f2b8c1e-5d4a-4b6f-9c7e-1a2b3c4d5e6f"
    assert b58decode(b58encode(memo)) == memo


@pytest.mark.parametrize("text", ["0", "O", "I", "l", "abc ", "+", "é", "2\udcff", "1" * 40 + "0"])
def test_characters_outside_the_alphabet_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not base58"):
        b58decode(text)
