"""The result tables, as rows of text shared by the console and docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass

from sgbench.burst import ADMITS, CALLS, BurstReport, dollars
from sgbench.procs import Memory
from sgbench.suite import Measurement, SuiteResult, plan
from sgbench.targets import BASELINE_SPENDGATE, LIMITED_SPENDGATE, SPENDGATE_VARIANTS
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
        host = SPENDGATE_VARIANTS[name].same_process_as if name in SPENDGATE_VARIANTS else None
        label = f"{name} (the {host} process)" if host else name
        rows.append([
            label, _mib(start.rss_kib), _mib(after.rss_kib) if after else "–", _mib(last.hwm_kib),
            str(last.threads),
        ])  # fmt: skip
    headers = ["process", "RSS after start (MiB)", "RSS after load (MiB)", "peak RSS, VmHWM (MiB)", "threads"]
    note = (
        "From /proc/PID/status of each server process (one process each, no workers). `after start` is read "
        "once the servers answer and each spendgate target's org, project and key exist; `after load`, "
        "after every run."
    )
    note += "".join(
        f" `{name}` runs in the `{host}` process: see its row." for name, host in suite.shared.items()
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
        "Each spendgate target is checked on its own key: `wrk 2xx` counts the warm-up and the measured run "
        "of the row; `usage requests` is the growth of `totals.requests` from "
        "`GET /admin/v1/usage?scope=key:ID` for the target's key over the row, read once it stops "
        "changing (so `spendgate-limited`, which shares `spendgate`'s process and database, is counted "
        "apart from it). wrk keeps one request in flight per connection and drops it when it stops, so "
        "each wrk run leaves up to `conc` requests that spendgate answered (or was answering) but wrk "
        "never counted: spendgate may meter those, so usage can exceed wrk's 2xx by up to "
        "`cut off by wrk`. The **all** line is the target's final total against every 2xx it gave, "
        "including the two readiness requests."
    )
    return TableData("Metering", headers, rows, note)


RESERVATIONS_TITLE = f"Cost of reservations: {LIMITED_SPENDGATE} against {BASELINE_SPENDGATE}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "–"


def _added(value: float, than: float, *measurements: Measurement) -> str:
    return _marked(f"{value - than:+.2f}", *measurements)


def reservation_cost_table(suite: SuiteResult, loads: list[Load]) -> TableData:
    """spendgate-limited (every call reserves on key, project and org) against spendgate (no limits):
    the same process, the same database, the same rows."""
    rows = []
    for load in loads:
        limited, base = suite.find(LIMITED_SPENDGATE, load), suite.find(BASELINE_SPENDGATE, load)
        if limited is None or base is None:
            continue
        lim, ref = limited.result, base.result
        rows.append([
            load.mode, str(load.connections),
            f"{ref.rps:,.0f}", f"{lim.rps:,.0f}", _marked(_ratio(lim.rps, ref.rps), limited, base),
            f"{ref.p50_ms:.2f}", f"{lim.p50_ms:.2f}", _added(lim.p50_ms, ref.p50_ms, limited, base),
            f"{ref.p99_ms:.2f}", f"{lim.p99_ms:.2f}", _added(lim.p99_ms, ref.p99_ms, limited, base),
            f"{base.cpu_ms_per_request:.3f}", f"{limited.cpu_ms_per_request:.3f}",
            _ratio(limited.cpu_ms_per_request, base.cpu_ms_per_request),
            f"{limited.cpu_ms_per_request - base.cpu_ms_per_request:+.3f}",
        ])  # fmt: skip
    b, lt = "no limits", "limited"
    headers = [
        "mode", "conc", f"req/s {b}", f"req/s {lt}", "req/s ratio", f"p50 ms {b}", f"p50 ms {lt}",
        "added p50 ms", f"p99 ms {b}", f"p99 ms {lt}", "added p99 ms", f"CPU ms/req {b}",
        f"CPU ms/req {lt}", "CPU ratio", "added CPU ms/req",
    ]  # fmt: skip
    note = (
        f"What spend limits cost a call. `{b}`: `{BASELINE_SPENDGATE}`, a key whose key, project and org "
        f"have no limit. `{lt}`: `{LIMITED_SPENDGATE}`, a second key on the same `spendgate` process and "
        "database whose key, project and org each have a monthly hard limit of $1,000,000 (never reached, "
        "so nothing is refused): every call reserves its worst-case cost on the three scopes before it is "
        "forwarded and settles after. Both are measured in the same rows, one after the other; the "
        "process serves one target at a time, so its CPU time per run belongs to the target loaded. "
        "`req/s ratio` and `CPU ratio` are limited ÷ no limits; `added` columns are limited − no limits."
    )
    return TableData(RESERVATIONS_TITLE, headers, rows, note)


def limits_after_table(suite: SuiteResult) -> TableData:
    rows = []
    for name, standings in suite.limits.items():
        for st in standings:
            settled = st.reserved_nanos == 0
            matches = st.spent_nanos == st.usage_cost_nanos
            check = "ok" if settled and matches else "**" + ", ".join(
                ([] if settled else ["reservations left"]) + ([] if matches else ["spent ≠ usage cost"])
            ) + "**"  # fmt: skip
            rows.append([
                name, f"`{st.scope.split(':')[0]}`", dollars(st.hard_nanos), f"{st.usage_requests:,}",
                dollars(st.usage_cost_nanos), dollars(st.spent_nanos), f"{st.reserved_nanos:,}", check,
            ])  # fmt: skip
    headers = [
        "target", "scope", "hard limit", "usage requests", "usage cost", "limit spent", "reserved_nanos",
        "check",
    ]  # fmt: skip
    note = (
        "Each limit of the limited target after the last run, from `GET /admin/v1/usage?scope=…` (read "
        "once nothing is reserved, or after 10 s): every reservation must have been settled or released "
        "(`reserved_nanos` 0), and the limit's spent counter must equal the scope's metered cost this "
        "month. The key, its project and its org hold only this target's calls, so the three rows agree."
    )
    return TableData("Spend limits after the load", headers, rows, note)


def all_tables(suite: SuiteResult, seconds: int) -> list[TableData]:
    loads = plan(seconds)
    tables = [throughput_table(suite), ratio_table(suite, loads), added_latency_table(suite, loads)]
    tables += [reservation_cost_table(suite, loads), memory_table(suite), metering_table(suite)]
    tables.append(limits_after_table(suite))
    return [t for t in tables if t.rows]


def _yes(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "**NO**")


def burst_table(report: BurstReport) -> TableData:
    rows = []
    for i, run in enumerate(report.runs, 1):
        refused = f"{run.refused}"
        if run.refused:
            refused += (
                " (all 429 spend_limit_exceeded)" if run.bad_refusals == 0
                else f" (**{run.bad_refusals} not 429 spend_limit_exceeded**)"
            )  # fmt: skip
        if run.refused_after_waiting:
            refused += f"; {run.refused_after_waiting} when the wait for others' holds ran out"
        if run.failed:
            refused += f"; **{len(run.failed)} other errors**"
        problems = []
        if run.usage_requests != run.answered:
            problems.append(f"usage counted {run.usage_requests}")
        if run.limit_spent_nanos != run.spent_nanos:
            problems.append(f"limit spent {dollars(run.limit_spent_nanos)}")
        if run.reserved_after_nanos:
            problems.append(f"{run.reserved_after_nanos:,} nanos still reserved")
        if run.answered + run.refused != run.calls:
            problems.append(f"{run.calls - run.answered - run.refused} calls unaccounted for")
        rows.append([
            str(i), dollars(run.limit_nanos), f"{run.answered}", refused, dollars(run.spent_nanos),
            f"{run.utilisation:.1%}", dollars(run.overspend_nanos) if run.overspend_nanos else "0",
            dollars(run.room_left_nanos),
            dollars(run.worst_case_nanos) if run.worst_case_nanos is not None else "–",
            _yes(run.room_below_worst_case), f"{run.wall_s:.2f}",
            "ok" if run.ok else "**" + ("; ".join(problems) or "FAILED") + "**",
        ])  # fmt: skip
    headers = [
        "burst", "hard limit", "answered", "refused", "spent", "utilisation", "overspend", "room left",
        "largest worst case quoted", "room left < one worst case", "wall s", "check",
    ]  # fmt: skip
    note = (
        f"One call costs {dollars(report.one_call_nanos)} (the dearest of {len(report.probe_costs)} probe "
        f"calls); each burst's key has a hard limit of {ADMITS} × that. `spent`: `totals.cost_nanos` of the "
        "key from `GET /admin/v1/usage` after the burst; `utilisation` = spent ÷ limit; `overspend` = "
        "max(0, spent − limit); `room left` = limit − spent; a refusal that first waited in line for "
        "others' holds and ran out of time is counted apart (its message starts `Waited`); `largest "
        "worst case quoted`: the largest `could cost up to $X` in the 429 messages, what spendgate "
        "reserves for one call; `wall s`: from "
        f"firing the {CALLS} calls to the last answer. `check`: no overspend, every refusal a 429 "
        "spend_limit_exceeded and no other error, answered + refused = "
        f"{CALLS}, the usage count equals the calls answered, the limit's spent counter equals the usage "
        "cost, nothing left reserved, and room left < one worst case."
    )
    return TableData("Spend limits under a burst", headers, rows, note)
