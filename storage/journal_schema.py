"""The journal's SQLite schema, shared by the collector (writes) and analytics (reads).

A point is a row of `points`: its series (measurement + tags) by id, its edge time in
nanoseconds since the Unix epoch (UTC), and its fields as a JSON object. Series are stored
once in `series`. `counters` holds named totals (points written, points dropped by reason).

Forwarding to InfluxDB: `forward_cursor` keeps, per target (URL + database or bucket), the id
of the last point the server accepted; points are forwarded in id order, so everything above
the cursor is the backlog. Lines a server refused for good are kept in `quarantine` with the
server's message.

Packed hours (schema version 6): the complete hours of the collector's readings
(PACKED_MEASUREMENTS) are stored per series and per hour in `hours`, one blob each
(storage.hour_codec: column by column, compressed, values as the device sent them), and their
point rows are deleted in the same transaction: a point is in exactly one place, a row of
`points` or a packed hour, and both are the truth. An hour is packed once it is complete and,
where InfluxDB targets are configured, once every target has accepted its rows (a row above a
cursor stays a row until sent). A point arriving late for a packed hour is a row until the next
packing adds it to the hour. An hour has an id in the id space of the rows (see
storage/journal_hours.py), so the forwarder sends rows and hours in one order, and
`meta.last_point_id` keeps the highest id ever given: ids are never given twice. Results,
bookings and rollups stay rows (few, and results are replaced by re-runs).

Rollups (schema version 4): when the journal packs an hour of a meter series it also writes
the hour's rollup (storage/rollup.py) as a point of the `power_rollup` measurement, replacing
the previous one, so the forwarder ships it to InfluxDB like any point. An hour that lost
points (deleted to make room, or replaced) is listed in `rollup_frozen` and gets no new
rollup: its points are no longer whole, and InfluxDB keeps the rollup made when they were.

Earlier versions: 1 (points and series), 2 (forwarding cursors, quarantine), 3 (column blocks
of power and counter beside the rows, a derived copy), 4 (rollups), 5 (forward targets).
Opening a journal to write upgrades it in place (storage.journal_upgrade), each step in one
transaction, so an interrupted upgrade leaves a journal of the version before the step.

Forward targets (schema version 5): `forward_target` keeps, per InfluxDB URL the collector was
configured with, when it was configured, its last error and its last accepted write, so
`wattelier journal` shows a target that never accepted a write (its backlog is every point).
Targets are stored without credentials (`public_target`): no user, password or query token.

Opening a journal checks it first, without writing (`check_journal`, read-only): the SQLite
header, the journal's tables, the schema version (a newer or unknown one is refused, never
relabelled), the columns of its tables, and its B-trees (`PRAGMA quick_check`: measured 0.8 s
on a 584 MB journal of 4 million points, warm cache, too slow for every open of `analyze`; so a
file over FULL_CHECK_MAX_BYTES gets the check of its small tables and of each table's last page,
1 ms, and damage a later read meets is raised as JournalDamaged by the connections made here).
"""

import functools
import os
import re
import shutil
import sqlite3
import struct
import urllib.parse
from pathlib import Path

from devices import vocabulary
from storage.errors import StorageError

