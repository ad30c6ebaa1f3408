from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendgate.adapters.tokenizer import count_chat_prompt_tokens
from spendgate.domain.cost_bounds import (
    IMAGE_TOKEN_ALLOWANCE,
    image_parts,
    output_token_bound,
    prompt_token_bound,
)


@given(st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=8))
def test_the_byte_bound_covers_the_real_token_count(contents: list[str]) -> None:
    import json

    messages: list[dict[str, Any]] = [{"role": "user", "content": c} for c in contents]
    body = json.dumps({"model": "gpt-4o", "messages": messages}, ensure_ascii=False).encode()
    assert prompt_token_bound(len(body), 0) >= count_chat_prompt_tokens(messages, "gpt-4o")


@pytest.mark.parametrize(
    ("endpoint", "payload", "bound", "cap"),
    [
        ("chat/completions", {}, 16_384, ("max_completion_tokens", 16_384)),
        ("chat/completions", {"max_tokens": 100}, 100, None),
        ("chat/completions", {"max_completion_tokens": 100, "n": 3}, 300, None),
        ("chat/completions", {"max_tokens": 99_999}, 16_384, ("max_tokens", 16_384)),
        ("completions", {"max_tokens": 10, "best_of": 4, "n": 2}, 40, None),
        ("responses", {}, 16_384, ("max_output_tokens", 16_384)),
        ("embeddings", {"input": "x"}, 0, None),
        ("chat/completions", {"max_tokens": True}, 16_384, ("max_completion_tokens", 16_384)),
    ],
)
def test_output_bound_and_the_cap_written_upstream(
    endpoint: str, payload: dict[str, Any], bound: int, cap: tuple[str, int] | None
) -> None:
    assert output_token_bound(endpoint, payload, 16_384) == (bound, cap)


def test_images_add_an_allowance() -> None:
    payload = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    {"type": "image_url", "image_url": {"url": "https://x/z.png"}},
                ],
            }
        ]
    }
    assert image_parts(payload) == 2
    assert prompt_token_bound(100, 2) == 100 + 2 * IMAGE_TOKEN_ALLOWANCE
