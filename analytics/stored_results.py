"""Stored analysis results of one site over [start, end) as plain rows, from either store.

`wattelier analyze` stores its results (wattelier.stored_analysis.result_points) into the
journal or into InfluxDB; reports read them back from there, never the raw samples
(docs/design.md, "What people look at"). Both readers give the same ``StoredResults``:

    {measurement: [row, ...]}   measurement in REPORT_MEASUREMENTS
    row = {"time_ns": int, <tag>: str, ..., <field>: float | str | bool, ...}

Numbers are floats (InfluxDB's JSON writes 2.0 as 2; the journal keeps 2.0), booleans stay
booleans, empty tags and missing fields are left out, and rows are sorted by time then by
content, so the order a store returns them in never shows. A store's failure is the adapter's
own error: devices.journal_schema.JournalError for the journal,
analytics.influxql_reader.InfluxQLError for InfluxDB.

- Journal: analytics.journal_reader.JournalReader, the site's series of each measurement,
  their points in [start, end) (rows of one series at one instant merged, as InfluxDB does).
- InfluxDB: one statement per measurement, all in one request, ``GROUP BY *`` for the tags:
  a year of results is one request, never one per day.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from analytics.influxql_reader import InfluxQLInputs, quote_identifier, quote_string
from analytics.journal_reader import JournalReader
from devices import vocabulary
from devices.journal_schema import JournalError

REPORT_MEASUREMENTS = (vocabulary.USAGE, vocabulary.JOB, vocabulary.SESSION, vocabulary.BALANCE)
"""What a report reads: per machine and day, per job, per session, the site's balance per day."""

Row = dict[str, Any]
StoredResults = dict[str, list[Row]]
ResultsReader = Callable[[str, float, float], StoredResults]
"""(site name, start_s, end_s) -> that site's stored results in [start_s, end_s) [s, Unix]."""


def _value(value: Any) -> Any:
    """A stored value as rows carry it: numbers as floats, booleans and texts as they are."""
    if type(value) is int:
        return float(value)
    return value


def _row(time_ns: int, tags: dict[str, str], fields: dict[str, Any]) -> Row:
    row: Row = {"time_ns": int(time_ns)}
    row.update((k, v) for k, v in tags.items() if v != "")
    row.update((k, _value(v)) for k, v in fields.items() if v is not None)
    return row


def _sort_key(row: Row) -> tuple[int, bytes]:
    return row["time_ns"], orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def _sorted(results: StoredResults) -> StoredResults:
    return {m: sorted(results.get(m, []), key=_sort_key) for m in REPORT_MEASUREMENTS}


def _window_ns(start_s: float, end_s: float) -> tuple[int, int]:
    return int(round(start_s * 1e9)), int(round(end_s * 1e9))


def read_journal(journal_path: str | Path, site: str, start_s: float, end_s: float) -> StoredResults:
    """The site's stored results with times in [start_s, end_s) [s] from the journal.

    JournalError when there is no journal, or it is not one, or is damaged."""
    start_ns, end_ns = _window_ns(start_s, end_s)
    try:
        reader = JournalReader(journal_path)
    except FileNotFoundError as exc:
        raise JournalError(journal_path, "no journal here: analyse the period first "
                                         "(`wattelier analyze`)") from exc
    out: StoredResults = {}
    try:
        for measurement in REPORT_MEASUREMENTS:
            rows = out.setdefault(measurement, [])
            for series in reader.series(measurement, **{vocabulary.TAG_SITE: site}):
                merged: dict[int, dict[str, Any]] = {}
                for time_ns, fields in reader.points(series.series_id, start_ns, end_ns):
                    if not isinstance(fields, dict):
                        continue  # the journal only ever writes objects
                    merged.setdefault(time_ns, {}).update(fields)
                rows.extend(_row(t, series.tags, f) for t, f in merged.items())
    finally:
        reader.close()
    return _sorted(out)


def influxdb_statements(site: str, start_s: float, end_s: float) -> list[str]:
    """One InfluxQL statement per measurement of REPORT_MEASUREMENTS: the site's points in
    [start_s, end_s) with their tags (``GROUP BY *``)."""
    start_ns, end_ns = _window_ns(start_s, end_s)
    where = (f"WHERE {quote_identifier(vocabulary.TAG_SITE)} = {quote_string(site)} "
             f"AND time >= {start_ns} AND time < {end_ns}")
    return [f"SELECT * FROM {quote_identifier(m)} {where} GROUP BY *" for m in REPORT_MEASUREMENTS]


def read_influxdb(source: InfluxQLInputs, site: str, start_s: float, end_s: float) -> StoredResults:
    """The site's stored results with times in [start_s, end_s) [s] from InfluxDB (InfluxQL,
    one request). InfluxQLError when the server refuses or cannot be reached."""
    answers = source.query_many(influxdb_statements(site, start_s, end_s))
    out: StoredResults = {}
    for measurement, answer in zip(REPORT_MEASUREMENTS, answers):
        rows = out.setdefault(measurement, [])
        for series in answer:
            columns = series.get("columns", [])
            tags = series.get("tags") or {}
            for values in series.get("values", []):
                record = dict(zip(columns, values))
                time_ns = record.pop("time")
                rows.append(_row(time_ns, tags, record))
    return _sorted(out)


def journal_reader(journal_path: str | Path) -> ResultsReader:
    """A ResultsReader over a journal file."""
    return lambda site, start_s, end_s: read_journal(journal_path, site, start_s, end_s)


def influxdb_reader(source: InfluxQLInputs) -> ResultsReader:
    """A ResultsReader over an InfluxDB database (analytics.influxql_reader.InfluxQLInputs)."""
    return lambda site, start_s, end_s: read_influxdb(source, site, start_s, end_s)