SCHEMA_VERSION = 6

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
CREATE TABLE IF NOT EXISTS hours (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL REFERENCES series(id),
    start_ns INTEGER NOT NULL,
    count INTEGER NOT NULL,
    blob BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS hours_series_start ON hours(series_id, start_ns);
CREATE TABLE IF NOT EXISTS rollup_frozen (
    series_id INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    PRIMARY KEY (series_id, start_ns)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS forward_target (
    url TEXT PRIMARY KEY,
    configured_ns INTEGER NOT NULL,
    last_error TEXT,
    last_error_ns INTEGER,
    last_ok_ns INTEGER
);
"""

# Packed hours: one hour (UTC) of one series [ns]; the measurements whose complete hours are packed.
HOUR_NS = 3600 * 10**9
PACKED_MEASUREMENTS = (vocabulary.METER, vocabulary.CNC, vocabulary.COLLECTOR)
LAST_ID_KEY = "last_point_id"
"""`meta` key: the highest id ever given to a point row or a packed hour."""


def hour_start_ns(time_ns: int) -> int:
    """Start of the hour (UTC) holding time_ns [ns]."""
    return time_ns - time_ns % HOUR_NS


DROP_PREFIX = "dropped:"
FORWARDED_PREFIX = "forwarded:"
QUARANTINED_PREFIX = "quarantined:"


# -- errors ----------------------------------------------------------------------------------
RECOVERY_HINT = "keep this file as it is, for recovery, and start a new journal with --journal NEW.sqlite"


class JournalError(StorageError):
    """A journal that cannot be used as it is; str() is one line for the user: the path, what
    is wrong and what to do.

        JournalError
        ├── JournalDamaged       not a SQLite journal, truncated, or damaged: refused, never written
        ├── JournalVersionError  written by a newer wattelier, or an unknown schema version
        ├── JournalLocked        another collector holds the journal
        ├── JournalUnwritable    read-only file, folder or file system
        └── JournalFull          the disk (or the database's size limit) is full
    """

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(str(path), message)  # both in args: errors of forked workers pickle
        self.path = str(path)
        self.message = message

    def __str__(self) -> str:
        return f"journal {self.path}: {self.message}"


class JournalDamaged(JournalError):
    """Not a journal, or a damaged one: refused, and its bytes are left as they are."""


class JournalVersionError(JournalError):
    """A schema version this wattelier does not know (newer, or not a number)."""


class JournalLocked(JournalError):
    """Another collector is writing this journal."""


class JournalUnwritable(JournalError):
    """The journal, its folder or its file system cannot be written."""


class JournalFull(JournalError):
    """No room left on the journal's disk."""


# SQLite primary result codes (an extended code's low byte is its primary code).
_DAMAGED_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_FORMAT}
_UNWRITABLE_CODES = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}


def one_line(exc: Exception, limit: int = 120) -> str:
    """An exception's text for a one-line message."""
    return " ".join(str(exc).split())[:limit]


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_damage(exc: sqlite3.Error) -> bool:
    """An SQLite error that says the file is damaged (or not a database)."""
    return _primary_code(exc) in _DAMAGED_CODES


def _disk_full(path: str | Path) -> bool:
    """Less than 64 KiB free on the file system of path (an I/O error there is a full disk:
    SQLite reports a full disk under its shared-memory file as an I/O error)."""
    try:
        return shutil.disk_usage(Path(path).parent).free < 64 * 1024
    except OSError:
        return False


def journal_error(path: str | Path, exc: sqlite3.Error, doing: str) -> JournalError:
    """The JournalError an SQLite error means, `doing` naming what failed ("writing points")."""
    code = _primary_code(exc)
    said = one_line(exc)
    if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _disk_full(path)):
        return JournalFull(path, f"disk full ({doing} failed: {said}): free space on its disk, or "
                                 "give --journal a place with room")
    if code in _UNWRITABLE_CODES:
        return JournalUnwritable(path, f"cannot be written ({said}) while {doing}: make the file, "
                                       "its folder and its file system writable, or give --journal "
                                       "a writable place")
    if code in _DAMAGED_CODES or _damaged_text(exc):
        return JournalDamaged(path, f"damaged ({said}) while {doing}: {RECOVERY_HINT}")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return JournalError(path, f"busy ({said}) while {doing}: another process held it too long; "
                                  "try again")
    return JournalError(path, f"{doing} failed: {said}")


