"""Packed hours of the journal: every point of one series in one complete hour, in one
compressed blob (storage.hour_codec), written by packing the hour's point rows (`pack_series`)
or straight from a simulated history (`write_hours`).

The layout is in storage/journal_schema.py ("Packed hours"). Every function here runs inside a
write transaction that the caller (storage.journal.Journal) holds, so a point is always in
exactly one place, a row or an hour, whichever process writes the journal.

Ids: an hour has an id in the id space of point rows, which decides when the forwarder sends
it (storage.forward_store): an hour packed from rows every target has accepted takes the
largest id of those rows (at or below every cursor: not sent again); an hour written straight
from history takes a new id (sent like new rows). New ids come from `next_ids`, above every id
ever given (meta `last_point_id`), so a deleted row's id is never given again: a new point
must never fall at or below a forwarding cursor.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

import numpy as np

from devices import vocabulary
from storage.journal_schema import HOUR_NS, LAST_ID_KEY, hour_start_ns
from storage.points import Point
from storage.rollup import rollup_fields


def next_ids(db: sqlite3.Connection, count: int) -> int:
    """Reserve `count` new ids; return the first. Above every id a row or an hour ever had."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (LAST_ID_KEY,)).fetchone()
    last = int(row[0]) if row is not None else 0
    highest = db.execute("SELECT max(id) FROM points").fetchone()[0] or 0
    last = max(last, highest)
    db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
               (LAST_ID_KEY, str(last + count)))
    return last + 1


def read_hour(db: sqlite3.Connection, series_id: int, start_ns: int) -> tuple[int, np.ndarray, list[dict]] | None:
    """(id, time_ns, fields) of a packed hour, or None."""
    from storage import hour_codec  # here: 9 ms of import, for packed hours only
    row = db.execute("SELECT id, blob FROM hours WHERE series_id = ? AND start_ns = ?",
                     (series_id, start_ns)).fetchone()
    if row is None:
        return None
    time_ns, fields = hour_codec.decode_hour(row[1])
    return row[0], time_ns, fields


def _store_hour(db: sqlite3.Connection, hour_id: int, series_id: int, start_ns: int, count: int,
                blob: bytes) -> None:
    db.execute("INSERT INTO hours(id, series_id, start_ns, count, blob) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT(series_id, start_ns) DO UPDATE SET id = excluded.id, count = excluded.count, "
               "blob = excluded.blob", (hour_id, series_id, start_ns, count, blob))


def _merged(old: tuple[int, np.ndarray, list[dict]] | None, time_ns: list[int], fields: list[dict]
            ) -> tuple[np.ndarray, list[dict]]:
    """An hour's points with new ones added, in time order (at one time: the hour's first,
    then the new ones in their order, as their ids would sort them)."""
    if old is None:
        return np.asarray(time_ns, dtype=np.int64), fields
    times = np.concatenate([old[1], np.asarray(time_ns, dtype=np.int64)])
    every = old[2] + fields
    order = np.argsort(times, kind="stable")
    return times[order], [every[i] for i in order.tolist()]


def pack_hour(db: sqlite3.Connection, series_id: int, measurement: str, start_ns: int, limit_id: int) -> int:
    """Pack the point rows of one series in the hour [start_ns, start_ns + HOUR_NS) into its
    blob (adding them to the hour's packed points, if any), unless a row is above limit_id
    (not yet accepted by every forwarding target). Returns the points packed (0: none)."""
    from storage import hour_codec  # here: 9 ms of import, for packed hours only
    span = (series_id, start_ns, start_ns + HOUR_NS)
    newest = db.execute("SELECT max(id) FROM points WHERE series_id = ? AND time_ns >= ? AND time_ns < ?",
                        span).fetchone()[0]
    if newest is None or newest > limit_id:  # checked before reading the fields: an outage's
        return 0                              # unsent hours are passed over at every packing
    rows = db.execute("SELECT id, time_ns, fields FROM points WHERE series_id = ? AND time_ns >= ? "
                      "AND time_ns < ? ORDER BY time_ns, id", span).fetchall()
    ids, time_ns, texts = zip(*rows)
    fields = [json.loads(text) for text in texts]
    old = read_hour(db, series_id, start_ns)
    times, every = _merged(old, list(time_ns), fields)
    hour_id = max(max(ids), old[0] if old else 0)
    _store_hour(db, hour_id, series_id, start_ns, len(times), hour_codec.encode_hour(times, every))
    db.execute("DELETE FROM points WHERE series_id = ? AND time_ns >= ? AND time_ns < ? AND id <= ?",
               (series_id, start_ns, start_ns + HOUR_NS, max(ids)))
    if measurement == vocabulary.METER:
        write_rollup(db, series_id, start_ns, times, every)
    return len(rows)


