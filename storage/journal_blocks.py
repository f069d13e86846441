"""Column blocks of the journal: build them (compaction) and keep them exact (invalidation).

The layout is in storage/journal_schema.py. Every function here runs inside a write
transaction that the caller (storage.journal.Journal) holds, so a block and the points it is
made of never disagree, whichever process writes the journal.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

import numpy as np

from storage.points import Point
from devices import vocabulary
from storage.journal_schema import (BLOCK_FIELDS, BLOCK_NS, BLOCK_TIME_DTYPE, BLOCK_VALUE_DTYPE,
                                    DROP_PREFIX, block_start_ns)
from storage.rollup import rollup_fields


def blocked_series(db: sqlite3.Connection) -> dict[int, tuple[str, ...]]:
    """Series whose measurement has column blocks: {series_id: fields}."""
    marks = ",".join("?" for _ in BLOCK_FIELDS)
    return {sid: BLOCK_FIELDS[measurement] for sid, measurement in db.execute(
        f"SELECT id, measurement FROM series WHERE measurement IN ({marks})", tuple(BLOCK_FIELDS))}


def _lower_cursor(db: sqlite3.Connection, series_id: int, until_ns: int) -> None:
    db.execute("UPDATE block_cursor SET until_ns = min(until_ns, ?) WHERE series_id = ?",
               (until_ns, series_id))


def invalidate_hours(db: sqlite3.Connection, hours: Iterable[tuple[int, int]],
                     lost_points: bool = False) -> int:
    """Delete the blocks of (series_id, block start ns) whose points change; return how many.
    lost_points: the change deletes points, so those hours get no new rollup (rollup_frozen)."""
    deleted = 0
    for series_id, start_ns in hours:
        deleted += db.execute("DELETE FROM blocks WHERE series_id = ? AND start_ns = ?",
                              (series_id, start_ns)).rowcount
        _lower_cursor(db, series_id, start_ns)
        if lost_points:
            db.execute("INSERT OR IGNORE INTO rollup_frozen(series_id, start_ns) VALUES (?, ?)",
                       (series_id, start_ns))
    return deleted


def upgrade(db: sqlite3.Connection) -> None:
    """Bring a journal written by an older version up to this schema (storage/journal_schema.py):
    from version 3, the packed hours are packed again so each gets its rollup; if points were
    ever deleted to make room, each series' first hour may have lost some and gets none."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or int(row[0]) >= 4:  # a version that is not a number was refused at opening
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if int(row[0]) == 3:
            dropped = db.execute("SELECT value FROM counters WHERE name = ?",
                                 (DROP_PREFIX + "journal_full_oldest_deleted",)).fetchone()
            if dropped and dropped[0] > 0:
                db.execute("INSERT OR IGNORE INTO rollup_frozen(series_id, start_ns) "
                           "SELECT series_id, min(start_ns) FROM blocks GROUP BY series_id")
            db.execute("DELETE FROM blocks")
            db.execute("DELETE FROM block_cursor")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite ends some transactions itself (disk full, I/O error)
            db.execute("ROLLBACK")
        raise


def invalidate_for_inserts(db: sqlite3.Connection, points: Iterable[tuple[int, int]]) -> int:
    """Before inserting points (series_id, time_ns) of blocked measurements: delete the blocks
    of their hours, and move a series' cursor back to an hour it had passed with no points."""
    hours = {(series_id, block_start_ns(time_ns)) for series_id, time_ns in points}
    if not hours:
        return 0
    cursors = dict(db.execute("SELECT series_id, until_ns FROM block_cursor"))
    for series_id, start_ns in hours:
        until = cursors.get(series_id)
        if until is not None and start_ns < until:
            _lower_cursor(db, series_id, start_ns)
    pairs = sorted(hours)
    found: list[tuple[int, int]] = []
    for i in range(0, len(pairs), 400):
        chunk = pairs[i:i + 400]
        values = ",".join("(?, ?)" for _ in chunk)
        found += db.execute(f"SELECT series_id, start_ns FROM blocks WHERE (series_id, start_ns) IN "
                            f"(VALUES {values})", [x for pair in chunk for x in pair]).fetchall()
    return invalidate_hours(db, found)


def invalidate_up_to_id(db: sqlite3.Connection, max_id: int) -> int:
    """Before deleting every point with id <= max_id: delete the blocks holding any of them."""
    stale = db.execute("SELECT series_id, start_ns FROM blocks WHERE min_id <= ?", (max_id,)).fetchall()
    return invalidate_hours(db, stale, lost_points=True)


def invalidate_window(db: sqlite3.Connection, series_ids: Iterable[int], start_ns: int, end_ns: int) -> int:
    """Before deleting the points of series_ids in [start_ns, end_ns): delete their blocks."""
    stale = []
    for series_id in series_ids:
        stale += db.execute("SELECT series_id, start_ns FROM blocks WHERE series_id = ? AND start_ns < ? "
                            "AND start_ns + ? > ?", (series_id, end_ns, BLOCK_NS, start_ns)).fetchall()
    return invalidate_hours(db, stale, lost_points=True)


