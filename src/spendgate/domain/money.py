"""Money is an integer count of nano-USD (10^-9 USD); rating is done in Decimal."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

NANOS_PER_USD = 1_000_000_000
_ONE = Decimal(1)


def usd_to_nanos(usd: Decimal) -> int:
    """Exact conversion; a sub-nano remainder is rounded half-even."""
    return int((usd * NANOS_PER_USD).quantize(_ONE, rounding=ROUND_HALF_EVEN))


def nanos_to_usd(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS_PER_USD


def format_usd(nanos: int) -> str:
    """A plain decimal string with no float detour, trailing zeros kept to cents: '0.000435', '12.50'."""
    usd = nanos_to_usd(nanos)
    text = format(usd.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def parse_usd(text: str) -> int:
    """'12.5' -> 12_500_000_000 nanos; refuses anything finer than a nano-dollar or not a number."""
    try:
        usd = Decimal(text.strip())
    except ArithmeticError as exc:
        raise ValueError(f"not an amount of USD: {text!r}") from exc
    if not usd.is_finite():
        raise ValueError(f"not an amount of USD: {text!r}")
    nanos = usd * NANOS_PER_USD
    if nanos != nanos.to_integral_value():
        raise ValueError(f"{text!r} is finer than a nano-dollar")
    return int(nanos)
