"""Store sessions in the journal as `booking` points; read them back.

A session is one point (storage/bookings.py describes how they are read): measurement
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

Small states of importers (where the last Fab-manager read stopped) are kept as text in the
journal's `meta` table (`read_meta_text`, `keep_meta_text`), beside the sessions they describe
(a journal copied elsewhere takes them along); a state is written after its sessions.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from storage.bookings import (TAG_SOURCE, Session, booking_identity, latest_versions, ms, point_key,
                              read_booked_sessions, read_booking_versions, window_key)
from storage.journal import Journal
from storage.points import Point
from storage.journal_schema import connect_readonly, journal_error
from devices.vocabulary import BOOKING, TAG_MACHINE, TAG_MEMBER, TAG_SITE

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


def read_meta_text(journal_path: str | Path, key: str) -> str | None:
    """The text kept under `key` in the journal's `meta` table, read-only (None: no journal,
    no such key, or a journal from before the meta table); JournalError for a damaged one."""
    path = Path(journal_path)
    if not path.exists():
        return None
    db = connect_readonly(path)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a journal from before the meta table
            return None
        raise journal_error(path, exc, f"reading {key}") from exc
    finally:
        db.close()
    return None if row is None else row[0]


def keep_meta_text(journal: Journal, key: str, text: str) -> None:
    """Keep `text` under `key` in the journal's `meta` table, after committing what the
    journal holds (sessions first: a state must never be ahead of what is stored)."""
    journal.commit()
    journal.set_meta_value(key, text)
