"""The Responses API's shapes: the response object and its typed stream events."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import orjson

from spendgate.simulator.generation import Output
from spendgate.simulator.payloads import JsonObject, Reply


def _usage(reply: Reply) -> JsonObject:
    return {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": reply.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": reply.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _item_id(prefix: str, reply: Reply) -> str:
    return prefix + reply.id.removeprefix("resp_")


def _text_part(text: str) -> JsonObject:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message(reply: Reply, status: str, content: list[JsonObject]) -> JsonObject:
    return {
        "id": _item_id("msg_", reply),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _reasoning(reply: Reply) -> JsonObject:
    return {"id": _item_id("rs_", reply), "type": "reasoning", "summary": []}


def _final_status(out: Output) -> str:
    return "incomplete" if out.truncated else "completed"


def _output_items(reply: Reply, out: Output) -> list[JsonObject]:
    items = [_reasoning(reply)] if out.reasoning_tokens else []
    items.append(_message(reply, _final_status(out), [_text_part(out.text)]))
    return items


def response_object(
    reply: Reply, request: dict[str, Any], status: str, output: list[JsonObject], usage: JsonObject | None
) -> JsonObject:
    """A `response` object; `status` is in_progress, completed or incomplete."""
    return {
        "id": reply.id,
        "object": "response",
        "created_at": reply.created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": reply.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": request.get("store", True),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": request.get("metadata") or {},
    }


def response(reply: Reply, request: dict[str, Any]) -> JsonObject:
    """The non-streamed Responses API body."""
    out = reply.outputs[0]
    return response_object(reply, request, _final_status(out), _output_items(reply, out), _usage(reply))


def _event(kind: str, sequence_number: int, fields: JsonObject) -> bytes:
    data = orjson.dumps({"type": kind, "sequence_number": sequence_number, **fields})
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def response_stream(reply: Reply, request: dict[str, Any]) -> Iterator[bytes]:
    """response.created ... response.completed (response.incomplete when max_output_tokens cut it)."""
    out = reply.outputs[0]
    seq = itertools.count()
    started = response_object(reply, request, "in_progress", [], None)
    yield _event("response.created", next(seq), {"response": started})
    yield _event("response.in_progress", next(seq), {"response": started})
    index = 0
    if out.reasoning_tokens:
        reasoning = _reasoning(reply)
        yield _event("response.output_item.added", next(seq), {"output_index": 0, "item": reasoning})
        yield _event("response.output_item.done", next(seq), {"output_index": 0, "item": reasoning})
        index = 1
    where = {"item_id": _item_id("msg_", reply), "output_index": index, "content_index": 0}
    item = _message(reply, "in_progress", [])
    yield _event("response.output_item.added", next(seq), {"output_index": index, "item": item})
    yield _event("response.content_part.added", next(seq), {**where, "part": _text_part("")})
    for piece in out.pieces:
        yield _event("response.output_text.delta", next(seq), {**where, "delta": piece, "logprobs": []})
    text = out.text
    yield _event("response.output_text.done", next(seq), {**where, "text": text, "logprobs": []})
    yield _event("response.content_part.done", next(seq), {**where, "part": _text_part(text)})
    item = _message(reply, _final_status(out), [_text_part(text)])
    yield _event("response.output_item.done", next(seq), {"output_index": index, "item": item})
    final = response(reply, request)
    yield _event(f"response.{final['status']}", next(seq), {"response": final})
