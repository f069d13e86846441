"""The journal: every reading goes first into a local SQLite database.

See docs/design.md, "The journal is always there".

WAL mode with synchronous=FULL: a commit is on disk when it returns, so a crash or power loss
loses at most the points of one commit interval. Points are buffered in memory and committed in
batches (`commit_interval_s`, at most 1 s). The journal is bounded (`max_points`); when full,
the overflow policy decides:

- ``drop_oldest``: delete the oldest points to make room (the newest readings matter most on an
  edge box that has lost its uplink); every deleted point is counted as dropped. Bookings are
  never deleted (KEPT_MEASUREMENTS).
- ``reject_new``: keep what is stored and refuse new points, counting each.

Under either policy, points already accepted by every forwarding target (below the lowest
cursor; none while a configured target has accepted nothing) go first, oldest first, and are
not counted as dropped: they are in InfluxDB. Only when they cannot make room does a policy
refuse or delete an unsent point. The log says once when the journal becomes full (losing
points) and once when it has room again.

Every point refused or deleted is counted by reason in the `counters` table and never lost
silently.

Opening checks the file first, read-only (storage.journal_schema.check_journal): a damaged
file, one that is not a journal, or one of a newer schema raises JournalError and is never
written into. `collector=True` also takes the collector's lock (`JOURNAL.lock`, flock): a
second collector on the same journal is refused, naming the process that holds it; the lock
dies with its holder. Other writers (the analysis storing results, sessions) take no lock:
SQLite serialises their transactions (busy timeout).

A disk that refuses writes (full, read-only): commit() raises JournalFull or JournalUnwritable
and keeps the batch in memory for the next try; run() logs it once, and once when writing
works again. Beyond `max_buffered` points held, the oldest are dropped and counted
(`journal_write_failed`).

Packed hours (storage/journal_schema.py, storage/journal_hours.py): `compact()` packs the
complete hours of the readings into one compressed blob per series and hour, once every
forwarding target has their rows; `run()` does it every `compact_every_s`. `write_history`
writes a simulated history straight into packed hours. Opening a journal to write upgrades an
older one in place (storage/journal_upgrade.py).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson

from devices import vocabulary
from devices.errors import ConfigError
from devices.site import JournalSettings
from storage import journal_hours, journal_upgrade
from storage.points import Point
from storage.journal_schema import (BUSY_TIMEOUT_S, DROP_PREFIX, HOUR_NS, LAST_ID_KEY,
                                    PACKED_MEASUREMENTS, RECOVERY_HINT, JournalDamaged,
                                    JournalError, JournalFull, JournalLocked, JournalUnwritable,
                                    check_journal, journal_error, one_line,
                                    public_target)

if TYPE_CHECKING:
    import asyncio

# One encoder for every point's fields (json.dumps builds one per call: 40 % of its time).
# Its floats are written as repr writes them, which is also their line protocol form: the
# forwarder sends rows of floats as their JSON text (storage.points.json_fields_to_line), the
# same text as the packed hours' lines.
_encode_fields = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _encode_result_fields(fields: dict) -> str:
    """An analysis result's fields as JSON, by orjson: a week of 20 machines' results in 12 ms
    instead of 28 (storing them is what `wattelier analyze` waits for last). Results are read
    back as values (storage.stored_results), and a row of floats is sent as its JSON text
    (storage.points.json_fields_to_line), where orjson's spelling of a float ("1e-7" for
    repr's "1e-07") is one line protocol reads as the same number; unlike meter rows, no packed
    hour's lines have to match it. A field set orjson cannot write, or would write with a null
    (NaN, infinities, None), goes to the standard encoder, so it is handled as every other
    point's."""
    try:
        text = orjson.dumps(fields)
    except TypeError:
        return _encode_fields(fields)
    if b"null" in text:
        return _encode_fields(fields)
    return text.decode("utf-8")

