"""Bring a journal up to the current schema (storage/journal_schema.py), in place, when a writer
opens it: one transaction, so an interrupted upgrade leaves the journal as it was (and it
opens, and upgrades at the next opening).

What changes from each earlier version:
- any: the tables and indexes of SCHEMA_SQL that are missing are made (all versions' tables
  only ever gained tables, never changed columns);
- 1 to 3 (no rollups yet): if points were ever deleted to make room, each meter series' first
  hour may have lost some: it gets no rollup (rollup_frozen);
- 4: rollups written before their format settled (the first version-4 journals) cannot be read
  back: every rollup point is deleted (they are derived; each hour's rollup is made again when
  the hour is packed, except frozen hours, which the analysis then reads sample by sample);
- 3 to 5: column blocks (a derived copy of power and counters) are dropped: packing the rows
  into hours replaces them, in the short transactions of Journal.compact;
- every version: `meta.last_point_id` starts at the highest id a row or a forwarding cursor
  ever reached, so no id is given twice.
"""

from __future__ import annotations

import re
import sqlite3

from devices import vocabulary
from storage.journal_schema import (DROP_PREFIX, HOUR_NS, LAST_ID_KEY, SCHEMA_SQL, SCHEMA_VERSION)


def schema_version(db: sqlite3.Connection) -> int | None:
    """The journal's schema version: None for an empty database, 1 before the meta table."""
    tables = _tables(db)
    if not tables:
        return None
    if "meta" not in tables:
        return 1
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return 1 if row is None else int(row[0])  # not a number: refused by check_journal before


_TABLE_NAMES = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA_SQL))


def _tables(db: sqlite3.Connection) -> set[str]:
    return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def upgrade(db: sqlite3.Connection) -> int | None:
    """Upgrade (or make) the journal on this connection to SCHEMA_VERSION in one transaction;
    return the version it had (None: a new journal). Nothing is written to a journal that is
    up to date."""
    version = schema_version(db)
    if version == SCHEMA_VERSION and _TABLE_NAMES <= _tables(db):
        return version
    db.execute("BEGIN IMMEDIATE")
    try:
        tables = _tables(db)
        for statement in _statements(SCHEMA_SQL):
            db.execute(statement)
        if version is not None:
            _from(db, version, tables)
        highest = max(db.execute("SELECT coalesce(max(id), 0) FROM points").fetchone()[0],
                      db.execute("SELECT coalesce(max(last_id), 0) FROM forward_cursor").fetchone()[0],
                      db.execute("SELECT coalesce(max(point_id), 0) FROM quarantine").fetchone()[0],
                      db.execute("SELECT coalesce(max(id), 0) FROM hours").fetchone()[0])
        _set_meta(db, LAST_ID_KEY, str(highest), keep_larger=True)
        _set_meta(db, "schema_version", str(SCHEMA_VERSION))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite ends some transactions itself (disk full, I/O error)
            db.execute("ROLLBACK")
        raise
    return version


def _from(db: sqlite3.Connection, version: int, tables: set[str]) -> None:
    """The changes of an existing journal of `version` (tables: those it had)."""
    if version < 4:
        dropped = db.execute("SELECT value FROM counters WHERE name = ?",
                             (DROP_PREFIX + "journal_full_oldest_deleted",)).fetchone()
        if dropped and dropped[0] > 0:
            db.execute("INSERT OR IGNORE INTO rollup_frozen(series_id, start_ns) "
                       "SELECT p.series_id, min(p.time_ns) - min(p.time_ns) % ? FROM points p "
                       "JOIN series s ON s.id = p.series_id WHERE s.measurement = ? GROUP BY p.series_id",
                       (HOUR_NS, vocabulary.METER))
    if version == 4:
        gone = db.execute("DELETE FROM points WHERE series_id IN (SELECT id FROM series WHERE measurement = ?)",
                          (vocabulary.ROLLUP,)).rowcount
        if gone:
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) - ? WHERE key = 'points_stored'", (gone,))
    for derived in ("blocks", "block_cursor"):
        if derived in tables:
            db.execute(f"DROP TABLE {derived}")


def _set_meta(db: sqlite3.Connection, key: str, value: str, keep_larger: bool = False) -> None:
    if keep_larger:
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                   "max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))", (key, value))
    else:
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                   "excluded.value", (key, value))
