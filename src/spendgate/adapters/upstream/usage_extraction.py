"""Token usage from OpenAI-shaped response bodies, for each endpoint spendgate meters."""

from __future__ import annotations

from typing import Any

from spendgate.domain.usage import TokenUsage


def extract_usage(endpoint: str, body: Any) -> TokenUsage | None:
    """`body` is a parsed response (or, for the Responses API, the `response` object of a final event).
    Returns None when the body carries no usage."""
    if not isinstance(body, dict):
        return None
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    tier = body.get("service_tier")
    tier = tier if isinstance(tier, str) and tier else None
    if endpoint == "responses":
        return _usage(
            usage, "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details", tier
        )
    return _usage(
        usage,
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        tier,
    )


def _usage(
    usage: dict[str, Any],
    input_name: str,
    output_name: str,
    input_details: str,
    output_details: str,
    service_tier: str | None = None,
) -> TokenUsage:
    input_tokens = _int(usage.get(input_name))
    output_tokens = _int(usage.get(output_name))
    in_details = usage.get(input_details) or {}
    out_details = usage.get(output_details) or {}
    cached = _int(in_details.get("cached_tokens")) if isinstance(in_details, dict) else 0
    reasoning = _int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=min(cached, input_tokens),
        reasoning_tokens=min(reasoning, output_tokens),
        service_tier=service_tier,
    )


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def response_text(endpoint: str, body: Any) -> str:
    """The generated text of a complete (non-streamed) response, for estimating when usage is missing."""
    if not isinstance(body, dict):
        return ""
    if endpoint == "responses":
        return "".join(
            part.get("text", "")
            for item in body.get("output") or ()
            if isinstance(item, dict)
            for part in item.get("content") or ()
            if isinstance(part, dict)
        )
    texts = []
    for choice in body.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else choice.get("text")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


def streamed_text(endpoint: str, events: list[Any]) -> str:
    """The generated text carried by the parsed stream events seen so far."""
    texts: list[str] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        if endpoint == "responses":
            if event.get("type") == "response.output_text.delta" and isinstance(event.get("delta"), str):
                texts.append(event["delta"])
            continue
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)
