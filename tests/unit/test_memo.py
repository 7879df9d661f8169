"""The AMOCA memo protocol v1: every rule, plus property-based fuzzing of parse_memo."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey
from solders.signature import Signature

from indexer.decode import (
    MEMO_REJECTION_REASONS,
    Memo,
    MemoRejection,
    decode_transaction,
    format_memo,
    parse_memo,
    select_memo,
)

TASK = "0d9c1f4e-8a7b-4c3d-9e2f-6a5b4c3d2e1f"
SIG = str(Signature(bytes(range(64))))
AGENT = str(Pubkey(bytes([2]) * 32))
OTHER_AGENT = str(Pubkey(bytes([3]) * 32))
USER = str(Pubkey(bytes([4]) * 32))


def rejection(data: bytes | str) -> str:
    result = parse_memo(data)
    assert isinstance(result, MemoRejection), result
    assert result.reason in MEMO_REJECTION_REASONS
    return result.reason


# ---------------------------------------------------------------- valid memos
def test_funding() -> None:
    assert parse_memo("amoca:1:funding") == Memo(type="funding", text="amoca:1:funding")


def test_payment() -> None:
    memo = parse_memo(f"amoca:1:payment;task={TASK}")
    assert isinstance(memo, Memo)
    assert (memo.type, memo.task_id, memo.refund_of, memo.period) == ("payment", UUID(TASK), None, None)


def test_refund_with_and_without_refund_of() -> None:
    memo = parse_memo(f"amoca:1:refund;task={TASK};refund_of={SIG}")
    assert isinstance(memo, Memo)
    assert (memo.type, memo.task_id, memo.refund_of) == ("refund", UUID(TASK), SIG)
    memo = parse_memo(f"amoca:1:refund;task={TASK}")
    assert isinstance(memo, Memo)
    assert memo.refund_of is None


def test_subscription() -> None:
    memo = parse_memo("amoca:1:subscription;period=2024-12")
    assert isinstance(memo, Memo)
    assert (memo.type, memo.period) == ("subscription", "2024-12")


def test_bytes_and_text_parse_alike() -> None:
    text = f"amoca:1:payment;task={TASK}"
    assert parse_memo(text) == parse_memo(text.encode()) == parse_memo(bytearray(text.encode()))


def test_key_order_is_free() -> None:
    a = parse_memo(f"amoca:1:refund;refund_of={SIG};task={TASK}")
    b = parse_memo(f"amoca:1:refund;task={TASK};refund_of={SIG}")
    assert isinstance(a, Memo)
    assert isinstance(b, Memo)
    assert (a.task_id, a.refund_of) == (b.task_id, b.refund_of)


def test_unknown_keys_are_ignored() -> None:
    memo = parse_memo(f"amoca:1:payment;task={TASK};note=thanks;v2_hint=x=y")
    assert isinstance(memo, Memo)
    assert memo.task_id == UUID(TASK)
    assert memo.ignored_keys == ("note", "v2_hint")


def test_keys_of_other_types_are_ignored_not_applied() -> None:
    memo = parse_memo(f"amoca:1:funding;task={TASK};period=2024-01")
    assert isinstance(memo, Memo)
    assert (memo.task_id, memo.period, memo.ignored_keys) == (None, None, ("task", "period"))
    memo = parse_memo(f"amoca:1:payment;task={TASK};refund_of=not-checked-here")
    assert isinstance(memo, Memo)
    assert memo.refund_of is None


def test_exactly_256_bytes_is_accepted() -> None:
    base = f"amoca:1:payment;task={TASK};note="
    text = base + "x" * (256 - len(base))
    assert len(text.encode()) == 256
    assert isinstance(parse_memo(text), Memo)


# ---------------------------------------------------------------- rejections
@pytest.mark.parametrize(
    ("memo", "reason"),
    [
        ("transfer", "not_amoca"),
        ("", "not_amoca"),
        ("amoca", "not_amoca"),
        ("amoc\u0430:1:funding", "not_amoca"),  # Cyrillic a: not our prefix
        ("AMOCA:1:funding", "not_lowercase"),
        ("amoca:1:Payment;task=" + TASK, "not_lowercase"),
        ("amoca:1:payment;TASK=" + TASK, "not_lowercase"),
        ("amoca:1:payment;task=" + TASK.upper(), "not_lowercase"),
        ("amoca:1", "malformed"),
        ("amoca::funding", "malformed"),
        ("amoca:1:", "malformed"),
        ("amoca:1:payment;task", "malformed"),
        ("amoca:1:payment;=x;task=" + TASK, "malformed"),
        ("amoca:1:payment;task=" + TASK + ";", "malformed"),
        ("amoca:1:payment;;task=" + TASK, "malformed"),
        ("amoca:1:payment;ta-sk=1;task=" + TASK, "malformed"),
        ("amoca:2:funding", "unknown_version"),
        ("amoca:01:funding", "unknown_version"),
        ("amoca:v1:funding", "unknown_version"),
        ("amoca:1:tip", "unknown_type"),
        ("amoca:1:funding:extra", "unknown_type"),
        ("amoca:1:payment;task=not-a-uuid", "bad_task_id"),
        ("amoca:1:payment;task=", "bad_task_id"),
        ("amoca:1:payment;task=0d9c1f4e8a7b4c3d9e2f6a5b4c3d2e1f", "bad_task_id"),  # not canonical
        ("amoca:1:payment;task={" + TASK + "}", "bad_task_id"),
        ("amoca:1:refund;task=" + TASK + ";refund_of=abc", "bad_signature"),
        ("amoca:1:refund;task=" + TASK + ";refund_of=" + SIG[:-1] + "0", "bad_signature"),  # '0' not base58
        ("amoca:1:refund;task=" + TASK + ";refund_of=" + str(Pubkey(bytes(range(32)))), "bad_signature"),
        ("amoca:1:refund;task=" + TASK + ";refund_of=" + "1" * 65, "bad_signature"),
        ("amoca:1:subscription;period=2024-13", "bad_period"),
        ("amoca:1:subscription;period=2024-00", "bad_period"),
        ("amoca:1:subscription;period=2024-1", "bad_period"),
        ("amoca:1:subscription;period=24-01", "bad_period"),
        ("amoca:1:subscription;period=2024-01-01", "bad_period"),
        ("amoca:1:subscription;period=\uff12\uff10\uff12\uff14-01", "bad_period"),  # full-width digits
        ("amoca:1:payment;task=" + TASK + ";task=" + TASK, "duplicate_key"),
        ("amoca:1:payment;task=" + TASK + ";note=a;note=b", "duplicate_key"),
        ("amoca:1:payment", "missing_key"),
        ("amoca:1:refund;refund_of=" + SIG, "missing_key"),
        ("amoca:1:subscription", "missing_key"),
    ],
)
def test_rejections(memo: str, reason: str) -> None:
    assert rejection(memo) == reason


def test_257_bytes_is_too_long() -> None:
    base = f"amoca:1:payment;task={TASK};note="
    text = base + "x" * (257 - len(base))
    assert len(text.encode()) == 257
    assert rejection(text) == "too_long"


def test_too_long_counts_bytes_not_characters() -> None:
    text = "amoca:1:funding;note=" + "é" * 118  # 21 + 236 = 257 bytes, 139 characters
    assert len(text.encode()) == 257
    assert rejection(text) == "too_long"


def test_non_utf8() -> None:
    result = parse_memo(b"amoca:1:funding;note=\xff\xfe")
    assert isinstance(result, MemoRejection)
    assert result.reason == "not_utf8"
    assert result.text is not None
    assert result.text.startswith("amoca:1:funding")


def test_lone_surrogate_text_is_not_utf8() -> None:
    assert rejection("amoca:1:funding\udc80") == "not_utf8"


def test_non_memo_input_types_are_rejected_not_raised() -> None:
    bad: Any = None
    assert parse_memo(bad).reason == "malformed"  # type: ignore[union-attr]


# ---------------------------------------------------------------- choosing among memos
def test_select_memo() -> None:
    payment = f"amoca:1:payment;task={TASK}"
    assert select_memo([]) == (None, None)
    text, result = select_memo(["gm", payment])
    assert (text, isinstance(result, Memo)) == (payment, True)
    text, result = select_memo([payment, payment.encode()])
    assert isinstance(result, Memo)
    text, result = select_memo(["gm", "gn"])
    assert text == "gm"
    assert isinstance(result, MemoRejection)
    assert result.reason == "not_amoca"
    _, result = select_memo([payment, "amoca:1:funding"])
    assert isinstance(result, MemoRejection)
    assert result.reason == "multiple_memos"


# ---------------------------------------------------------------- the builder
def test_format_memo_round_trips() -> None:
    text = format_memo("refund", task_id=UUID(TASK), refund_of=SIG)
    assert text == f"amoca:1:refund;task={TASK};refund_of={SIG}"
    memo = parse_memo(text)
    assert isinstance(memo, Memo)
    assert memo.to_text() == text


def test_format_memo_refuses_what_the_indexer_would_reject() -> None:
    with pytest.raises(ValueError, match="missing_key"):
        format_memo("payment")
    with pytest.raises(ValueError, match="bad_period"):
        format_memo("subscription", period="2024-13")
    with pytest.raises(ValueError, match="do not belong"):
        format_memo("funding", task_id=UUID(TASK))


# ---------------------------------------------------------------- task ownership, via the decoder
def _payment_result(memo: str, source: str = USER, destination: str = AGENT) -> dict[str, Any]:
    """A minimal jsonParsed getTransaction result: one System transfer and one memo."""
    keys = [
        source,
        destination,
        "11111111111111111111111111111111",
        "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr",
    ]
    return {
        "slot": 1,
        "blockTime": 2,
        "version": "legacy",
        "meta": {
            "err": None,
            "fee": 5000,
            "innerInstructions": [],
            "preBalances": [0, 0, 1, 1],
            "postBalances": [0, 0, 1, 1],
            "preTokenBalances": [],
            "postTokenBalances": [],
            "logMessages": [],
            "status": {"Ok": None},
        },
        "transaction": {
            "signatures": [SIG],
            "message": {
                "accountKeys": [
                    {"pubkey": key, "signer": i == 0, "writable": i < 2, "source": "transaction"}
                    for i, key in enumerate(keys)
                ],
                "instructions": [
                    {
                        "parsed": {
                            "info": {"source": source, "destination": destination, "lamports": 10},
                            "type": "transfer",
                        },
                        "program": "system",
                        "programId": keys[2],
                    },
                    {"parsed": memo, "program": "spl-memo", "programId": keys[3]},
                ],
                "recentBlockhash": "11111111111111111111111111111111",
            },
        },
    }


def test_payment_for_a_task_of_another_agent_is_no_valid_memo() -> None:
    owners = {UUID(TASK): OTHER_AGENT}
    decoded = decode_transaction(
        _payment_result(f"amoca:1:payment;task={TASK}"), {AGENT}, task_owner=owners.get
    )
    (row,) = decoded.rows
    assert (row.transaction_type, row.memo_rejection) == ("funding", "task_agent_mismatch")
    assert decoded.memo_rejection is not None
    assert decoded.memo_rejection.reason == "task_agent_mismatch"


def test_payment_for_own_task_is_payment() -> None:
    decoded = decode_transaction(
        _payment_result(f"amoca:1:payment;task={TASK}"), {AGENT}, task_owner={UUID(TASK): AGENT}.get
    )
    assert decoded.rows[0].transaction_type == "payment"


def test_without_task_owner_the_check_is_skipped() -> None:
    decoded = decode_transaction(_payment_result(f"amoca:1:payment;task={TASK}"), {AGENT})
    assert decoded.rows[0].task_id == UUID(TASK)


# ---------------------------------------------------------------- fuzzing
def _check_total(result: Memo | MemoRejection) -> None:
    if isinstance(result, MemoRejection):
        assert result.reason in MEMO_REJECTION_REASONS
    else:
        # A valid memo round-trips through its canonical text.
        again = parse_memo(result.to_text())
        assert isinstance(again, Memo)
        assert (again.type, again.task_id, again.refund_of, again.period) == (
            result.type,
            result.task_id,
            result.refund_of,
            result.period,
        )
        assert len(result.text.encode()) <= 256


@settings(max_examples=500)
@given(st.binary(max_size=400))
@example(b"amoca:1:funding")
@example(b"\x00" * 300)
def test_parse_memo_never_raises_on_bytes(data: bytes) -> None:
    _check_total(parse_memo(data))


@settings(max_examples=500)
@given(st.text(max_size=300))
def test_parse_memo_never_raises_on_text(text: str) -> None:
    _check_total(parse_memo(text))


_uuid_text = st.uuids().map(str)
_values = st.one_of(
    _uuid_text,
    _uuid_text.map(str.upper),
    st.just(SIG),
    st.just(SIG[:40]),
    st.from_regex(r"[0-9]{4}-[0-9]{2}", fullmatch=True),
    st.text(max_size=12),
)
_keys = st.one_of(
    st.sampled_from(["task", "refund_of", "period", "note", "TASK", ""]),
    st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
)
_fields = st.lists(st.tuples(_keys, _values).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=4)


@st.composite
def near_valid_memos(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["amoca:", "amoca:", "amoca:", "AMOCA:", "amoca", "amoca:x"]))
    version = draw(st.sampled_from(["1", "1", "1", "2", "", "01"]))
    memo_type = draw(st.sampled_from(["funding", "payment", "refund", "subscription", "Payment", "tip", ""]))
    fields = draw(_fields)
    return ";".join([f"{prefix}{version}:{memo_type}", *fields])


@settings(max_examples=600)
@given(near_valid_memos())
def test_parse_memo_on_near_valid_memos(text: str) -> None:
    result = parse_memo(text)
    _check_total(result)
    if isinstance(result, Memo):
        assert text.startswith(f"amoca:1:{result.type}")


@settings(max_examples=300)
@given(
    st.sampled_from(["funding", "payment", "refund", "subscription"]),
    st.uuids(),
    st.booleans(),
    st.integers(2000, 2999),
    st.integers(1, 12),
)
def test_valid_memos_round_trip(
    memo_type: Any, task: UUID, with_refund_of: bool, year: int, month: int
) -> None:
    task_id = task if memo_type in ("payment", "refund") else None
    refund_of = SIG if memo_type == "refund" and with_refund_of else None
    period = f"{year}-{month:02d}" if memo_type == "subscription" else None
    text = format_memo(memo_type, task_id=task_id, refund_of=refund_of, period=period)
    memo = parse_memo(text)
    assert memo == Memo(type=memo_type, text=text, task_id=task_id, refund_of=refund_of, period=period)
