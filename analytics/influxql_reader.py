"""Analysis inputs from InfluxDB with InfluxQL (docs/design.md, "Line protocol in, InfluxQL out").

InfluxQL is answered by InfluxDB 1.x (`/query`), 2.x (its v1 compatibility API, with a DBRP
mapping) and 3.x. Reads go one machine at a time and one day at a time (`chunk_s`), so the
server's JSON answers stay small and the history is never read whole; only the analysed window
of one machine's samples is held, as float arrays. Controller changes and bookings are few:
they are read a month per statement (SPARSE_CHUNK_S), and a machine that never had a
controller costs no query (one SHOW TAG VALUES lists those that had). The queries go
through storage.influxql.InfluxQL; its errors are storage.errors.InfluxError.

Given RollupSettings, a machine's power is read through the hourly rollups the journal writes
(analytics.rollup_reader): raw samples only in the minutes where the analysis needs them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from storage.bookings import BookingVersion, current_sessions
from analytics.inputs import EDGE_MARGIN_S, iter_machine_data, machine_data
from analytics.records import ControllerData, MachineData, Session
from analytics.rollup_reader import HOUR_NS, RollupReader, RollupSettings, merge_ranges, raw_rows_of_series
from devices import vocabulary
from storage.rollup import ROLLUP_FORMAT
from devices.site import Site
from storage.influxql import InfluxQL, quote_identifier, quote_string


# Controller changes and bookings: a month of them is a small answer, and InfluxDB answers
# one statement over a week three times faster than seven statements of a day (measured with
# 625 bookings: 18 ms against 55 ms).
SPARSE_CHUNK_S = 31 * 86400.0


class InfluxQLInputs:
    """Read analysis inputs from an InfluxDB database with InfluxQL.

    url: server base URL; database: the database (v1) or the DBRP-mapped name (2.x);
    username/password: v1 basic auth; token: InfluxDB 2.x/3.x token.
    """

    def __init__(self, url: str, database: str, username: str | None = None,
                 password: str | None = None, token: str | None = None, chunk_s: float = 86400.0,
                 timeout_s: float = 60.0, rollups: RollupSettings | None = None) -> None:
        self.client = InfluxQL(url, database, username=username, password=password, token=token,
                               timeout_s=timeout_s)
        self.url = self.client.url
        self.database = database
        self.chunk_s = chunk_s
        self._tagged: dict[str, set[str]] = {}
        self.rollups = None if rollups is None else RollupReader(self, rollups)

    @property
    def queries(self) -> int:
        """Statements sent."""
        return self.client.queries

    @property
    def requests(self) -> int:
        """HTTP requests sent (several statements each)."""
        return self.client.requests

    def query(self, q: str) -> list[dict]:
        """Series of one InfluxQL statement (times in ns)."""
        return self.client.query(q)

    def query_many(self, statements: list[str], per_request: int = 100) -> list[list[dict]]:
        """Series of each statement, several per request."""
        return self.client.query_many(statements, per_request)

    def query_csv(self, q: str) -> list[dict]:
        """Series of one statement answered as CSV (storage.influxql.InfluxQL.query_csv)."""
        return self.client.query_csv(q)

    def _chunks(self, start_s: float, end_s: float, chunk_s: float | None = None):
        a = start_s
        while a < end_s:
            b = min(a + (chunk_s or self.chunk_s), end_s)
            yield int(a * 1e9), int(b * 1e9)
            a = b

    @staticmethod
    def machine_where(machine: str, a_ns: int, b_ns: int) -> str:
        """The WHERE clause of one machine's points in [a_ns, b_ns)."""
        return (f"WHERE {quote_identifier(vocabulary.TAG_MACHINE)} = {quote_string(machine)} "
                f"AND time >= {a_ns} AND time < {b_ns}")

    def _select(self, measurement: str, fields: list[str], machine: str, start_s: float,
                end_s: float, group_by: str | None = None, sparse: bool = False) -> list[dict]:
        """Series of one machine's fields, one statement per chunk. sparse: a measurement of
        few points (changes, bookings): chunks of SPARSE_CHUNK_S, all in one HTTP request."""
        cols = ", ".join(quote_identifier(f) for f in fields)
        statements = []
        for a_ns, b_ns in self._chunks(start_s, end_s, SPARSE_CHUNK_S if sparse else None):
            q = f"SELECT {cols} FROM {quote_identifier(measurement)} {self.machine_where(machine, a_ns, b_ns)}"
            if group_by:
                q += f" GROUP BY {quote_identifier(group_by)}"
            statements.append(q)
        if sparse:
            return [series for answer in self.query_many(statements) for series in answer]
        return [series for q in statements for series in self.query(q)]

    def machines_in(self, measurement: str) -> set[str]:
        """Machines with any point in `measurement`, at any time (one SHOW TAG VALUES per
        source and measurement, remembered): machines outside it need no query at all."""
        if measurement not in self._tagged:
            answer = self.query(f"SHOW TAG VALUES FROM {quote_identifier(measurement)} "
                                f"WITH KEY = {quote_identifier(vocabulary.TAG_MACHINE)}")
            self._tagged[measurement] = {row[1] for series in answer for row in series.get("values", [])}
        return self._tagged[measurement]

    def power_and_counter(self, machine: str, start_s: float, end_s: float):
        series = self._select(vocabulary.METER, ["power_w", "energy_import_kwh"], machine,
                              start_s - EDGE_MARGIN_S, end_s + EDGE_MARGIN_S,
                              group_by=vocabulary.TAG_METER)
        by_meter: dict[str, list] = {}
        for s in series:
            by_meter.setdefault(s.get("tags", {}).get(vocabulary.TAG_METER, ""), []).extend(s["values"])
        empty = np.empty(0)
        if not by_meter:
            return empty, empty, empty, empty
        arrays = []
        for rows in by_meter.values():
            data = np.array([(r[0], np.nan if r[1] is None else r[1], np.nan if r[2] is None else r[2])
                             for r in rows], dtype=np.float64)
            arrays.append(data[np.argsort(data[:, 0], kind="stable")])
        first = arrays[0]
        time_s = first[:, 0] / 1e9
        if len(arrays) == 1:
            has_counter = ~np.isnan(first[:, 2])
            return time_s, first[:, 1], time_s[has_counter], first[has_counter, 2]
        power = first[:, 1].copy()
        for other in arrays[1:]:
            ok = ~np.isnan(other[:, 1])
            power += np.interp(first[:, 0], other[ok, 0], other[ok, 1], left=np.nan, right=np.nan)
        return time_s, power, empty, empty

    # -- rollups (analytics.rollup_reader.RollupSource) -----------------------------------------
    def rollup_hours(self, machine: str, first_ns: int, last_ns: int) -> list[tuple] | None:
        answer = self.query(f'SELECT "hour", "histogram", "power_max_w", "format" FROM '
                            f'{quote_identifier(vocabulary.ROLLUP)} {self.machine_where(machine, first_ns, last_ns)} '
                            f'GROUP BY {quote_identifier(vocabulary.TAG_METER)}')
        if len(answer) != 1:
            return None  # no rollups, or several meters
        # rollups of another layout count as none (their hours are read raw)
        return [tuple(r[:4]) for r in answer[0]["values"]
                if r[1] is not None and r[2] is not None and r[4] == ROLLUP_FORMAT]

    def rollup_minutes(self, machine: str, hours_ns: np.ndarray) -> tuple[list[tuple[str, str | None]], list[int]]:
        """One statement for the hours' span: InfluxDB decodes a series' strings block by
        block, so one statement per hour would decode the same block again and again. Asked
        as CSV (query_csv), and again as JSON when an hour is missing from that answer (CSV
        leaves errors out)."""
        wanted = set(hours_ns.tolist())
        statement = (f'SELECT "minutes", "detail" FROM {quote_identifier(vocabulary.ROLLUP)} '
                     f'{self.machine_where(machine, int(hours_ns.min()), int(hours_ns.max()) + HOUR_NS)}')

        def texts(answer: list[dict]) -> dict[int, tuple[str, str | None]]:
            return {int(r[0]): (r[1], r[2]) for series in answer for r in series["values"]
                    if r[1] and int(r[0]) in wanted}

        by_hour = texts(self.query_csv(statement))
        if len(by_hour) < len(wanted):
            by_hour = texts(self.query(statement))
        return [by_hour[h] for h in sorted(by_hour)], sorted(wanted - set(by_hour))

    def raw_rows(self, machine: str, ranges_ns: list[tuple[int, int]], join_gap_ns: int = 0) -> np.ndarray | None:
        """The ranges in one request (a statement each, grouped by meter)."""
        statements = [f'SELECT "power_w", "energy_import_kwh" FROM {quote_identifier(vocabulary.METER)} '
                      f'{self.machine_where(machine, a, b)} GROUP BY {quote_identifier(vocabulary.TAG_METER)}'
                      for a, b in merge_ranges(ranges_ns, join_gap_ns)]
        return raw_rows_of_series([s for answer in self.query_many(statements) for s in answer])

    def controller(self, machine: str, start_s: float, end_s: float) -> ControllerData | None:
        """Controller changes of a machine (window plus a day before), or None when the machine
        never had a controller link; controller points are changes only, so few."""
        if machine not in self.machines_in(vocabulary.CNC):
            return None
        series = self._select(vocabulary.CNC, ["execution", "mode", "program"], machine,
                              start_s - 86400.0, end_s + EDGE_MARGIN_S, sparse=True)
        rows = sorted((r for s in series for r in s["values"]), key=lambda r: r[0])
        if not rows:
            return None
        time_s = np.array([r[0] for r in rows], dtype=np.float64) / 1e9
        column = lambda i: np.array([r[i] for r in rows], dtype=object)  # noqa: E731
        return ControllerData(time_s, column(1), column(2), column(3))

    def sessions(self, start_s: float, end_s: float, lookback_s: float = 86400.0) -> list[Session]:
        """Booked sessions (the `booking` measurement) overlapping [start_s, end_s), cancelled
        ones left out (storage.bookings rules); sessions starting up to lookback_s
        before the window are included when they reach into it."""
        versions: list[BookingVersion] = []
        # bookings are few (a few hundred a week): chunks of SPARSE_CHUNK_S, one request
        statements = [(f'SELECT "end_s", "booking_id", "stored_s", "canceled" FROM '
                       f"{quote_identifier(vocabulary.BOOKING)} WHERE time >= {a_ns} AND time < {b_ns} GROUP BY "
                       f'{quote_identifier(vocabulary.TAG_MACHINE)}, {quote_identifier(vocabulary.TAG_MEMBER)}, '
                       '"source"') for a_ns, b_ns in self._chunks(start_s - lookback_s, end_s, SPARSE_CHUNK_S)]
        for series in (s for answer in self.query_many(statements) for s in answer):
            tags = series.get("tags", {})
            for t_ns, end, booking_id, stored_s, canceled in series["values"]:
                if end is None:
                    continue
                session = Session(tags.get("machine", ""), tags.get("member", ""), t_ns / 1e9,
                                  float(end), tags.get("source", ""), booking_id or "")
                versions.append(BookingVersion(session, float(stored_s or 0.0), bool(canceled)))
        return current_sessions(versions, start_s, end_s)

    def machine_data(self, site: Site, start_s: float, end_s: float) -> list[MachineData]:
        return machine_data(self, site, start_s, end_s)

    def iter_machine_data(self, site: Site, start_s: float, end_s: float,
                          names: list[str] | None = None) -> Iterator[MachineData]:
        return iter_machine_data(self, site, start_s, end_s, names)

    def close(self) -> None:
        """Nothing held between queries (one HTTP request each)."""
