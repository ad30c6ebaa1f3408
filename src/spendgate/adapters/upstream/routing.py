"""Which upstream serves a model: the first whose patterns match, else the default."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Upstream:
    name: str
    base_url: str  # e.g. https://api.openai.com/v1 (paths like /chat/completions are appended)
    api_key: str | None = field(default=None, repr=False)
    models: tuple[str, ...] = ()  # glob patterns; empty: this upstream takes no routed models
    provider_id: str = "openai"  # genai-prices provider used to price this upstream's models

    def serves(self, model: str) -> bool:
        return any(fnmatchcase(model, pattern) for pattern in self.models)


class UpstreamRouter:
    def __init__(self, upstreams: list[Upstream], default: Upstream) -> None:
        self.upstreams = upstreams
        self.default = default

    def route(self, model: str) -> Upstream:
        for upstream in self.upstreams:
            if upstream.serves(model):
                return upstream
        return self.default
