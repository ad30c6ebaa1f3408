"""OpenAI's JSON shapes: response bodies and the SSE events of streamed responses."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from spendgate.simulator.generation import Output

SYSTEM_FINGERPRINT = "fp_spendgate_sim"
JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    """Everything a completion-style answer needs, whatever the endpoint."""

    id: str
    created: int
    model: str
    prompt_tokens: int
    cached_tokens: int
    outputs: Sequence[Output]

    @property
    def completion_tokens(self) -> int:
        return sum(o.total_tokens for o in self.outputs)

    @property
    def reasoning_tokens(self) -> int:
        return sum(o.reasoning_tokens for o in self.outputs)


def sse(data: JsonObject) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def completion_usage(reply: Reply) -> JsonObject:
    """`usage` of chat and legacy completions."""
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reply.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chunk_head(reply: Reply, obj: str, include_usage: bool) -> JsonObject:
    head: JsonObject = {"id": reply.id, "object": obj, "created": reply.created, "model": reply.model}
    head["system_fingerprint"] = SYSTEM_FINGERPRINT
    if include_usage:
        head["usage"] = None
    return head


# -- chat/completions ---------------------------------------------------------------------------


def chat_completion(reply: Reply) -> JsonObject:
    choices: list[JsonObject] = [
        {
            "index": index,
            "message": {"role": "assistant", "content": out.text, "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": out.finish_reason,
        }
        for index, out in enumerate(reply.outputs)
    ]
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": choices,
        "usage": completion_usage(reply),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def chat_completion_stream(reply: Reply, include_usage: bool) -> Iterator[bytes]:
    head = _chunk_head(reply, "chat.completion.chunk", include_usage)
    for index, out in enumerate(reply.outputs):
        role = {"role": "assistant", "content": "", "refusal": None}
        yield sse({**head, "choices": [_chat_choice(index, role, None)]})
        for piece in out.pieces:
            yield sse({**head, "choices": [_chat_choice(index, {"content": piece}, None)]})
        yield sse({**head, "choices": [_chat_choice(index, {}, out.finish_reason)]})
    if include_usage:
        yield sse({**head, "choices": [], "usage": completion_usage(reply)})
    yield SSE_DONE


def _chat_choice(index: int, delta: JsonObject, finish_reason: str | None) -> JsonObject:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


# -- completions --------------------------------------------------------------------------------


def _text_choice(index: int, text: str, finish_reason: str | None) -> JsonObject:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}


def text_completion(reply: Reply) -> JsonObject:
    choices = [_text_choice(i, out.text, out.finish_reason) for i, out in enumerate(reply.outputs)]
    return {
        **_chunk_head(reply, "text_completion", False),
        "choices": choices,
        "usage": completion_usage(reply),
    }


def text_completion_stream(reply: Reply, include_usage: bool) -> Iterator[bytes]:
    head = _chunk_head(reply, "text_completion", include_usage)
    for index, out in enumerate(reply.outputs):
        for piece in out.pieces:
            yield sse({**head, "choices": [_text_choice(index, piece, None)]})
        yield sse({**head, "choices": [_text_choice(index, "", out.finish_reason)]})
    if include_usage:
        yield sse({**head, "choices": [], "usage": completion_usage(reply)})
    yield SSE_DONE


# -- embeddings ---------------------------------------------------------------------------------


def embeddings(model: str, vectors: Sequence[str | list[float]], prompt_tokens: int) -> JsonObject:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}


# -- models -------------------------------------------------------------------------------------


def models_list(models: Sequence[str], created: int) -> JsonObject:
    data = [{"id": m, "object": "model", "created": created, "owned_by": "spendgate-sim"} for m in models]
    return {"object": "list", "data": data}
