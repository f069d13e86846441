"""Simulated history written into a journal: the readings a collector would have journaled over
[start, end) and the bookings they were made under, so that an analysis (and a report) of the
journal has weeks of data to work on. Used by `wattelier simulate --backfill` and by
`wattelier demo --history`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from devices.site import Site


@dataclass
class History:
    """What a backfill wrote: points, the simulator's jobs, the bookings stored (and all of
    them, stored or already there)."""

    start_s: float
    end_s: float
    points: int
    jobs: int
    sessions_added: int
    sessions: list


def backfill_history(site: Site, start_s: float, end_s: float, journal_path: Path, *, seed: int = 1,
                     power_holes: Iterable = (),
                     progress: Callable[[float], None] | None = None) -> History:
    """Write simulated history over [start_s, end_s) into the journal at journal_path, one day
    at a time (memory stays flat), and the bookings of that history. Meter readings go straight
    into packed hours (storage.journal.Journal.write_history), controller changes as rows.
    progress(seconds done) is called after each day."""
    from analytics.records import Session
    from storage.journal import Journal
    from storage.points import Point
    from devices import vocabulary
    from devices.sim.backfill import backfill_chunks, backfill_workshop
    from storage.bookings_store import store_sessions

    workshop = backfill_workshop(site, start_s, end_s, seed=seed)
    journal = Journal(journal_path, max_points=site.journal.max_points, overflow=site.journal.overflow)
    written = 0
    try:
        for chunk_end, meters, rows in backfill_chunks(site, workshop, start_s, end_s, power_holes,
                                                       forget=True):
            for m in meters:
                written += journal.write_history(vocabulary.METER, m.tags, m.time_ns, m.columns)
            journal.put([Point(r.measurement, r.tags, r.fields, r.time_ns) for r in rows])
            written += journal.commit()
            if progress is not None:
                progress(chunk_end - start_s)
        sessions = workshop.sessions(end_s)
        added, _ = store_sessions(journal, site.site.name,
                                  [Session(s.machine, s.member, s.start_s, s.end_s, "simulator")
                                   for s in sessions])
    finally:
        journal.close()
    return History(start_s, end_s, written, len(workshop.jobs(end_s)), added, sessions)
