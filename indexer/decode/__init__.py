"""The decoder: getTransaction results -> AMOCA marketplace rows. Pure code, no I/O.

Stages, one module each: ``transaction`` (encodings -> instructions), ``legs``
(instructions -> transfer legs and memo data), ``memo`` (the AMOCA memo protocol),
``classify`` (legs + memo -> rows, DESIGN section 4), ``models`` (the frozen values).
"""

from indexer.decode import memo as _memo
from indexer.decode import models as _models
from indexer.decode import transaction as _transaction
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


def forget_caches() -> None:
    """Empty what the decoder remembers across transactions (memo parses, memo data,
    account key texts, task id texts): it then decodes as a fresh process does. For
    benchmarks that time runs of a command in one process."""
    _memo._parse_text.cache_clear()
    _transaction._memo_bytes.cache_clear()
    _transaction._KEY_TEXTS.clear()
    _models.uuid_text.cache_clear()

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
    "forget_caches",
    "format_memo",
    "parse_memo",
    "select_memo",
    "token_amount",
]
