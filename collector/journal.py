"""The journal: every reading goes first into a local SQLite database (DESIGN.md, decision 1).

WAL mode with synchronous=FULL: a commit is on disk when it returns, so a crash or power loss
loses at most the points of one commit interval. Points are buffered in memory and committed in
batches (`commit_interval_s`, at most 1 s). The journal is bounded (`max_points`); when full,
the overflow policy decides:

- ``drop_oldest``: delete the oldest points to make room (the newest readings matter most on an
  edge box that has lost its uplink); every deleted point is counted as dropped.
- ``reject_new``: keep what is stored and refuse new points, counting each.

Every point refused or deleted is counted by reason in the `counters` table and never lost
silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading

from collections.abc import Sequence
from pathlib import Path

from collector.errors import ConfigError
from collector.points import Point
from devices.journal_schema import DROP_PREFIX, SCHEMA_SQL, SCHEMA_VERSION

log = logging.getLogger("wattelier.collector.journal")
OVERFLOW_POLICIES = ("drop_oldest", "reject_new")


class Journal:
    """Store and count points on local disk. Implements the collector Sink protocol."""

    def __init__(self, path: str | Path, max_points: int = 50_000_000,
                 overflow: str = "drop_oldest", commit_interval_s: float = 0.5) -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ConfigError(f"journal overflow policy must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        if not 0 < commit_interval_s <= 1.0:
            raise ConfigError(f"journal commit interval must be in (0, 1] s, got {commit_interval_s}")
        self.path = Path(path)
        self.max_points = max_points
        self.overflow = overflow
        self.commit_interval_s = commit_interval_s
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
        self._db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))
        self._count = self._db.execute("SELECT count(*) FROM points").fetchone()[0]
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
            for p in points:
                if start_ns <= p.time_ns < end_ns:
                    continue
                sid = self._series_ids.get(p.series_key())
                if sid is not None:
                    deleted += db.execute("DELETE FROM points WHERE series_id = ? AND time_ns = ?",
                                          (sid, p.time_ns)).rowcount
            return deleted

        with self._lock:
            deleted_before = self._deleted
            written = self._commit_locked(list(points), {}, before=delete)
            return self._deleted - deleted_before, written

    def _commit_locked(self, points: list[Point], drops: dict[str, int], before=None) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = before(db) if before is not None else 0
            room = self.max_points - self._count
            if len(points) > room:
                if self.overflow == "reject_new":
                    refused = len(points) - max(room, 0)
                    points = points[: max(room, 0)]
                    drops["journal_full_rejected"] = drops.get("journal_full_rejected", 0) + refused
                else:
                    excess = len(points) - room
                    deleted = db.execute(
                        "DELETE FROM points WHERE id IN (SELECT id FROM points ORDER BY id LIMIT ?)",
                        (excess,)).rowcount
                    self._count -= deleted
                    drops["journal_full_oldest_deleted"] = drops.get("journal_full_oldest_deleted", 0) + deleted
                    if len(points) > self.max_points:  # a single batch bigger than the journal
                        cut = len(points) - self.max_points
                        points = points[cut:]
                        drops["journal_full_oldest_deleted"] += cut
            rows = []
            for p in points:
                key = p.series_key()
                sid = self._series_ids.get(key)
                if sid is None:
                    sid = db.execute(
                        "INSERT INTO series(key, measurement, tags) VALUES (?, ?, ?)",
                        (key, p.measurement, json.dumps(p.tags, sort_keys=True))).lastrowid
                    self._series_ids[key] = sid
                rows.append((sid, p.time_ns, json.dumps(p.fields, separators=(",", ":"))))
            db.executemany("INSERT INTO points(series_id, time_ns, fields) VALUES (?, ?, ?)", rows)
            counters = {"points_written": len(rows)}
            counters.update({DROP_PREFIX + r: n for r, n in drops.items()})
            db.executemany(
                "INSERT INTO counters(name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                [(k, v) for k, v in counters.items() if v])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._series_ids = {k: v for k, v in self._db.execute("SELECT key, id FROM series")}
            raise
        self._count += len(rows) - removed
        self._deleted += removed
        self.points_written += len(rows)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Commit every commit_interval_s until stop is set, then commit what is left."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.commit_interval_s)
            except asyncio.TimeoutError:
                pass
            try:
                await asyncio.to_thread(self.commit)
            except sqlite3.Error as exc:
                log.error("journal commit failed, will retry: %s", exc)
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

