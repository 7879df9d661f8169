"""Base58 (Bitcoin alphabet), the text form of Solana keys, signatures and `json` instruction data.

Why our own: solders parses base58 only into fixed-size types (``Pubkey``: 32 bytes,
``Signature``: 64 bytes), while instruction data and memo bytes have any length, and
the ``base58`` PyPI package is not among our dependencies. The inputs we decode are
short (a System transfer is 12 bytes, a memo at most a few hundred), so the simple
big-integer method is fast enough and has no edge cases to get wrong.
"""

from __future__ import annotations

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_DIGIT = {char: value for value, char in enumerate(ALPHABET)}


def b58decode(text: str) -> bytes:
    """The bytes ``text`` encodes; ``ValueError`` on a character outside the alphabet."""
    number = 0
    digit = _DIGIT
    try:
        for char in text:
            number = number * 58 + digit[char]
    except KeyError:
        raise ValueError("not base58") from None
    # Each leading '1' stands for one leading zero byte.
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * zeros + body


def b58encode(data: bytes) -> str:
    """The base58 text of ``data`` (inverse of :func:`b58decode`)."""
    number = int.from_bytes(data, "big")
    chars: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        chars.append(ALPHABET[remainder])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + "".join(reversed(chars))
