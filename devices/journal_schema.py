"""The journal's SQLite schema, shared by the collector (writes) and analytics (reads).

A point is a row of `points`: its series (measurement + tags) by id, its edge time in
nanoseconds since the Unix epoch (UTC), and its fields as a JSON object. Series are stored
once in `series`. `counters` holds named totals (points written, points dropped by reason).

Forwarding to InfluxDB: `forward_cursor` keeps, per target (URL + database or bucket), the id
of the last point the server accepted; points are forwarded in id order, so everything above
the cursor is the backlog. Lines a server refused for good are kept in `quarantine` with the
server's message.
"""

SCHEMA_VERSION = 2

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
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

DROP_PREFIX = "dropped:"
FORWARDED_PREFIX = "forwarded:"
QUARANTINED_PREFIX = "quarantined:"
