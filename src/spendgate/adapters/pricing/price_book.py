"""The PriceBook port over genai-prices' bundled snapshot and an operator price sheet.

genai-prices is used only through `calc_price` on its bundled data; its network updater
(`UpdatePrices`) is never started, so prices never change under a running gateway.
"""

from __future__ import annotations

import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import StartDateConstraint, TieredPrices

from spendgate.domain.prices import OperatorPrice, OperatorPriceSheet
from spendgate.domain.usage import TokenUsage


class GenaiPriceBook:
    def __init__(
        self,
        operator: OperatorPriceSheet | None = None,
        provider_for: Callable[[str], str] = lambda model: "openai",
    ) -> None:
        """`provider_for` names the genai-prices provider whose prices apply to a model (its upstream's)."""
        self._operator = operator or OperatorPriceSheet()
        self._provider_for = provider_for
        self._known: dict[tuple[str, date], bool] = {}
        self._linear: dict[tuple[str, str, date, str | None], LinearRates | None] = {}

    def has_price(self, model: str, at: datetime) -> bool:
        cache_key = (model, at.date())
        known = self._known.get(cache_key)
        if known is None:
            try:
                self.cost_usd(model, TokenUsage(), at)
                known = True
            except LookupError:
                known = False
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[cache_key] = known
        return known

    def cost_usd(self, model: str, usage: TokenUsage, at: datetime) -> Decimal:
        operator_price = self._operator.price_at(model, at)
        if operator_price is not None:
            return operator_price.cost_usd(usage)
        provider = self._provider_for(model)
        key = (model, provider, at.astimezone(UTC).date(), usage.service_tier)
        if key not in self._linear:
            if len(self._linear) > 10_000:
                self._linear.clear()
            self._linear[key] = linear_rates(model, provider, at, usage.service_tier)
        rates = self._linear[key]
        if rates is not None:
            return rates.cost(usage)
        return genai_cost(model, provider, usage, at)


@dataclass(frozen=True, slots=True)
class LinearRates:
    """USD per token for each kind of token, for a model whose genai-prices price is linear in
    the counts (no tiers, no time-of-day prices). Lets the hot path skip genai-prices' unit
    decomposition; `linear_rates` proves the equality on a mixed probe before it is used."""

    uncached_input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    visible_output: Decimal
    reasoning: Decimal

    def cost(self, usage: TokenUsage) -> Decimal:
        uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
        return (
            uncached * self.uncached_input
            + usage.cached_input_tokens * self.cached_input
            + usage.cache_write_tokens * self.cache_write
            + (usage.output_tokens - usage.reasoning_tokens) * self.visible_output
            + usage.reasoning_tokens * self.reasoning
        )


_PROBE = 1_000_000


def linear_rates(model: str, provider: str, at: datetime, service_tier: str | None) -> LinearRates | None:
    """Per-token rates read off genai-prices itself, or None when its price for this model is not a
    plain linear function of the counts (then every call goes through genai-prices)."""
    _, info = get_snapshot().find_provider_model(model, None, provider, None)  # LookupError: no price
    conditional = info.prices if isinstance(info.prices, list) else []
    constraints = [c.constraint for c in conditional] + [v.constraint for v in info.price_variants or ()]
    if any(c is not None and not isinstance(c, StartDateConstraint) for c in constraints):
        return None
    resolved = info.get_prices(at, _price_context(service_tier))
    if any(isinstance(value, TieredPrices) for value in vars(resolved).values()):
        return None

    def per_token(**counts: int) -> Decimal:
        return genai_cost(model, provider, TokenUsage(**counts, service_tier=service_tier), at) / _PROBE

    uncached = per_token(input_tokens=_PROBE)
    visible = per_token(output_tokens=_PROBE)
    rates = LinearRates(
        uncached_input=uncached,
        cached_input=per_token(input_tokens=_PROBE, cached_input_tokens=_PROBE),
        cache_write=per_token(input_tokens=_PROBE, cache_write_tokens=_PROBE),
        visible_output=visible,
        reasoning=per_token(output_tokens=_PROBE, reasoning_tokens=_PROBE),
    )
    probe = TokenUsage(
        input_tokens=7919,
        cached_input_tokens=1031,
        cache_write_tokens=577,
        output_tokens=3571,
        reasoning_tokens=1201,
        service_tier=service_tier,
    )
    if rates.cost(probe) != genai_cost(model, provider, probe, at):
        return None
    return rates


def genai_cost(model: str, provider: str, usage: TokenUsage, at: datetime) -> Decimal:
    """genai-prices' own calculation (raises LookupError for a model it does not price)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # genai-prices warns on keys a model lacks
        calculation = genai_prices.calc_price(
            to_genai_usage(usage),
            model,
            provider_id=provider,
            genai_request_timestamp=at,
            price_context=_price_context(usage.service_tier),
        )
    return Decimal(calculation.total_price)


def _price_context(service_tier: str | None) -> dict[str, str] | None:
    return {"service_tier": service_tier} if service_tier else None


def to_genai_usage(usage: TokenUsage) -> genai_prices.Usage:
    """The same fields genai-prices' own OpenAI extractors produce from a response."""
    fields: dict[str, int] = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if usage.cached_input_tokens:
        fields["cache_read_tokens"] = usage.cached_input_tokens
    if usage.cache_write_tokens:
        fields["cache_write_tokens"] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        fields["output_reasoning_tokens"] = usage.reasoning_tokens
    return genai_prices.Usage(**fields)


def load_price_file(path: Path) -> OperatorPriceSheet:
    """Read an operator price file (TOML). Example:

    [[prices]]
    model = "llama-3.1-70b"
    input_mtok = "0.60"        # USD per million input tokens, as a string (no floats)
    output_mtok = "0.80"
    cached_input_mtok = "0.30" # optional
    starts = 2026-01-01        # optional: in force from this UTC date
    max_output_tokens = 8192   # optional: the model's output cap (bounds reservations)
    """
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return OperatorPriceSheet(_price(entry, path) for entry in data.get("prices", []))


def _price(entry: dict[str, Any], path: Path) -> OperatorPrice:
    def amount(name: str, required: bool = True) -> Decimal | None:
        value = entry.get(name)
        if value is None:
            if required:
                raise ValueError(f"{path}: price for {entry.get('model')!r} needs {name}")
            return None
        if isinstance(value, float):
            raise ValueError(f'{path}: write {name} as a string ("{value}"), floats are not exact')
        return Decimal(str(value))

    model = entry.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError(f"{path}: every [[prices]] entry needs a model name")
    max_output = entry.get("max_output_tokens")
    if max_output is not None and (not isinstance(max_output, int) or max_output <= 0):
        raise ValueError(f"{path}: max_output_tokens must be a positive integer")
    starts = entry.get("starts")
    if starts is not None and not isinstance(starts, date):
        raise ValueError(f"{path}: starts must be a TOML date like 2026-01-01")
    input_mtok, output_mtok = amount("input_mtok"), amount("output_mtok")
    assert input_mtok is not None and output_mtok is not None
    return OperatorPrice(
        model=model,
        input_mtok=input_mtok,
        output_mtok=output_mtok,
        cached_input_mtok=amount("cached_input_mtok", False),
        cache_write_mtok=amount("cache_write_mtok", False),
        starts=starts,
        max_output_tokens=max_output,
    )
