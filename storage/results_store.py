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


def store_in_influxdb(influx: InfluxSettings, measurements: Sequence[str], site_name: str, start_ns: int,
                      end_ns: int, make_points: Callable[[], list[Point]]) -> tuple[int, int]:
    """(written, replaced): the points of `measurements` tagged site_name in [start_ns,
    end_ns) deleted (not counted), then make_points()'s points written. InfluxDB takes about
    as long to delete as the analysis takes to make the points and their lines (a week of 20
    machines: some 45 ms each), so the DELETE request waits in a thread meanwhile; nothing is
    written before it has succeeded. InfluxError (storage.errors) when either fails."""
    from storage.influxdb import InfluxTarget  # urllib3: only for a store that is InfluxDB

    target = InfluxTarget(influx)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wattelier-delete") as pool:
            deleted = pool.submit(target.delete_window, list(measurements), site_name, start_ns, end_ns)
            try:
                points = make_points()
                lines = [to_line(p) for p in points]
            finally:
                deleted.result()  # raises what the DELETE raised
        for i in range(0, len(lines), 5000):
            target.write_lines(lines[i:i + 5000])
    finally:
        target.close()
    return len(points), 0


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
