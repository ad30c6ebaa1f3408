"""docs/benchmarks.md: a summary, the machine, the command, how the processes share the cores, and the
tables."""

from __future__ import annotations

from sgbench.machine import Machine
from sgbench.suite import Placement, SuiteResult, plan
from sgbench.tables import RATIO_TARGET, TableData, all_tables

MIB = 1024


def markdown_table(table: TableData) -> str:
    lines = [f"## {table.title}", ""]
    if table.note:
        lines += [table.note, ""]
    lines.append("| " + " | ".join(table.headers) + " |")
    lines.append("|" + "|".join(" --- " for _ in table.headers) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def _ratio_line(suite: SuiteResult, seconds: int) -> list[str]:
    ratios = []
    for load in plan(seconds):
        sg, bare = suite.find("spendgate", load), suite.find("bare", load)
        if sg and bare and bare.result.rps:
            ratios.append((f"{load.mode} c={load.connections}", sg.result.rps / bare.result.rps))
    if not ratios:
        return []
    met = sum(ratio >= RATIO_TARGET for _, ratio in ratios)
    each = ", ".join(f"{name} {ratio:.2f}" for name, ratio in ratios)
    return [
        f"- spendgate req/s ÷ bare req/s: {each} (target ≥ {RATIO_TARGET}: met in {met} of {len(ratios)})."
    ]


def _latency_lines(suite: SuiteResult, seconds: int) -> list[str]:
    lines = []
    for load in (x for x in plan(seconds) if x.connections == 1):
        direct = suite.find("direct", load)
        if direct is None:
            continue
        added = [
            f"{name} {m.result.p50_ms - direct.result.p50_ms:+.2f} ms"
            for name in ("spendgate", "bare")
            if (m := suite.find(name, load))
        ]
        if added:
            lines.append(
                f"- Added p50 latency over `direct`, {load.mode}, concurrency 1: {', '.join(added)}."
            )
    return lines


def summary_lines(suite: SuiteResult, seconds: int) -> list[str]:
    """The headline numbers as bullets; a part whose targets were not run is left out."""
    lines = _ratio_line(suite, seconds) + _latency_lines(suite, seconds)
    record = suite.memory.get("spendgate")
    if record and record.after_load:
        start, after = record.after_start, record.after_load
        lines.append(
            f"- spendgate RSS: {start.rss_kib / MIB:.0f} MiB after start, {after.rss_kib / MIB:.0f} MiB "
            f"after the load, peak {after.hwm_kib / MIB:.0f} MiB."
        )
    if suite.usage_total is not None:
        lines.append(
            f"- Metering: `GET /admin/v1/usage` counted {suite.usage_total:,} requests; wrk and the "
            f"readiness checks got {suite.wrk_ok_total:,} 2xx answers from spendgate (see *Metering*)."
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
        "loop). The three servers run for the whole benchmark but only one target is loaded at a time, so "
        "the idle ones cost next to nothing. For `direct`, wrk and the simulator share the cores; for `bare` "
        "and `spendgate`, wrk, the proxy and the simulator do: three busy processes on two cores, so the "
        "proxied rows include the simulator's work, alike for both proxies."
    )
    if not placement.pinned:
        return shared + " No CPU pinning: the kernel's scheduler places them (`--pin` pins them)."
    where = {"the proxies": placement.proxy, "the simulator": placement.upstream, "wrk": placement.wrk}
    pinned = ", ".join(f"{name} on CPU {cpus}" for name, cpus in where.items() if cpus)
    free = ", ".join(name for name, cpus in where.items() if not cpus)
    return (
        shared + f" Pinned with `taskset`: {pinned}" + (f"; {free} left to the scheduler." if free else ".")
    )


def method_text(seconds: int, warmup: int) -> str:
    return (
        f"Each row: a {warmup} s warm-up (not counted), then {seconds} s of wrk with `bench/chat.lua`, which "
        "POSTs one short chat completion (one user message of about 20 words, `max_tokens: 16`, model "
        "`gpt-4o-mini`) per request; `stream` rows ask for SSE with `stream_options.include_usage`. "
        "Concurrency 1 is `wrk -t1 -c1`, 64 is `wrk -t2 -c64`. Latency is wrk's, to the last byte of the "
        "response (for streams, the whole stream). Rows are interleaved: each (mode, concurrency) runs "
        "against every target before the next, so that noise on the shared machine hits them alike.\n\n"
        "Targets: `direct` is the simulated upstream itself (`spendgate simulate-upstream`); `bare` is "
        "`bench/bare_proxy.py`, a pass-through proxy on spendgate's stack (Starlette, uvicorn with uvloop "
        "and httptools, one pooled aiohttp session) with no metering; `spendgate` is `spendgate serve` on a "
        "fresh SQLite file with an org, project and key made through its admin API. Both proxies forward "
        "to the same simulator."
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
        "## Where the processes run",
        "",
        placement_text(placement),
        "",
    ]
    tables = "\n".join(markdown_table(t) for t in all_tables(suite, seconds))
    return "\n".join(parts) + "\n" + tables
