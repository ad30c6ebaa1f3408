"""Benchmark spendgate against the simulated upstream and a bare proxy, and write docs/benchmarks.md.

python bench/run.py            # full run (~3 minutes), writes docs/benchmarks.md
python bench/run.py --quick    # 1 s per run, a smoke check
python bench/run.py --no-write # print the tables only
python bench/run.py --no-burst # skip the spend-limit burst after the wrk rows
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from sgbench.burst import BurstReport, run_bursts
from sgbench.machine import describe
from sgbench.page import render_markdown
from sgbench.procs import Children
from sgbench.suite import Placement, SuiteResult, plan, run_suite
from sgbench.tables import TableData, all_tables, burst_table
from sgbench.targets import (
    SPENDGATE_VARIANTS,
    Target,
    check_chat,
    is_spendgate,
    start_bare,
    start_direct,
    start_sharing,
    start_spendgate,
)
from sgbench.wrk import INSTALL_HINT, find_wrk

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
ALL_TARGETS = ("direct", "bare", *SPENDGATE_VARIANTS)
PINNED = Placement(proxy="0", upstream="1")
BURSTS = 3
DEFAULT_SECONDS = 5

console = Console(width=None if sys.stdout.isatty() else 150)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 s per run (after a 1 s warm-up): a smoke check"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument(
        "--seconds", type=int, default=None, help=f"measured seconds per run (default {DEFAULT_SECONDS})"
    )
    parser.add_argument("--warmup", type=int, default=None, help="warm-up seconds per run (default 1)")
    parser.add_argument(
        "--pin", action="store_true", help="taskset: proxies on CPU 0, simulator on CPU 1, wrk free"
    )
    parser.add_argument(
        "--targets", default=",".join(ALL_TARGETS), help="comma-separated subset of: " + ",".join(ALL_TARGETS)
    )
    parser.add_argument(
        "--no-burst", action="store_true",
        help=f"skip the spend-limit burst ({BURSTS} × 500 concurrent calls on a limited key) after wrk",
    )  # fmt: skip
    return parser.parse_args()


def _terminate(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def start_targets(children: Children, names: list[str], tmp: Path, placement: Placement) -> list[Target]:
    direct = start_direct(children, placement.upstream)
    targets = [direct] if "direct" in names else []
    if "bare" in names:
        targets.append(start_bare(children, direct, placement.proxy))
    # in ALL_TARGETS order, whatever the order asked for: every row runs them in this order
    processes: dict[str, Target] = {}  # spendgate processes started, by variant
    for name in (n for n in ALL_TARGETS if is_spendgate(n) and n in names):
        host = SPENDGATE_VARIANTS[name].same_process_as
        if host is None:
            processes[name] = start_spendgate(children, name, direct, tmp, placement.proxy)
            targets.append(processes[name])
            continue
        if host not in processes:  # its host was not asked for: start the process all the same
            processes[host] = start_spendgate(children, host, direct, tmp, placement.proxy)
        targets.append(start_sharing(name, processes[host]))
    return targets


def print_table(table: TableData) -> None:
    rich_table = Table(title=table.title, title_justify="left")
    for header in table.headers:
        rich_table.add_column(header)
    for row in table.rows:
        rich_table.add_row(*(cell.replace("**", "") for cell in row))
    console.print(rich_table)


def measure(wrk: str, names: list[str], seconds: int, warmup: int, placement: Placement) -> SuiteResult:
    with tempfile.TemporaryDirectory(prefix="spendgate-bench-") as tmp:
        children = Children(Path(tmp))
        try:
            with console.status("starting " + ", ".join(names) + " …"):
                targets = start_targets(children, names, Path(tmp), placement)
                checked = {t.name: check_chat(t) for t in targets}
            width = max(len(t.name) for t in targets)
            for t in targets:
                host = SPENDGATE_VARIANTS[t.name].same_process_as if t.name in SPENDGATE_VARIANTS else None
                shared = f" (the {host} process)" if host else ""
                console.log(f"{t.name:{width}} pid {t.child.pid:<7} {t.base_url}{shared}")
            columns = (
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(),
            )  # fmt: skip
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("benchmark", total=len(plan(seconds)) * len(targets) * 2)
                started = [False]

                def step(description: str) -> None:
                    if started[0]:
                        progress.advance(task)
                    started[0] = True
                    progress.update(task, description=description)

                suite = run_suite(wrk, targets, seconds, warmup, placement, checked, step)
                progress.update(task, completed=len(plan(seconds)) * len(targets) * 2, description="done")
            return suite
        finally:
            children.stop_all()


def burst(placement: Placement) -> BurstReport:
    with (
        tempfile.TemporaryDirectory(prefix="spendgate-burst-") as tmp,
        console.status(f"spend-limit burst: {BURSTS} × 500 concurrent calls …"),
    ):
        report = run_bursts(Path(tmp), BURSTS, placement.proxy)
    for i, run in enumerate(report.runs, 1):
        console.log(
            f"burst {i}: {run.answered} answered, {run.refused} refused, utilisation {run.utilisation:.1%}, "
            f"overspend {run.overspend_nanos} nanos, {run.wall_s:.2f} s"
        )
    return report


def main() -> int:
    args = parse_args()
    wrk = find_wrk()
    if wrk is None:
        console.print(f"[red]{INSTALL_HINT}[/red]")
        return 2
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = set(names) - set(ALL_TARGETS)
    if unknown or not names:
        console.print(f"[red]unknown targets {sorted(unknown)}; choose from {', '.join(ALL_TARGETS)}[/red]")
        return 2
    seconds = args.seconds if args.seconds is not None else (1 if args.quick else DEFAULT_SECONDS)
    warmup = args.warmup if args.warmup is not None else 1
    placement = PINNED if args.pin else Placement()
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell may start us with it ignored
        signal.signal(signum, _terminate)
    machine = describe(wrk)
    report: BurstReport | None = None
    try:
        suite = measure(wrk, names, seconds, warmup, placement)
        if not args.no_burst:
            report = burst(placement)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; every child process was stopped[/yellow]")
        return 130
    except RuntimeError as exc:
        console.print(f"[red]benchmark failed:[/red] {exc}")
        console.print("(`--targets direct,bare` measures without spendgate)")
        return 1
    for table in all_tables(suite, seconds):
        print_table(table)
    if report is not None:
        print_table(burst_table(report))
    command = shlex.join(["python", "bench/run.py", *sys.argv[1:]])
    if not args.no_write:
        DOCS.parent.mkdir(parents=True, exist_ok=True)
        DOCS.write_text(render_markdown(machine, command, seconds, warmup, placement, suite, report))
        console.print(f"wrote {DOCS}")
    dirty = [m for m in suite.measurements if not m.clean]
    if dirty:
        console.print(f"[red]{len(dirty)} run(s) had non-2xx responses or socket errors: see the table[/red]")
    failed_bursts = [i for i, run in enumerate(report.runs if report else [], 1) if not run.ok]
    if failed_bursts:
        console.print(f"[red]burst(s) {failed_bursts} failed a check: see the burst table[/red]")
    return 1 if dirty or failed_bursts else 0


if __name__ == "__main__":
    sys.exit(main())
