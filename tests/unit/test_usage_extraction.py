from spendgate.adapters.upstream.sse import SseSplitter, event_data
from spendgate.adapters.upstream.usage_extraction import extract_usage, response_text, streamed_text
from spendgate.domain.usage import TokenUsage


def test_chat_usage_with_cached_and_reasoning_tokens() -> None:
    body = {
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 200},
        }
    }
    assert extract_usage("chat/completions", body) == TokenUsage(
        input_tokens=1200, output_tokens=300, cached_input_tokens=1024, reasoning_tokens=200
    )


def test_responses_usage() -> None:
    body = {
        "usage": {
            "input_tokens": 50,
            "output_tokens": 20,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 12},
        }
    }
    assert extract_usage("responses", body) == TokenUsage(
        input_tokens=50, output_tokens=20, reasoning_tokens=12
    )


def test_embeddings_usage_and_missing_usage() -> None:
    assert extract_usage("embeddings", {"usage": {"prompt_tokens": 7, "total_tokens": 7}}) == TokenUsage(
        input_tokens=7
    )
    assert extract_usage("chat/completions", {"usage": None}) is None
    assert extract_usage("chat/completions", None) is None


def test_garbage_counts_do_not_raise() -> None:
    body = {
        "usage": {
            "prompt_tokens": -5,
            "completion_tokens": "x",
            "prompt_tokens_details": {"cached_tokens": 99},
        }
    }
    assert extract_usage("chat/completions", body) == TokenUsage()


def test_text_of_responses_and_streams() -> None:
    assert response_text("chat/completions", {"choices": [{"message": {"content": "hi"}}]}) == "hi"
    assert response_text("completions", {"choices": [{"text": "yo"}]}) == "yo"
    assert response_text("responses", {"output": [{"content": [{"text": "a"}, {"text": "b"}]}]}) == "ab"
    events = [{"choices": [{"delta": {"content": "he"}}]}, {"choices": [{"delta": {"content": "llo"}}]}]
    assert streamed_text("chat/completions", events) == "hello"
    assert streamed_text("responses", [{"type": "response.output_text.delta", "delta": "x"}]) == "x"


def test_sse_splitter_reassembles_events_across_chunks() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b'data: {"a"') == []
    assert splitter.feed(b": 1}\n\ndata: [DO") == [b'data: {"a": 1}\n\n']
    assert splitter.feed(b"NE]\r\n\r\n") == [b"data: [DONE]\r\n\r\n"]
    assert splitter.rest() == b""
    assert event_data(b"event: response.completed\ndata: {}\n\n") == b"{}"
