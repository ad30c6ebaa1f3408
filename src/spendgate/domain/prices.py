"""Operator prices: models the bundled price data lacks, or negotiated rates that override it.

Prices are USD per million tokens, dated: the entry in force at the request's time applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from spendgate.domain.usage import TokenUsage

_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class OperatorPrice:
    model: str
    input_mtok: Decimal
    output_mtok: Decimal
    cached_input_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    starts: date | None = None  # UTC date from which the price holds; None: always
    max_output_tokens: int | None = None  # the model's output cap, for reservations

    def __post_init__(self) -> None:
        for value in (self.input_mtok, self.output_mtok, self.cached_input_mtok, self.cache_write_mtok):
            if value is not None and (not value.is_finite() or value < 0):
                raise ValueError(f"price for {self.model!r} must be a non-negative number")

    def cost_usd(self, usage: TokenUsage) -> Decimal:
        uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
        cached_rate = self.input_mtok if self.cached_input_mtok is None else self.cached_input_mtok
        write_rate = self.input_mtok if self.cache_write_mtok is None else self.cache_write_mtok
        return (
            uncached * self.input_mtok
            + usage.cached_input_tokens * cached_rate
            + usage.cache_write_tokens * write_rate
            + usage.output_tokens * self.output_mtok
        ) / _MILLION


class OperatorPriceSheet:
    """Dated operator prices by model name (exact, case-insensitive match)."""

    def __init__(self, prices: Iterable[OperatorPrice] = ()) -> None:
        by_model: dict[str, list[OperatorPrice]] = {}
        for price in prices:
            by_model.setdefault(price.model.lower(), []).append(price)
        self._by_model: Mapping[str, list[OperatorPrice]] = {
            model: sorted(entries, key=lambda p: p.starts or date.min) for model, entries in by_model.items()
        }

    def price_at(self, model: str, when: datetime) -> OperatorPrice | None:
        day = when.date()
        in_force = None
        for price in self._by_model.get(model.lower(), ()):
            if price.starts is None or price.starts <= day:
                in_force = price
        return in_force

    def max_output_tokens(self) -> dict[str, int]:
        return {
            model: price.max_output_tokens
            for model, prices in self._by_model.items()
            for price in prices
            if price.max_output_tokens is not None
        }
