"""The PriceBook port over genai-prices' bundled snapshot and an operator price sheet.

genai-prices is used only through `calc_price` on its bundled data; its network updater
(`UpdatePrices`) is never started, so prices never change under a running gateway.
"""

from __future__ import annotations

import tomllib
import warnings
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # genai-prices warns on keys a model lacks
            calculation = genai_prices.calc_price(
                to_genai_usage(usage),
                model,
                provider_id=self._provider_for(model),
                genai_request_timestamp=at,
            )
        return Decimal(calculation.total_price)

    def known_models(self) -> list[str]:
        return self._operator.models()


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
    )
