"""Signed webhooks: the alert's JSON POSTed to the channel's URL.

Headers: `spendgate-timestamp: <unix seconds>` and
`spendgate-signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`, the key being the whole
`whsec_…` secret as UTF-8. A 2xx answer is a delivery; anything else (redirects included) is
retried. Receivers check requests with `verify_signature` and dedupe by the payload's `id`, since a
delivery is at least once.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

import aiohttp

from spendgate.domain.clock import Clock, SystemClock
from spendgate.services.alert_ports import AlertChannel, OutgoingAlert, SendResult

TIMESTAMP_HEADER = "spendgate-timestamp"
SIGNATURE_HEADER = "spendgate-signature"
ALERT_ID_HEADER = "spendgate-alert-id"
SIGNATURE_VERSION = "v1"
USER_AGENT = "spendgate-alerts/1"


def sign(secret: str, timestamp: str | int, body: bytes | str) -> str:
    """The signature header's value for a body sent at `timestamp` (unix seconds)."""
    data = body.encode() if isinstance(body, str) else body
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + data, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes | str,
    header: str,
    now: datetime | float,
    tolerance: float = 300,
) -> bool:
    """For receivers: True if `header` (one or more comma-separated `v1=…`) signs `body` at
    `timestamp` with `secret`, and `timestamp` is within `tolerance` seconds of `now` (a replayed old
    request fails). Compare the raw body as received, before any JSON parsing."""
    try:
        sent_at = int(str(timestamp).strip())
    except ValueError:
        return False
    current = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(current - sent_at) > tolerance:
        return False
    expected = sign(secret, sent_at, body)
    return any(hmac.compare_digest(expected, candidate.strip()) for candidate in header.split(","))


class WebhookSender:
    """One aiohttp session for every webhook; `start` it inside the running loop, `close` it after.

    `clock` dates the signature: give it the wall clock (receivers check it against theirs), not a
    test clock that may be months ahead."""

    def __init__(self, clock: Clock | None = None, timeout: float = 10.0) -> None:
        self._clock: Clock = clock or SystemClock()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers={"User-Agent": USER_AGENT})

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, channel: AlertChannel, alert: OutgoingAlert) -> SendResult:
        if self._session is None:
            raise RuntimeError("WebhookSender.start() was not called")
        if not channel.secret:
            return SendResult(ok=False, error="the webhook channel has no signing secret")
        body = alert.body.encode()
        timestamp = str(int(self._clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(channel.secret, timestamp, body),
            ALERT_ID_HEADER: alert.id,
        }
        try:
            async with self._session.post(
                channel.target, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return SendResult(ok=True, status_code=response.status)
                return SendResult(
                    ok=False, status_code=response.status, error=f"HTTP {response.status} {response.reason}"
                )
        except TimeoutError:
            return SendResult(ok=False, error="timed out")
        except aiohttp.ClientError as exc:
            return SendResult(ok=False, error=f"{type(exc).__name__}: {exc}")
