"""The result tables, as rows of text shared by the console and docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass

from sgbench.procs import Memory
from sgbench.suite import Measurement, SuiteResult, plan
from sgbench.targets import SPENDGATE_VARIANTS
from sgbench.wrk import Load, WrkResult

RATIO_TARGET = 0.5


@dataclass(frozen=True)
class TableData:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def problems(result: WrkResult) -> str:
    parts = []
    if result.non_2xx:
        codes = ", ".join(f"{s}×{n}" for s, n in sorted(result.statuses.items()) if not 200 <= s < 300)
        parts.append(f"{result.non_2xx} non-2xx ({codes})")
    if result.errors:
        parts.append(", ".join(f"{n} {kind}" for kind, n in result.socket_errors.items() if n))
    if result.requests == 0:
        parts.append("no responses")
    return "; ".join(parts)


def flag(m: Measurement) -> str:
    if m.clean:
        return "ok"
    found = [problems(m.result)] if not m.result.clean else []
    if not m.warmup.clean:
        found.append(f"warm-up: {problems(m.warmup)}")
    return "**ERRORS: " + "; ".join(found) + "**"


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def throughput_table(suite: SuiteResult) -> TableData:
    rows = []
    for m in suite.measurements:
        r = m.result
        rows.append([
            m.target, m.load.mode, str(m.load.connections), f"{r.rps:,.0f}", f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}", f"{m.cpu_ms_per_request:.3f}", f"{r.ok:,}", str(r.non_2xx), str(r.errors),
            flag(m),
        ])  # fmt: skip
    headers = [
        "target", "mode", "conc", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "2xx", "non-2xx", "socket err",
        "check",
    ]  # fmt: skip
    note = (
        "`CPU ms/req`: CPU time (user + system, all threads) of the target's own server process during the "
        "measured run, per request: the simulator's for `direct`, the proxy's alone for `bare` and each "
        "spendgate target. It is steadier than req/s on a shared machine. `2xx`, `non-2xx` and `socket err` "
        "count the measured run; a run with any non-2xx answer or socket error is flagged in the last column."
    )
    if suite.spendgates:
        note += " " + variants_note(suite)
    return TableData("Throughput and latency", headers, rows, note)


def variants_note(suite: SuiteResult) -> str:
    """What each spendgate target that ran is."""
    return " ".join(f"`{name}`: {SPENDGATE_VARIANTS[name].label}." for name in suite.spendgates)


def _marked(value: str, *measurements: Measurement) -> str:
    return value if all(m.clean for m in measurements) else f"{value} (run had errors)"


def ratio_table(suite: SuiteResult, loads: list[Load]) -> TableData:
    rows = []
    for load in loads:
        bare = suite.find("bare", load)
        if bare is None or bare.result.rps == 0:
            continue
        for name in suite.spendgates:
            sg = suite.find(name, load)
            if sg is None:
                continue
            ratio = sg.result.rps / bare.result.rps
            verdict = "yes" if ratio >= RATIO_TARGET else "**NO**"
            rows.append([
                load.mode, str(load.connections), name, f"{sg.result.rps:,.0f}", f"{bare.result.rps:,.0f}",
                _marked(f"{ratio:.2f}", sg, bare), verdict,
            ])  # fmt: skip
    headers = ["mode", "conc", "target", "target req/s", "bare req/s", "target ÷ bare", f"≥ {RATIO_TARGET}"]
    return TableData("spendgate against the bare proxy", headers, rows, variants_note(suite))


def proxies(suite: SuiteResult) -> list[str]:
    """`bare`, then the spendgate variants: whichever ran."""
    return [name for name in suite.targets if name == "bare"] + suite.spendgates


def added_latency_table(suite: SuiteResult, loads: list[Load]) -> TableData:
    rows = []
    names = proxies(suite)
    for load in (x for x in loads if x.connections == 1):
        direct = suite.find("direct", load)
        if direct is None:
            continue
        row = [load.mode, f"{direct.result.p50_ms:.2f}"]
        for name in names:
            m = suite.find(name, load)
            row += ["–", "–"] if m is None else [
                f"{m.result.p50_ms:.2f}", _marked(f"{m.result.p50_ms - direct.result.p50_ms:+.2f}", m, direct)
            ]  # fmt: skip
        rows.append(row)
    headers = ["mode", "direct p50"]
    for name in names:
        headers += [f"{name} p50", f"{name} − direct"]
    note = "Milliseconds, concurrency 1 (one connection, one request at a time)."
    if suite.spendgates:
        note += " " + variants_note(suite)
    return TableData("Added latency at p50", headers, rows, note)


def memory_table(suite: SuiteResult) -> TableData:
    rows = []
    for name, record in suite.memory.items():
        start, after = record.after_start, record.after_load
        last: Memory = after or start
        rows.append([
            name, _mib(start.rss_kib), _mib(after.rss_kib) if after else "–", _mib(last.hwm_kib),
            str(last.threads),
        ])  # fmt: skip
    headers = ["process", "RSS after start (MiB)", "RSS after load (MiB)", "peak RSS, VmHWM (MiB)", "threads"]
    note = (
        "From /proc/PID/status of each server process (one process each, no workers). `after start` is read "
        "once the servers answer and each spendgate target's org, project and key exist; `after load`, "
        "after every run."
    )
    return TableData("Memory", headers, rows, note)


def metering_verdict(diff: int, in_flight: int) -> str:
    if diff == 0:
        return "match"
    if 0 < diff <= in_flight:
        return f"ok: {diff} of {in_flight} cut-off requests metered"
    return "**MISMATCH**"


def metering_table(suite: SuiteResult) -> TableData:
    rows = []
    for name in suite.spendgates:
        metered = [row for row in suite.metering if row.target == name]
        for row in metered:
            diff = row.usage - row.wrk_ok
            rows.append([
                name, row.load.mode, str(row.load.connections), f"{row.wrk_ok:,}", str(row.in_flight_bound),
                f"{row.usage:,}", f"{diff:+d}", metering_verdict(diff, row.in_flight_bound),
            ])  # fmt: skip
        total = suite.metering_totals.get(name)
        if total is not None:
            diff = total.usage - total.wrk_ok
            bound = sum(row.in_flight_bound for row in metered)
            rows.append([
                name, "**all**", "", f"{total.wrk_ok:,}", str(bound), f"{total.usage:,}", f"{diff:+d}",
                metering_verdict(diff, bound),
            ])  # fmt: skip
    headers = [
        "target", "mode", "conc", "wrk 2xx", "cut off by wrk", "usage requests", "usage − wrk 2xx", "check",
    ]  # fmt: skip
    note = (
        "Each spendgate target meters into its own database and is checked on its own. `wrk 2xx` counts "
        "the warm-up and the measured run of the row; `usage requests` is the growth of "
        "`totals.requests` from the target's `GET /admin/v1/usage` over the row, read once it stops "
        "changing. wrk keeps one request in flight per connection and drops it when it stops, so each wrk "
        "run leaves up to `conc` requests that spendgate answered (or was answering) but wrk never counted: "
        "spendgate may meter those, so usage can exceed wrk's 2xx by up to `cut off by wrk`. The **all** "
        "line is the target's final total against every 2xx it gave, including the two readiness requests."
    )
    return TableData("Metering", headers, rows, note)


def all_tables(suite: SuiteResult, seconds: int) -> list[TableData]:
    loads = plan(seconds)
    tables = [throughput_table(suite), ratio_table(suite, loads), added_latency_table(suite, loads)]
    tables += [memory_table(suite), metering_table(suite)]
    return [t for t in tables if t.rows]
