"""The measurement plan: every (mode, concurrency) row against every target, interleaved so that noise
on a shared machine hits the targets of a row alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sgbench.procs import Memory, cpu_seconds, memory
from sgbench.targets import LimitStanding, Target, is_spendgate, limit_standings, settled_usage
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
    """A spendgate target's usage count against wrk's 2xx for one row (warm-up included)."""

    target: str
    load: Load
    wrk_ok: int
    usage: int
    in_flight_bound: int  # requests cut off when wrk stopped: at most one per connection per wrk run


@dataclass
class MeteringTotal:
    """One spendgate target over the whole suite."""

    usage: int = 0  # totals.requests from its GET /admin/v1/usage at the end
    wrk_ok: int = 0  # every 2xx it gave: readiness checks, warm-ups and measured runs


@dataclass
class MemoryRecord:
    after_start: Memory
    after_load: Memory | None = None


@dataclass
class SuiteResult:
    targets: list[str] = field(default_factory=list)  # in the order they ran within each row
    measurements: list[Measurement] = field(default_factory=list)
    metering: list[MeteringRow] = field(default_factory=list)
    metering_totals: dict[str, MeteringTotal] = field(default_factory=dict)
    memory: dict[str, MemoryRecord] = field(default_factory=dict)  # one per server process
    shared: dict[str, str] = field(default_factory=dict)  # target -> the target whose process it runs on
    limits: dict[str, list[LimitStanding]] = field(default_factory=dict)  # after the load, per target

    @property
    def spendgates(self) -> list[str]:
        """The spendgate variants that ran, in order."""
        return [name for name in self.targets if is_spendgate(name)]

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
    suite = SuiteResult(targets=[t.name for t in targets])
    first_on: dict[int, str] = {}  # pid -> the first target on that process
    for t in targets:
        if t.child.pid in first_on:
            suite.shared[t.name] = first_on[t.child.pid]
        else:
            first_on[t.child.pid] = t.name
            suite.memory[t.name] = MemoryRecord(memory(t.child.pid))
    spendgates = [t for t in targets if is_spendgate(t.name)]
    for sg in spendgates:
        ok = checked_ok.get(sg.name, 0)
        suite.metering_totals[sg.name] = MeteringTotal(settled_usage(sg.base_url, sg.usage_scope, ok), ok)
    width = max(len(t.name) for t in targets)
    for load in plan(seconds):
        row_ok: dict[str, int] = {}
        for target in targets:
            label = f"{target.name:{width}} {load.mode:6} c={load.connections:<3}"
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
            row_ok[target.name] = warm.ok + result.ok
        for sg in spendgates:
            total = suite.metering_totals[sg.name]
            total.wrk_ok += row_ok[sg.name]
            usage_after = settled_usage(sg.base_url, sg.usage_scope, total.wrk_ok)
            suite.metering.append(
                MeteringRow(sg.name, load, row_ok[sg.name], usage_after - total.usage, 2 * load.connections)
            )
            total.usage = usage_after
    for target in targets:
        if target.name in suite.memory:
            suite.memory[target.name].after_load = memory(target.child.pid)
        if target.limit_scopes:
            suite.limits[target.name] = limit_standings(target.base_url, target.limit_scopes)
    return suite
