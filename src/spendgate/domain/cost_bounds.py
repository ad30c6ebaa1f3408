"""The worst case a call can cost, known before it is forwarded.

Prompt: a byte-level BPE token covers at least one UTF-8 byte, so the request body's length in
bytes bounds the tokens of everything in it (the JSON around the text only makes the bound looser;
the few tokens of per-message overhead are far fewer than each message's JSON bytes). Images are
the exception (a short URL can cost a thousand tokens), so each image part adds an allowance.
Output: the request's max tokens (times `n` choices), capped at the model's maximum; when the client
gave none, spendgate sets the model's maximum on the forwarded request, so the upstream can never
produce more than was reserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# OpenAI's largest image cost (high detail, many 512 px tiles) is well under this.
IMAGE_TOKEN_ALLOWANCE = 2_000
TEMPLATE_MARGIN_TOKENS = 64
_IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})
# The field each endpoint reads for the output cap, in order of preference.
_OUTPUT_FIELDS = {
    "chat/completions": ("max_completion_tokens", "max_tokens"),
    "completions": ("max_tokens",),
    "responses": ("max_output_tokens",),
    "embeddings": (),
}


@dataclass(frozen=True, slots=True)
class TokenBound:
    input_tokens: int
    output_tokens: int
    set_output_field: tuple[str, int] | None  # (field, value) to write on the forwarded request


def image_parts(payload: Any) -> int:
    """How many image parts a request carries, at any depth."""
    if isinstance(payload, dict):
        own = 1 if payload.get("type") in _IMAGE_PART_TYPES else 0
        return own + sum(image_parts(value) for value in payload.values() if isinstance(value, (dict, list)))
    if isinstance(payload, list):
        return sum(image_parts(item) for item in payload if isinstance(item, (dict, list)))
    return 0


def prompt_token_bound(body_bytes: int, images: int) -> int:
    return body_bytes + images * IMAGE_TOKEN_ALLOWANCE


def tokenizer_prompt_bound(counted_tokens: int, images: int) -> int:
    """A tighter prompt bound from the tokenizer's count of the whole request body (which includes
    every message, tool and schema the upstream will see), plus the images and a margin for the
    chat template's few tokens per message."""
    return counted_tokens + images * IMAGE_TOKEN_ALLOWANCE + TEMPLATE_MARGIN_TOKENS


def output_token_bound(
    endpoint: str, payload: dict[str, Any], model_max: int
) -> tuple[int, tuple[str, int] | None]:
    """(the output bound, the cap to write on the forwarded request or None if the client's holds)."""
    fields = _OUTPUT_FIELDS[endpoint]
    if not fields:
        return 0, None
    given = next((name for name in fields if _positive_int(payload.get(name)) is not None), None)
    choices = max(_positive_int(payload.get("n")) or 1, _positive_int(payload.get("best_of")) or 1)
    if given is None:
        return model_max * choices, (fields[0], model_max)
    requested = _positive_int(payload[given]) or model_max
    if requested > model_max:
        return model_max * choices, (given, model_max)
    return requested * choices, None


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value