# -- no secret stored ------------------------------------------------------------------------
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def _public_url(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not a URL after all (a bad port): keep the scheme only
        return url.split("://", 1)[0] + "://(address hidden)"
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def public_target(text: str) -> str:
    """`text` with every URL in it stripped of what may be a secret: the user and password
    (`http://user:pass@host`), the query (`?u=..&p=..&token=..`) and the fragment."""
    return _URL.sub(lambda m: _public_url(m.group(0)), text)


# -- checking a journal before using it --------------------------------------------------------
SQLITE_HEADER = b"SQLite format 3\x00"
FULL_CHECK_MAX_BYTES = 8 * 2**20
"""Journals up to this size (with their write-ahead log) get a full `PRAGMA quick_check` on
every open (measured: 20 ms for 10 MiB, 0.8 s for 584 MB); larger ones the check of their
small tables and last pages (1 ms on 584 MB)."""
JOURNAL_TABLES = ("series", "points")  # in every version of the journal
SMALL_TABLES = ("series", "counters", "meta", "forward_cursor", "forward_target", "rollup_frozen")
BUSY_TIMEOUT_S = 10.0


def _readonly_uri(path: Path) -> str:
    """URI to open a journal read-only. In a read-only folder with no write-ahead log beside
    the file no writer can change it, and SQLite could not make the shared-memory file readers
    need: it is opened as immutable."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    if not os.access(path.parent, os.W_OK) and not os.path.exists(f"{path}-wal"):
        uri += "&immutable=1"
    return uri


def _wal_bytes(path: Path) -> int:
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0


def _check_header(path: Path, size: int, wal_bytes: int) -> None:
    """The file's first 100 bytes (SQLite's header) and its size, read without SQLite."""
    try:
        with open(path, "rb") as file:
            header = file.read(100)
    except OSError as exc:
        raise JournalError(path, f"cannot be read ({exc.strerror}): give --journal a journal file "
                                 "this user can read") from exc
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        raise JournalDamaged(path, "not a SQLite journal (the file does not begin with the SQLite "
                                   f"header); if it was a journal, {RECOVERY_HINT}")
    (page_size,) = struct.unpack(">H", header[16:18])
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise JournalDamaged(path, f"damaged (page size {page_size} in its header): {RECOVERY_HINT}")
    if size % page_size:
        raise JournalDamaged(path, f"truncated or damaged ({size} bytes, not a whole number of "
                                   f"{page_size}-byte pages): {RECOVERY_HINT}")
    change_counter, pages = struct.unpack(">II", header[24:32])
    (valid_for,) = struct.unpack(">I", header[92:96])
    # With a write-ahead log the file may be behind its header until the next checkpoint.
    if not wal_bytes and valid_for == change_counter and pages * page_size > size:
        raise JournalDamaged(path, f"truncated ({size} bytes, its header says {pages * page_size}): "
                                   f"{RECOVERY_HINT}")


def _quick_check(db: sqlite3.Connection, path: Path, target: str | None = None) -> None:
    pragma = "PRAGMA quick_check" if target is None else f"PRAGMA quick_check({target})"
    problems = [row[0] for row in db.execute(pragma).fetchall()]
    if problems != ["ok"]:
        raise JournalDamaged(path, f"damaged ({one_line(problems[0])}): {RECOVERY_HINT}")


@functools.cache
def _expected_columns() -> dict[str, tuple[str, ...]]:
    """{table: its column names} as SCHEMA_SQL makes them."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA_SQL)
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: tuple(row[1] for row in db.execute(f'PRAGMA table_info("{t}")')) for t in tables}
    finally:
        db.close()


def _check_contents(db: sqlite3.Connection, path: Path, full: bool, new_ok: bool) -> int:
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        if new_ok:
            return 0
        raise JournalDamaged(path, "an empty SQLite database: no journal has been written into it "
                                   "(give the journal a collector wrote, or run `wattelier collect`)")
    missing = [t for t in JOURNAL_TABLES if t not in tables]
    if missing:
        found = ", ".join(sorted(tables)[:5])
        raise JournalDamaged(path, f"not a wattelier journal (a SQLite database without the table "
                                   f"{missing[0]}; it holds {found}): give --journal the journal file, "
                                   "or a new file name to start one")
    expected = _expected_columns()
    for table in sorted(tables & expected.keys()):  # no column of any version changed since
        columns = tuple(row[1] for row in db.execute(f'PRAGMA table_info("{table}")').fetchall())
        if columns != expected[table]:
            raise JournalDamaged(path, f"damaged (table {table} has the columns {', '.join(columns)[:80]}, "
                                       f"not {', '.join(expected[table])}): {RECOVERY_HINT}")
    version = 1  # journals before the meta table
    if "meta" in tables:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None:
            try:
                version = int(row[0])
            except (TypeError, ValueError):
                version = -1
            if version < 1:
                raise JournalVersionError(path, f"unknown schema version {str(row[0])[:40]!r} (this "
                                                f"wattelier writes version {SCHEMA_VERSION}): {RECOVERY_HINT}")
            if version > SCHEMA_VERSION:
                raise JournalVersionError(path, f"written by a newer wattelier (schema version {version}; "
                                                f"this one knows up to {SCHEMA_VERSION}): upgrade "
                                                "wattelier, or start a new journal with --journal NEW.sqlite")
    if full:
        _quick_check(db, path)
    else:
        for table in SMALL_TABLES:
            if table in tables:
                _quick_check(db, path, table)
        for table in sorted(tables):  # the last page of each (a truncated file loses those first)
            db.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()
    return version


