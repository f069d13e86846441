"""Store analysis results, replacing the window's earlier ones: in the journal in one
transaction, or in InfluxDB by a DELETE of the window then a write. Re-running an analysis
over the same window leaves the same points, never duplicates. The points themselves are made
by analytics.result_points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devices.site import JournalSettings
from storage.influx_config import InfluxSettings
from storage.journal import Journal
from storage.points import Point, to_line

WRITERS = 2
"""Connections the results are written over at once (store_in_influxdb)."""


def store_in_influxdb(influx: InfluxSettings, measurements: Sequence[str], site_name: str, start_ns: int,
                      end_ns: int, make_points: Callable[[], list[Point]]) -> tuple[int, int]:
    """(written, replaced): the points of `measurements` tagged site_name in [start_ns,
    end_ns) deleted (not counted), then make_points()'s points written. InfluxDB takes about
    as long to delete as the analysis takes to make the points and their lines (a week of 20
    machines: some 25 and 45 ms), so the DELETE request waits in a thread meanwhile; nothing is
    written before it has succeeded. The points are then written over WRITERS connections at
    once, the points of one machine (so of one series) over one of them in their order: InfluxDB
    parses requests in parallel (that week: 58 ms over one connection, 44 ms over two).
    InfluxError (storage.errors) when any request fails."""
    from storage.influxdb import InfluxTarget  # urllib3: only for a store that is InfluxDB

    targets = [InfluxTarget(influx) for _ in range(WRITERS)]
    try:
        with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="wattelier-store") as pool:
            deleted = pool.submit(targets[0].delete_window, list(measurements), site_name, start_ns, end_ns)
            try:
                points = make_points()
                shares: list[list[str]] = [[] for _ in targets]
                for p in points:  # every point of a series in one share, in order
                    shares[hash(p.tags.get("machine", "")) % WRITERS].append(to_line(p))
            finally:
                deleted.result()  # raises what the DELETE raised
            written = [pool.submit(_write_in_order, target, lines) for target, lines in zip(targets, shares)]
            for done in written:
                done.result()  # raises what a write raised
    finally:
        for target in targets:
            target.close()
    return len(points), 0


def _write_in_order(target, lines: list[str]) -> None:
    for i in range(0, len(lines), 5000):
        target.write_lines(lines[i:i + 5000])


def store_in_journal(journal_path: Path, settings: JournalSettings, measurements: Sequence[str],
                     site_name: str, start_ns: int, end_ns: int, points: list[Point]) -> tuple[int, int]:
    """(written, replaced), in one transaction: the points of `measurements` tagged site_name
    in [start_ns, end_ns) replaced by `points` (storage.journal.Journal.replace_window)."""
    journal = Journal(journal_path, max_points=settings.max_points, overflow=settings.overflow)
    try:
        replaced, written = journal.replace_window(measurements, site_name, start_ns, end_ns, points)
    finally:
        journal.close()
    return written, replaced
