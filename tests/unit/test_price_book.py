"""The hot path's linear rates give genai-prices' own answer, to the last digit, for every model."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from genai_prices.data_snapshot import get_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.adapters.pricing.price_book import GenaiPriceBook, genai_cost, linear_rates
from spendgate.domain.prices import OperatorPrice, OperatorPriceSheet
from spendgate.domain.usage import TokenUsage

AT = datetime(2026, 11, 20, 12, tzinfo=UTC)
OPENAI_MODELS = sorted(m.id for m in next(p for p in get_snapshot().providers if p.id == "openai").models)


@st.composite
def usages(draw: st.DrawFn) -> TokenUsage:
    input_tokens = draw(st.integers(0, 2_000_000))
    cached = draw(st.integers(0, input_tokens))
    output = draw(st.integers(0, 200_000))
    return TokenUsage(
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=output,
        reasoning_tokens=draw(st.integers(0, output)),
        service_tier=draw(st.sampled_from([None, "default", "priority", "flex"])),
    )


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from(OPENAI_MODELS), usage=usages())
def test_the_price_book_equals_genai_prices(model: str, usage: TokenUsage) -> None:
    book = GenaiPriceBook()
    try:
        expected = genai_cost(model, "openai", usage, AT)
    except LookupError:
        assert not book.has_price(model, AT)
        return
    except Exception:  # genai-prices refuses this usage for this model (e.g. an image-only model)
        return
    assert book.cost_usd(model, usage, AT) == expected


def test_common_models_take_the_fast_path() -> None:
    for model in ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "o3-mini", "gpt-5", "text-embedding-3-small"):
        assert linear_rates(model, "openai", AT, None) is not None, model


def test_the_service_tier_changes_the_price() -> None:
    book = GenaiPriceBook()
    usage = TokenUsage(input_tokens=1_000_000)
    assert book.cost_usd("gpt-4o-mini", usage, AT) == Decimal("0.15")
    priority = TokenUsage(input_tokens=1_000_000, service_tier="priority")
    assert book.cost_usd("gpt-4o-mini", priority, AT) == genai_cost("gpt-4o-mini", "openai", priority, AT)
    assert book.cost_usd("gpt-4o-mini", priority, AT) > Decimal("0.15")


def test_operator_prices_come_first_and_unknown_models_have_no_price() -> None:
    sheet = OperatorPriceSheet(
        [
            OperatorPrice("gpt-4o-mini", Decimal("1"), Decimal("2"), starts=date(2026, 1, 1)),
            OperatorPrice("house-llama", Decimal("0.5"), Decimal("0.5")),
        ]
    )
    book = GenaiPriceBook(sheet)
    assert book.cost_usd("gpt-4o-mini", TokenUsage(input_tokens=1_000_000), AT) == Decimal("1")
    assert book.cost_usd(
        "gpt-4o-mini", TokenUsage(input_tokens=1_000_000), datetime(2025, 6, 1, tzinfo=UTC)
    ) == (Decimal("0.15"))
    assert book.has_price("house-llama", AT)
    assert not book.has_price("no-such-model-anywhere", AT)
    with pytest.raises(LookupError):
        book.cost_usd("no-such-model-anywhere", TokenUsage(), AT)