def check_journal(path: str | Path, new_ok: bool = False) -> int:
    """Check a journal file without writing to it; return its schema version.

    new_ok: an empty file (0 bytes, no write-ahead log beside it) or an empty SQLite database
    is what a new journal starts from: return 0 instead of refusing it (a writer makes a
    journal of it). Raises JournalDamaged, JournalVersionError, JournalUnwritable (cannot be
    opened at all) or FileNotFoundError."""
    path = Path(path)
    if path.is_dir():
        raise JournalDamaged(path, "a folder, not a journal file: give --journal a file name")
    size = os.stat(path).st_size
    wal_bytes = _wal_bytes(path)
    if size == 0:
        if wal_bytes:  # SQLite would delete that log on opening: it may hold the journal
            raise JournalDamaged(path, f"empty file (0 bytes) beside a write-ahead log of {wal_bytes} "
                                       f"bytes that may hold its points: {RECOVERY_HINT}")
        if new_ok:
            return 0
        raise JournalDamaged(path, "empty file (0 bytes): no journal has been written here (give the "
                                   "journal a collector wrote, or run `wattelier collect`)")
    _check_header(path, size, wal_bytes)
    try:
        db = sqlite3.connect(_readonly_uri(path), uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise journal_error(path, exc, "opening it to read") from exc
    try:
        return _check_contents(db, path, size + wal_bytes <= FULL_CHECK_MAX_BYTES, new_ok)
    except sqlite3.Error as exc:
        raise journal_error(path, exc, "checking it") from exc
    except UnicodeDecodeError as exc:  # its schema or names hold text that is not UTF-8
        raise JournalDamaged(path, f"damaged ({one_line(exc)}): {RECOVERY_HINT}") from exc
    finally:
        db.close()


def _damaged_text(exc: sqlite3.Error) -> bool:
    """Text the journal never writes: fields and tags are UTF-8 JSON."""
    message = str(exc)
    return message == "malformed JSON" or message.startswith("Could not decode to UTF-8")


class _CheckedCursor(sqlite3.Cursor):
    """A cursor whose statements and fetches raise JournalDamaged for a damaged file (rows
    taken by iterating are not checked: that would cost about 0.5 us a row)."""

    def _checked(self, method, *args):
        try:
            return method(*args)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc) or _damaged_text(exc):
                raise JournalDamaged(self.connection.journal_path,
                                     f"damaged ({one_line(exc)}) while reading it: {RECOVERY_HINT}") from exc
            raise
        except UnicodeDecodeError as exc:
            raise JournalDamaged(self.connection.journal_path,
                                 f"damaged ({one_line(exc)}) while reading it: {RECOVERY_HINT}") from exc

    def execute(self, *args):
        return self._checked(super().execute, *args)

    def executemany(self, *args):
        return self._checked(super().executemany, *args)

    def fetchone(self):
        return self._checked(super().fetchone)

    def fetchmany(self, *args):
        return self._checked(super().fetchmany, *args)

    def fetchall(self):
        return self._checked(super().fetchall)


class CheckedConnection(sqlite3.Connection):
    """An SQLite connection on a journal whose damage errors are JournalDamaged; other SQLite
    errors (a missing table of an old journal) stay as they are."""

    journal_path: str = ""

    def execute(self, *args):
        return self.cursor(_CheckedCursor).execute(*args)


def connect_readonly(path: str | Path) -> CheckedConnection:
    """Check a journal (check_journal) and open it read-only; FileNotFoundError when missing."""
    path = Path(path)
    check_journal(path)
    try:
        db = sqlite3.connect(_readonly_uri(path), uri=True, timeout=BUSY_TIMEOUT_S,
                             factory=CheckedConnection)
    except sqlite3.Error as exc:
        raise journal_error(path, exc, "opening it to read") from exc
    db.journal_path = str(path)
    return db
