"""libFuzzer harness for the memo parser (coverage-guided; not part of the default suite).

Run by hand, e.g. for two minutes:

    python tests/fuzz/fuzz_memo.py -max_total_time=120 -max_len=512

It feeds arbitrary bytes to ``parse_memo`` (which must never raise and must answer a
documented reason) and to ``decode_transaction_bytes`` (which may only raise
``DecodeError`` with a documented reason).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from indexer.decode import (
        DECODE_ERROR_REASONS,
        MEMO_REJECTION_REASONS,
        Memo,
        decode_transaction_bytes,
        parse_memo,
    )
    from indexer.errors import DecodeError

_WATCHED = frozenset({"11111111111111111111111111111111"})


def test_one_input(data: bytes) -> None:
    result = parse_memo(data)
    if isinstance(result, Memo):
        again = parse_memo(result.to_text())
        assert isinstance(again, Memo), (data, again)
        assert (again.type, again.task_id, again.refund_of, again.period) == (
            result.type,
            result.task_id,
            result.refund_of,
            result.period,
        )
    else:
        assert result.reason in MEMO_REJECTION_REASONS, result
    reason = None
    try:
        decode_transaction_bytes(data, _WATCHED)
    except DecodeError as exc:
        reason = exc.reason
    assert reason is None or reason in DECODE_ERROR_REASONS, reason


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
