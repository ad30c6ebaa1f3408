"""docs/benchmarks.md: a summary, the machine, the command, how the processes share the cores, and the
tables."""

from __future__ import annotations

from sgbench.machine import Machine
from sgbench.suite import Placement, SuiteResult, plan
from sgbench.tables import RATIO_TARGET, TableData, all_tables
from sgbench.targets import BASELINE_SPENDGATE, SPENDGATE_VARIANTS

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
    for name in (x for x in suite.spendgates if x != BASELINE_SPENDGATE):
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


def summary_lines(suite: SuiteResult, seconds: int) -> list[str]:
    """The headline numbers as bullets; a part whose targets were not run is left out."""
    lines = _ratio_lines(suite, seconds) + _latency_lines(suite, seconds) + _variant_lines(suite, seconds)
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
            f"- Metering, {name}: `GET /admin/v1/usage` counted {total.usage:,} requests; wrk and the "
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
        "- `direct`: the simulated upstream itself (`spendgate simulate-upstream`).",
        "- `bare`: `bench/bare_proxy.py`, a pass-through proxy on spendgate's stack (Starlette, uvicorn with "
        "uvloop and httptools, one pooled aiohttp session) with no metering.",
    ]
    lines += [
        f"- `{name}`: `spendgate serve` with {SPENDGATE_VARIANTS[name].label}; on a fresh SQLite file of "
        "its own, with an org, project and key made through its admin API."
        for name in suite.spendgates
    ]
    lines += ["", "Every proxy forwards to the same simulator."]
    return "\n".join(lines)


def method_text(seconds: int, warmup: int) -> str:
    return (
        f"Each row: a {warmup} s warm-up (not counted), then {seconds} s of wrk with `bench/chat.lua`, which "
        "POSTs one short chat completion (one user message of about 20 words, `max_tokens: 16`, model "
        "`gpt-4o-mini`) per request; `stream` rows ask for SSE with `stream_options.include_usage`. "
        "Concurrency 1 is `wrk -t1 -c1`, 64 is `wrk -t2 -c64`. Latency is wrk's, to the last byte of the "
        "response (for streams, the whole stream). Rows are interleaved: each (mode, concurrency) runs "
        "against every target before the next, so that noise on the shared machine hits them alike."
    )


def render_markdown(
    machine: Machine, command: str, seconds: int, warmup: int, placement: Placement, suite: SuiteResult
) -> str:
    parts = [
        "# Benchmarks",
        "",
        "Generated by `bench/run.py` (`make bench`): rerun it rather than editing this file. Compare numbers "
        "as ratios within one run; the machine is shared, so absolute numbers move between runs.",
        "",
        "## Summary",
        "",
        *summary_lines(suite, seconds),
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
        method_text(seconds, warmup),
        "",
        targets_text(suite),
        "",
        "## Where the processes run",
        "",
        placement_text(placement),
        "",
    ]
    tables = "\n".join(markdown_table(t) for t in all_tables(suite, seconds))
    return "\n".join(parts) + "\n" + tables
