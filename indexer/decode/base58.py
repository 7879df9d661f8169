"""Base58 (Bitcoin alphabet), the text form of Solana keys, signatures and `json` instruction data.

Why our own: solders parses base58 only into fixed-size types (``Pubkey``: 32 bytes,
``Signature``: 64 bytes), while instruction data and memo bytes have any length, and
the ``base58`` PyPI package is not among our dependencies. The inputs we decode are
short (a System transfer is 12 bytes, a memo at most a few hundred), so the simple
big-integer method is fast enough and has no edge cases to get wrong.
"""

from __future__ import annotations

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# ASCII byte -> digit value; 255 for every byte outside the alphabet (non-ASCII text
# encodes to bytes >= 128, which all map to 255 too).
_DIGITS = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else 255 for b in range(256))
_FOUR = 58**4


def b58decode(text: str) -> bytes:
    """The bytes ``text`` encodes; ``ValueError`` on a character outside the alphabet.

    Digits are mapped in C (``bytes.translate``) and folded four at a time: memo data is
    decoded for every `json`-encoded transaction, so this loop is on the hot path.
    """
    digits = text.encode("utf-8", "surrogatepass").translate(_DIGITS)
    if 255 in digits:
        raise ValueError("not base58")
    number = 0
    head = len(digits) % 4
    for digit in digits[:head]:
        number = number * 58 + digit
    for i in range(head, len(digits), 4):
        number = number * _FOUR + ((digits[i] * 58 + digits[i + 1]) * 58 + digits[i + 2]) * 58 + digits[i + 3]
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
