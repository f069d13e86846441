"""Store sessions in the journal as `booking` points; read them back.

A session is one point (analytics/bookings_reader.py describes how they are read): measurement
`booking` (devices.vocabulary.BOOKING), time = start (to the millisecond), tags {site, machine,
member, source}, fields {end_s, booking_id, stored_s, canceled}. The forwarder ships them to
InfluxDB like any other point.

Journal rows are never updated in place (the forwarder may have sent them already), so a
booking is compared with what is stored under its identity (source and booking_id, or source,
machine, member and start without a booking id):

- the same windows again: nothing is written (`already_there`);
- other windows (times, machine or member changed): the new windows are written with a later
  `stored_s`, and each old window that is not among them gets a cancelled version (in InfluxDB
  it overwrites the old point);
- cancelled at its source: each stored window gets a cancelled version.

Where the last Fab-manager read stopped (analytics.bookings.fabmanager.FabmanagerState) is
kept in the journal's `meta` table under FABMANAGER_STATE_KEY, beside the sessions it
describes (a journal copied elsewhere takes it along); it is written after the sessions.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from analytics.bookings_reader import (TAG_SOURCE, booking_identity, latest_versions, ms, point_key,
                                       read_booked_sessions, read_booking_versions, window_key)
from analytics.records import Session
from collector.journal import Journal
from collector.points import Point
from devices.journal_schema import connect_readonly, journal_error
from devices.vocabulary import BOOKING, TAG_MACHINE, TAG_MEMBER, TAG_SITE

if TYPE_CHECKING:  # the Fab-manager reader loads when a command reads Fab-manager
    from analytics.bookings.fabmanager import FabmanagerState

FABMANAGER_STATE_KEY = "fabmanager_state"


def booking_point(site_name: str, session: Session, stored_s: float, canceled: bool = False) -> Point:
    """The journal point of one session."""
    return Point(
        BOOKING,
        {TAG_SITE: site_name, TAG_MACHINE: session.machine, TAG_MEMBER: session.member,
         TAG_SOURCE: session.source},
        {"end_s": ms(session.end_s) / 1000.0, "booking_id": session.booking_id,
         "stored_s": round(stored_s, 6), "canceled": canceled},
        ms(session.start_s) * 1_000_000,
    )


def _check(session: Session) -> None:
    if not session.machine or not session.member or not session.source:
        raise ValueError(f"a stored session needs a machine, a member and a source: {session}")
    if not (math.isfinite(session.start_s) and math.isfinite(session.end_s)):
        raise ValueError(f"session times must be finite: {session}")
    if ms(session.end_s) <= ms(session.start_s):
        raise ValueError(f"a session ends after it starts: {session}")


def _groups(sessions: Iterable[Session]) -> dict[tuple[str, ...], dict[tuple, Session]]:
    """Sessions by identity, each identity's windows by point (one window per point: the last)."""
    groups: dict[tuple[str, ...], dict[tuple, Session]] = {}
    for s in sessions:
        groups.setdefault(booking_identity(s), {})[point_key(s)] = s
    return groups


def _stored(journal: Journal) -> tuple[dict[tuple[str, ...], list[Session]], float]:
    """The live stored sessions by identity (after committing what this process buffered),
    and the `stored_s` for a new import: now, but always after every stored one (a clock set
    back must not make an old version the latest)."""
    journal.commit()
    versions = read_booking_versions(journal.path)
    out: dict[tuple[str, ...], list[Session]] = {}
    for version in latest_versions(versions).values():
        if not version.canceled:
            out.setdefault(booking_identity(version.session), []).append(version.session)
    newest = max((v.stored_s for v in versions), default=0.0)
    return out, max(time.time(), newest + 0.001)


def store_sessions(journal: Journal, site_name: str, sessions: Iterable[Session]) -> tuple[int, int]:
    """Write the sessions not stored yet; return (added, already_there).

    A booking already stored with the same windows is not written again; a changed one
    replaces the stored one (module docstring). Commits the journal.
    """
    sessions = list(sessions)
    for s in sessions:
        _check(s)
    stored, stored_s = _stored(journal)
    points: list[Point] = []
    added = already_there = 0
    for identity, windows in _groups(sessions).items():
        previous = stored.get(identity, [])
        if {window_key(s) for s in previous} == {window_key(s) for s in windows.values()}:
            already_there += len(windows)
            continue
        points.extend(booking_point(site_name, s, stored_s) for s in windows.values())
        added += len(windows)
        points.extend(booking_point(site_name, s, stored_s, canceled=True)
                      for s in previous if point_key(s) not in windows)
    if points:
        journal.put(points)
        journal.commit()
    return added, already_there


def cancel_sessions(journal: Journal, site_name: str, canceled: Iterable[Session]) -> int:
    """Withdraw stored bookings that were cancelled at their source; return how many
    bookings were withdrawn (those not stored, or already withdrawn, are left alone)."""
    stored, stored_s = _stored(journal)
    points: list[Point] = []
    withdrawn = 0
    for identity in {booking_identity(s): None for s in canceled}:
        previous = stored.get(identity)
        if previous:
            withdrawn += 1
            points.extend(booking_point(site_name, s, stored_s, canceled=True) for s in previous)
    if points:
        journal.put(points)
        journal.commit()
    return withdrawn


def load_sessions(journal_path: str | Path, start_s: float | None = None,
                  end_s: float | None = None) -> list[Session]:
    """The current sessions overlapping [start_s, end_s) from the journal (read-only)."""
    return read_booked_sessions(journal_path, start_s, end_s)


def load_fabmanager_state(journal_path: str | Path) -> tuple[FabmanagerState | None, str]:
    """The state of the last Fab-manager read kept in the journal (read-only), and a warning
    when one is kept but cannot be read (then None: the next read reads everything).
    (None, "") when there is no journal or no state yet; JournalError for a damaged journal."""
    path = Path(journal_path)
    if not path.exists():
        return None, ""
    db = connect_readonly(path)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (FABMANAGER_STATE_KEY,)).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a journal from before the meta table: no state
            return None, ""
        raise journal_error(path, exc, "reading the Fab-manager state") from exc
    finally:
        db.close()
    if row is None:
        return None, ""
    try:
        from analytics.bookings.fabmanager import FabmanagerState

        return FabmanagerState.from_json(row[0]), ""
    except ValueError as exc:
        return None, (f"the Fab-manager state kept in {path} (meta key {FABMANAGER_STATE_KEY}) cannot be "
                      f"read ({exc}): reading every reservation; this read writes a new one")


def save_fabmanager_state(journal: Journal, state: FabmanagerState) -> None:
    """Keep `state` in the journal, to be called once the sessions it covers are stored."""
    journal.commit()  # the sessions first: a state must never be ahead of what is stored
    journal.set_meta_value(FABMANAGER_STATE_KEY, state.to_json())
