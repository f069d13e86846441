"""Read points from the journal (SQLite) into numpy arrays and plain rows, read-only.

The journal is the embedded store (docs/design.md, "The journal is always there"); its schema
is in storage/journal_schema.py. A series' points are in packed hours (one compressed blob per
hour, storage.hour_codec) and in point rows (recent hours, late points, journals of earlier
versions read before their upgrade); every read here merges both, in time order (at one time:
the packed points first, then the rows in id order, the order they were written in).

Opening checks the file first (storage.journal_schema.check_journal, read-only): a file that is
not a journal, a damaged one or one of a newer schema raises JournalError (one line: the path,
what is wrong, what to do) and is left as it is; so does damage a later read runs into.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from storage.journal_schema import DROP_PREFIX, HOUR_NS, RECOVERY_HINT, JournalDamaged, connect_readonly


@dataclass(frozen=True)
class SeriesInfo:
    series_id: int
    measurement: str
    tags: dict[str, str]


def _json(path: Path, text: str, what: str):
    """A JSON value stored in the journal; JournalDamaged when it is not JSON."""
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise JournalDamaged(path, f"damaged ({what} is not JSON: {exc}): {RECOVERY_HINT}") from exc


def _time_range(start_ns: int | None, end_ns: int | None, end_op: str) -> tuple[str, list[int]]:
    """SQL conditions (and their arguments) keeping points from start_ns on and before (end_op
    "<") or up to ("<=") end_ns; either bound may be None (unbounded)."""
    where, args = "", []
    if start_ns is not None:
        where += " AND time_ns >= ?"
        args.append(start_ns)
    if end_ns is not None:
        where += f" AND time_ns {end_op} ?"
        args.append(end_ns)
    return where, args


def _numeric_columns(fields: Sequence[str]) -> str:
    """SQL of the fields of a point row as numbers (NULL, read as NaN, for anything else)."""
    return ", ".join(f"iif(json_type(fields, '$.{f}') IN ('real', 'integer'), json_extract(fields, '$.{f}'), NULL)"
                     for f in fields)


def _merged(times: list[np.ndarray], values: list[np.ndarray], rows: list[tuple], width: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """(time_ns, values[width, n]) of packed pieces (in time order, one after the other) and
    point rows (time_ns, value...), in one time order: at one time, packed points first."""
    if rows:
        unzipped = list(zip(*rows))
        times = [*times, np.array(unzipped[0], dtype=np.int64)]
        values = [*values, np.array(unzipped[1:], dtype=np.float64).reshape(width, -1)]
    if not times:
        return np.empty(0, dtype=np.int64), np.empty((width, 0))
    if len(times) == 1:
        return times[0], values[0]
    time_ns = np.concatenate(times)
    stacked = np.concatenate(values, axis=1)
    if rows:  # rows among packed hours (late points)
        order = np.argsort(time_ns, kind="stable")
        return time_ns[order], stacked[:, order]
    return time_ns, stacked


class JournalReader:
    """Read-only access to a journal file. FileNotFoundError when there is none; JournalError
    (storage.journal_schema) when it is not a journal, is damaged or is of a newer schema."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no journal here (run `wattelier collect` or `wattelier demo`)")
        self.path = path
        self._db: sqlite3.Connection = connect_readonly(path)
        self.tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        self._has_hours = "hours" in self.tables

    def close(self) -> None:
        self._db.close()

    def series(self, measurement: str | None = None, **tags: str) -> list[SeriesInfo]:
        """Series of a measurement whose tags include all of `tags`."""
        query = "SELECT id, measurement, tags FROM series"
        args: tuple = ()
        if measurement is not None:
            query += " WHERE measurement = ?"
            args = (measurement,)
        out = []
        for sid, meas, tag_json in self._db.execute(query + " ORDER BY id", args).fetchall():
            tag_dict = _json(self.path, tag_json, f"the tags of series {sid}")
            if not isinstance(tag_dict, dict):
                raise JournalDamaged(self.path, f"damaged (the tags of series {sid} are not an object): "
                                                f"{RECOVERY_HINT}")
            if all(tag_dict.get(k) == v for k, v in tags.items()):
                out.append(SeriesInfo(sid, meas, tag_dict))
        return out

    # -- packed hours ------------------------------------------------------------------------
    def _hour_blobs(self, series_id: int, start_ns: int | None, end_ns: int | None,
                    end_op: str = "<") -> list[tuple[int, bytes]]:
        """(start_ns, blob) of the packed hours of a series holding times in the range."""
        if not self._has_hours:
            return []
        where, args = "", []
        if start_ns is not None:
            where += " AND start_ns > ?"
            args.append(start_ns - HOUR_NS)
        if end_ns is not None:
            where += f" AND start_ns {end_op} ?"
            args.append(end_ns)
        return self._db.execute(f"SELECT start_ns, blob FROM hours WHERE series_id = ?{where} ORDER BY start_ns",
                                [series_id, *args]).fetchall()

    def _decoded(self, blob: bytes, series_id: int, names: Sequence[str] | None = None):
        from storage import hour_codec  # here: 9 ms of import, for packed hours only
        try:
            if names is None:
                return hour_codec.decode_hour(blob)
            return hour_codec.decode_columns(blob, names)
        except hour_codec.HourCodecError as exc:
            raise JournalDamaged(self.path, f"damaged (a packed hour of series {series_id}: {exc}): "
                                            f"{RECOVERY_HINT}") from exc

    @staticmethod
    def _keep(time_ns: np.ndarray, start_ns: int | None, end_ns: int | None, end_op: str) -> np.ndarray:
        keep = np.ones(len(time_ns), dtype=bool)
        if start_ns is not None:
            keep &= time_ns >= start_ns
        if end_ns is not None:
            keep &= (time_ns <= end_ns) if end_op == "<=" else (time_ns < end_ns)
        return keep

    # -- numbers -----------------------------------------------------------------------------
    def numeric_series(self, series_id: int, fields: tuple[str, ...], start_ns: int | None = None,
                       end_ns: int | None = None, end_op: str = "<") -> tuple[np.ndarray, np.ndarray]:
        """(time_ns int64, values[len(fields), n] float64) of one series with times from
        start_ns and before (end_op "<") or up to ("<=") end_ns, in time order; NaN where a
        point has no number for a field."""
        times: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for _, blob in self._hour_blobs(series_id, start_ns, end_ns, end_op):
            t, columns = self._decoded(blob, series_id, fields)
            keep = self._keep(t, start_ns, end_ns, end_op)
            times.append(t[keep])
            values.append(np.array([columns[f][keep] for f in fields]).reshape(len(fields), -1))
        where, args = _time_range(start_ns, end_ns, end_op)
        rows = self._db.execute(f"SELECT time_ns, {_numeric_columns(fields)} FROM points WHERE series_id = ?{where} "
                                "ORDER BY time_ns, id", [series_id, *args]).fetchall()
        return _merged(times, values, rows, len(fields))

    def numeric_ranges(self, series_id: int, fields: tuple[str, ...], ranges_ns: list[tuple[int, int]]
                       ) -> tuple[np.ndarray, np.ndarray]:
        """numeric_series over several sorted, disjoint ranges [a, b) at once, each packed hour
        decoded once however many ranges fall in it (the minutes an analysis reads raw)."""
        if not ranges_ns:
            return np.empty(0, dtype=np.int64), np.empty((len(fields), 0))
        starts = np.array([a for a, _ in ranges_ns], dtype=np.int64)
        ends = np.array([b for _, b in ranges_ns], dtype=np.int64)
        times: list[np.ndarray] = []
        values: list[np.ndarray] = []
        if self._has_hours:
            hours = sorted({h for a, b in ranges_ns for h in range(a - a % HOUR_NS, b, HOUR_NS)})
            blobs = []
            for i in range(0, len(hours), 500):
                chunk = hours[i:i + 500]
                blobs += self._db.execute(
                    f"SELECT start_ns, blob FROM hours WHERE series_id = ? AND start_ns IN "
                    f"({','.join('?' for _ in chunk)}) ORDER BY start_ns", [series_id, *chunk]).fetchall()
            for _, blob in sorted(blobs):
                t, columns = self._decoded(blob, series_id, fields)
                k = np.searchsorted(starts, t, side="right") - 1  # the range starting at or before t
                keep = (k >= 0) & (t < ends[np.maximum(k, 0)])
                times.append(t[keep])
                values.append(np.array([columns[f][keep] for f in fields]).reshape(len(fields), -1))
        query = (f"SELECT time_ns, {_numeric_columns(fields)} FROM points WHERE series_id = ? AND time_ns >= ? "
                 "AND time_ns < ? ORDER BY time_ns, id")
        rows = [r for a, b in ranges_ns for r in self._db.execute(query, (series_id, a, b)).fetchall()]
        return _merged(times, values, rows, len(fields))

    def field(self, series_id: int, name: str, start_ns: int | None = None,
              end_ns: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(time_s, values) of one numeric field of a series, in time order, times in
        [start_ns, end_ns] (either bound None: unbounded); points without the field (or with
        a value that is not a number) are skipped. time_s: float seconds since the Unix epoch."""
        time_ns, values = self.numeric_series(series_id, (name,), start_ns, end_ns, "<=")
        has = ~np.isnan(values[0])
        return time_ns[has] / 1e9, values[0][has]

    # -- points as they were written ------------------------------------------------------------
    def points(self, series_id: int, start_ns: int | None = None,
               end_ns: int | None = None) -> list[tuple[int, dict]]:
        """(time_ns, fields) of the points of a series, in time order: every one, or those in
        [start_ns, end_ns) when given."""
        out: list[tuple[int, dict]] = []
        for _, blob in self._hour_blobs(series_id, start_ns, end_ns):
            t, fields = self._decoded(blob, series_id)
            keep = self._keep(t, start_ns, end_ns, "<")
            out.extend((ti, f) for ti, f, k in zip(t.tolist(), fields, keep.tolist()) if k)
        where, args = _time_range(start_ns, end_ns, "<")
        rows = self._db.execute(f"SELECT time_ns, fields FROM points WHERE series_id = ?{where} ORDER BY time_ns, id",
                                [series_id, *args]).fetchall()
        if not rows:
            return out
        packed = len(out)
        out.extend((t, _json(self.path, f, f"the fields of a point of series {series_id}")) for t, f in rows)
        if packed:
            out.sort(key=lambda point: point[0])  # stable: packed points first at one time
        return out

    def rollup_rows(self, series_id: int, first_ns: int, last_ns: int) -> list[tuple[int, dict]]:
        """(time_ns, fields) of the rollups of a series (storage.rollup: point rows, never
        packed) in [first_ns, last_ns), in time order. Parsed by orjson: a week of 20
        machines' rollups is 14 MB of JSON, read in half the time of the standard library's
        parser. A rollup holds only floats and base64 text (storage.rollup.rollup_fields),
        which orjson reads exactly as json does (it would read an integer beyond 64 bits as a
        float, which no rollup holds)."""
        rows = self._db.execute("SELECT time_ns, fields FROM points WHERE series_id = ? AND time_ns >= ? "
                                "AND time_ns < ? ORDER BY time_ns, id", (series_id, first_ns, last_ns)).fetchall()
        out = []
        for t, text in rows:
            try:
                out.append((t, orjson.loads(text)))
            except (TypeError, ValueError):
                out.append((t, _json(self.path, text, f"the fields of a point of series {series_id}")))
        return out

    def field_rows(self, series_ids: list[int], fields: list[str], start_ns: int, end_ns: int) -> list[tuple]:
        """(time_ns, value of each field or None) of the points of these series in
        [start_ns, end_ns), values as stored (any type), in time order."""
        out: list[tuple] = []
        for sid in series_ids:
            out.extend((t, *(f.get(name) for name in fields)) for t, f in self.points(sid, start_ns, end_ns))
        if len(series_ids) > 1:
            out.sort(key=lambda row: row[0])
        return out

    # -- rollups -------------------------------------------------------------------------------
    def whole_packed_hours(self, series_id: int, first_ns: int, last_ns: int) -> set[int]:
        """Start [ns] of the hours in [first_ns, last_ns) whose points are all packed as they
        were when the hour's rollup was made: packed, no row of the series in it (a late point
        not packed yet), and none lost (rollup_frozen)."""
        if not self._has_hours:
            return set()
        packed = {start for (start,) in self._db.execute(
            "SELECT start_ns FROM hours WHERE series_id = ? AND start_ns >= ? AND start_ns < ?",
            (series_id, first_ns, last_ns))}
        packed -= {t - t % HOUR_NS for (t,) in self._db.execute(
            "SELECT time_ns FROM points WHERE series_id = ? AND time_ns >= ? AND time_ns < ?",
            (series_id, first_ns, last_ns))}
        if "rollup_frozen" in self.tables:
            packed -= {start for (start,) in self._db.execute(
                "SELECT start_ns FROM rollup_frozen WHERE series_id = ? AND start_ns >= ? AND start_ns < ?",
                (series_id, first_ns, last_ns))}
        return packed

    # -- counts --------------------------------------------------------------------------------
    def count_by_series(self) -> dict[int, int]:
        counts = dict(self._db.execute("SELECT series_id, count(*) FROM points GROUP BY series_id").fetchall())
        if self._has_hours:
            for sid, n in self._db.execute("SELECT series_id, sum(count) FROM hours GROUP BY series_id"):
                counts[sid] = counts.get(sid, 0) + n
        return counts

    def drops(self) -> dict[str, int]:
        return {name[len(DROP_PREFIX):]: value for name, value in self._db.execute(
            "SELECT name, value FROM counters WHERE name LIKE ?", (DROP_PREFIX + "%",)).fetchall()}
