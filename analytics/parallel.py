"""The analysis of a site's machines spread over several processes.

Each machine is analysed on its own (analytics.pipeline.Analysis.machine: states, jobs,
sessions, days of one machine); only shared services, members and the totals need them all.
So the machines are dealt round-robin into groups, one group per process: this process
analyses the first group while forked workers analyse the others, each reading its own
machines from its own connection to the store; the parts come back through pipes and are
added in the site's order, so the result is the same, record for record, as in one process.

Workers are forked (POSIX): they start with everything this process has imported, in a few
milliseconds. Where fork is not available the analysis runs in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterator
from typing import Protocol

from analytics.inputs import site_machine_names
from analytics.pipeline import Analysis, AnalysisOptions, AnalysisResult, MachineParts
from analytics.records import MachineData, Session
from devices.site import Site

MAX_PROCESSES = 8


class MachineSource(Protocol):
    """A store the analysis reads from (analytics.inputs.JournalInputs, InfluxQLInputs)."""

    def iter_machine_data(self, site: Site, start_s: float, end_s: float,
                          names: list[str] | None = None) -> Iterator[MachineData]: ...

    def close(self) -> None: ...


class WorkerError(RuntimeError):
    """A worker process failed; the message carries its traceback."""


def default_processes(machines: int) -> int:
    """Processes worth starting: the processors this process may use, at most one per machine
    and at most MAX_PROCESSES."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, machines, MAX_PROCESSES))


def _analyse_group(analysis: Analysis, open_source: Callable[[], MachineSource], site: Site,
                   names: list[str]) -> dict[str, MachineParts]:
    source = open_source()
    try:
        return {md.name: analysis.machine(md)
                for md in source.iter_machine_data(site, analysis.start_s, analysis.end_s, names)}
    finally:
        source.close()


def _worker(analysis: Analysis, open_source: Callable[[], MachineSource], site: Site,
            names: list[str], send) -> None:
    try:
        message = ("ok", _analyse_group(analysis, open_source, site, names))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        message = ("error", traceback.format_exc())
    send.send(message)
    send.close()


def analyze_in_processes(open_source: Callable[[], MachineSource], sessions: list[Session], site: Site,
                         start_s: float, end_s: float, options: AnalysisOptions | None = None,
                         processes: int | None = None) -> AnalysisResult:
    """analytics.pipeline.analyze over every machine and service of the site, read from the
    store that open_source() opens (once per process), in up to `processes` processes
    (None: default_processes)."""
    names = site_machine_names(site)
    analysis = Analysis([], sessions, site, start_s, end_s, options or AnalysisOptions())
    count = default_processes(len(names)) if processes is None else max(1, min(processes, len(names)))
    if count > 1 and "fork" not in multiprocessing.get_all_start_methods():
        count = 1
    groups = [names[i::count] for i in range(count)]
    context = multiprocessing.get_context("fork") if count > 1 else None
    workers = []
    for group in groups[1:]:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_worker, args=(analysis, open_source, site, group, send),
                                  name="wattelier-analyze", daemon=True)
        process.start()
        send.close()
        workers.append((process, receive, group))
    parts: dict[str, MachineParts] = {}
    try:
        parts.update(_analyse_group(analysis, open_source, site, groups[0]))
        for process, receive, group in workers:
            try:
                status, payload = receive.recv()
            except EOFError:
                process.join()
                raise WorkerError(f"the process analysing {', '.join(group)} stopped without a result "
                                  f"(exit code {process.exitcode})") from None
            if status != "ok":
                raise WorkerError(f"the process analysing {', '.join(group)} failed:\n{payload}")
            parts.update(payload)
    finally:
        for process, receive, _ in workers:
            receive.close()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    for name in names:
        analysis.absorb(parts[name])
    return analysis.finish()