log = logging.getLogger("wattelier.storage.journal")
OVERFLOW_POLICIES = ("drop_oldest", "reject_new")
KEPT_MEASUREMENTS = (vocabulary.BOOKING,)
"""Never deleted by ``drop_oldest`` (members' bookings: entered once, not measured again)."""
OWN_META_KEYS = ("schema_version", "points_stored")
"""Keys of the `meta` table the journal keeps itself (others: `Journal.set_meta_value`)."""
FORWARDED_DELETED = "journal_full_forwarded_deleted"
"""Counter (not a drop: those points are in InfluxDB) of sent points deleted to make room."""


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open (SQLite ends some itself: disk full, I/O)."""
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original error is the one to report


def _check_writable(path: Path) -> None:
    """Make the journal's folder; JournalUnwritable when it, or the journal, cannot be written
    (os.access: a read-only mount or an immutable file refuse root too)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalUnwritable(path, f"cannot make its folder {path.parent} ({exc.strerror}): "
                                      "give --journal a writable place") from exc
    if path.exists() and not os.access(path, os.W_OK):
        raise JournalUnwritable(path, "the file is read-only (permissions, attributes or a read-only "
                                      "file system): make it writable, or give --journal a writable place")
    if not os.access(path.parent, os.W_OK):
        raise JournalUnwritable(path, f"its folder {path.parent} is read-only, and SQLite writes its log "
                                      "beside the journal: make the folder writable, or give --journal a "
                                      "writable place")


