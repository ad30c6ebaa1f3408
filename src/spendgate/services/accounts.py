"""Use cases for orgs, projects and API keys."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spendgate.domain.accounts import (
    ApiKey,
    Org,
    Project,
    display_prefix,
    hash_key_secret,
    new_id,
    new_key_secret,
)
from spendgate.domain.clock import Clock
from spendgate.services.errors import Invalid, NotFound
from spendgate.services.ports import AccountStore


class Accounts:
    def __init__(
        self, store: AccountStore, clock: Clock, on_key_revoked: Callable[[ApiKey], None] | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_key_revoked = on_key_revoked

    def create_org(self, name: str, timezone: str = "UTC") -> Org:
        name = _required(name, "name")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise Invalid(
                f"unknown time zone {timezone!r}; use an IANA name such as 'Asia/Shanghai'"
            ) from exc
        org = Org(id=new_id("org"), name=name, timezone=timezone, created_at=self._clock.now())
        self._store.add_org(org)
        return org

    def org(self, org_id: str) -> Org:
        org = self._store.get_org(org_id)
        if org is None:
            raise NotFound(f"no org {org_id!r}")
        return org

    def list_orgs(self) -> list[Org]:
        return self._store.list_orgs()

    def create_project(self, org_id: str, name: str) -> Project:
        self.org(org_id)
        project = Project(
            id=new_id("proj"), org_id=org_id, name=_required(name, "name"), created_at=self._clock.now()
        )
        self._store.add_project(project)
        return project

    def project(self, project_id: str) -> Project:
        project = self._store.get_project(project_id)
        if project is None:
            raise NotFound(f"no project {project_id!r}")
        return project

    def list_projects(self, org_id: str | None = None) -> list[Project]:
        if org_id is not None:
            self.org(org_id)
        return self._store.list_projects(org_id)

    def create_key(
        self, project_id: str, name: str = "", models: Sequence[str] | None = None
    ) -> tuple[ApiKey, str]:
        """Returns the key and its secret; the secret is not stored and cannot be shown again."""
        project = self.project(project_id)
        allowed = None
        if models is not None:
            allowed = tuple(dict.fromkeys(m.strip() for m in models if m.strip()))
            if not allowed:
                raise Invalid("models, when given, must name at least one model")
        secret = new_key_secret()
        key = ApiKey(
            id=new_id("key"),
            project_id=project.id,
            org_id=project.org_id,
            name=name.strip(),
            secret_hash=hash_key_secret(secret),
            display_prefix=display_prefix(secret),
            models=allowed,
            created_at=self._clock.now(),
        )
        self._store.add_key(key)
        return key, secret

    def key(self, key_id: str) -> ApiKey:
        key = self._store.get_key(key_id)
        if key is None:
            raise NotFound(f"no key {key_id!r}")
        return key

    def list_keys(self, project_id: str | None = None) -> list[ApiKey]:
        if project_id is not None:
            self.project(project_id)
        return self._store.list_keys(project_id)

    def revoke_key(self, key_id: str) -> ApiKey:
        self.key(key_id)
        revoked = self._store.revoke_key(key_id, self._clock.now())
        assert revoked is not None
        if self._on_key_revoked is not None:
            self._on_key_revoked(revoked)
        return revoked


def _required(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise Invalid(f"{field} must not be empty")
    return value
