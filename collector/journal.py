"""The journal: every reading goes first into a local SQLite database (DESIGN.md, decision 1).

WAL mode with synchronous=FULL: a commit is on disk when it returns, so a crash or power loss
loses at most the points of one commit interval. Points are buffered in memory and committed in
batches (`commit_interval_s`, at most 1 s). The journal is bounded (`max_points`); when full,
the overflow policy decides:

- ``drop_oldest``: delete the oldest points to make room (the newest readings matter most on an
  edge box that has lost its uplink); every deleted point is counted as dropped. Bookings are
  never deleted (KEPT_MEASUREMENTS).
- ``reject_new``: keep what is stored and refuse new points, counting each.

Every point refused or deleted is counted by reason in the `counters` table and never lost
silently.

Column blocks (devices/journal_schema.py): `compact()` packs complete hours of the fields
analytics reads into binary blocks; `run()` does it every `compact_every_s`. Every insert or
delete of points deletes the blocks of the hours it touches in the same transaction.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from collector.errors import ConfigError
from collector.points import Point
from collector import journal_blocks
from devices import vocabulary
from devices.journal_schema import (BLOCK_FIELDS, DROP_PREFIX, SCHEMA_SQL, SCHEMA_VERSION,
                                    block_start_ns)

if TYPE_CHECKING:
    import asyncio

# One encoder for every point's fields (json.dumps builds one per call: 40 % of its time).
_encode_fields = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

log = logging.getLogger("wattelier.collector.journal")
OVERFLOW_POLICIES = ("drop_oldest", "reject_new")
KEPT_MEASUREMENTS = (vocabulary.BOOKING,)
"""Never deleted by ``drop_oldest`` (members' bookings: entered once, not measured again)."""


class Journal:
    """Store and count points on local disk. Implements the collector Sink protocol."""

    def __init__(self, path: str | Path, max_points: int = 50_000_000,
                 overflow: str = "drop_oldest", commit_interval_s: float = 0.5,
                 compact_every_s: float = 600.0) -> None:
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
        self._lock = threading.Lock()  # one writer at a time on the connection
        self._buffer_lock = threading.Lock()
        self._series_ids: dict[str, int] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA_SQL)
        journal_blocks.upgrade(self._db)
        self._db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))
        self._count = self._stored_count()
        for sid, key in self._db.execute("SELECT id, key FROM series"):
            self._series_ids[key] = sid
        self.points_written = 0
        self._deleted = 0  # points removed by replace_window (recomputed results)

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
        return len(self._buffer)

    def commit(self) -> int:
        """Write buffered points and drop counts in one transaction; return points written."""
        with self._buffer_lock:  # sources put from the event loop while this runs in a thread
            points, self._buffer = self._buffer, []
            drops, self._pending_drops = self._pending_drops, {}
        if not points and not drops:
            return 0
        with self._lock:
            try:
                return self._commit_locked(points, drops)
            except sqlite3.Error:
                # Nothing of this batch is on disk: put it back so the next commit retries it.
                with self._buffer_lock:
                    self._buffer[:0] = points
                for reason, n in drops.items():
                    self.drop(reason, n)
                raise

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
            journal_blocks.invalidate_window(db, sids, start_ns, end_ns)
            for p in points:
                if start_ns <= p.time_ns < end_ns:
                    continue
                sid = self._series_ids.get(p.series_key())
                if sid is None:  # perhaps made by another writer since this journal was opened
                    found = db.execute("SELECT id FROM series WHERE key = ?", (p.series_key(),)).fetchone()
                    sid = found[0] if found else None
                if sid is not None:
                    gone = db.execute("DELETE FROM points WHERE series_id = ? AND time_ns = ?",
                                      (sid, p.time_ns)).rowcount
                    if gone:
                        journal_blocks.invalidate_hours(db, [(sid, block_start_ns(p.time_ns))],
                                                        lost_points=True)
                    deleted += gone
            return deleted

        with self._lock:
            deleted_before = self._deleted
            written = self._commit_locked(list(points), {}, before=delete)
            return self._deleted - deleted_before, written

    def _commit_locked(self, points: list[Point], drops: dict[str, int], before=None) -> int:
        db = self._db
        drops = dict(drops)  # the caller puts back its own counts if this transaction fails
        db.execute("BEGIN IMMEDIATE")
        try:
            self._count = self._stored_count()  # other processes (analysis results) write too
            removed = before(db) if before is not None else 0
            room = self.max_points - self._count
            if len(points) > room:
                if self.overflow == "reject_new":
                    refused = len(points) - max(room, 0)
                    points = points[: max(room, 0)]
                    drops["journal_full_rejected"] = drops.get("journal_full_rejected", 0) + refused
                else:
                    excess = len(points) - room
                    # bookings are never deleted to make room: they are the only copy of what
                    # members booked by hand, and few (KEPT_MEASUREMENTS)
                    oldest = (f"SELECT id FROM points WHERE series_id NOT IN (SELECT id FROM series "
                              f"WHERE measurement IN ({','.join('?' for _ in KEPT_MEASUREMENTS)})) "
                              "ORDER BY id LIMIT ?")
                    last_id = db.execute(f"SELECT max(id) FROM ({oldest})", (*KEPT_MEASUREMENTS, excess)).fetchone()[0]
                    if last_id is not None:
                        journal_blocks.invalidate_up_to_id(db, last_id)
                    deleted = db.execute(f"DELETE FROM points WHERE id IN ({oldest})",
                                         (*KEPT_MEASUREMENTS, excess)).rowcount
                    self._count -= deleted
                    room += deleted
                    drops["journal_full_oldest_deleted"] = drops.get("journal_full_oldest_deleted", 0) + deleted
                    if len(points) > room:  # one batch bigger than the journal, or bookings fill it
                        cut = len(points) - max(room, 0)
                        points = points[cut:]
                        drops["journal_full_oldest_deleted"] += cut
            rows = []
            blocked: list[tuple[int, int]] = []
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
                    encoded = _encode_fields(p.fields)
                except ValueError:
                    # NaN and infinities are not numbers JSON (nor line protocol) can carry: the
                    # value is left out and counted; the point keeps its other fields.
                    finite = {k: v for k, v in p.fields.items()
                              if not (isinstance(v, float) and not math.isfinite(v))}
                    drops["non_finite_value"] = drops.get("non_finite_value", 0) + len(p.fields) - len(finite)
                    encoded = json.dumps(finite, separators=(",", ":"))
                rows.append((sid, p.time_ns, encoded))
                if p.measurement in BLOCK_FIELDS:
                    blocked.append((sid, p.time_ns))
            journal_blocks.invalidate_for_inserts(db, blocked)
            db.executemany("INSERT INTO points(series_id, time_ns, fields) VALUES (?, ?, ?)", rows)
            counters = {"points_written": len(rows)}
            counters.update({DROP_PREFIX + r: n for r, n in drops.items()})
            db.executemany(
                "INSERT INTO counters(name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                [(k, v) for k, v in counters.items() if v])
            new_count = self._count + len(rows) - removed
            db.execute("UPDATE meta SET value = ? WHERE key = 'points_stored'", (str(new_count),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._series_ids = {k: v for k, v in self._db.execute("SELECT key, id FROM series")}
            raise
        self._count = new_count
        self._deleted += removed
        self.points_written += len(rows)
        return len(rows)

    def _stored_count(self) -> int:
        """Points stored, kept in `meta` by every write (counting millions of rows at each
        start would take seconds); counted once for a journal that has no such entry yet."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'points_stored'").fetchone()
        if row is not None:
            return int(row[0])
        count = self._db.execute("SELECT count(*) FROM points").fetchone()[0]
        self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('points_stored', ?)", (str(count),))
        return count

    def compact(self, horizon_ns: int | None = None, hours_per_transaction: int = 24,
                progress=None) -> int:
        """Pack every complete hour before horizon_ns (default: now less 2 min for late
        points) that has no column block yet; return the points packed. Short transactions,
        so commits of new points go on meanwhile. progress(series_done, series_total)."""
        if horizon_ns is None:
            horizon_ns = time.time_ns() - 120 * 10**9
        with self._lock:
            series = journal_blocks.blocked_series(self._db)
        packed = 0
        for done, (sid, fields) in enumerate(sorted(series.items())):
            finished = False
            while not finished:
                with self._lock:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        n, finished = journal_blocks.compact_series(self._db, sid, fields, horizon_ns,
                                                                    hours_per_transaction)
                        self._db.execute("COMMIT")
                    except BaseException:
                        self._db.execute("ROLLBACK")
                        raise
                packed += n
            if progress is not None:
                progress(done + 1, len(series))
        with self._lock:
            self._count = self._stored_count()  # rollup points written by the packing
        return packed

    async def run(self, stop: asyncio.Event) -> None:
        """Commit every commit_interval_s until stop is set, then commit what is left; pack
        column blocks every compact_every_s."""
        import asyncio  # here: the analysis reads journals without an event loop (20 ms of import)

        next_compact = time.monotonic() + self.compact_every_s
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.commit_interval_s)
            except asyncio.TimeoutError:
                pass
            try:
                await asyncio.to_thread(self.commit)
            except sqlite3.Error as exc:
                log.error("journal commit failed, will retry: %s", exc)
            if time.monotonic() >= next_compact:
                next_compact = time.monotonic() + self.compact_every_s
                try:
                    await asyncio.to_thread(self.compact)
                except sqlite3.Error as exc:
                    log.error("journal compaction failed, will retry: %s", exc)
        await asyncio.to_thread(self.commit)

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
                                   (target,)).fetchone()
            return self._db.execute("SELECT count(*) FROM points WHERE id > ?",
                                    (row[0] if row else 0,)).fetchone()[0]

    def count(self) -> int:
        return self._count

    def close(self) -> None:
        self.commit()
        with self._lock:
            self._db.close()