def pack_series(db: sqlite3.Connection, series_id: int, measurement: str, horizon_ns: int, limit_id: int,
                max_hours: int) -> tuple[int, bool]:
    """Pack up to max_hours complete hours (ending at or before horizon_ns) of one series'
    point rows, oldest first, leaving the hours that hold a row above limit_id. Returns
    (points packed, done: no packable hour left)."""
    horizon_ns = hour_start_ns(horizon_ns)
    cursor = db.execute("SELECT min(time_ns) FROM points WHERE series_id = ?", (series_id,)).fetchone()[0]
    packed = hours = 0
    while cursor is not None and cursor < horizon_ns:
        if hours >= max_hours:
            return packed, False
        start = hour_start_ns(cursor)
        n = pack_hour(db, series_id, measurement, start, limit_id)
        packed += n
        hours += n > 0
        cursor = db.execute("SELECT min(time_ns) FROM points WHERE series_id = ? AND time_ns >= ?",
                            (series_id, start + HOUR_NS)).fetchone()[0]
    return packed, True


def write_hours(db: sqlite3.Connection, series_id: int, measurement: str, time_ns: np.ndarray,
                columns: dict[str, np.ndarray]) -> int:
    """Write points whose every field is a finite float (a simulated history) straight into
    packed hours, each hour with a new id (sent to every forwarding target like new rows); an
    hour already holding points gets these added. time_ns sorted. Returns the points written."""
    from storage import hour_codec  # here: 9 ms of import, for packed hours only
    time_ns = np.asarray(time_ns, dtype=np.int64)
    if not len(time_ns):
        return 0
    starts = time_ns - time_ns % HOUR_NS
    edges = np.flatnonzero(np.diff(starts)) + 1
    bounds = [0, *edges.tolist(), len(time_ns)]
    first_id = next_ids(db, len(bounds) - 1)
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        start = int(starts[a])
        t = time_ns[a:b]
        part = {name: values[a:b] for name, values in columns.items()}
        old = read_hour(db, series_id, start)
        if old is None:
            blob, count = hour_codec.encode_float_columns(t, part), len(t)
        else:
            names = list(part)
            fields = [dict(zip(names, vals)) for vals in zip(*[part[n].tolist() for n in names])]
            merged_t, merged_f = _merged(old, t.tolist(), fields)
            blob, count = hour_codec.encode_hour(merged_t, merged_f), len(merged_t)
        _store_hour(db, first_id + k, series_id, start, count, blob)
        if measurement == vocabulary.METER:
            if old is None:
                write_rollup_arrays(db, series_id, start, t, part.get("power_w"), part.get("energy_import_kwh"))
            else:
                write_rollup(db, series_id, start, *hour_codec.decode_hour(blob))
    return len(time_ns)


def write_rollup(db: sqlite3.Connection, series_id: int, start_ns: int, time_ns: np.ndarray,
                 fields: list[dict]) -> None:
    """Write (or replace) the rollup point of a meter series' hour from its points."""
    def column(name: str) -> np.ndarray:
        return np.array([f.get(name) if type(f.get(name)) in (float, int) else np.nan for f in fields],
                        dtype=np.float64)

    write_rollup_arrays(db, series_id, start_ns, time_ns, column("power_w"), column("energy_import_kwh"))


def write_rollup_arrays(db: sqlite3.Connection, series_id: int, start_ns: int, time_ns: np.ndarray,
                        power_w: np.ndarray | None, counter_kwh: np.ndarray | None) -> None:
    """Write (or replace) the rollup point (storage.rollup) of one meter series and hour, unless
    that hour lost points (rollup_frozen): the forwarder ships it like any point."""
    if power_w is None:
        return
    if db.execute("SELECT 1 FROM rollup_frozen WHERE series_id = ? AND start_ns = ?",
                  (series_id, start_ns)).fetchone():
        return
    if counter_kwh is None:
        counter_kwh = np.full(len(time_ns), np.nan)
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
    db.execute("INSERT INTO points(id, series_id, time_ns, fields) VALUES (?, ?, ?, ?)",
               (next_ids(db, 1), rollup_sid, start_ns, json.dumps(fields, separators=(",", ":"))))
    if not replaced:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'points_stored'")


def freeze_rollups(db: sqlite3.Connection, hours: Iterable[tuple[int, int]]) -> None:
    """Hours (series_id, start_ns) that lost points: they get no new rollup (InfluxDB keeps
    the one made while they were whole)."""
    db.executemany("INSERT OR IGNORE INTO rollup_frozen(series_id, start_ns) VALUES (?, ?)", list(hours))


def delete_oldest_hours(db: sqlite3.Connection, limit_points: int, below_id: int) -> int:
    """Delete the oldest `limit_points` packed points, hour by hour in id order while the
    next hour's id is below below_id: whole hours, then the oldest points of the last one (its
    blob written again without them); their meter hours get no new rollup. Returns the points
    deleted."""
    from storage import hour_codec  # here: 9 ms of import, for packed hours only

    deleted = 0
    while deleted < limit_points:
        row = db.execute("SELECT id, series_id, start_ns, count FROM hours WHERE id < ? ORDER BY id LIMIT 1",
                         (below_id,)).fetchone()
        if row is None:
            break
        hour_id, series_id, start_ns, count = row
        freeze_rollups(db, [(series_id, start_ns)])
        if count <= limit_points - deleted:
            db.execute("DELETE FROM hours WHERE id = ?", (hour_id,))
            deleted += count
            continue
        cut = limit_points - deleted
        _, time_ns, fields = read_hour(db, series_id, start_ns)
        _store_hour(db, hour_id, series_id, start_ns, count - cut, hour_codec.encode_hour(time_ns[cut:], fields[cut:]))
        deleted += cut
    return deleted