class CollectorLock:
    """`JOURNAL.lock` beside a journal, locked (flock) by the collector writing it, with its
    PID inside. The kernel releases the lock when its holder ends, however it ends."""

    def __init__(self, journal_path: Path) -> None:
        self.path = journal_path.with_name(journal_path.name + ".lock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise JournalUnwritable(journal_path, f"cannot make its lock file {self.path} ({exc.strerror}): "
                                                  "make its folder writable, or give --journal a writable "
                                                  "place") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise JournalLocked(journal_path, f"another collector (PID {holder}) is writing this journal: "
                                              "stop it first, or give this one its own journal with "
                                              "--journal NEW.sqlite") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, a second collector says "PID unknown"
        self._fd: int | None = fd

    def release(self) -> None:
        """Unlock (the file stays: removing it could race with the next collector taking it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Journal:
    """Store and count points on local disk. Implements the collector Sink protocol."""

    def __init__(self, path: str | Path, max_points: int = JournalSettings().max_points,
                 overflow: str = "drop_oldest", commit_interval_s: float = 0.5,
                 compact_every_s: float = 600.0, *, collector: bool = False,
                 max_buffered: int = 1_000_000) -> None:
        """collector: this is the collector's journal: take the collector lock (JournalLocked
        when another collector holds it). max_buffered: points held in memory at most while
        the journal cannot be written."""
        if overflow not in OVERFLOW_POLICIES:
            raise ConfigError(f"journal overflow policy must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        if not 0 < commit_interval_s <= 1.0:
            raise ConfigError(f"journal commit interval must be in (0, 1] s, got {commit_interval_s}")
        self.path = Path(path)
        self.max_points = max_points
        self.overflow = overflow
        self.commit_interval_s = commit_interval_s
        self.compact_every_s = compact_every_s
        self._buffer: list[Point] = []
        self._pending_drops: dict[str, int] = {}
        self._in_flight = 0  # points of the commit under way (buffered counts them)
        self._lock = threading.Lock()  # one writer at a time on the connection
        self._buffer_lock = threading.Lock()
        self._series_ids: dict[str, int] = {}
        self.max_buffered = max_buffered
        self.points_written = 0
        self._deleted = 0  # points removed by replace_window (recomputed results)
        self._full = False  # the last commit had to lose unsent points (logged once)
        self._failing: type[JournalError] | None = None  # writes fail since _failing_since
        self._failing_since = 0.0
        _check_writable(self.path)
        self._lock_file = CollectorLock(self.path) if collector else None
        try:
            self._db = self._open()
        except BaseException:
            if self._lock_file is not None:
                self._lock_file.release()
            raise

    def _open(self) -> sqlite3.Connection:
        """Check the file (read-only), then open it to write and bring its schema up to date."""
        path = self.path
        if path.exists() and check_journal(path, new_ok=True) == 0:
            log.info("journal %s: an empty file, made into a new journal", path)
        db = None
        try:
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            if journal_upgrade.schema_version(db) is None:
                # pages freed by packing go back to the file system (compact): set before the
                # first page is written, so for a new journal only (an existing file changes
                # its mode with a VACUUM alone)
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # Nothing is written to a journal that is up to date: a full disk is then met by the
            # first commit, which retries, rather than refused at start.
            upgraded_from = journal_upgrade.upgrade(db)
            if upgraded_from is not None and upgraded_from != journal_upgrade.SCHEMA_VERSION:
                log.warning("journal %s: upgraded from schema version %d to %d", path, upgraded_from,
                            journal_upgrade.SCHEMA_VERSION)
            db.execute("BEGIN IMMEDIATE")  # one that cannot take the write lock fails here, at start
            db.execute("ROLLBACK")
            self._count = self._stored_count(db)
            self._series_ids = {key: sid for sid, key in db.execute("SELECT id, key FROM series")}
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            if db is not None:
                db.close()
            if isinstance(exc, UnicodeDecodeError):  # a series key that is not UTF-8
                raise JournalDamaged(path, f"damaged ({one_line(exc)}): {RECOVERY_HINT}") from exc
            raise journal_error(path, exc, "opening it to write") from exc
        return db

    # -- Sink protocol ---------------------------------------------------------------------
    def put(self, points: Sequence[Point]) -> None:
        with self._buffer_lock:
            self._buffer.extend(points)

    def drop(self, reason: str, count: int = 1) -> None:
        with self._buffer_lock:
            self._pending_drops[reason] = self._pending_drops.get(reason, 0) + count

    # -- committing ------------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        """Points in memory, not on disk yet: waiting for a commit or in the one under way
        (a batch being written is held back whole if the write fails)."""
        with self._buffer_lock:
            return len(self._buffer) + self._in_flight

    def commit(self) -> int:
        """Write buffered points and drop counts in one transaction; return points written."""
        with self._buffer_lock:  # sources put from the event loop while this runs in a thread
            points, self._buffer = self._buffer, []
            drops, self._pending_drops = self._pending_drops, {}
            self._in_flight += len(points)
        if not points and not drops:
            return 0
        held_back = False
        try:
            with self._lock:
                try:
                    return self._commit_locked(points, drops)
                except sqlite3.Error as exc:
                    self._hold_back(points, drops)
                    held_back = True
                    raise journal_error(self.path, exc, "writing points") from exc
        finally:
            if not held_back:
                with self._buffer_lock:
                    self._in_flight -= len(points)

    def _hold_back(self, points: list[Point], drops: dict[str, int]) -> None:
        """Nothing of a failed batch is on disk: keep it for the next commit, the newest
        max_buffered points at most (the oldest beyond are dropped and counted)."""
        with self._buffer_lock:
            self._in_flight -= len(points)
            self._buffer[:0] = points
            excess = len(self._buffer) - self.max_buffered
            if excess > 0:
                del self._buffer[:excess]
            for reason, n in drops.items():
                self._pending_drops[reason] = self._pending_drops.get(reason, 0) + n
            if excess > 0:
                self._pending_drops["journal_write_failed"] = (
                    self._pending_drops.get("journal_write_failed", 0) + excess)

    def replace_window(self, measurements: Sequence[str], site: str, start_ns: int, end_ns: int,
                       points: Sequence[Point]) -> tuple[int, int]:
        """In one transaction, delete the points of `measurements` tagged `site` with times in
        [start_ns, end_ns) and those with the series and time of a new point, and write `points`
        (results recomputed over that window: running an analysis twice leaves one copy).
        Returns (deleted, written)."""
        self.commit()  # what sources handed over goes first, on its own
        marks = ",".join("?" for _ in measurements)

        def delete(db: sqlite3.Connection) -> int:
            sids = [row[0] for row in db.execute(
                f"SELECT id FROM series WHERE measurement IN ({marks}) AND json_extract(tags, '$.site') = ?",
                (*measurements, site))]
            deleted = 0
            for i in range(0, len(sids), 500):
                chunk = sids[i:i + 500]
                deleted += db.execute(
                    f"DELETE FROM points WHERE series_id IN ({','.join('?' for _ in chunk)}) "
                    "AND time_ns >= ? AND time_ns < ?", (*chunk, start_ns, end_ns)).rowcount
            # Results dated outside the window (a session begun before it, a day's usage at
            # local midnight) replace the point of the same series and time, as in InfluxDB.
            for p in points:
                if start_ns <= p.time_ns < end_ns:
                    continue
                sid = self._series_ids.get(p.series_key())
                if sid is None:  # perhaps made by another writer since this journal was opened
                    found = db.execute("SELECT id FROM series WHERE key = ?", (p.series_key(),)).fetchone()
                    sid = found[0] if found else None
                if sid is not None:
                    deleted += db.execute("DELETE FROM points WHERE series_id = ? AND time_ns = ?",
                                          (sid, p.time_ns)).rowcount
            return deleted

        with self._lock:
            deleted_before = self._deleted
            try:
                written = self._commit_locked(list(points), {}, before=delete, encode=_encode_result_fields)
            except sqlite3.Error as exc:
                raise journal_error(self.path, exc, "replacing results") from exc
            return self._deleted - deleted_before, written

    def _commit_locked(self, points: list[Point], drops: dict[str, int], before=None,
                       encode: Callable[[dict], str] = _encode_fields) -> int:
        db = self._db
        drops = dict(drops)  # the caller puts back its own counts if this transaction fails
        db.execute("BEGIN IMMEDIATE")
        count_before = self._count
        try:
            self._count = self._stored_count()  # other processes (analysis results) write too
            removed = before(db) if before is not None else 0
            room = self.max_points - self._count
            losing = False
            if len(points) > room:
                # Points every target has accepted go first: they are in InfluxDB.
                freed = self._delete_oldest(db, len(points) - room, self._forwarded_everywhere(db))
                if freed:
                    drops[FORWARDED_DELETED] = freed  # counted apart from drops, below
                room += freed
            if len(points) > room:
                losing = True
                if self.overflow == "reject_new":
                    refused = len(points) - max(room, 0)
                    points = points[: max(room, 0)]
                    drops["journal_full_rejected"] = drops.get("journal_full_rejected", 0) + refused
                else:
                    # bookings are never deleted to make room: they are the only copy of what
                    # members booked by hand, and few (KEPT_MEASUREMENTS)
                    deleted = self._delete_oldest(db, len(points) - room)
                    room += deleted
                    drops["journal_full_oldest_deleted"] = drops.get("journal_full_oldest_deleted", 0) + deleted
                    if len(points) > room:  # one batch bigger than the journal, or bookings fill it
                        cut = len(points) - max(room, 0)
                        points = points[cut:]
                        drops["journal_full_oldest_deleted"] += cut
            rows = []
            for p in points:
                key = p.series_key()
                sid = self._series_ids.get(key)
                if sid is None:
                    # Another writer of this journal may have made the series since we opened it.
                    found = db.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()
                    sid = found[0] if found else db.execute(
                        "INSERT INTO series(key, measurement, tags) VALUES (?, ?, ?)",
                        (key, p.measurement, json.dumps(p.tags, sort_keys=True))).lastrowid
                    self._series_ids[key] = sid
                try:
                    encoded = encode(p.fields)
                except ValueError:
                    # NaN and infinities are not numbers JSON (nor line protocol) can carry: the
                    # value is left out and counted; the point keeps its other fields.
                    finite = {k: v for k, v in p.fields.items()
                              if not (isinstance(v, float) and not math.isfinite(v))}
                    drops["non_finite_value"] = drops.get("non_finite_value", 0) + len(p.fields) - len(finite)
                    encoded = json.dumps(finite, separators=(",", ":"))
                rows.append((sid, p.time_ns, encoded))
            if rows:  # ids above every id ever given (journal_hours.next_ids): never one a cursor passed
                first_id = journal_hours.next_ids(db, len(rows))
                db.executemany("INSERT INTO points(id, series_id, time_ns, fields) VALUES (?, ?, ?, ?)",
                               [(first_id + k, *row) for k, row in enumerate(rows)])
            counters = {"points_written": len(rows), FORWARDED_DELETED: drops.pop(FORWARDED_DELETED, 0)}
            counters.update({DROP_PREFIX + r: n for r, n in drops.items()})
            db.executemany(
                "INSERT INTO counters(name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                [(k, v) for k, v in counters.items() if v])
            new_count = self._count + len(rows) - removed
            db.execute("UPDATE meta SET value = ? WHERE key = 'points_stored'", (str(new_count),))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            self._count = count_before
            try:
                self._series_ids = {k: v for k, v in db.execute("SELECT key, id FROM series")}
            except sqlite3.Error:
                self._series_ids = {}  # looked up again, one by one, by the next commit
            raise
        self._count = new_count
        self._deleted += removed
        self.points_written += len(rows)
        if losing and not self._full:
            self._full = True
            log.warning("journal %s is full (max_points %d) and the points in it are not all sent: %s",
                        self.path, self.max_points,
                        "new readings are refused and counted (journal_full_rejected) until points sent "
                        "to every InfluxDB target can make room" if self.overflow == "reject_new" else
                        "the oldest unsent points are deleted to make room and counted "
                        "(journal_full_oldest_deleted)")
        elif self._full and not losing and rows:
            self._full = False
            log.warning("journal %s has room again: every new reading is kept", self.path)
        return len(rows)

    def _forwarded_everywhere(self, db: sqlite3.Connection) -> int:
        """The id up to which every forwarding target has accepted the points (0 when there is
        no target, or a configured target has accepted nothing yet)."""
        targets, lowest = db.execute("SELECT count(*), min(last_id) FROM forward_cursor").fetchone()
        if not targets:
            return 0
        unused = db.execute(
            "SELECT 1 FROM forward_target t WHERE NOT EXISTS (SELECT 1 FROM forward_cursor c "
            "WHERE substr(c.target, 1, length(t.url) + 1) = t.url || ' ') LIMIT 1").fetchone()
        return 0 if unused else lowest

    def _delete_oldest(self, db: sqlite3.Connection, limit: int, up_to_id: int | None = None) -> int:
        """Delete at least `limit` of the oldest points (by id, at most up_to_id), never those
        of KEPT_MEASUREMENTS, rows and packed hours in one id order (a packed hour goes whole);
        the meter hours that lose points get no new rollup. Returns how many went."""
        if limit <= 0 or up_to_id == 0:
            return 0
        bound = up_to_id if up_to_id is not None else 2**62
        kept = ",".join("?" for _ in KEPT_MEASUREMENTS)
        deleted = 0
        while deleted < limit:
            hour = db.execute("SELECT id FROM hours WHERE id <= ? ORDER BY id LIMIT 1", (bound,)).fetchone()
            row = db.execute(f"SELECT min(id) FROM points WHERE id <= ? AND series_id NOT IN "
                             f"(SELECT id FROM series WHERE measurement IN ({kept}))",
                             (bound, *KEPT_MEASUREMENTS)).fetchone()[0]
            if hour is None and row is None:
                break
            if row is None or (hour is not None and hour[0] < row):
                n = journal_hours.delete_oldest_hours(db, limit - deleted, min(bound, row or bound) + 1)
            else:
                below = min(bound + 1, hour[0] if hour is not None else bound + 1)
                n = self._delete_oldest_rows(db, limit - deleted, below)
            if not n:
                break
            deleted += n
        self._count -= deleted
        return deleted

    @staticmethod
    def _delete_oldest_rows(db: sqlite3.Connection, limit: int, below_id: int) -> int:
        """Delete up to `limit` of the oldest point rows with ids below below_id, never those
        of KEPT_MEASUREMENTS; meter hours that lose rows get no new rollup."""
        kept = ",".join("?" for _ in KEPT_MEASUREMENTS)
        oldest = (f"SELECT id FROM points WHERE id < ? AND series_id NOT IN (SELECT id FROM series WHERE "
                  f"measurement IN ({kept})) ORDER BY id LIMIT ?")
        args = (below_id, *KEPT_MEASUREMENTS, limit)
        journal_hours.freeze_rollups(db, db.execute(
            f"SELECT DISTINCT p.series_id, p.time_ns - p.time_ns % ? FROM points p JOIN series s ON "
            f"s.id = p.series_id WHERE s.measurement = ? AND p.id IN ({oldest})",
            (HOUR_NS, vocabulary.METER, *args)).fetchall())
        return db.execute(f"DELETE FROM points WHERE id IN ({oldest})", args).rowcount

    def _stored_count(self, db: sqlite3.Connection | None = None) -> int:
        """Points stored, kept in `meta` by every write (counting millions of rows at each
        start would take seconds); counted once for a journal that has no such entry yet."""
        db = db or self._db
        row = db.execute("SELECT value FROM meta WHERE key = 'points_stored'").fetchone()
        if row is not None and str(row[0]).isdigit():
            return int(row[0])
        count = db.execute("SELECT count(*) FROM points").fetchone()[0] + \
            db.execute("SELECT coalesce(sum(count), 0) FROM hours").fetchone()[0]
        db.execute("INSERT INTO meta(key, value) VALUES ('points_stored', ?) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(count),))
        return count

    def compact(self, horizon_ns: int | None = None, hours_per_transaction: int = 24,
                progress=None) -> int:
        """Pack every complete hour before horizon_ns (default: now less 2 min for late
        points) whose rows every forwarding target has (storage.journal_hours); return the
        points packed. Short transactions, so commits of new points go on meanwhile; the pages
        freed go back to the file system. progress(series_done, series_total)."""
        try:
            packed = self._compact(horizon_ns, hours_per_transaction, progress)
            if packed:
                with self._lock:
                    self._db.execute("PRAGMA incremental_vacuum")
            return packed
        except sqlite3.Error as exc:
            raise journal_error(self.path, exc, "packing hours") from exc
        except ValueError as exc:  # stored tags or values that the journal never writes
            raise JournalDamaged(self.path, f"damaged ({one_line(exc)}) while packing hours: "
                                            f"{RECOVERY_HINT}") from exc

    def _pack_limit(self, db: sqlite3.Connection) -> int:
        """The id up to which rows may be packed: every id without a forwarding target, else
        the lowest cursor (0 while a configured target has accepted nothing)."""
        if db.execute("SELECT 1 FROM forward_cursor UNION ALL SELECT 1 FROM forward_target LIMIT 1").fetchone():
            return self._forwarded_everywhere(db)
        row = db.execute("SELECT value FROM meta WHERE key = ?", (LAST_ID_KEY,)).fetchone()
        return max(int(row[0]) if row else 0, db.execute("SELECT coalesce(max(id), 0) FROM points").fetchone()[0])

    def _compact(self, horizon_ns: int | None, hours_per_transaction: int, progress) -> int:
        if horizon_ns is None:
            horizon_ns = time.time_ns() - 120 * 10**9
        marks = ",".join("?" for _ in PACKED_MEASUREMENTS)
        with self._lock:
            series = self._db.execute(f"SELECT id, measurement FROM series WHERE measurement IN ({marks}) "
                                      "ORDER BY id", PACKED_MEASUREMENTS).fetchall()
        packed = 0
        for done, (sid, measurement) in enumerate(series):
            finished = False
            while not finished:
                with self._lock:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        n, finished = journal_hours.pack_series(self._db, sid, measurement, horizon_ns,
                                                                self._pack_limit(self._db), hours_per_transaction)
                        self._db.execute("COMMIT")
                    except BaseException:
                        _rollback(self._db)
                        raise
                packed += n
            if progress is not None:
                progress(done + 1, len(series))
        with self._lock:
            self._count = self._stored_count()  # rollup points written by the packing
        return packed

    def write_history(self, measurement: str, tags: dict[str, str], time_ns: np.ndarray,
                      columns: dict[str, np.ndarray]) -> int:
        """Write points of one series whose every field is a finite float (a simulated history:
        time_ns sorted [ns], columns {field: values}) straight into packed hours, in one
        transaction, meter hours with their rollups; forwarded like new points. Room is made
        as for commit (max_points, overflow policy). Returns the points written."""
        self.commit()
        series_key = Point(measurement, tags, {}, 0).series_key()
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    self._count = self._stored_count()
                    n = len(time_ns)
                    room = self.max_points - self._count
                    drops: dict[str, int] = {}
                    if n > room:
                        freed = self._delete_oldest(db, n - room, self._forwarded_everywhere(db))
                        room += freed
                        drops[FORWARDED_DELETED] = freed
                    if n > room and self.overflow == "drop_oldest":
                        lost = self._delete_oldest(db, n - room)
                        room += lost
                        drops[DROP_PREFIX + "journal_full_oldest_deleted"] = lost
                    if n > room:  # reject_new, or a history bigger than the journal: none of it
                        drops[DROP_PREFIX + "journal_full_rejected"] = n
                        n = 0
                    # the count less what made room; the rollups written count themselves
                    db.execute("UPDATE meta SET value = ? WHERE key = 'points_stored'", (str(self._count),))
                    if n:
                        sid = self._series_id(db, series_key, measurement, tags)
                        journal_hours.write_hours(db, sid, measurement, np.asarray(time_ns), columns)
                    db.executemany("INSERT INTO counters(name, value) VALUES (?, ?) ON CONFLICT(name) "
                                   "DO UPDATE SET value = value + excluded.value",
                                   [(k, v) for k, v in {"points_written": n, **drops}.items() if v])
                    db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'points_stored'", (n,))
                    db.execute("COMMIT")
                except BaseException:
                    _rollback(db)
                    self._series_ids = {}
                    raise
            except sqlite3.Error as exc:
                raise journal_error(self.path, exc, "writing a history") from exc
            self._count = self._stored_count()
            self.points_written += n
            return n

    def _series_id(self, db: sqlite3.Connection, key: str, measurement: str, tags: dict[str, str]) -> int:
        """The id of a series, made if new (another writer may have made it since we opened)."""
        sid = self._series_ids.get(key)
        if sid is None:
            found = db.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()
            sid = found[0] if found else db.execute(
                "INSERT INTO series(key, measurement, tags) VALUES (?, ?, ?)",
                (key, measurement, json.dumps(tags, sort_keys=True))).lastrowid
            self._series_ids[key] = sid
        return sid

    async def run(self, stop: asyncio.Event) -> None:
        """Commit every commit_interval_s until stop is set, then commit what is left; pack
        complete hours every compact_every_s."""
        import asyncio  # here: the analysis reads journals without an event loop (20 ms of import)

        next_compact = time.monotonic() + self.compact_every_s
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.commit_interval_s)
            except asyncio.TimeoutError:
                pass
            await asyncio.to_thread(self._write_in_run, self.commit, bool(self._buffer or self._pending_drops))
            if time.monotonic() >= next_compact and self._failing is None:
                next_compact = time.monotonic() + self.compact_every_s
                await asyncio.to_thread(self._write_in_run, self.compact, True)
        if not await asyncio.to_thread(self._write_in_run, self.commit, True):
            with self._buffer_lock:
                lost, self._buffer = len(self._buffer), []
                uncounted, self._pending_drops = self._pending_drops, {}
            log.error("journal %s: %d readings held in memory could not be written before stopping "
                      "and are lost%s", self.path, lost,
                      f" (and the drop counts {uncounted})" if uncounted else "")

    def _write_in_run(self, write, tried: bool) -> bool:
        """Run commit or compact for run(): a failure is logged once (and once when writing
        works again, if `tried` says there was something to write), never raised. Returns
        whether the journal could be written."""
        try:
            write()
        except JournalError as exc:
            if self._failing is not type(exc):
                self._failing = type(exc)
                self._failing_since = time.monotonic()
                what = f"disk full at {self.path}" if isinstance(exc, JournalFull) else str(exc)
                log.error("%s: readings are kept in memory (at most %d, then the oldest are dropped and "
                          "counted as journal_write_failed) and written when it works again; retrying "
                          "every %.1f s", what, self.max_buffered, self.commit_interval_s)
            return False
        if tried and self._failing is not None:
            what = f"disk full at {self.path} is over" if self._failing is JournalFull \
                else f"journal {self.path} is written again"
            log.warning("%s after %.0f s: the readings held in memory are written", what,
                        time.monotonic() - self._failing_since)
            self._failing = None
        return True

    # -- inspection ------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT name, value FROM counters"))

    def drops(self) -> dict[str, int]:
        return {k[len(DROP_PREFIX):]: v for k, v in self.counters().items() if k.startswith(DROP_PREFIX)}

    def backlog(self, target: str) -> int:
        """Points not yet accepted by a forwarding target."""
        with self._lock:
            row = self._db.execute("SELECT last_id FROM forward_cursor WHERE target = ?",
                                   (public_target(target),)).fetchone()
            cursor = row[0] if row else 0
            return self._db.execute("SELECT count(*) FROM points WHERE id > ?", (cursor,)).fetchone()[0] + \
                self._db.execute("SELECT coalesce(sum(count), 0) FROM hours WHERE id > ?", (cursor,)).fetchone()[0]

    def oldest_unsent_ns(self, target: str) -> int | None:
        """Edge time [ns] of the next point a forwarding target is to be sent (the oldest the
        target has not accepted: the forwarder sends in journal order); None when none waits."""
        with self._lock:
            row = self._db.execute("SELECT last_id FROM forward_cursor WHERE target = ?",
                                   (public_target(target),)).fetchone()
            cursor = row[0] if row else 0
            first = [found for found in (
                self._db.execute("SELECT id, time_ns FROM points WHERE id > ? ORDER BY id LIMIT 1", (cursor,)).fetchone(),
                self._db.execute("SELECT id, start_ns FROM hours WHERE id > ? ORDER BY id LIMIT 1", (cursor,)).fetchone())
                if found is not None]
            return min(first)[1] if first else None

    def count(self) -> int:
        return self._count

    # -- small state of other writers (e.g. where an import stopped) -----------------------
    def meta_value(self, key: str) -> str | None:
        """The text kept under `key` in the journal's `meta` table (None: nothing)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta_value(self, key: str, value: str) -> None:
        """Keep `value` under `key` in `meta`, on disk when this returns (its own transaction).
        The journal's own keys cannot be set: ValueError."""
        if key in OWN_META_KEYS:
            raise ValueError(f"meta key {key!r} belongs to the journal")
        with self._lock:
            try:
                self._db.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))
            except sqlite3.Error as exc:
                raise journal_error(self.path, exc, f"writing {key}") from exc

    def close(self) -> None:
        """Commit what is held, close, and release the collector lock (also when the commit
        fails: JournalError)."""
        try:
            self.commit()
        finally:
            with self._lock:
                self._db.close()
            if self._lock_file is not None:
                self._lock_file.release()

