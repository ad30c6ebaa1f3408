"""docs/benchmarks.md: a summary, the machine, the command, how the processes share the cores, and the
tables."""

from __future__ import annotations

from sgbench.burst import ADMITS, CALLS, MAX_TOKENS, PROBE_CALLS, UPSTREAM_DELAY_MS, BurstReport, dollars
from sgbench.machine import Machine
from sgbench.suite import Placement, SuiteResult, plan
from sgbench.tables import RATIO_TARGET, RESERVATIONS_TITLE, TableData, all_tables, burst_table
from sgbench.targets import BASELINE_SPENDGATE, LIMITED_SPENDGATE, SPENDGATE_VARIANTS

MIB = 1024


def markdown_table(table: TableData) -> str:
    lines = [f"## {table.title}", ""]
    if table.note:
        lines += [table.note, ""]
    lines.append("| " + " | ".join(table.headers) + " |")
    lines.append("|" + "|".join(" --- " for _ in table.headers) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def _ratio_lines(suite: SuiteResult, seconds: int) -> list[str]:
    lines = []
    for name in suite.spendgates:
        ratios = []
        for load in plan(seconds):
            sg, bare = suite.find(name, load), suite.find("bare", load)
            if sg and bare and bare.result.rps:
                ratios.append((f"{load.mode} c={load.connections}", sg.result.rps / bare.result.rps))
        if not ratios:
            continue
        met = sum(ratio >= RATIO_TARGET for _, ratio in ratios)
        each = ", ".join(f"{where} {ratio:.2f}" for where, ratio in ratios)
        lines.append(
            f"- {name} ({SPENDGATE_VARIANTS[name].short}) req/s ÷ bare req/s: {each} "
            f"(target ≥ {RATIO_TARGET}: met in {met} of {len(ratios)})."
        )
    return lines


def _latency_lines(suite: SuiteResult, seconds: int) -> list[str]:
    lines = []
    for load in (x for x in plan(seconds) if x.connections == 1):
        direct = suite.find("direct", load)
        if direct is None:
            continue
        added = [
            f"{name} {m.result.p50_ms - direct.result.p50_ms:+.2f} ms"
            for name in [*suite.spendgates, "bare"]
            if (m := suite.find(name, load))
        ]
        if added:
            lines.append(
                f"- Added p50 latency over `direct`, {load.mode}, concurrency 1: {', '.join(added)}."
            )
    return lines


def _variant_lines(suite: SuiteResult, seconds: int) -> list[str]:
    """Each spendgate variant against the baseline one, measured in the same rows."""
    if BASELINE_SPENDGATE not in suite.spendgates:
        return []
    lines = []
    # spendgate-limited against spendgate is the cost of reservations: a bullet of its own
    for name in (x for x in suite.spendgates if x not in (BASELINE_SPENDGATE, LIMITED_SPENDGATE)):
        p50, rps, cpu = [], [], []
        for load in plan(seconds):
            variant, base = suite.find(name, load), suite.find(BASELINE_SPENDGATE, load)
            if variant is None or base is None:
                continue
            where = f"{load.mode} c={load.connections}"
            if load.connections == 1:
                p50.append(f"{load.mode} {variant.result.p50_ms - base.result.p50_ms:+.2f} ms")
            if base.result.rps:
                rps.append(f"{where} {variant.result.rps / base.result.rps:.2f}")
            if base.cpu_ms_per_request:
                cpu.append(f"{where} {variant.cpu_ms_per_request / base.cpu_ms_per_request:.2f}")
        parts = [
            f"p50 at concurrency 1 {', '.join(p50)}" if p50 else "",
            f"req/s ÷ {BASELINE_SPENDGATE}'s {', '.join(rps)}" if rps else "",
            f"CPU ms/req ÷ {BASELINE_SPENDGATE}'s {', '.join(cpu)}" if cpu else "",
        ]
        if any(parts):
            lines.append(
                f"- {name} against {BASELINE_SPENDGATE}, same rows: " + "; ".join(filter(None, parts)) + "."
            )
    return lines


def _reservation_lines(suite: SuiteResult, seconds: int) -> list[str]:
    """spendgate-limited against spendgate: what reserving on three scopes costs per call."""
    rps, p50, p99, cpu, cpu_added = [], [], [], [], []
    for load in plan(seconds):
        limited, base = suite.find(LIMITED_SPENDGATE, load), suite.find(BASELINE_SPENDGATE, load)
        if limited is None or base is None:
            continue
        lim, ref = limited.result, base.result
        where = f"{load.mode} c={load.connections}"
        if ref.rps:
            rps.append(f"{where} {lim.rps / ref.rps:.2f}")
        p50.append(f"{where} {lim.p50_ms - ref.p50_ms:+.2f}")
        p99.append(f"{where} {lim.p99_ms - ref.p99_ms:+.2f}")
        if base.cpu_ms_per_request:
            cpu.append(f"{where} {limited.cpu_ms_per_request / base.cpu_ms_per_request:.2f}")
        cpu_added.append(f"{where} {limited.cpu_ms_per_request - base.cpu_ms_per_request:+.3f}")
    if not p50:
        return []
    return [
        f"- Cost of reservations ({LIMITED_SPENDGATE}: a monthly hard limit on key, project and org, so "
        f"every call reserves on three scopes, against {BASELINE_SPENDGATE} without limits, same process, "
        f"same rows; see *{RESERVATIONS_TITLE}*): req/s ÷ no limits {', '.join(rps)}; added p50 ms "
        f"{', '.join(p50)}; added p99 ms {', '.join(p99)}; CPU ms/req ÷ no limits {', '.join(cpu)} "
        f"(added CPU ms/req {', '.join(cpu_added)})."
    ]


def _limits_after_lines(suite: SuiteResult) -> list[str]:
    lines = []
    for name, standings in suite.limits.items():
        settled = all(st.reserved_nanos == 0 for st in standings)
        matches = all(st.spent_nanos == st.usage_cost_nanos for st in standings)
        kinds = ", ".join(st.scope.split(":")[0] for st in standings)
        lines.append(
            f"- Limits after the load, {name} ({kinds}): reserved_nanos "
            + ("0 on every one" if settled else "**NOT 0**")
            + "; spent "
            + ("equals the metered cost on every one" if matches else "**differs from the metered cost**")
            + " (see *Spend limits after the load*)."
        )
    return lines


def burst_lines(report: BurstReport) -> list[str]:
    runs = report.runs
    if not runs:
        return []
    all_429 = all(r.bad_refusals == 0 and not r.failed for r in runs)
    room = [r.room_below_worst_case for r in runs]
    return [
        f"- Spend limit under a burst ({CALLS} concurrent calls through the openai SDK on a key whose hard "
        f"limit is {ADMITS} × one call's cost, {dollars(runs[0].limit_nanos)}; {len(runs)} bursts, see "
        f"*Spend limits under a burst*): overspend "
        + ", ".join(dollars(r.overspend_nanos) if r.overspend_nanos else "0" for r in runs)
        + "; utilisation "
        + ", ".join(f"{r.utilisation:.1%}" for r in runs)
        + "; answered "
        + ", ".join(str(r.answered) for r in runs)
        + ", refused "
        + ", ".join(str(r.refused) for r in runs)
        + (
            " (every refusal a 429 spend_limit_exceeded)"
            if all_429
            else " (**some not 429 spend_limit_exceeded**)"
        )
        + "; room left < one call's worst case: "
        + ("yes in every burst" if all(room) else ", ".join("yes" if x else "**NO**" for x in room))
        + "; wall "
        + ", ".join(f"{r.wall_s:.2f} s" for r in runs)
        + "."
    ]


def summary_lines(suite: SuiteResult, seconds: int, burst: BurstReport | None = None) -> list[str]:
    """The headline numbers as bullets; a part whose targets were not run is left out."""
    lines = _ratio_lines(suite, seconds) + _latency_lines(suite, seconds) + _variant_lines(suite, seconds)
    lines += _reservation_lines(suite, seconds) + _limits_after_lines(suite)
    if burst is not None:
        lines += burst_lines(burst)
    for name in suite.spendgates:
        record = suite.memory.get(name)
        if record and record.after_load:
            start, after = record.after_start, record.after_load
            lines.append(
                f"- {name} RSS: {start.rss_kib / MIB:.0f} MiB after start, {after.rss_kib / MIB:.0f} MiB "
                f"after the load, peak {after.hwm_kib / MIB:.0f} MiB."
            )
    for name, total in suite.metering_totals.items():
        lines.append(
            f"- Metering, {name}: `GET /admin/v1/usage?scope=key:ID` for its key counted {total.usage:,} "
            "requests; wrk and the "
            f"readiness checks got {total.wrk_ok:,} 2xx answers from it (see *Metering*)."
        )
    dirty = (m for m in suite.measurements if not m.clean)
    problems = ", ".join(f"{m.target} {m.load.mode} c={m.load.connections}" for m in dirty)
    lines.append(f"- Runs with non-2xx answers or socket errors: {problems or 'none'}.")
    return lines


def placement_text(placement: Placement) -> str:
    shared = (
        "All the processes share the machine's cores: wrk (1 thread at concurrency 1, 2 threads at 64), the "
        "simulated upstream (one Python process, the upstream of every target) and the server under test "
        "(one Python process; see `threads` under *Memory* for the threads each runs besides its event "
        "loop). Every server runs for the whole benchmark but only one target is loaded at a time, so the "
        "idle ones cost next to nothing. For `direct`, wrk and the simulator share the cores; for `bare` "
        "and each spendgate target, wrk, the proxy and the simulator do: three busy processes on two "
        "cores, so the proxied rows include the simulator's work, alike for every proxy."
    )
    if not placement.pinned:
        return shared + " No CPU pinning: the kernel's scheduler places them (`--pin` pins them)."
    where = {"the proxies": placement.proxy, "the simulator": placement.upstream, "wrk": placement.wrk}
    pinned = ", ".join(f"{name} on CPU {cpus}" for name, cpus in where.items() if cpus)
    free = ", ".join(name for name, cpus in where.items() if not cpus)
    return (
        shared + f" Pinned with `taskset`: {pinned}" + (f"; {free} left to the scheduler." if free else ".")
    )


def targets_text(suite: SuiteResult) -> str:
    lines = [
        "Targets:",
        "",
    ]
    if "direct" in suite.targets:
        lines.append("- `direct`: the simulated upstream itself (`spendgate simulate-upstream`).")
    if "bare" in suite.targets:
        lines.append(
            "- `bare`: `bench/bare_proxy.py`, a pass-through proxy on spendgate's stack (Starlette, uvicorn "
            "with uvloop and httptools, one pooled aiohttp session) with no metering."
        )
    for name in suite.spendgates:
        variant = SPENDGATE_VARIANTS[name]
        if variant.same_process_as is None:
            lines.append(
                f"- `{name}`: `spendgate serve` with {variant.label}; on a fresh SQLite file of its own, "
                "with an org, project and key made through its admin API."
            )
        else:
            started = "" if variant.same_process_as in suite.targets else (
                f" (`{variant.same_process_as}` was not asked for: its process was started for this target)"
            )  # fmt: skip
            lines.append(
                f"- `{name}`: {variant.label}; org, project, key and limits made through the admin API"
                f"{started}."
            )
    lines += ["", "Every proxy forwards to the same simulator."]
    return "\n".join(lines)


def method_text(seconds: int, warmup: int, burst: bool) -> str:
    after = (
        " After the rows, on processes of their own: the spend-limit bursts (*Spend limits under a burst*)."
        if burst
        else ""
    )
    return (
        f"Each row: a {warmup} s warm-up (not counted), then {seconds} s of wrk with `bench/chat.lua`, which "
        "POSTs one short chat completion (one user message of about 20 words, `max_tokens: 16`, model "
        "`gpt-4o-mini`) per request; `stream` rows ask for SSE with `stream_options.include_usage`. "
        "Concurrency 1 is `wrk -t1 -c1`, 64 is `wrk -t2 -c64`. Latency is wrk's, to the last byte of the "
        "response (for streams, the whole stream). Rows are interleaved: each (mode, concurrency) runs "
        "against every target before the next, so that noise on the shared machine hits them alike." + after
    )


def burst_text() -> str:
    return (
        f"After the wrk rows, apart from them: a simulator of its own that takes {UPSTREAM_DELAY_MS} ms per "
        f"call (`spendgate simulate-upstream --delay-ms {UPSTREAM_DELAY_MS}`) and a `spendgate serve` of its "
        "own in front of it (fresh SQLite file, default settings). A probe key makes "
        f"{PROBE_CALLS} calls; one call's actual cost is the largest `cost_nanos` of their usage events "
        "(`GET /admin/v1/usage/events/{x-request-id}`). Then, for each burst, a fresh org, project and key "
        f"with a monthly hard limit of {ADMITS} × that cost on the key, and {CALLS} calls fired at once "
        "with the official `openai` SDK (`AsyncOpenAI`, `max_retries=0`): short distinct prompts, "
        f"`max_tokens={MAX_TOKENS}`, every third call streamed. spendgate reserves each call's worst case "
        "(its prompt bounded by the request's bytes, its output by max_tokens) before forwarding it, so "
        "a call is admitted only if spent + held + its worst case fits the limit; a call that fits the "
        "limit but not beside others' holds waits for them to settle, and is refused (429) only when "
        "what is already spent leaves no room for its worst case. Hence the limit can never be passed "
        "and the room left at the end is less than one worst case."
    )


def render_markdown(
    machine: Machine,
    command: str,
    seconds: int,
    warmup: int,
    placement: Placement,
    suite: SuiteResult,
    burst: BurstReport | None = None,
) -> str:
    parts = [
        "# Benchmarks",
        "",
        "Generated by `bench/run.py` (`make bench`): rerun it rather than editing this file. Compare numbers "
        "as ratios within one run; the machine is shared, so absolute numbers move between runs.",
        "",
        "## Summary",
        "",
        *summary_lines(suite, seconds, burst),
        "",
        "## Machine",
        "",
        "| nproc | CPU | Python | kernel | wrk | date | load average at start |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {machine.nproc} | {machine.cpu_model} | {machine.python} | {machine.kernel} | {machine.wrk} "
        f"| {machine.date} | {machine.load_average} |",
        "",
        "## Command",
        "",
        "```",
        command,
        "```",
        "",
        method_text(seconds, warmup, burst is not None),
        "",
        targets_text(suite),
        "",
        "## Where the processes run",
        "",
        placement_text(placement),
        "",
    ]
    tables = "\n".join(markdown_table(t) for t in all_tables(suite, seconds))
    if burst is not None:
        table = burst_table(burst)
        note = burst_text() + "\n\n" + table.note
        tables += "\n" + markdown_table(TableData(table.title, table.headers, table.rows, note))
    else:
        tables += "\n## Spend limits under a burst\n\nNot run (`--no-burst`).\n"
    return "\n".join(parts) + "\n" + tables
