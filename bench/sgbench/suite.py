"""The measurement plan: every (mode, concurrency) row against every target, interleaved so that noise
on a shared machine hits the targets of a row alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sgbench.procs import Memory, cpu_seconds, memory
from sgbench.targets import Target, settled_usage
from sgbench.wrk import Load, WrkResult, run_wrk

CONCURRENCIES = (1, 64)
MODES = (False, True)  # stream?


@dataclass(frozen=True)
class Placement:
    """CPU lists for taskset (None: let the scheduler place it)."""

    proxy: str | None = None
    upstream: str | None = None
    wrk: str | None = None

    @property
    def pinned(self) -> bool:
        return any((self.proxy, self.upstream, self.wrk))


@dataclass(frozen=True)
class Measurement:
    target: str
    load: Load
    warmup: WrkResult
    result: WrkResult
    server_cpu_s: float  # CPU time the server under test used during the measured run

    @property
    def clean(self) -> bool:
        """No non-2xx answer or socket error in the warm-up or the measured run."""
        return self.warmup.clean and self.result.clean

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.result.requests if self.result.requests else 0.0


@dataclass(frozen=True)
class MeteringRow:
    """spendgate's usage count against wrk's 2xx for one row (warm-up included)."""

    load: Load
    wrk_ok: int
    usage: int
    in_flight_bound: int  # requests cut off when wrk stopped: at most one per connection per wrk run


@dataclass
class MemoryRecord:
    after_start: Memory
    after_load: Memory | None = None


@dataclass
class SuiteResult:
    measurements: list[Measurement] = field(default_factory=list)
    metering: list[MeteringRow] = field(default_factory=list)
    memory: dict[str, MemoryRecord] = field(default_factory=dict)
    usage_total: int | None = None
    wrk_ok_total: int = 0  # every 2xx spendgate gave: readiness checks, warm-ups and measured runs

    def find(self, target: str, load: Load) -> Measurement | None:
        return next((m for m in self.measurements if m.target == target and m.load == load), None)


def plan(seconds: int) -> list[Load]:
    return [Load(stream, connections, seconds) for stream in MODES for connections in CONCURRENCIES]


def run_suite(
    wrk: str,
    targets: list[Target],
    seconds: int,
    warmup_seconds: int,
    placement: Placement,
    checked_ok: dict[str, int],
    step: Callable[[str], None],
) -> SuiteResult:
    """`checked_ok`: 2xx answers each target already gave (readiness checks); `step` is told before each
    wrk run and advances the progress display."""
    suite = SuiteResult(memory={t.name: MemoryRecord(memory(t.child.pid)) for t in targets})
    spendgate = next((t for t in targets if t.name == "spendgate"), None)
    suite.wrk_ok_total = checked_ok.get("spendgate", 0)
    usage_seen = settled_usage(spendgate.base_url, suite.wrk_ok_total) if spendgate else 0
    for load in plan(seconds):
        row_ok = 0
        for target in targets:
            label = f"{target.name:9} {load.mode:6} c={load.connections:<3}"
            step(f"{label} warm-up")
            warm = run_wrk(wrk, target.chat_url, Load(load.stream, load.connections, warmup_seconds),
                           target.api_key, placement.wrk)  # fmt: skip
            step(f"{label} measuring")
            cpu_before = cpu_seconds(target.child.pid)
            result = run_wrk(wrk, target.chat_url, load, target.api_key, placement.wrk)
            cpu_used = cpu_seconds(target.child.pid) - cpu_before
            if not target.child.alive():
                raise RuntimeError(f"{target.name} died during the load:\n{target.child.log_tail()}")
            suite.measurements.append(Measurement(target.name, load, warm, result, cpu_used))
            if target is spendgate:
                row_ok = warm.ok + result.ok
        if spendgate:
            suite.wrk_ok_total += row_ok
            usage_after = settled_usage(spendgate.base_url, suite.wrk_ok_total)
            suite.metering.append(MeteringRow(load, row_ok, usage_after - usage_seen, 2 * load.connections))
            suite.usage_total = usage_seen = usage_after
    for target in targets:
        suite.memory[target.name].after_load = memory(target.child.pid)
    return suite
