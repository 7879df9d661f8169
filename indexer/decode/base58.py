"""Base58 (Bitcoin alphabet), the text form of Solana keys, signatures and `json` instruction data.

Why our own: solders parses base58 only into fixed-size types (``Pubkey``: 32 bytes,
``Signature``: 64 bytes), while instruction data and memo bytes have any length, and
no base58 package is among our dependencies.

Decoding is on the decoder's hot path (every `json` instruction's data, memos
included), so it avoids a per-character Python loop. The digits are mapped in C
(``bytes.translate``) and read as ONE big integer, one digit per byte; then the
digits are folded pairwise, all pairs at once, with a few big-integer operations per
round ("SIMD within a register"): round ``k`` turns fields of ``2**k`` bytes, each
holding a base-``58**(2**k)`` digit, into fields twice as wide holding
``high * 58**(2**k) + low``. A field of ``2**(k+1)`` bytes always has room for the
result (``58 < 256``), so no field carries into its neighbour. After
``ceil(log2(n))`` rounds one field is left: the value. A 79-character memo takes 7
rounds instead of 79 multiply-adds.
"""

from __future__ import annotations

from solders.signature import Signature

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# ASCII byte -> digit value; 255 for every byte outside the alphabet (non-ASCII text
# encodes to bytes >= 128, which all map to 255 too).
_DIGITS = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else 255 for b in range(256))


def _rounds(capacity_log2: int) -> tuple[tuple[int, int, int], ...]:
    """(field width in bits, mask of the low field of every pair, 58**digits per field)
    for each folding round of an input of up to ``2**capacity_log2`` digits."""
    size = 1 << capacity_log2
    rounds = []
    for k in range(capacity_log2):
        width = 8 << k
        low_field = ((1 << width) - 1).to_bytes(2 << k, "big")  # 0...0 ff...ff
        mask = int.from_bytes(low_field * (size >> (k + 1)), "big")
        rounds.append((width, mask, 58 ** (1 << k)))
    return tuple(rounds)


# Enough for any transaction (1,232 bytes are at most 1,683 base58 characters).
_CAPACITY_LOG2 = 11
_ROUNDS = _rounds(_CAPACITY_LOG2)


def b58decode(text: str) -> bytes:
    """The bytes ``text`` encodes; ``ValueError`` on a character outside the alphabet."""
    digits = text.encode("utf-8", "surrogatepass").translate(_DIGITS)
    if 255 in digits:
        raise ValueError("not base58")
    count = len(digits)
    number = int.from_bytes(digits, "big")
    needed = (count - 1).bit_length() if count > 1 else 0
    rounds = _ROUNDS if needed <= _CAPACITY_LOG2 else _rounds(needed)
    for width, mask, base in rounds[:needed]:
        number = ((number >> width) & mask) * base + (number & mask)
    # Each leading '1' stands for one leading zero byte.
    zeros = count - len(text.lstrip("1"))
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


def is_signature(value: object) -> bool:
    """Whether ``value`` is the base58 text of a transaction signature (64 bytes). A fixed
    size, so solders decodes it, in Rust (a refund memo's parse took 75,000 instructions
    with this module's decoding, 31,000 of them for this check)."""
    if not isinstance(value, str):
        return False
    try:
        Signature.from_string(value)
    except ValueError:
        return False
    return True
