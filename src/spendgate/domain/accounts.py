"""Orgs (the billing accounts), their projects and the API keys that act for a project."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

KEY_PREFIX = "sg-"


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    name: str
    timezone: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    org_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    project_id: str
    org_id: str
    name: str
    secret_hash: str
    display_prefix: str
    models: tuple[str, ...] | None  # None: every priced model
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(8)}"


def new_key_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key_secret(secret: str) -> str:
    """Secrets carry 256 random bits, so a plain SHA-256 is a safe lookup hash (no stretching needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[: len(KEY_PREFIX) + 6] + "…"
