"""What the numbers were measured on."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Machine:
    nproc: int
    cpu_model: str
    python: str
    kernel: str
    wrk: str
    date: str
    load_average: str


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return " ".join(first[0].split()[:2]) if first else "unknown"


def describe(wrk: str) -> Machine:
    return Machine(
        nproc=len(os.sched_getaffinity(0)),
        cpu_model=cpu_model(),
        python=platform.python_version(),
        kernel=platform.release(),
        wrk=wrk_version(wrk),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        load_average=" ".join(f"{x:.2f}" for x in os.getloadavg()),
    )
