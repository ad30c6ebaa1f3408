"""Every failure a caller can cause gets its OpenAI-shaped error, and leaves no usage event behind;
upstream failures bill nothing but what the upstream reported."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.conftest import Gateway, Sdk, free_port, start_gateway, stop

CHAT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> tuple[str, str]:
    return gateway.new_key(models=["gpt-4o-mini", "a-model-without-price"])


def post(
    gateway: Gateway,
    secret: str | None,
    body: bytes | dict[str, Any],
    path: str = "/chat/completions",
    **headers: str,
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    auth = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.post(
        gateway.v1 + path,
        content=content,
        timeout=30,
        headers={"Content-Type": "application/json", **auth, **headers},
    )


def assert_error(
    response: httpx.Response, status: int, code: str, error_type: str = "invalid_request_error"
) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == (error_type, code)
    assert response.headers["x-request-id"].startswith("req_")
    return str(error["message"])


def requests_recorded(gateway: Gateway, key_id: str) -> int:
    return int(gateway.usage(f"key:{key_id}")["totals"]["requests"])


@pytest.fixture
def no_new_events(gateway: Gateway, key: tuple[str, str]) -> Iterator[None]:
    before = requests_recorded(gateway, key[0])
    yield
    assert requests_recorded(gateway, key[0]) == before


@pytest.mark.usefixtures("no_new_events")
class TestRefusedBeforeForwarding:
    def test_bad_json(self, gateway: Gateway, key: tuple[str, str]) -> None:
        message = assert_error(
            post(gateway, key[1], b'{"model": "gpt-4o-mini", '), 400, "invalid_request_error"
        )
        assert "not valid JSON" in message

    def test_not_an_object(self, gateway: Gateway, key: tuple[str, str]) -> None:
        assert_error(post(gateway, key[1], b"[1, 2]"), 400, "invalid_request_error")

    @pytest.mark.parametrize(
        ("path", "body", "param"),
        [
            ("/chat/completions", {"messages": CHAT}, "model"),
            ("/chat/completions", {"model": "gpt-4o-mini"}, "messages"),
            ("/completions", {"model": "gpt-3.5-turbo-instruct"}, "prompt"),
            ("/embeddings", {"model": "text-embedding-3-small"}, "input"),
            ("/responses", {"input": "hi"}, "model"),
        ],
    )
    def test_missing_fields(
        self, gateway: Gateway, key: tuple[str, str], path: str, body: dict[str, Any], param: str
    ) -> None:
        response = post(gateway, key[1], body, path)
        assert_error(response, 400, "invalid_request_error")
        assert response.json()["error"]["param"] == param

    def test_unknown_key(self, gateway: Gateway) -> None:
        assert_error(
            post(gateway, "sg-not-a-real-key", {"model": "gpt-4o-mini", "messages": CHAT}),
            401,
            "invalid_api_key",
        )
        assert_error(post(gateway, None, {"model": "gpt-4o-mini", "messages": CHAT}), 401, "invalid_api_key")

    def test_model_not_allowed_for_the_key(self, gateway: Gateway, key: tuple[str, str]) -> None:
        message = assert_error(
            post(gateway, key[1], {"model": "gpt-4o", "messages": CHAT}), 404, "model_not_found"
        )
        assert "not allowed" in message

    def test_model_without_a_price(self, gateway: Gateway, key: tuple[str, str]) -> None:
        message = assert_error(
            post(gateway, key[1], {"model": "a-model-without-price", "messages": CHAT}),
            404,
            "model_not_found",
        )
        assert "no price" in message

    def test_body_too_large_is_refused_before_it_is_read(
        self, gateway: Gateway, key: tuple[str, str]
    ) -> None:
        big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]}
        assert_error(post(gateway, key[1], big), 413, "request_too_large")

    def test_body_too_large_without_content_length(self, gateway: Gateway, key: tuple[str, str]) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
            for _ in range(40):
                yield b"y" * 65536
            yield b'"}]}'

        response = httpx.post(
            gateway.v1 + "/chat/completions",
            content=chunks(),
            timeout=30,
            headers={"Authorization": f"Bearer {key[1]}"},
        )
        assert_error(response, 413, "request_too_large")

    def test_unknown_endpoint(self, gateway: Gateway, key: tuple[str, str]) -> None:
        assert_error(
            post(gateway, key[1], {"model": "gpt-4o-mini"}, "/images/generations"),
            400,
            "invalid_request_error",
        )


def test_revoked_key_is_refused_at_once(gateway: Gateway, sdk: Sdk) -> None:
    key_id, secret = gateway.new_key()
    client = sdk(gateway.v1, secret)
    client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    gateway.admin("POST", f"/keys/{key_id}/revoke")
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    assert requests_recorded(gateway, key_id) == 1


def test_openai_sdk_sees_typed_errors(gateway: Gateway, key: tuple[str, str], sdk: Sdk) -> None:
    client = sdk(gateway.v1, key[1])
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=CHAT)
    assert caught.value.code == "model_not_found"


def test_upstream_5xx_becomes_502_and_bills_nothing(gateway: Gateway, key: tuple[str, str]) -> None:
    response = post(gateway, key[1], {"model": "gpt-4o-mini", "messages": CHAT}, **{"x-sim-status": "503"})
    assert_error(response, 502, "upstream_error", "upstream_error")
    event = gateway.event(response.headers["x-request-id"])
    assert (event["status"], event["cost_nanos"]) == ("upstream_error", 0)


def test_upstream_4xx_is_passed_on_as_it_is(gateway: Gateway, key: tuple[str, str]) -> None:
    response = post(gateway, key[1], {"model": "gpt-4o-mini", "messages": CHAT}, **{"x-sim-status": "429"})
    assert response.status_code == 429
    assert gateway.event(response.headers["x-request-id"])["cost_nanos"] == 0


def test_upstream_timeout_becomes_504(gateway: Gateway, key: tuple[str, str]) -> None:
    started = time.monotonic()
    response = post(
        gateway, key[1], {"model": "gpt-4o-mini", "messages": CHAT}, **{"x-sim-first-byte-ms": "6000"}
    )
    assert_error(response, 504, "upstream_timeout", "upstream_error")
    assert time.monotonic() - started < 5.5  # the gateway's 3 s read timeout, not the upstream's delay
    assert gateway.event(response.headers["x-request-id"])["cost_nanos"] == 0


def test_upstream_unreachable_becomes_502(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens here
    gw = start_gateway(tmp_path, f"http://127.0.0.1:{dead}/v1")
    try:
        _, secret = gw.new_key()
        response = post(gw, secret, {"model": "gpt-4o-mini", "messages": CHAT})
        assert_error(response, 502, "upstream_error", "upstream_error")
        assert gw.event(response.headers["x-request-id"])["status"] == "upstream_error"
    finally:
        stop(gw.process)


def test_stream_cut_by_the_upstream_is_billed_from_what_streamed(
    gateway: Gateway, key: tuple[str, str], sdk: Sdk
) -> None:
    client = sdk(gateway.v1, key[1])
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=CHAT, stream=True, extra_headers={"x-sim-cut-after": "5"}
    )
    text = ""
    with pytest.raises(openai.APIError, match="broke off"):
        for chunk in raw.parse():
            text += "".join(c.delta.content or "" for c in chunk.choices)
    assert text  # what streamed before the cut reached the client
    event = gateway.event(raw.headers["x-request-id"])
    assert (event["status"], event["estimated"], event["streamed"]) == ("upstream_cut", True, True)
    assert event["input_tokens"] > 0 and event["output_tokens"] > 0 and event["cost_nanos"] > 0


def test_client_that_disconnects_mid_stream_is_billed_from_what_streamed(
    gateway: Gateway, key: tuple[str, str]
) -> None:
    body = json.dumps({"model": "gpt-4o-mini", "messages": CHAT, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key[1]}\r\nx-sim-output-tokens: 3000\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while received.count(b"data:") < 5:
            received += sock.recv(65536)
    request_id = received.split(b"x-request-id: ", 1)[1].split(b"\r\n", 1)[0].decode()
    deadline = time.monotonic() + 10
    while True:
        try:
            event = gateway.event(request_id)
            break
        except httpx.HTTPStatusError:
            assert time.monotonic() < deadline, "the disconnected stream was never settled"
            time.sleep(0.1)
    assert (event["status"], event["estimated"]) == ("client_disconnected", True)
    assert 0 < event["output_tokens"] < 3000


def test_models_lists_only_what_the_key_may_use(gateway: Gateway, key: tuple[str, str], sdk: Sdk) -> None:
    limited = sdk(gateway.v1, key[1])
    assert [m.id for m in limited.models.list().data] == ["gpt-4o-mini"]  # the simulator has no unpriced one
    _, open_secret = gateway.new_key()
    assert len(sdk(gateway.v1, open_secret).models.list().data) > 5
