"""The journal's SQLite schema, shared by the collector (writes) and analytics (reads).

A point is a row of `points`: its series (measurement + tags) by id, its edge time in
nanoseconds since the Unix epoch (UTC), and its fields as a JSON object. Series are stored
once in `series`. `counters` holds named totals (points written, points dropped by reason).

Forwarding to InfluxDB: `forward_cursor` keeps, per target (URL + database or bucket), the id
of the last point the server accepted; points are forwarded in id order, so everything above
the cursor is the backlog. Lines a server refused for good are kept in `quarantine` with the
server's message.

Column blocks (schema version 3): the fields analytics reads at full rate (BLOCK_FIELDS) are
also kept per series and per hour as binary arrays, so a week of 1 Hz power is read as a few
thousand blobs instead of millions of JSON rows. `points` stays the truth; a block is derived
from the points of one series in one hour [start_ns, start_ns + BLOCK_NS) and exists only
while it is exact: the journal deletes it in the same transaction as any insert or delete of a
point in its hour. `block_cursor` keeps, per series, the time below which every hour that has
points also has its block (the compactor's starting point).

Rollups (schema version 4): when the compactor packs an hour of a meter series it also writes
the hour's rollup (devices/rollup.py) as a point of the `power_rollup` measurement, replacing
the previous one, so the forwarder ships it to InfluxDB like any point. An hour that lost
points (deleted to make room, or replaced) is listed in `rollup_frozen` and gets no new
rollup: its points are no longer whole, and InfluxDB keeps the rollup made when they were.
"""

from devices import vocabulary

SCHEMA_VERSION = 4

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL REFERENCES series(id),
    time_ns INTEGER NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS points_series_time ON points(series_id, time_ns);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS forward_cursor (
    target TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    point_id INTEGER NOT NULL,
    line TEXT NOT NULL,
    error TEXT NOT NULL,
    quarantined_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL REFERENCES series(id),
    start_ns INTEGER NOT NULL,
    count INTEGER NOT NULL,
    min_id INTEGER NOT NULL,
    max_id INTEGER NOT NULL,
    fields TEXT NOT NULL,
    time_ns BLOB NOT NULL,
    columns BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS blocks_series_start ON blocks(series_id, start_ns);
CREATE INDEX IF NOT EXISTS blocks_min_id ON blocks(min_id);
CREATE TABLE IF NOT EXISTS block_cursor (
    series_id INTEGER PRIMARY KEY,
    until_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rollup_frozen (
    series_id INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    PRIMARY KEY (series_id, start_ns)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Column blocks: one hour of one series [ns]; the fields kept, per measurement, in this order.
BLOCK_NS = 3600 * 10**9
BLOCK_FIELDS: dict[str, tuple[str, ...]] = {
    vocabulary.METER: ("power_w", "energy_import_kwh"),
}
# Blob layouts: times as little-endian int64 ns; columns as little-endian float64, one row per
# field (len(fields) x count, row-major), NaN where a point has no number for that field.
BLOCK_TIME_DTYPE = "<i8"
BLOCK_VALUE_DTYPE = "<f8"


def block_start_ns(time_ns: int) -> int:
    """Start of the block (hour, UTC) holding time_ns."""
    return time_ns - time_ns % BLOCK_NS


DROP_PREFIX = "dropped:"
FORWARDED_PREFIX = "forwarded:"
QUARANTINED_PREFIX = "quarantined:"
