"""What makes the commands fast without touching the domain code, in one place: the analysis
of a site's machines spread over several processes, work handed to a forked process while
this one goes on (`start_forked`), Python's cycle collector paused during an analysis
(`cyclic_gc_paused`) and the heap frozen at exit (`freeze_heap_at_exit`).

Each machine is analysed on its own (analytics.pipeline.Analysis.machine: states, jobs,
sessions, days of one machine); only shared services, members and the totals need them all.
So this process and forked workers take the machines one at a time, the next one not taken
yet (a counter in shared memory), each reading from its own connection to the store: a process
that drew quick machines takes more, and all finish together. The parts come back through
pipes and are added in the site's order, so the result is the same, record for record, as in
one process.

Workers are forked (POSIX): they start with everything this process has imported, in a few
milliseconds. Where fork is not available the work runs in this process.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import itertools
import multiprocessing
import os
import pickle
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the analysis is imported when one runs, not by every command at start
    from analytics.pipeline import (
        Analysis,
        AnalysisOptions,
        AnalysisResult,
        MachineParts,
    )
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


def can_fork() -> bool:
    """Whether work can go to forked processes here (POSIX)."""
    return "fork" in multiprocessing.get_all_start_methods()


def default_processes(machines: int) -> int:
    """Processes worth starting: the processors this process may use, at most one per machine
    and at most MAX_PROCESSES."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, machines, MAX_PROCESSES))


def _run_and_send(fn: Callable[[], Any], send) -> None:
    """In the forked process: fn's result, or what it raised, back through the pipe. An
    exception that survives pickling is raised again as itself in the parent (so callers
    catch the same types); any other is reported by its traceback."""
    try:
        message: tuple[str, Any] = ("ok", fn())
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        text = traceback.format_exc()
        try:
            pickle.loads(pickle.dumps(exc))
            message = ("raised", (exc, text))
        except Exception:  # noqa: BLE001 - an exception that cannot travel: its traceback does
            message = ("error", text)
    send.send(message)
    send.close()


class Forked:
    """A call running in a forked process; `result()` waits for it."""

    def __init__(self, fn: Callable[[], Any], what: str) -> None:
        context = multiprocessing.get_context("fork")
        self.what = what
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_run_and_send, args=(fn, send), name="wattelier-worker",
                                        daemon=True)
        self._process.start()
        send.close()

    def result(self) -> Any:
        """fn's return value; raises what fn raised (WorkerError when that cannot travel, or
        when the process stopped without an answer)."""
        try:
            status, payload = self._receive.recv()
        except EOFError:
            self._process.join()
            raise WorkerError(f"the process {self.what} stopped without a result "
                              f"(exit code {self._process.exitcode})") from None
        finally:
            self.close()
        if status == "raised":
            exc, text = payload
            exc.add_note(f"in the process {self.what}:\n{text}")
            raise exc
        if status != "ok":
            raise WorkerError(f"the process {self.what} failed:\n{payload}")
        return payload

    def close(self) -> None:
        """Stop waiting: the pipe closed, the process reaped (killed after 5 s)."""
        self._receive.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def start_forked(fn: Callable[[], Any], what: str) -> Forked:
    """Start fn() in a forked process (where can_fork()); `what` names it in errors, e.g.
    'storing the results'."""
    return Forked(fn, what)


def _analyse_taken(analysis: Analysis, open_source: Callable[[], MachineSource], site: Site,
                   names: list[str], take: Callable[[], int]) -> dict[str, MachineParts]:
    """The parts of the machines this process takes: names[take()] until take() runs past
    the end."""
    source = open_source()
    parts: dict[str, MachineParts] = {}
    try:
        while (i := take()) < len(names):
            for md in source.iter_machine_data(site, analysis.start_s, analysis.end_s, [names[i]]):
                parts[md.name] = analysis.machine(md)
        return parts
    finally:
        source.close()


class _SharedCounter:
    """0, 1, 2, ... across this process and the processes forked after it was made."""

    def __init__(self) -> None:
        self._value = multiprocessing.get_context("fork").Value("q", 0)

    def __call__(self) -> int:
        with self._value.get_lock():
            taken = self._value.value
            self._value.value = taken + 1
        return taken


def analyze_in_processes(open_source: Callable[[], MachineSource], sessions: list[Session], site: Site,
                         start_s: float, end_s: float, options: AnalysisOptions | None = None,
                         processes: int | None = None) -> AnalysisResult:
    """analytics.pipeline.analyze over every machine and service of the site, read from the
    store that open_source() opens (once per process), in up to `processes` processes
    (None: default_processes)."""
    from analytics.inputs import site_machine_names
    from analytics.pipeline import Analysis, AnalysisOptions

    names = site_machine_names(site)
    analysis = Analysis([], sessions, site, start_s, end_s, options or AnalysisOptions())
    count = default_processes(len(names)) if processes is None else max(1, min(processes, len(names)))
    if count > 1 and not can_fork():
        count = 1
    take = _SharedCounter() if count > 1 else itertools.count().__next__
    workers: list[Forked] = []
    parts: dict[str, MachineParts] = {}
    try:
        for k in range(1, count):
            workers.append(start_forked(lambda: _analyse_taken(analysis, open_source, site, names, take),
                                        f"analysing machines (worker {k} of {count - 1})"))
        parts.update(_analyse_taken(analysis, open_source, site, names, take))
        for worker in workers:
            parts.update(worker.result())
    finally:
        for worker in workers:
            worker.close()
    for name in names:
        analysis.absorb(parts[name])
    return analysis.finish()


@contextlib.contextmanager
def cyclic_gc_paused():
    """Python's cycle collector paused (reference counting still frees everything else).

    An analysis makes tens of thousands of small records and almost no reference cycles (a
    week of 20 machines leaves some 1 500 cyclic objects), while each collection walks the
    whole heap: paused, the two-process run of that week takes 45 ms less of 0.55 s, most of
    it in passing the workers' records back. Forked workers inherit the pause."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def freeze_heap_at_exit() -> None:
    """At exit, before freeing what the command made, Python's cycle collector would walk all
    of it again; frozen, the objects are freed without that walk (an analysis of a week of 20
    machines: 60 ms less of 0.68 s). Everything is still released, and the standard streams
    flushed."""
    atexit.register(gc.freeze)
