"""Sessions (a member holding a machine) as stored: the record, and reading the stored ones
(measurement `booking`) back from the journal, read-only.

How sessions are stored (storage/bookings_store.py writes them; the forwarder ships them to
InfluxDB like any other point): one point per session, time = start (to the millisecond), tags
{site, machine, member, source}, fields {end_s (Unix seconds), booking_id, stored_s (Unix
seconds of the import), canceled (bool)}.

Points are never changed in place; a changed or cancelled booking is written again:

- A point is identified by its series and time: (source, machine, member, start). Its latest
  version (largest `stored_s`; the later row on a tie) is what counts; a latest version with
  `canceled = true` means no session there. InfluxDB keeps exactly that: a later point with the
  same series and time overwrites the earlier one, so an InfluxDB reader only has to leave out
  the points whose `canceled` is true (`current_sessions` does both).
- A booking (its identity: source and booking_id, or source, machine, member and start when it
  has no booking id) may hold several windows (a Fab-manager reservation of slots apart).
  When it changes, the store writes its new windows and a cancelled version of each old
  window that is not among them.

Two bookings with the same source, machine, member and start share one point (InfluxDB would
merge them anyway): the later import wins.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from storage.journal_schema import connect_readonly
from devices.vocabulary import BOOKING, TAG_MACHINE, TAG_MEMBER

TAG_SOURCE = "source"


@dataclass(frozen=True)
class Session:
    """A member holding a machine from start_s to end_s (docs/design.md, "Sessions").

    source: where it came from ("csv", "ical", "fabmanager", "manual").
    booking_id: the source's identifier when it has one (re-imports replace, never duplicate).
    """

    machine: str
    member: str
    start_s: float
    end_s: float
    source: str = "manual"
    booking_id: str = ""


def ms(t_s: float) -> int:
    """Time to the millisecond (the resolution sessions are compared and stored with)."""
    return round(t_s * 1000.0)


def booking_identity(session: Session) -> tuple[str, ...]:
    """What makes two sessions the same booking (see the module docstring)."""
    if session.booking_id:
        return ("id", session.source, session.booking_id)
    return ("time", session.source, session.machine, session.member, str(ms(session.start_s)))


def point_key(session: Session) -> tuple[str, str, str, int]:
    """The stored point of a session: source, machine, member and start [ms]."""
    return (session.source, session.machine, session.member, ms(session.start_s))


def window_key(session: Session) -> tuple[str, str, int, int]:
    """machine, member, start and end [ms]: equal keys are the same window."""
    return (session.machine, session.member, ms(session.start_s), ms(session.end_s))


@dataclass(frozen=True)
class BookingVersion:
    """One stored version of a session point."""

    session: Session
    stored_s: float = 0.0
    canceled: bool = False


def latest_versions(versions: Iterable[BookingVersion]) -> dict[tuple[str, str, str, int], BookingVersion]:
    """The latest version of each point (largest stored_s; the later one in `versions` on a tie)."""
    latest: dict[tuple[str, str, str, int], BookingVersion] = {}
    for version in versions:
        key = point_key(version.session)
        current = latest.get(key)
        if current is None or version.stored_s >= current.stored_s:
            latest[key] = version
    return latest


def current_sessions(versions: Iterable[BookingVersion], start_s: float | None = None,
                     end_s: float | None = None) -> list[Session]:
    """The sessions of the latest versions that are not cancelled, overlapping
    [start_s, end_s) (None: unbounded), in start order. For any store of booking points
    (the journal, or InfluxDB rows with their `stored_s` and `canceled` fields)."""
    out = [v.session for v in latest_versions(versions).values() if not v.canceled
           and (start_s is None or v.session.end_s > start_s)
           and (end_s is None or v.session.start_s < end_s)]
    return sorted(out, key=lambda s: (s.start_s, s.machine, s.member))


def read_booking_versions(journal_path: str | Path) -> list[BookingVersion]:
    """Every booking point of the journal (read-only), in the order they were written.
    Empty when the journal holds none; FileNotFoundError when there is no journal."""
    path = Path(journal_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no journal here (store sessions with `wattelier sessions "
                                "add` or `import`, or give --journal)")
    db = connect_readonly(path)  # checked first: JournalError for a damaged or newer journal
    try:
        try:
            # Series first, then their points through the (series_id, time_ns) index: a plain
            # join would walk every point of the journal.
            tags_of = dict(db.execute("SELECT id, tags FROM series WHERE measurement = ?", (BOOKING,)))
            rows = []
            ids = sorted(tags_of)
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                rows += db.execute(f"SELECT p.id, p.time_ns, p.fields, p.series_id FROM points p WHERE "
                                   f"p.series_id IN ({','.join('?' for _ in chunk)})", chunk).fetchall()
            rows.sort()
            rows = [(time_ns, fields, tags_of[series_id]) for _, time_ns, fields, series_id in rows]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
    finally:
        db.close()
    out = []
    for time_ns, fields_json, tags_json in rows:
        fields = json.loads(fields_json)
        tags = json.loads(tags_json)
        end = fields.get("end_s")
        if not isinstance(end, (int, float)):
            continue  # not a session point
        session = Session(tags.get(TAG_MACHINE, ""), tags.get(TAG_MEMBER, ""), time_ns / 1e9, float(end),
                          tags.get(TAG_SOURCE, ""), str(fields.get("booking_id", "")))
        out.append(BookingVersion(session, float(fields.get("stored_s", 0.0)),
                                  bool(fields.get("canceled", False))))
    return out


def read_booked_sessions(journal_path: str | Path, start_s: float | None = None,
                         end_s: float | None = None) -> list[Session]:
    """The current sessions overlapping [start_s, end_s) (None: unbounded), in start order.

    Reads every booking point: a workshop has thousands a year, not millions."""
    return current_sessions(read_booking_versions(journal_path), start_s, end_s)
