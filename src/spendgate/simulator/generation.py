"""What the simulated model "generates": deterministic text, token budgets, prompt caching, embeddings."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import orjson

from spendgate.adapters.tokenizer import count_text_tokens

# Each word is one token, with or without a leading space, in both o200k_base and cl100k_base,
# so N words are N tokens (the real count is still taken from the tokenizer).
WORDS = (
    "the", "river", "stone", "green", "cloud", "music", "quiet", "simple",
    "bright", "summer", "winter", "silver", "window", "market", "friend", "letter",
    "answer", "light", "sound", "water", "story", "people", "world", "garden",
    "morning", "evening", "small", "great", "long", "good", "new", "first",
    "time", "day", "year", "life", "work", "place", "point", "state",
    "number", "thing", "way", "part", "back", "still", "through", "over",
    "after", "where", "while", "because", "about", "into", "some", "only",
    "also", "then", "each", "well", "even", "just", "right", "same",
)  # fmt: skip

DEFAULT_OUTPUT_TOKENS = 16
PROMPT_CACHE_MIN_TOKENS = 1024
PROMPT_CACHE_BLOCK = 128
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
REASONING_PER_VISIBLE_TOKEN = 2
MAX_EMBEDDING_DIMENSIONS = 3072
DEFAULT_EMBEDDING_DIMENSIONS = 8

_LCG_MULTIPLIER = 6364136223846793005
_LCG_INCREMENT = 1442695040888963407
_MASK64 = (1 << 64) - 1


def digest(value: Any) -> int:
    """A stable 64-bit hash of a JSON-serializable value."""
    return int.from_bytes(hashlib.blake2b(orjson.dumps(value), digest_size=8).digest(), "little")


def _lcg(seed: int) -> Iterator[int]:
    state = seed & _MASK64
    while True:
        state = (state * _LCG_MULTIPLIER + _LCG_INCREMENT) & _MASK64
        yield state


def is_reasoning_model(model: str) -> bool:
    """Models that spend hidden reasoning tokens (o1, o3, o4, gpt-5 families)."""
    return model.startswith(REASONING_PREFIXES)


@dataclass(frozen=True, slots=True)
class Output:
    """One generated answer: the text in stream-sized pieces and its token counts."""

    pieces: tuple[str, ...]
    visible_tokens: int
    reasoning_tokens: int
    truncated: bool

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def total_tokens(self) -> int:
        return self.visible_tokens + self.reasoning_tokens

    @property
    def finish_reason(self) -> str:
        return "length" if self.truncated else "stop"


def _words(seed: int, count: int) -> list[str]:
    pieces: list[str] = []
    for state in islice(_lcg(seed), count):
        word = WORDS[(state >> 32) % len(WORDS)]
        pieces.append(" " + word if pieces else word)
    return pieces


def generate(model: str, seed: int, target: int, cap: int | None) -> Output:
    """Text of about `target` tokens; visible plus reasoning tokens never exceed `cap`.

    Reasoning models spend 2 reasoning tokens per visible token; when the cap cuts the answer
    short, the whole cap is used (a third visible, the rest reasoning), as real models do.
    """
    reasoning = is_reasoning_model(model)
    budget = target
    if cap is not None:
        budget = min(target, cap // (1 + REASONING_PER_VISIBLE_TOKEN) if reasoning else cap)
    truncated = budget < target
    pieces = _words(seed, budget)
    visible = count_text_tokens("".join(pieces), model)
    while visible > budget:  # never expected: each word is one token, but the count is what counts
        pieces.pop()
        visible = count_text_tokens("".join(pieces), model)
    hidden = 0
    if reasoning:
        hidden = REASONING_PER_VISIBLE_TOKEN * visible
        if truncated and cap is not None:
            hidden = cap - visible
    return Output(tuple(pieces), visible, hidden, truncated)


class PromptCache:
    """Remembers recent long prompts; a repeat reports its tokens, floored to 128, as cached."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._seen: OrderedDict[int, None] = OrderedDict()

    def cached_tokens(self, prompt_digest: int, prompt_tokens: int) -> int:
        """Cached tokens for this request; records the prompt for next time."""
        if prompt_tokens < PROMPT_CACHE_MIN_TOKENS or self._max_entries <= 0:
            return 0
        if prompt_digest in self._seen:
            self._seen.move_to_end(prompt_digest)
            return prompt_tokens // PROMPT_CACHE_BLOCK * PROMPT_CACHE_BLOCK
        self._seen[prompt_digest] = None
        if len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)
        return 0


def embedding_bytes(item: Any, dimensions: int) -> bytes:
    """A deterministic unit vector for one input, as little-endian float32 bytes."""
    values = [((state >> 40) / (1 << 23)) - 1.0 for state in islice(_lcg(digest(item)), dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return struct.pack(f"<{dimensions}f", *(v / norm for v in values))


def embedding_payload(packed: bytes, encoding_format: str) -> str | list[float]:
    """The vector as OpenAI returns it: base64 of the float32 bytes, or a list of floats."""
    if encoding_format == "base64":
        return base64.b64encode(packed).decode("ascii")
    return list(struct.unpack(f"<{len(packed) // 4}f", packed))
