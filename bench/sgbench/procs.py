"""Child processes for the benchmark: free ports, start in their own session, always kill, read memory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    """A server started by the benchmark; its output goes to `log`."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    cpus: str | None = field(default=None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the child's process group (it is its own session), then SIGKILL after 3 s."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=3)


class Children:
    """Every child started; `stop_all` is safe to call more than once."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Child] = []

    def start(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, cpus: str | None = None
    ) -> Child:
        log = self.log_dir / f"{name}.log"
        command = ["taskset", "-c", cpus, *argv] if cpus else list(argv)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,
            )  # fmt: skip
        child = Child(name, popen, log, cpus)
        self.started.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.started):
            child.stop()


def wait_until_ready(
    child: Child, url: str, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> None:
    """Poll GET `url` until it answers 200; fail early if the child exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited with {child.popen.returncode}:\n{child.log_tail()}")
        try:
            response = httpx.get(url, headers=headers, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.TransportError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise RuntimeError(f"{child.name} not ready at {url} after {timeout:.0f} s ({last}):\n{child.log_tail()}")


@dataclass(frozen=True)
class Memory:
    rss_kib: int
    hwm_kib: int
    threads: int


def memory(pid: int) -> Memory:
    """VmRSS, VmHWM (peak RSS) and the thread count from /proc/PID/status."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            fields[key] = int(value.split()[0])
    return Memory(rss_kib=fields["VmRSS"], hwm_kib=fields["VmHWM"], threads=fields["Threads"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of all the process's threads so far, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 onwards
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")
