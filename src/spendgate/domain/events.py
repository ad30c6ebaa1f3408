"""The usage event: one per forwarded request, its id the request id, so a replay is a no-op."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from spendgate.domain.usage import TokenUsage


class CallStatus(StrEnum):
    OK = "ok"  # the upstream answered and reported usage
    UPSTREAM_ERROR = "upstream_error"  # the upstream failed; only what it reported is billed
    CLIENT_DISCONNECTED = "client_disconnected"  # the client left mid-stream; billed from what streamed
    UPSTREAM_CUT = "upstream_cut"  # the upstream's stream ended early; billed from what streamed


@dataclass(frozen=True, slots=True)
class UsageEvent:
    request_id: str
    occurred_at: datetime
    org_id: str
    project_id: str
    key_id: str
    model: str
    upstream: str
    endpoint: str
    usage: TokenUsage
    cost_nanos: int
    status: CallStatus
    latency_ms: int
    streamed: bool
    estimated: bool  # True when the tokens were counted by spendgate, not reported by the upstream
