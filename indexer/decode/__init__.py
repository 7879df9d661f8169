"""The decoder: getTransaction results -> AMOCA marketplace rows. Pure code, no I/O.

Stages, one module each: ``transaction`` (encodings -> instructions), ``legs``
(instructions -> transfer legs and memo data), ``memo`` (the AMOCA memo protocol),
``classify`` (legs + memo -> rows, DESIGN section 4), ``models`` (the frozen values).
"""

from indexer.decode.classify import SKIP_REASONS, token_amount
from indexer.decode.memo import MEMO_REJECTION_REASONS, format_memo, parse_memo, select_memo
from indexer.decode.models import (
    DecodedTransaction,
    Leg,
    Memo,
    MemoRejection,
    SkippedLeg,
    TransferRow,
    UnattributedLeg,
)
from indexer.decode.transaction import (
    DECODE_ERROR_REASONS,
    decode_transaction,
    decode_transaction_bytes,
)

__all__ = [
    "DECODE_ERROR_REASONS",
    "MEMO_REJECTION_REASONS",
    "SKIP_REASONS",
    "DecodedTransaction",
    "Leg",
    "Memo",
    "MemoRejection",
    "SkippedLeg",
    "TransferRow",
    "UnattributedLeg",
    "decode_transaction",
    "decode_transaction_bytes",
    "format_memo",
    "parse_memo",
    "select_memo",
    "token_amount",
]
