"""Scopes named as `org:ID`, `project:ID` or `key:ID`, checked against the accounts, and the time
zone their periods follow (their org's)."""

from __future__ import annotations

from spendgate.domain.spend_limits import Scope, ScopeKind
from spendgate.services.errors import Invalid, NotFound
from spendgate.services.ports import AccountStore


def resolve_scope(accounts: AccountStore, text: str) -> tuple[Scope, str]:
    """The scope `text` names and its org's time zone; Invalid or NotFound otherwise."""
    try:
        scope = Scope.parse(text)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    org_id = _org_id(accounts, scope)
    if org_id is None:
        raise NotFound(f"no {scope.kind.value} {scope.id!r}")
    org = accounts.get_org(org_id)
    return scope, org.timezone if org else "UTC"


def scope_timezone(accounts: AccountStore, scope: Scope) -> str:
    """The time zone of the scope's org; UTC if the scope no longer exists."""
    org_id = _org_id(accounts, scope)
    org = accounts.get_org(org_id) if org_id else None
    return org.timezone if org else "UTC"


def _org_id(accounts: AccountStore, scope: Scope) -> str | None:
    if scope.kind is ScopeKind.ORG:
        return scope.id if accounts.get_org(scope.id) else None
    owner = accounts.get_project(scope.id) if scope.kind is ScopeKind.PROJECT else accounts.get_key(scope.id)
    return owner.org_id if owner else None
