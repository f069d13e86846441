"""The journal as the forwarder sees it: batches of unsent points, the cursor, the quarantine.

The forwarder has its own SQLite connection on the journal file (WAL mode lets it read while
the collector commits). Points are forwarded in id order (the order they were journaled, so
oldest first); per target, `forward_cursor.last_id` is the last point the server accepted or
that was quarantined, so everything above it is the backlog. Advancing the cursor and counting
forwarded and quarantined points happen in one transaction.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from collector.points import json_fields_to_line
from devices.journal_schema import (DROP_PREFIX, FORWARDED_PREFIX, QUARANTINED_PREFIX,
                                    SCHEMA_SQL)

BUSY_TIMEOUT_MS = 10_000


@dataclass
class Batch:
    """Consecutive unsent points as line protocol, in id order."""

    point_ids: list[int]
    lines: list[str]
    after_id: int  # the cursor the batch was read after
    unformattable: list[tuple[int, str, str]] = field(default_factory=list)  # (id, raw, why)
    last_read_id: int = 0
    body: bytes | None = None  # the encoded request body, prepared ahead of sending

    @property
    def last_id(self) -> int:
        return max(self.last_read_id, self.after_id)

    def __len__(self) -> int:
        return len(self.lines)


@dataclass
class QuarantinedLine:
    point_id: int
    line: str
    error: str
    quarantined_ns: int


@dataclass
class JournalStatus:
    """What `wattelier journal` shows."""

    points: int
    oldest_point_ns: int | None
    newest_point_ns: int | None
    counters: dict[str, int]
    backlog: dict[str, int] = field(default_factory=dict)
    oldest_unsent_ns: dict[str, int | None] = field(default_factory=dict)
    quarantine: dict[str, int] = field(default_factory=dict)

    @property
    def drops(self) -> dict[str, int]:
        return {k[len(DROP_PREFIX):]: v for k, v in self.counters.items()
                if k.startswith(DROP_PREFIX) and v}


class ForwardStore:
    """Read unsent points and record what a target accepted."""

    def __init__(self, path: str | Path, target: str) -> None:
        self.path = Path(path)
        self.target = target
        # Two connections: batches are read in one thread while the cursor of the previous
        # batch is recorded in another.
        self._writer = self._connect()
        self._writer.executescript(SCHEMA_SQL)
        self._db = self._connect()
        self._prefixes: dict[int, str] = {}

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                             timeout=BUSY_TIMEOUT_MS / 1000)
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def close(self) -> None:
        self._db.close()
        self._writer.close()

    # -- reading ---------------------------------------------------------------------------
    def cursor(self) -> int:
        row = self._writer.execute("SELECT last_id FROM forward_cursor WHERE target = ?",
                               (self.target,)).fetchone()
        return row[0] if row else 0

    def _prefix(self, series_id: int) -> str:
        prefix = self._prefixes.get(series_id)
        if prefix is None:
            prefix = self._db.execute("SELECT key FROM series WHERE id = ?",
                                      (series_id,)).fetchone()[0]
            self._prefixes[series_id] = prefix
        return prefix

    def read_batch(self, after_id: int, max_points: int) -> Batch:
        """Up to max_points unsent points with id > after_id, as line protocol lines."""
        rows = self._db.execute(
            "SELECT id, series_id, time_ns, fields FROM points WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, max_points)).fetchall()
        ids: list[int] = []
        lines: list[str] = []
        prefixes = self._prefixes
        bad: list[tuple[int, str, str]] = []
        for point_id, series_id, time_ns, fields_json in rows:
            prefix = prefixes.get(series_id) or self._prefix(series_id)
            try:
                field_set = json_fields_to_line(fields_json)
            except ValueError as exc:  # never sent; kept in quarantine with the reason
                bad.append((point_id, f"{prefix} {fields_json} {time_ns}", f"not line protocol: {exc}"))
                continue
            ids.append(point_id)
            lines.append(f"{prefix} {field_set} {time_ns}")
        return Batch(ids, lines, after_id, bad, rows[-1][0] if rows else after_id)

    def backlog(self) -> int:
        return self._writer.execute("SELECT count(*) FROM points WHERE id > ?",
                                (self.cursor(),)).fetchone()[0]

    # -- recording -------------------------------------------------------------------------
    def record(self, batch: Batch, quarantined: list[tuple[int, str, str]]) -> None:
        """The batch is done: accepted by the server, except `quarantined` (id, line, error)."""
        now_ns = time.time_ns()
        forwarded = len(batch) - len(quarantined)
        quarantined = batch.unformattable + quarantined
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO forward_cursor(target, last_id, updated_ns) VALUES (?, ?, ?) "
                       "ON CONFLICT(target) DO UPDATE SET last_id = excluded.last_id, "
                       "updated_ns = excluded.updated_ns", (self.target, batch.last_id, now_ns))
            if quarantined:
                db.executemany("INSERT INTO quarantine(target, point_id, line, error, quarantined_ns) "
                               "VALUES (?, ?, ?, ?, ?)",
                               [(self.target, pid, line, error, now_ns) for pid, line, error in quarantined])
            counts = [(FORWARDED_PREFIX + self.target, forwarded),
                      (QUARANTINED_PREFIX + self.target, len(quarantined))]
            db.executemany("INSERT INTO counters(name, value) VALUES (?, ?) "
                           "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                           [c for c in counts if c[1]])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def quarantined(self, limit: int = 100) -> list[QuarantinedLine]:
        rows = self._writer.execute(
            "SELECT point_id, line, error, quarantined_ns FROM quarantine WHERE target = ? "
            "ORDER BY id DESC LIMIT ?", (self.target, limit)).fetchall()
        return [QuarantinedLine(*row) for row in rows]


def journal_status(path: str | Path) -> JournalStatus:
    """Backlog per target, oldest unsent point, quarantine sizes and counters of a journal."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no journal here (run `wattelier collect` or `wattelier demo`)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        count, oldest, newest = db.execute(
            "SELECT count(*), min(time_ns), max(time_ns) FROM points").fetchone()
        status = JournalStatus(count, oldest, newest, dict(db.execute("SELECT name, value FROM counters")))
        if "forward_cursor" in tables:
            for target, last_id in db.execute("SELECT target, last_id FROM forward_cursor ORDER BY target"):
                n, first = db.execute("SELECT count(*), min(time_ns) FROM points WHERE id > ?",
                                      (last_id,)).fetchone()
                status.backlog[target] = n
                status.oldest_unsent_ns[target] = first
            for target, n in db.execute("SELECT target, count(*) FROM quarantine GROUP BY target"):
                status.quarantine[target] = n
        return status
    finally:
        db.close()


def quarantined_lines(path: str | Path, limit: int = 20) -> list[tuple[str, QuarantinedLine]]:
    """The most recent quarantined lines of a journal, with their target."""
    db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT target, point_id, line, error, quarantined_ns FROM quarantine "
                          "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    except sqlite3.OperationalError:  # a journal older than forwarding
        rows = []
    finally:
        db.close()
    return [(row[0], QuarantinedLine(*row[1:])) for row in rows]
