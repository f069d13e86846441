"""The journal's SQLite schema, shared by the collector (writes) and analytics (reads).

A point is a row of `points`: its series (measurement + tags) by id, its edge time in
nanoseconds since the Unix epoch (UTC), and its fields as a JSON object. Series are stored
once in `series`. `counters` holds named totals (points written, points dropped by reason).
"""

SCHEMA_VERSION = 1

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
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

DROP_PREFIX = "dropped:"
