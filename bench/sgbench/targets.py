"""The targets under test: the simulated upstream itself, the bare proxy and spendgate, once per
variant in SPENDGATE_VARIANTS (each on its own fresh SQLite file)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from sgbench.procs import Child, Children, free_port, wait_until_ready

BENCH_DIR = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bench-admin-token"
UPSTREAM_KEY = "sk-bench-upstream"
MODEL = "gpt-4o-mini"
CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class SpendgateVariant:
    """`spendgate serve` with extra environment. For the report: `label` says what that is ("`spendgate
    serve` with …"), `short` tags the name in the summary."""

    env: dict[str, str]
    label: str
    short: str


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
}
BASELINE_SPENDGATE = next(iter(SPENDGATE_VARIANTS))


def is_spendgate(name: str) -> bool:
    return name.startswith("spendgate")


@dataclass
class Target:
    name: str
    base_url: str
    api_key: str
    child: Child

    @property
    def chat_url(self) -> str:
        return self.base_url + CHAT_PATH


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
    return Target(name, base, create_key(base), child)


def _admin_post(client: httpx.Client, path: str, body: dict[str, str]) -> dict[str, str]:
    response = client.post(path, json=body)
    if response.status_code not in (200, 201):
        raise RuntimeError(f"POST {path} -> HTTP {response.status_code}: {response.text[:500]}")
    data: dict[str, str] = response.json()
    return data


def create_key(base: str) -> str:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=f"{base}/admin/v1", headers=headers, timeout=10.0) as client:
        org = _admin_post(client, "/orgs", {"name": "bench"})
        project = _admin_post(client, "/projects", {"org_id": org["id"], "name": "bench"})
        key = _admin_post(client, "/keys", {"project_id": project["id"], "name": "bench"})
    return key["secret"]


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


def usage_requests(base: str) -> int:
    """totals.requests from spendgate's GET /admin/v1/usage."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = httpx.get(f"{base}/admin/v1/usage", headers=headers, timeout=10.0)
    response.raise_for_status()
    return int(response.json()["totals"]["requests"])


def settled_usage(base: str, expected: int, timeout: float = 10.0) -> int:
    """The usage count once it has reached `expected` and stopped changing (metering may lag a little);
    after `timeout`, whatever it is then."""
    deadline = time.monotonic() + timeout
    previous = usage_requests(base)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        count = usage_requests(base)
        if count == previous and count >= expected:
            return count
        previous = count
    return previous
