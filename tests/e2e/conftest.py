"""Real processes: the simulated upstream and `spendgate serve` as a user would start them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

ADMIN_TOKEN = "e2e-admin-token"
SPENDGATE = [sys.executable, "-m", "spendgate"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Gateway:
    url: str
    db_path: Path
    process: subprocess.Popen[bytes]
    upstream_url: str

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method,
            f"{self.url}/admin/v1{path}",
            timeout=30,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            **kwargs,
        )
        response.raise_for_status()
        return response.json()

    def new_key(self, models: list[str] | None = None) -> tuple[str, str]:
        """A fresh org, project and key; returns (key id, secret)."""
        org = self.admin("POST", "/orgs", json={"name": "e2e"})
        project = self.admin("POST", "/projects", json={"org_id": org["id"], "name": "p"})
        body: dict[str, Any] = {"project_id": project["id"], "name": "k"}
        if models is not None:
            body["models"] = models
        key = self.admin("POST", "/keys", json=body)
        return key["id"], key["secret"]

    def cli(self, *args: str, check: bool = True) -> Any:
        """Run a `spendgate` admin command against this server with `--json`; its parsed output."""
        done = self.cli_run(*args, "--json", check=check)
        return json.loads(done.stdout)

    def cli_run(
        self, *args: str, token: str = ADMIN_TOKEN, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SPENDGATE_ADMIN_TOKEN": token}
        return subprocess.run(
            [*SPENDGATE, *args, "--url", self.url],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=check,
        )

    def usage(self, scope: str) -> Any:
        return self.admin("GET", "/usage", params={"scope": scope})

    def event(self, request_id: str) -> Any:
        return self.admin("GET", f"/usage/events/{request_id}")


def start_gateway(tmp: Path, upstream: str | None, *extra: str, env: dict[str, str] | None = None) -> Gateway:
    port = free_port()
    db_path = tmp / f"gateway-{port}.db"
    args = [*SPENDGATE, "serve", "--port", str(port), "--db", f"sqlite:///{db_path}", *extra]
    if upstream is not None:
        args += ["--upstream", upstream]
    full_env = {
        **os.environ,
        "SPENDGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "SPENDGATE_UPSTREAM_API_KEY": "sim-key",
        **(env or {}),
    }
    full_env.pop("OPENAI_API_KEY", None)
    with (tmp / f"gateway-{port}.log").open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(args, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/healthz", process)
    return Gateway(url=url, db_path=db_path, process=process, upstream_url=upstream or "")


Sdk = Callable[[str, str], OpenAI]


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    """Makes official openai SDK clients (no retries) and closes them after the test."""
    clients: list[OpenAI] = []

    def make(base_url: str, api_key: str) -> OpenAI:
        client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def upstream_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    with (tmp_path_factory.mktemp("sim") / "simulator.log").open("wb") as log:
        process = subprocess.Popen(
            [*SPENDGATE, "simulate-upstream", "--port", str(port), "--chunk-delay-ms", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/v1/models", process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(process)


@pytest.fixture(scope="session")
def gateway(upstream_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """spendgate in front of the simulator, with a 1 MiB body limit and a 3 s upstream read timeout."""
    gw = start_gateway(
        tmp_path_factory.mktemp("gw"),
        upstream_url,
        "--max-body",
        str(1024 * 1024),
        env={"SPENDGATE_UPSTREAM_READ_TIMEOUT": "3"},
    )
    try:
        yield gw
    finally:
        stop(gw.process)
