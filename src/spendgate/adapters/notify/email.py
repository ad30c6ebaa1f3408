"""E-mail alerts over SMTP (the standard library's smtplib, run in a worker thread)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from spendgate.services.alert_ports import AlertChannel, OutgoingAlert, SendResult

SUBJECT_PREFIX = "[spendgate] "


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    from_address: str = "spendgate@localhost"
    starttls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0


class EmailSender:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    async def send(self, channel: AlertChannel, alert: OutgoingAlert) -> SendResult:
        message = compose(self._config.from_address, channel.target, alert)
        return await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> SendResult:
        config = self._config
        try:
            with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
                if config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if config.username:
                    smtp.login(config.username, config.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            return SendResult(
                ok=False, status_code=exc.smtp_code, error=f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}"
            )
        except smtplib.SMTPRecipientsRefused as exc:
            return SendResult(ok=False, error=f"recipient refused: {_refusals(exc.recipients)}")
        except (smtplib.SMTPException, OSError) as exc:
            return SendResult(ok=False, error=f"{type(exc).__name__}: {exc}")
        if refused:
            return SendResult(ok=False, error=f"recipient refused: {_refusals(refused)}")
        return SendResult(ok=True, status_code=250)


def compose(from_address: str, to_address: str, alert: OutgoingAlert) -> EmailMessage:
    p = alert.payload
    message = EmailMessage()
    message["Subject"] = SUBJECT_PREFIX + str(p.get("title") or "spend alert")
    message["From"] = from_address
    message["To"] = to_address
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=alert.id, domain="spendgate")
    message.set_content(body_text(p))
    return message


def body_text(p: Mapping[str, Any]) -> str:
    """The message, then the key numbers, in plain text."""
    threshold = p.get("threshold") or {}
    if threshold.get("kind") == "soft":
        crossed = f"the soft limit (${threshold.get('amount_usd')})"
    else:
        crossed = f"{threshold.get('share')}% of the hard limit (${threshold.get('amount_usd')})"
    end = p.get("period_end") or "never (all-time limit)"
    rate = p.get("burn_rate_per_hour_usd")
    forecast = p.get("forecast_hard_limit_at") or _FORECAST_NOTES.get(str(p.get("forecast_status")), "-")
    rows = [
        ("Scope", p.get("scope")),
        ("Period", f"{p.get('period')}, {p.get('period_start')} to {end}"),
        ("Crossed", crossed),
        ("Spent", f"${p.get('spent_usd')} (held for calls in flight: ${p.get('reserved_usd')})"),
        ("Soft limit", _usd(p.get("soft_limit_usd"))),
        ("Hard limit", _usd(p.get("hard_limit_usd"))),
        ("Burn rate", f"${rate} per hour" if rate is not None else "not measurable yet"),
        ("Hard limit reached at", forecast),
        ("Alert id", p.get("id")),
    ]
    width = max(len(label) for label, _ in rows) + 2
    table = "\n".join(f"{label + ':':<{width}}{value}" for label, value in rows)
    return f"{p.get('message', '')}\n\n{table}\n\n-- \nspendgate spend alerts\n"


_FORECAST_NOTES = {
    "reached": "already reached",
    "no_hard_limit": "no hard limit",
    "zero_rate": "no spending yet",
    "unknown_rate": "no forecast yet",
    "after_period_end": "not before the period resets",
    "beyond_horizon": "not within ten years",
}


def _usd(value: object) -> str:
    return f"${value}" if value is not None else "none"


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _refusals(refused: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{addr} ({code} {_text(reason)})" for addr, (code, reason) in refused.items())