def _numeric(field: str) -> str:
    value = f"json_extract(fields, '$.{field}')"
    return f"iif(json_type(fields, '$.{field}') IN ('real', 'integer'), {value}, NULL)"


def build_block(db: sqlite3.Connection, series_id: int, fields: tuple[str, ...], start_ns: int) -> int:
    """Make the block of one series and hour from its points (replacing any); return its size."""
    columns = ", ".join(_numeric(f) for f in fields)
    rows = db.execute(f"SELECT id, time_ns, {columns} FROM points WHERE series_id = ? AND time_ns >= ? "
                      "AND time_ns < ? ORDER BY time_ns, id", (series_id, start_ns, start_ns + BLOCK_NS)).fetchall()
    db.execute("DELETE FROM blocks WHERE series_id = ? AND start_ns = ?", (series_id, start_ns))
    if not rows:
        return 0
    unzipped = list(zip(*rows))
    ids = unzipped[0]
    time_ns = np.array(unzipped[1], dtype=BLOCK_TIME_DTYPE)
    values = np.array(unzipped[2:], dtype=BLOCK_VALUE_DTYPE)  # None (no number) -> NaN
    db.execute("INSERT INTO blocks(series_id, start_ns, count, min_id, max_id, fields, time_ns, columns) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (series_id, start_ns, len(rows), min(ids), max(ids), ",".join(fields), time_ns.tobytes(),
                values.tobytes()))
    if "power_w" in fields:
        counter = values[fields.index("energy_import_kwh")] if "energy_import_kwh" in fields \
            else np.full(len(rows), np.nan)
        _write_rollup(db, series_id, start_ns, time_ns, values[fields.index("power_w")], counter)
    return len(rows)


def _write_rollup(db: sqlite3.Connection, series_id: int, start_ns: int, time_ns: np.ndarray,
                  power_w: np.ndarray, counter_kwh: np.ndarray) -> None:
    """Write (or replace) the rollup point of one meter series and hour, unless that hour lost
    points (rollup_frozen): the forwarder ships it like any point."""
    if db.execute("SELECT 1 FROM rollup_frozen WHERE series_id = ? AND start_ns = ?",
                  (series_id, start_ns)).fetchone():
        return
    fields = rollup_fields(time_ns, power_w, counter_kwh)
    if fields is None:
        return
    tags = json.loads(db.execute("SELECT tags FROM series WHERE id = ?", (series_id,)).fetchone()[0])
    point = Point(vocabulary.ROLLUP, tags, fields, start_ns)
    key = point.series_key()
    found = db.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()
    rollup_sid = found[0] if found else db.execute(
        "INSERT INTO series(key, measurement, tags) VALUES (?, ?, ?)",
        (key, vocabulary.ROLLUP, json.dumps(tags, sort_keys=True))).lastrowid
    replaced = db.execute("DELETE FROM points WHERE series_id = ? AND time_ns = ?",
                          (rollup_sid, start_ns)).rowcount
    db.execute("INSERT INTO points(series_id, time_ns, fields) VALUES (?, ?, ?)",
               (rollup_sid, start_ns, json.dumps(fields, separators=(",", ":"))))
    if not replaced:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'points_stored'")


def compact_series(db: sqlite3.Connection, series_id: int, fields: tuple[str, ...], horizon_ns: int,
                   max_hours: int) -> tuple[int, bool]:
    """Build up to max_hours missing blocks of a series, oldest first, for hours that end at or
    before horizon_ns; advance its cursor. Returns (points put in blocks, done)."""
    horizon_ns = block_start_ns(horizon_ns)
    row = db.execute("SELECT until_ns FROM block_cursor WHERE series_id = ?", (series_id,)).fetchone()
    if row is None:
        first = db.execute("SELECT min(time_ns) FROM points WHERE series_id = ?", (series_id,)).fetchone()[0]
        if first is None:
            return 0, True
        cursor = block_start_ns(first)
        db.execute("INSERT INTO block_cursor(series_id, until_ns) VALUES (?, ?)", (series_id, cursor))
    else:
        cursor = row[0]
    built_hours = packed = 0
    while cursor < horizon_ns and built_hours < max_hours:
        # The next hour at or after the cursor that has points.
        nxt = db.execute("SELECT min(time_ns) FROM points WHERE series_id = ? AND time_ns >= ? AND time_ns < ?",
                         (series_id, cursor, horizon_ns)).fetchone()[0]
        if nxt is None:
            cursor = horizon_ns
            break
        hour = block_start_ns(nxt)
        if db.execute("SELECT 1 FROM blocks WHERE series_id = ? AND start_ns = ?", (series_id, hour)).fetchone() is None:
            packed += build_block(db, series_id, fields, hour)
            built_hours += 1
        cursor = hour + BLOCK_NS
    db.execute("UPDATE block_cursor SET until_ns = ? WHERE series_id = ?", (cursor, series_id))
    return packed, cursor >= horizon_ns
