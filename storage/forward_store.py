"""The journal as the forwarder sees it: batches of unsent points, the cursor, the quarantine.

The forwarder has its own SQLite connection on the journal file (WAL mode lets it read while
the collector commits). Points are forwarded in id order (the order they were journaled, so
oldest first); per target, `forward_cursor.last_id` is the last point the server accepted or
that was quarantined, so everything above it is the backlog. Advancing the cursor and counting
forwarded and quarantined points happen in one transaction.

Targets are stored without credentials (storage.journal_schema.public_target: no user,
password or query token of a URL), and so are the errors kept with them. `record_target` keeps,
per configured URL, when it was configured, its last error and its last accepted write, so
`wattelier journal` shows a target that never accepted a write with its backlog and error.
SQLite errors are raised as JournalError (storage.journal_schema).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from storage.points import fields_to_line, float_lines, json_fields_to_line
from storage.journal_schema import (BUSY_TIMEOUT_S, DROP_PREFIX, FORWARDED_PREFIX,
                                    QUARANTINED_PREFIX, SCHEMA_SQL, check_journal,
                                    connect_readonly, journal_error, public_target)

BUSY_TIMEOUT_MS = int(BUSY_TIMEOUT_S * 1000)


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
    never_accepted: set[str] = field(default_factory=set)  # configured, no write accepted yet
    last_error: dict[str, tuple[str, int]] = field(default_factory=dict)  # (error, when ns), if not
    # followed by an accepted write

    @property
    def drops(self) -> dict[str, int]:
        return {k[len(DROP_PREFIX):]: v for k, v in self.counters.items()
                if k.startswith(DROP_PREFIX) and v}


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                         timeout=BUSY_TIMEOUT_MS / 1000)
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


class ForwardStore:
    """Read unsent points and record what a target accepted."""

    def __init__(self, path: str | Path, target: str) -> None:
        self.path = Path(path)
        self.target = public_target(target)
        if self.path.exists():
            check_journal(self.path, new_ok=True)  # JournalError: never written into
        # Two connections: batches are read in one thread while the cursor of the previous
        # batch is recorded in another.
        try:
            self._writer = _connect(self.path)
            self._writer.executescript(SCHEMA_SQL)
            self._db = _connect(self.path)
            self._has_hours = True  # SCHEMA_SQL made the table if the journal had none
        except sqlite3.Error as exc:
            raise journal_error(self.path, exc, "opening it to forward") from exc
        self._prefixes: dict[int, str] = {}

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
        """Unsent points with id > after_id, as line protocol lines, in id order: point rows
        and packed hours (storage/journal_hours.py; every line of an hour has the hour's id),
        up to max_points lines, or one whole hour when it alone holds more."""
        rows = self._db.execute(
            "SELECT id, series_id, time_ns, fields FROM points WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, max_points)).fetchall()
        hours = self._db.execute(
            "SELECT id, series_id, count FROM hours WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, max_points)).fetchall() if self._has_hours else []
        # rows cut by the LIMIT: nothing above the last one read is known to come next
        beyond = rows[-1][0] if len(rows) == max_points else None
        items = sorted([(r[0], False, r) for r in rows] + [(h[0], True, h) for h in hours])
        ids: list[int] = []
        lines: list[str] = []
        prefixes = self._prefixes
        bad: list[tuple[int, str, str]] = []
        last = after_id
        for item_id, is_hour, item in items:
            taken = len(lines) + len(bad)
            if (beyond is not None and item_id > beyond) or taken >= max_points:
                break
            if is_hour:
                if taken and taken + item[2] > max_points:
                    break  # it leads the next batch
                last = self._hour_lines(item, ids, lines, bad)
                continue
            point_id, series_id, time_ns, fields_json = item
            prefix = prefixes.get(series_id) or self._prefix(series_id)
            last = point_id
            try:
                field_set = json_fields_to_line(fields_json)
            except ValueError as exc:  # never sent; kept in quarantine with the reason
                bad.append((point_id, f"{prefix} {fields_json} {time_ns}", f"not line protocol: {exc}"))
                continue
            ids.append(point_id)
            lines.append(f"{prefix} {field_set} {time_ns}")
        return Batch(ids, lines, after_id, bad, last)

    def _hour_lines(self, hour: tuple[int, int, int], ids: list[int], lines: list[str],
                    bad: list[tuple[int, str, str]]) -> int:
        """Add the lines of one packed hour (id, series_id, count); return its id."""
        from storage import hour_codec  # here: 9 ms of import, for packed hours only
        hour_id, series_id, _ = hour
        blob = self._db.execute("SELECT blob FROM hours WHERE id = ?", (hour_id,)).fetchone()[0]
        prefix = self._prefixes.get(series_id) or self._prefix(series_id)
        try:
            dense = hour_codec.dense_float_columns(blob)
            if dense is not None and dense[1] and all(np.isfinite(c).all() for c in dense[1].values()):
                lines.extend(float_lines(prefix, *dense))
                ids.extend([hour_id] * len(dense[0]))
                return hour_id
            time_ns, fields = hour_codec.decode_hour(blob)
        except hour_codec.HourCodecError as exc:
            bad.append((hour_id, f"{prefix} (packed hour {hour_id})", f"unreadable packed hour: {exc}"))
            return hour_id
        for t, f in zip(time_ns.tolist(), fields):
            try:
                field_set = fields_to_line(f)
            except ValueError as exc:
                bad.append((hour_id, f"{prefix} {f} {t}", f"not line protocol: {exc}"))
                continue
            ids.append(hour_id)
            lines.append(f"{prefix} {field_set} {t}")
        return hour_id

    def backlog(self) -> int:
        return _points_after(self._writer, self.cursor())

    # -- recording -------------------------------------------------------------------------
    def record(self, batch: Batch, quarantined: list[tuple[int, str, str]]) -> None:
        """The batch is done: accepted by the server, except `quarantined` (id, line, error)."""
        now_ns = time.time_ns()
        forwarded = len(batch) - len(quarantined)
        quarantined = [(pid, line, public_target(error)) for pid, line, error in batch.unformattable + quarantined]
        try:
            self._record(batch.last_id, quarantined, forwarded, now_ns)
        except sqlite3.Error as exc:
            raise journal_error(self.path, exc, "recording what InfluxDB accepted") from exc

    def _record(self, last_id: int, quarantined: list[tuple[int, str, str]], forwarded: int,
                now_ns: int) -> None:
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO forward_cursor(target, last_id, updated_ns) VALUES (?, ?, ?) "
                       "ON CONFLICT(target) DO UPDATE SET last_id = excluded.last_id, "
                       "updated_ns = excluded.updated_ns", (self.target, last_id, now_ns))
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
            if db.in_transaction:  # SQLite ends some transactions itself (disk full)
                db.execute("ROLLBACK")
            raise

    def quarantined(self, limit: int = 100) -> list[QuarantinedLine]:
        rows = self._writer.execute(
            "SELECT point_id, line, error, quarantined_ns FROM quarantine WHERE target = ? "
            "ORDER BY id DESC LIMIT ?", (self.target, limit)).fetchall()
        return [QuarantinedLine(*row) for row in rows]


def record_target(path: str | Path, url: str, error: str | None = None, accepted: bool = False) -> None:
    """Note a forwarding target in the journal (without credentials): configured (first call),
    its latest error, or that it accepted a write. For the forwarder: once at start (before
    connecting, so a server down from the start is shown), when it stops accepting writes
    (error) and when it is back (accepted). Raises JournalError."""
    path = Path(path)
    now_ns = time.time_ns()
    base = public_target(url).rstrip("/")
    try:
        db = _connect(path)
        try:
            db.executescript(SCHEMA_SQL)
            db.execute("INSERT INTO forward_target(url, configured_ns) VALUES (?, ?) "
                       "ON CONFLICT(url) DO NOTHING", (base, now_ns))
            if error is not None:
                db.execute("UPDATE forward_target SET last_error = ?, last_error_ns = ? WHERE url = ?",
                           (public_target(error)[:500], now_ns, base))
            if accepted:
                db.execute("UPDATE forward_target SET last_ok_ns = ? WHERE url = ?", (now_ns, base))
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise journal_error(path, exc, "recording the forwarding target") from exc


def _url_of(target: str) -> str:
    return target.split(" ", 1)[0]


def _points_after(db: sqlite3.Connection, last_id: int) -> int:
    """Points (rows and packed) with an id above last_id: what a cursor there has not passed."""
    return (db.execute("SELECT count(*) FROM points WHERE id > ?", (last_id,)).fetchone()[0]
            + db.execute("SELECT coalesce(sum(count), 0) FROM hours WHERE id > ?", (last_id,)).fetchone()[0])


@dataclass
class RetiredTarget:
    """A forwarding target no longer configured: its key (without credentials) and the points
    it had not accepted when it was retired (they are not sent to it)."""

    target: str
    unsent: int


def retire_targets(path: str | Path, keep: Iterable[str]) -> list[RetiredTarget]:
    """Forget the forwarding targets whose key is not in `keep` (target keys, e.g.
    InfluxSettings.possible_target_keys(); empty: no target is configured): their cursors and
    their `forward_target` notes. Packing and the journal's overflow wait until every target
    has a point (storage.journal), so a target removed from the site file would hold them back
    for ever. Their quarantined lines and counters stay (history). A target configured again
    later starts from the journal's oldest point. Returns what was retired; nothing when there
    is no journal. Raises JournalError."""
    path = Path(path)
    if not path.exists():
        return []
    check_journal(path)  # JournalError: not a journal, damaged, newer
    kept = {public_target(k) for k in keep}
    kept_urls = {_url_of(k).rstrip("/") for k in kept}
    try:
        db = _connect(path)
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"forward_cursor", "forward_target", "hours"} <= tables:
                return []  # no target ever (or a journal of an earlier version, upgraded when opened)
            db.execute("BEGIN IMMEDIATE")
            try:
                retired = []
                for target, last_id in db.execute("SELECT target, last_id FROM forward_cursor ORDER BY target").fetchall():
                    if target in kept:
                        continue
                    retired.append(RetiredTarget(target, _points_after(db, last_id)))
                    db.execute("DELETE FROM forward_cursor WHERE target = ?", (target,))
                for (url,) in db.execute("SELECT url FROM forward_target ORDER BY url").fetchall():
                    if url.rstrip("/") not in kept_urls:
                        db.execute("DELETE FROM forward_target WHERE url = ?", (url,))
                        if not any(_url_of(r.target) == url for r in retired):  # never accepted a write
                            retired.append(RetiredTarget(url, _points_after(db, 0)))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return retired
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise journal_error(path, exc, "retiring forwarding targets no longer configured") from exc


def journal_status(path: str | Path, configured: Iterable[str] = ()) -> JournalStatus:
    """Backlog per target, oldest unsent point, quarantine sizes, last errors and counters of a
    journal. configured: URLs of targets the site file names (shown even when the journal
    has no trace of them). FileNotFoundError when there is no journal, JournalError when it
    cannot be read."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no journal here (run `wattelier collect` or `wattelier demo`)")
    db = connect_readonly(path)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()}
        count, oldest, newest = db.execute(
            "SELECT count(*), min(time_ns), max(time_ns) FROM points").fetchone()
        if "hours" in tables:
            packed, first_hour, last_hour = db.execute(
                "SELECT coalesce(sum(count), 0), min(start_ns), max(start_ns) FROM hours").fetchone()
            count += packed
            oldest = min((t for t in (oldest, first_hour) if t is not None), default=None)
            newest = max((t for t in (newest, _newest_packed(db, last_hour)) if t is not None), default=None)
        counters = dict(db.execute("SELECT name, value FROM counters").fetchall()) if "counters" in tables else {}
        status = JournalStatus(count, oldest, newest, {public_target(k): v for k, v in counters.items()})
        cursors = []
        if "forward_cursor" in tables:
            cursors = db.execute("SELECT target, last_id FROM forward_cursor ORDER BY target").fetchall()
            for target, n in db.execute("SELECT target, count(*) FROM quarantine GROUP BY target").fetchall():
                status.quarantine[public_target(target)] = n
        for target, last_id in cursors:
            n, first = db.execute("SELECT count(*), min(time_ns) FROM points WHERE id > ?", (last_id,)).fetchone()
            if "hours" in tables:
                packed, first_hour = db.execute("SELECT coalesce(sum(count), 0), min(start_ns) FROM hours "
                                                "WHERE id > ?", (last_id,)).fetchone()
                n += packed
                first = min((t for t in (first, first_hour) if t is not None), default=None)
            status.backlog[public_target(target)] = n
            status.oldest_unsent_ns[public_target(target)] = first
        known = {_url_of(t) for t in status.backlog}
        noted = db.execute("SELECT url, last_error, last_error_ns, last_ok_ns FROM forward_target "
                           "ORDER BY url").fetchall() if "forward_target" in tables else []
        urls = [public_target(u) for u, *_ in noted] + [public_target(u).rstrip("/") for u in configured]
        for url in dict.fromkeys(urls):
            if url not in known:  # configured, never accepted a write: everything is unsent
                status.backlog[url] = count
                status.oldest_unsent_ns[url] = oldest
                status.never_accepted.add(url)
                known.add(url)
        for url, error, error_ns, ok_ns in noted:
            if error is not None and (ok_ns is None or error_ns > ok_ns):
                for target in status.backlog:
                    if _url_of(target) == public_target(url):
                        status.last_error[target] = (public_target(error), error_ns)
        return status
    finally:
        db.close()


def _newest_packed(db: sqlite3.Connection, last_start_ns: int | None) -> int | None:
    """The time [ns] of the newest packed point: the last point of the latest packed hours
    (only their time columns are decoded)."""
    if last_start_ns is None:
        return None
    from storage import hour_codec  # here: 9 ms of import, for packed hours only

    return max(int(hour_codec.decode_columns(blob, ())[0].max())
               for (blob,) in db.execute("SELECT blob FROM hours WHERE start_ns = ?", (last_start_ns,)))


def quarantined_lines(path: str | Path, limit: int = 20) -> list[tuple[str, QuarantinedLine]]:
    """The most recent quarantined lines of a journal, with their target."""
    db = connect_readonly(path)
    try:
        rows = db.execute("SELECT target, point_id, line, error, quarantined_ns FROM quarantine "
                          "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    except sqlite3.OperationalError:  # a journal older than forwarding
        rows = []
    finally:
        db.close()
    return [(public_target(row[0]), QuarantinedLine(row[1], row[2], public_target(row[3]), row[4]))
            for row in rows]
