"""The targets under test: the simulated upstream itself, the bare proxy and spendgate, once per
variant in SPENDGATE_VARIANTS (each on its own fresh SQLite file, or, for `spendgate-limited`, a second
org, project and key with spend limits on the `spendgate` process)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sgbench.procs import Child, Children, free_port, wait_until_ready

BENCH_DIR = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bench-admin-token"
UPSTREAM_KEY = "sk-bench-upstream"
MODEL = "gpt-4o-mini"
CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class SpendgateVariant:
    """`spendgate serve` with extra environment, or (`same_process_as`) another variant's process with an
    account of its own. For the report: `label` says what that is ("`spendgate serve` with …" or "the
    `spendgate` process …"), `short` tags the name in the summary. `hard_usd`: a monthly hard limit set on
    the account's key, project and org, so that every call reserves on the three scopes."""

    env: dict[str, str]
    label: str
    short: str
    same_process_as: str | None = None
    hard_usd: str | None = None


# Every target whose name starts with "spendgate" is one of these: the same `spendgate serve` command,
# each on its own database. The first is the baseline the others are compared with.
SPENDGATE_VARIANTS = {
    "spendgate": SpendgateVariant(
        {"SPENDGATE_SQLITE_SYNCHRONOUS": "full"},
        "`SPENDGATE_SQLITE_SYNCHRONOUS=full` (the default), which fsyncs every usage commit so that it "
        "survives a power cut",
        "default: fsync per commit",
    ),
    "spendgate-normal": SpendgateVariant(
        {"SPENDGATE_SQLITE_SYNCHRONOUS": "normal"},
        "`SPENDGATE_SQLITE_SYNCHRONOUS=normal` (SQLite WAL with `synchronous=NORMAL`), which does not "
        "fsync each commit: commits survive a crash of spendgate but not of the machine",
        "no fsync per commit",
    ),
    "spendgate-limited": SpendgateVariant(
        {},
        "the `spendgate` process itself (same server, same database, so the default fsync per commit) on a "
        "second org, project and key, each with a monthly hard limit of $1,000,000 (never reached, so "
        "nothing is refused): every call reserves its worst-case cost on the three scopes in the database "
        "before it is forwarded and settles after",
        "spend limits on key, project and org",
        same_process_as="spendgate",
        hard_usd="1000000",
    ),
}
BASELINE_SPENDGATE = next(iter(SPENDGATE_VARIANTS))
LIMITED_SPENDGATE = "spendgate-limited"
LIMIT_SCOPES = ("key", "project", "org")


def is_spendgate(name: str) -> bool:
    return name.startswith("spendgate")


@dataclass(frozen=True)
class Account:
    """An org, project and key made through the admin API."""

    org_id: str
    project_id: str
    key_id: str
    secret: str

    def scope(self, kind: str) -> str:
        """`key:ID`, `project:ID` or `org:ID`."""
        ids = {"key": self.key_id, "project": self.project_id, "org": self.org_id}
        return f"{kind}:{ids[kind]}"


@dataclass
class Target:
    name: str
    base_url: str
    api_key: str
    child: Child
    account: Account | None = None  # spendgate targets: whose usage is theirs
    limit_scopes: tuple[str, ...] = ()  # scopes with a hard limit (spendgate-limited)

    @property
    def chat_url(self) -> str:
        return self.base_url + CHAT_PATH

    @property
    def usage_scope(self) -> str:
        """The scope its metering is read from: its own key, so that targets sharing a process (and a
        database) are counted apart."""
        if self.account is None:
            raise ValueError(f"{self.name} is not metered")
        return self.account.scope("key")


def venv_bin(name: str) -> str:
    """A console script next to the running interpreter (the venv's bin)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without spendgate/OpenAI settings that could change what a server does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPENDGATE_") and k != "OPENAI_API_KEY"}
    env.update(extra)
    return env


def start_direct(children: Children, cpus: str | None) -> Target:
    port = free_port()
    argv = [venv_bin("spendgate"), "simulate-upstream", "--port", str(port)]
    child = children.start("direct", argv, clean_env(), cpus)
    base = f"http://127.0.0.1:{port}"
    wait_until_ready(child, f"{base}/v1/models", headers={"Authorization": f"Bearer {UPSTREAM_KEY}"})
    return Target("direct", base, UPSTREAM_KEY, child)


def start_bare(children: Children, upstream: Target, cpus: str | None) -> Target:
    port = free_port()
    argv = [
        sys.executable, str(BENCH_DIR / "bare_proxy.py"), "--port", str(port),
        "--upstream", f"{upstream.base_url}/v1",
    ]  # fmt: skip
    child = children.start("bare", argv, clean_env(), cpus)
    base = f"http://127.0.0.1:{port}"
    wait_until_ready(child, f"{base}/healthz")
    return Target("bare", base, UPSTREAM_KEY, child)


def start_spendgate(
    children: Children, name: str, upstream: Target, db_dir: Path, cpus: str | None
) -> Target:
    """`spendgate serve` for the variant `name` on a fresh SQLite file of its own, then an org, project
    and key made through the admin API."""
    variant = SPENDGATE_VARIANTS[name]
    port = free_port()
    argv = [
        venv_bin("spendgate"), "serve", "--port", str(port), "--db", f"sqlite:///{db_dir / f'{name}.db'}",
        "--upstream", f"{upstream.base_url}/v1",
    ]  # fmt: skip
    env = clean_env(SPENDGATE_ADMIN_TOKEN=ADMIN_TOKEN, SPENDGATE_UPSTREAM_API_KEY=UPSTREAM_KEY, **variant.env)
    child = children.start(name, argv, env, cpus)
    base = f"http://127.0.0.1:{port}"
    wait_until_ready(child, f"{base}/healthz")
    account = create_account(base, name)
    return Target(name, base, account.secret, child, account)


def start_sharing(name: str, host: Target) -> Target:
    """The variant `name` on `host`'s process: an org, project and key of its own there, with the
    variant's hard limit on each of the three."""
    variant = SPENDGATE_VARIANTS[name]
    account = create_account(host.base_url, name)
    scopes: tuple[str, ...] = ()
    if variant.hard_usd is not None:
        scopes = tuple(account.scope(kind) for kind in LIMIT_SCOPES)
        for scope in scopes:
            set_hard_limit(host.base_url, scope, variant.hard_usd)
    return Target(name, host.base_url, account.secret, host.child, account, scopes)


def admin_client(base: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return httpx.Client(base_url=f"{base}/admin/v1", headers=headers, timeout=10.0)


def _admin_post(client: httpx.Client, path: str, body: dict[str, str | None]) -> dict[str, Any]:
    response = client.post(path, json=body)
    if response.status_code not in (200, 201):
        raise RuntimeError(f"POST {path} -> HTTP {response.status_code}: {response.text[:500]}")
    data: dict[str, Any] = response.json()
    return data


def create_account(base: str, name: str = "bench") -> Account:
    with admin_client(base) as client:
        org = _admin_post(client, "/orgs", {"name": name})
        project = _admin_post(client, "/projects", {"org_id": org["id"], "name": name})
        key = _admin_post(client, "/keys", {"project_id": project["id"], "name": name})
    return Account(org["id"], project["id"], key["id"], key["secret"])


def set_hard_limit(base: str, scope: str, hard_usd: str, period: str = "month") -> dict[str, Any]:
    """POST /admin/v1/limits: a hard limit (no soft one) on `scope`; returns the limit's standing."""
    body: dict[str, str | None] = {"scope": scope, "period": period, "hard_usd": hard_usd, "soft_usd": None}
    with admin_client(base) as client:
        return _admin_post(client, "/limits", body)


def check_chat(target: Target) -> int:
    """One plain and one streamed request must answer 200 before any load; returns the 2xx count (2)."""
    headers = {"Authorization": f"Bearer {target.api_key}"}
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
    }
    with httpx.Client(timeout=10.0) as client:
        plain = client.post(target.chat_url, json=body, headers=headers)
        stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        streamed = client.post(target.chat_url, json=stream_body, headers=headers)
    for kind, response in (("plain", plain), ("stream", streamed)):
        if response.status_code != 200:
            raise RuntimeError(
                f"{target.name}: {kind} chat completion -> HTTP {response.status_code}: {response.text[:500]}"
            )
    if "data: [DONE]" not in streamed.text:
        raise RuntimeError(f"{target.name}: streamed reply has no [DONE]: {streamed.text[-300:]}")
    return 2


def usage(base: str, scope: str) -> dict[str, Any]:
    """spendgate's GET /admin/v1/usage?scope=…: this month's totals and the scope's limits."""
    with admin_client(base) as client:
        response = client.get("/usage", params={"scope": scope})
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def usage_requests(base: str, scope: str) -> int:
    """totals.requests from spendgate's GET /admin/v1/usage?scope=…."""
    return int(usage(base, scope)["totals"]["requests"])


def settled_usage(base: str, scope: str, expected: int, timeout: float = 10.0) -> int:
    """The usage count once it has reached `expected` and stopped changing (metering may lag a little);
    after `timeout`, whatever it is then."""
    deadline = time.monotonic() + timeout
    previous = usage_requests(base, scope)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        count = usage_requests(base, scope)
        if count == previous and count >= expected:
            return count
        previous = count
    return previous


@dataclass(frozen=True)
class LimitStanding:
    """One hard limit after the load, from GET /admin/v1/usage?scope=…"""

    scope: str
    hard_nanos: int
    spent_nanos: int
    reserved_nanos: int
    usage_cost_nanos: int  # totals.cost_nanos of the same scope, this month
    usage_requests: int


def limit_standings(base: str, scopes: tuple[str, ...], timeout: float = 10.0) -> list[LimitStanding]:
    """Each scope's monthly limit once nothing is reserved on any of them any more (settlements may lag
    the last answers a little); after `timeout`, as it is then."""
    deadline = time.monotonic() + timeout
    while True:
        standings = []
        for scope in scopes:
            data = usage(base, scope)
            [limit] = [x for x in data["limits"] if x["period"] == "month"]
            standings.append(LimitStanding(
                scope, int(limit["hard_nanos"]), int(limit["spent_nanos"]), int(limit["reserved_nanos"]),
                int(data["totals"]["cost_nanos"]), int(data["totals"]["requests"]),
            ))  # fmt: skip
        if all(s.reserved_nanos == 0 for s in standings) or time.monotonic() > deadline:
            return standings
        time.sleep(0.3)
