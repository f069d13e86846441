"""Read points from the journal (SQLite) into numpy arrays.

The journal is the embedded store (docs/design.md, "The journal is always there"); its schema is in
storage/journal_schema.py. Reads go series by series, in time order.

Opening checks the file first (storage.journal_schema.check_journal, read-only): a file that is
not a journal, a damaged one or one of a newer schema raises JournalError (one line: the path,
what is wrong, what to do) and is left as it is; so does damage a later read runs into.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storage.journal_schema import DROP_PREFIX, JournalDamaged, RECOVERY_HINT, connect_readonly


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


class JournalReader:
    """Read-only access to a journal file. FileNotFoundError when there is none; JournalError
    (storage.journal_schema) when it is not a journal, is damaged or is of a newer schema."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no journal here (run `wattelier collect` or `wattelier demo`)")
        self.path = path
        self._db: sqlite3.Connection = connect_readonly(path)

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

    def field(self, series_id: int, name: str, start_ns: int | None = None,
              end_ns: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(time_s, values) of one numeric field of a series, in time order; points without
        the field are skipped. time_s: float seconds since the Unix epoch."""
        query = ("SELECT time_ns, json_extract(fields, ?) FROM points WHERE series_id = ?"
                 " AND json_type(fields, ?) IN ('real', 'integer')")
        where, args = _time_range(start_ns, end_ns, "<=")
        rows = self._db.execute(query + where + " ORDER BY time_ns, id",
                                [f"$.{name}", series_id, f"$.{name}", *args]).fetchall()
        if not rows:
            return np.empty(0), np.empty(0)
        try:
            data = np.array(rows, dtype=np.float64)
        except (TypeError, ValueError) as exc:  # a time that is not a number
            raise JournalDamaged(self.path, f"damaged (a point of series {series_id} has no numeric "
                                            f"time: {exc}): {RECOVERY_HINT}") from exc
        return data[:, 0] / 1e9, data[:, 1]

    def points(self, series_id: int, start_ns: int | None = None,
               end_ns: int | None = None) -> list[tuple[int, dict]]:
        """(time_ns, fields) of the points of a series, in time order: every one, or those in
        [start_ns, end_ns) when given."""
        query = "SELECT time_ns, fields FROM points WHERE series_id = ?"
        where, args = _time_range(start_ns, end_ns, "<")
        rows = self._db.execute(query + where + " ORDER BY time_ns, id", [series_id, *args]).fetchall()
        return [(t, _json(self.path, f, f"the fields of a point of series {series_id}")) for t, f in rows]

    def count_by_series(self) -> dict[int, int]:
        return dict(self._db.execute("SELECT series_id, count(*) FROM points GROUP BY series_id").fetchall())

    def drops(self) -> dict[str, int]:
        return {name[len(DROP_PREFIX):]: value for name, value in self._db.execute(
            "SELECT name, value FROM counters WHERE name LIKE ?", (DROP_PREFIX + "%",)).fetchall()}
