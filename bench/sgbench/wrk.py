"""Run wrk with bench/chat.lua and parse the BENCH_RESULT line its done() prints."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).resolve().parent.parent / "chat.lua"
INSTALL_HINT = (
    "wrk is not installed: run `apt-get update && apt-get install -y wrk` (Debian/Ubuntu, as root)."
)


def find_wrk() -> str | None:
    return shutil.which("wrk")


@dataclass(frozen=True)
class Load:
    """One wrk invocation's shape."""

    stream: bool
    connections: int
    seconds: int

    @property
    def threads(self) -> int:
        return 1 if self.connections == 1 else 2

    @property
    def mode(self) -> str:
        return "stream" if self.stream else "plain"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok(self) -> int:
        """Responses with a 2xx status."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def errors(self) -> int:
        """Socket errors (connect, read, write, timeout): requests that got no response at all."""
        return sum(self.socket_errors.values())

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def clean(self) -> bool:
        return self.non_2xx == 0 and self.errors == 0 and self.requests > 0


def run_wrk(wrk: str, url: str, load: Load, api_key: str, cpus: str | None = None) -> WrkResult:
    argv = [
        wrk, f"-t{load.threads}", f"-c{load.connections}", f"-d{load.seconds}s", "--timeout", "10s",
        "-s", str(LUA_SCRIPT), url, "--", load.mode, api_key,
    ]  # fmt: skip
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=load.seconds + 30, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse_result(json.loads(line.removeprefix("BENCH_RESULT ")))


def parse_result(data: dict[str, Any]) -> WrkResult:
    latency = data["latency_us"]
    errors = data["errors"]
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=int(data["duration_us"]) / 1e6,
        statuses={int(status): int(n) for status, n in data["statuses"].items()},
        socket_errors={k: int(errors[k]) for k in ("connect", "read", "write", "timeout")},
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )
