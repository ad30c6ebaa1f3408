"""Prometheus metrics for `/metrics`, in a registry of the app's own (no global state)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    def __init__(self) -> None:
        self._request_children: dict[tuple[str, int], tuple[Any, Any, Any]] = {}
        self._model_children: dict[str, tuple[Any, Any]] = {}
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "spendgate_requests",
            "Requests to /v1/*, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self._errors = Counter(
            "spendgate_errors",
            "Requests to /v1/* that ended with HTTP status >= 400.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "spendgate_request_duration_seconds",
            "Time from request to last byte.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._cost = Counter(
            "spendgate_cost_nano_usd",
            "Metered cost in nano-USD, by model.",
            ["model"],
            registry=self.registry,
        )
        self._calls = Counter(
            "spendgate_metered_calls", "Usage events recorded, by model.", ["model"], registry=self.registry
        )

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        children = self._request_children.get(key)
        if children is None:  # labels() takes a lock and builds a key; do it once per label set
            code = str(status)
            children = self._request_children[key] = (
                self._requests.labels(endpoint, code),
                self._errors.labels(endpoint, code) if status >= 400 else None,
                self._latency.labels(endpoint),
            )
        requests, errors, latency = children
        requests.inc()
        if errors is not None:
            errors.inc()
        latency.observe(seconds)

    def observe_cost(self, model: str, cost_nanos: int) -> None:
        children = self._model_children.get(model)
        if children is None:
            children = self._model_children[model] = (self._cost.labels(model), self._calls.labels(model))
        children[0].inc(cost_nanos)
        children[1].inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
