"""Settings: command-line flags over SPENDGATE_* environment variables over defaults, plus an
optional TOML config file naming upstreams and prices. Loaded on demand, never at import."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB = "sqlite:///spendgate.db"
OPENAI_BASE_URL = "https://api.openai.com/v1"


class Settings(BaseSettings):
    """Each field is also read from the environment as SPENDGATE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="SPENDGATE_", extra="ignore")

    db: str = DEFAULT_DB
    host: str = "127.0.0.1"
    port: int = 8080
    upstream_url: str | None = None
    upstream_api_key: SecretStr | None = None
    admin_token: SecretStr | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    price_file: Path | None = None
    config_file: Path | None = None
    simulate: bool = False
    test_clock: bool = False
    demo: bool = False
    upstream_connect_timeout: float = 10.0
    upstream_read_timeout: float = 600.0
    key_cache_seconds: float = 2.0
    sqlite_synchronous: Literal["full", "normal"] = "full"
    limit_wait_seconds: float = 30.0  # how long a call may wait for others' reservations to settle
    hold_ttl_seconds: float = 120.0  # a reservation whose process stopped refreshing it expires after this
    default_max_output_tokens: int = 16_384  # output bound for models with no known maximum
    # Spend alerts. E-mail channels are delivered only when smtp_host is set.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "spendgate@localhost"
    smtp_starttls: bool = True
    alert_retry_seconds: str = "10,60,300,1800,7200"  # waits before each retry of a failed delivery
    alert_poll_seconds: float = 1.0  # how often the alert dispatcher looks for due deliveries

    def upstream_key(self) -> str | None:
        """SPENDGATE_UPSTREAM_API_KEY, else OPENAI_API_KEY."""
        if self.upstream_api_key is not None:
            return self.upstream_api_key.get_secret_value()
        return os.environ.get("OPENAI_API_KEY") or None

    def simulated(self, file_config: FileConfig) -> bool:
        """The built-in simulator serves when asked to, or when no upstream is configured at all."""
        if self.simulate:
            return True
        return self.upstream_url is None and self.upstream_key() is None and not file_config.upstreams

    def file_config(self) -> FileConfig:
        if self.config_file is None:
            return FileConfig()
        return FileConfig.load(self.config_file)


@dataclass(frozen=True)
class UpstreamEntry:
    name: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    models: tuple[str, ...] = ()
    provider_id: str = "openai"


@dataclass(frozen=True)
class FileConfig:
    """The --config TOML file:

    [[upstreams]]
    name = "openai"
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"   # or api_key = "..."
    models = ["gpt-*", "o3*"]        # glob patterns routed to this upstream
    provider = "openai"              # genai-prices provider id used to price its models

    price_file = "prices.toml"       # optional, relative to this file
    """

    upstreams: tuple[UpstreamEntry, ...] = ()
    price_file: Path | None = None

    @staticmethod
    def load(path: Path) -> FileConfig:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        entries = []
        for raw in data.get("upstreams", []):
            for required in ("name", "base_url"):
                if not raw.get(required):
                    raise ValueError(f"{path}: every [[upstreams]] entry needs {required}")
            api_key = raw.get("api_key")
            if api_key is None and raw.get("api_key_env"):
                api_key = os.environ.get(raw["api_key_env"])
            entries.append(
                UpstreamEntry(
                    name=raw["name"],
                    base_url=raw["base_url"],
                    api_key=api_key,
                    models=tuple(raw.get("models", ())),
                    provider_id=raw.get("provider", "openai"),
                )
            )
        price_file = data.get("price_file")
        return FileConfig(
            upstreams=tuple(entries), price_file=(path.parent / price_file) if price_file else None
        )
