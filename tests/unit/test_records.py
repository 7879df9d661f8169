"""``quick_init``: the same objects as the dataclass's own ``__init__``, still frozen."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from indexer.decode.models import DecodedTransaction, Leg, TransferRow
from indexer.records import quick_init
from indexer.rpc.protocol import Request, SignatureInfo


@pytest.mark.parametrize("cls", [Leg, TransferRow, DecodedTransaction, SignatureInfo, Request])
def test_every_field_lands_where_the_dataclass_puts_it(cls: type) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    values = [object() for _ in names]  # distinct, so a swapped pair shows
    positional = cls(*values)
    assert [getattr(positional, name) for name in names] == values
    assert cls(**dict(zip(names, values, strict=True))) == positional
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(positional, names[0], None)
    with pytest.raises(TypeError):
        cls(*values[:-1])
    assert f"{names[0]}=" in repr(positional)


@quick_init
@dataclass(frozen=True, slots=True)
class _WithDefaults:
    first: int
    second: str = "two"
    third: tuple[int, ...] = ()


def test_defaults_and_equality_are_the_dataclass_own() -> None:
    assert _WithDefaults(1) == _WithDefaults(1, "two", ())
    assert _WithDefaults(1, third=(3,)).third == (3,)
    assert hash(_WithDefaults(1)) == hash(_WithDefaults(1, "two"))


def test_only_frozen_slotted_plain_dataclasses_are_accepted() -> None:
    @dataclass(slots=True)
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class Unslotted:
        a: int

    @dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = field(default_factory=list)

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (Mutable, Unslotted, Factory, PostInit, int):
        with pytest.raises(TypeError):
            quick_init(cls)
