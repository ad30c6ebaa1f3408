"""Models' maximum output tokens: the bound a reservation holds for output when the client sets no
max tokens. genai-prices has prices but no output maxima, so they live here; the operator's price file
can set `max_output_tokens` per model, and `SPENDGATE_DEFAULT_MAX_OUTPUT_TOKENS` covers the rest."""

from __future__ import annotations

from collections.abc import Mapping

# Longest matching prefix wins. From OpenAI's model pages.
OPENAI_MAX_OUTPUT_TOKENS: Mapping[str, int] = {
    "gpt-5": 128_000,
    "gpt-4.1": 32_768,
    "gpt-4o": 16_384,
    "chatgpt-4o": 16_384,
    "gpt-4-turbo": 4_096,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 4_096,
    "o1-mini": 65_536,
    "o1": 100_000,
    "o3": 100_000,
    "o4-mini": 100_000,
    "codex-mini": 100_000,
}


class ModelLimits:
    def __init__(self, overrides: Mapping[str, int] | None = None, default: int = 16_384) -> None:
        self._overrides = {model.lower(): tokens for model, tokens in (overrides or {}).items()}
        self._default = default
        self._prefixes = sorted(OPENAI_MAX_OUTPUT_TOKENS, key=len, reverse=True)

    def max_output_tokens(self, model: str) -> int:
        name = model.lower()
        if name in self._overrides:
            return self._overrides[name]
        for prefix in self._prefixes:
            if name.startswith(prefix):
                return OPENAI_MAX_OUTPUT_TOKENS[prefix]
        return self._default
