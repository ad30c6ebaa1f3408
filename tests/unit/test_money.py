from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendgate.domain.money import format_usd, nanos_to_usd, parse_usd, usd_to_nanos


def test_usd_to_nanos_is_exact() -> None:
    assert usd_to_nanos(Decimal("0.000435")) == 435_000
    assert usd_to_nanos(Decimal("12.5")) == 12_500_000_000


def test_sub_nano_remainders_round_half_even() -> None:
    assert usd_to_nanos(Decimal("0.0000000005")) == 0
    assert usd_to_nanos(Decimal("0.0000000015")) == 2
    assert usd_to_nanos(Decimal("0.0000000025")) == 2


@given(st.integers(min_value=0, max_value=10**18))
def test_nanos_round_trip_through_text(nanos: int) -> None:
    assert parse_usd(format_usd(nanos)) == nanos
    assert usd_to_nanos(nanos_to_usd(nanos)) == nanos


def test_format_usd_keeps_cents() -> None:
    assert format_usd(12_500_000_000) == "12.50"
    assert format_usd(435_000) == "0.000435"
    assert format_usd(0) == "0.00"


@pytest.mark.parametrize("text", ["abc", "NaN", "Infinity", "0.0000000001"])
def test_parse_usd_refuses_non_amounts(text: str) -> None:
    with pytest.raises(ValueError):
        parse_usd(text)
