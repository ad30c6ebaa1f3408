from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from spendgate.domain.prices import OperatorPrice, OperatorPriceSheet
from spendgate.domain.usage import TokenUsage


def test_operator_price_rates_cached_and_uncached_input() -> None:
    price = OperatorPrice(
        "llama", input_mtok=Decimal("0.60"), output_mtok=Decimal("0.80"), cached_input_mtok=Decimal("0.30")
    )
    usage = TokenUsage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=500_000)
    # 600k uncached * 0.60 + 400k cached * 0.30 + 500k out * 0.80 (per million)
    assert price.cost_usd(usage) == Decimal("0.36") + Decimal("0.12") + Decimal("0.40")


def test_cached_tokens_fall_back_to_the_input_rate() -> None:
    price = OperatorPrice("m", input_mtok=Decimal("1"), output_mtok=Decimal("2"))
    assert price.cost_usd(TokenUsage(input_tokens=10, cached_input_tokens=10)) == Decimal("0.00001")


def test_the_dated_price_in_force_applies() -> None:
    sheet = OperatorPriceSheet(
        [
            OperatorPrice("m", Decimal("1"), Decimal("1")),
            OperatorPrice("m", Decimal("2"), Decimal("2"), starts=date(2026, 6, 1)),
        ]
    )
    before = sheet.price_at("M", datetime(2026, 5, 31, 23, 59, tzinfo=UTC))
    after = sheet.price_at("m", datetime(2026, 6, 1, 0, 0, tzinfo=UTC))
    assert before is not None and before.input_mtok == 1
    assert after is not None and after.input_mtok == 2
    assert sheet.price_at("other", datetime.now(UTC)) is None


def test_a_price_with_only_future_entries_is_not_in_force_yet() -> None:
    sheet = OperatorPriceSheet([OperatorPrice("m", Decimal("1"), Decimal("1"), starts=date(2030, 1, 1))])
    assert sheet.price_at("m", datetime(2026, 1, 1, tzinfo=UTC)) is None


def test_negative_prices_are_refused() -> None:
    with pytest.raises(ValueError):
        OperatorPrice("m", Decimal("-1"), Decimal("1"))


def test_usage_invariants() -> None:
    with pytest.raises(ValueError):
        TokenUsage(input_tokens=1, cached_input_tokens=2)
    with pytest.raises(ValueError):
        TokenUsage(output_tokens=1, reasoning_tokens=2)
