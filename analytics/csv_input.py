"""CSV files into analytics inputs, with every malformed row reported by line number.

- power: ``time,machine,power_w[,energy_import_kwh]`` (extra columns are ignored); an empty
  cell means no reading;
- hourly emission factors: ``time,kg_co2e_per_kwh``, or RTE's consumption carbon intensity
  as downloaded (open dataset ``part-enr-intensite-ges-conso-tr``: ``;``-separated,
  ``date_heure_utc`` and ``intensite_emissions_conso`` in gCO2e/kWh; other columns ignored).

Files are read by the one CSV reader (analytics.bookings.csv_reader: separators, decimal
commas, BOM and encodings, problems with file and line) and times by the one time parser
(analytics.bookings.times): ISO 8601 with an offset or ``Z`` (a time without offset is refused:
it names no instant), or Unix seconds, between 1970-01-01 and 2262-04-11 (`EARLIEST_TIME_S`,
`LATEST_TIME_S`: times are kept as 64-bit nanoseconds, numpy ``datetime64[ns]`` and the
journal's ``time_ns``). A spreadsheet's display date (``10/03/2026 09:00``) is refused in one
line for the whole file saying how to export. Values that cannot be true are refused with
their line: a power beyond `MAX_POWER_W`, a counter beyond `MAX_COUNTER_KWH`, a factor beyond
`MAX_FACTOR_KG_PER_KWH`.

Nothing is skipped silently: a reader returns the data or raises CsvError listing every
problem, each ``FILE:LINE: message``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analytics.bookings.csv_reader import (MAX_PROBLEMS, CsvError, Dialect, Problems,  # noqa: F401
                                           csv_error_text, iter_table, parse_number, unix_decimal_comma)
from analytics.bookings.times import (EARLIEST_TIME_S, LATEST_TIME_S, SPREADSHEET_DATE,  # noqa: F401
                                      check_time_s)
from analytics.bookings.times import parse_time_s as _parse_time_s

MAX_POWER_W = 1e7  # [W] 10 MW: beyond any workshop machine or site, both signs (export)
MAX_COUNTER_KWH = 1e12  # [kWh] beyond it float64 steps exceed 0.1 Wh; no register counts so far
MAX_FACTOR_KG_PER_KWH = 10.0  # [kg CO2e/kWh] no grid emits more than about 1.5


def parse_time_s(text: str) -> float:
    """Unix seconds [s] from ISO 8601 with an offset or Z, or from a number of seconds, between
    1970-01-01 and 2262-04-11; ValueError saying what is wrong otherwise."""
    return _parse_time_s(text, plausible_unix=False)


def _bounded(value: float, limit: float, text: str, what: str, unit: str) -> float:
    if abs(value) > limit:
        raise ValueError(f"{what}: {text!r} is beyond {limit:g} {unit}, more than it can be; check "
                         f"the column and its unit ({unit})")
    return value


@dataclass
class PowerSeries:
    """Readings of one machine from a power CSV, in time order."""

    power_time_s: np.ndarray
    power_w: np.ndarray
    counter_time_s: np.ndarray
    energy_import_kwh: np.ndarray


@dataclass
class _Collect:
    pt: list[float] = field(default_factory=list)
    pw: list[float] = field(default_factory=list)
    ct: list[float] = field(default_factory=list)
    ce: list[float] = field(default_factory=list)


def _time(text: str, dialect: Dialect, path: Path, line: int) -> float:
    """parse_time_s, with a decimal comma in Unix seconds where the dialect allows one.

    A spreadsheet's display date (10/03/2026 09:00) is a CsvError of one line saying how to
    export the column (every row would have it)."""
    try:
        return parse_time_s(unix_decimal_comma(text, dialect.decimal_comma))
    except ValueError as exc:
        if SPREADSHEET_DATE.match(text.strip()):
            raise CsvError([f"{path}:{line}: {exc}"]) from None
        raise


def read_power_csv(path: str | Path) -> dict[str, PowerSeries]:
    """Power [W] (and counter [kWh]) readings per machine, times [s] sorted, from
    ``time,machine,power_w[,energy_import_kwh]`` (see the module docstring for the dialects).

    Raises CsvError listing every malformed row (bad time, missing machine, a cell that is not a
    finite number, a power or counter that cannot be true, a negative counter) with its line
    number.
    """
    path = Path(path)
    problems = Problems(path)
    by_machine: dict[str, _Collect] = {}
    for row, dialect in iter_table(path, ("time", "machine", "power_w"), problems):
        line = row.line
        try:
            time_s = _time(row["time"], dialect, path, line)
        except CsvError:
            raise  # one line for the whole file
        except ValueError as exc:
            problems.add(line, f"time: {exc}")
            continue
        machine = row["machine"]
        if not machine:
            problems.add(line, "machine: empty")
            continue
        power_text = row["power_w"]
        energy_text = row.get("energy_import_kwh", "")
        comma = dialect.decimal_comma
        try:
            power = energy = None
            if power_text:
                power = _bounded(parse_number(power_text, "power_w", comma), MAX_POWER_W, power_text,
                                 "power_w", "W")
            if energy_text:
                energy = _bounded(parse_number(energy_text, "energy_import_kwh", comma), MAX_COUNTER_KWH,
                                  energy_text, "energy_import_kwh", "kWh")
        except ValueError as exc:
            problems.add(line, str(exc))
            continue
        if energy is not None and energy < 0:
            problems.add(line, f"energy_import_kwh: a counter cannot be negative: {energy_text}")
            continue
        series = by_machine.setdefault(machine, _Collect())
        if power is not None:
            series.pt.append(time_s)
            series.pw.append(power)
        if energy is not None:
            series.ct.append(time_s)
            series.ce.append(energy)
    problems.raise_if_any()
    out = {}
    for machine, s in sorted(by_machine.items()):
        pt, pw = np.array(s.pt, dtype=np.float64), np.array(s.pw, dtype=np.float64)
        ct, ce = np.array(s.ct, dtype=np.float64), np.array(s.ce, dtype=np.float64)
        po = np.argsort(pt, kind="stable")
        co = np.argsort(ct, kind="stable")
        out[machine] = PowerSeries(pt[po], pw[po], ct[co], ce[co])
    return out


RTE_TIME, RTE_INTENSITY = "date_heure_utc", "intensite_emissions_conso"
"""RTE's consumption carbon intensity CSV (docs/reference.md, "Carbon and cost"): the UTC time
and the intensity of French consumption [gCO2e/kWh]."""


def _hourly_columns(path: Path) -> tuple[str, str, float]:
    """(time column, factor column, kg per unit) of an hourly factors file, from its header:
    RTE's download when it names ``intensite_emissions_conso`` (g/kWh), else ours (kg/kWh)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    if RTE_INTENSITY in line.lower():
                        return RTE_TIME, RTE_INTENSITY, 1e-3
                    break
    except OSError:
        pass  # the CSV reader says why in its own words
    return "time", "kg_co2e_per_kwh", 1.0


def read_hourly_factors_csv(path: str | Path, left_out_lines: list[int] | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """(time_s [s], kg_co2e_per_kwh [kg CO2e/kWh]) sorted by time, from ``time,kg_co2e_per_kwh``
    or from RTE's consumption intensity file as downloaded (``date_heure_utc``,
    ``intensite_emissions_conso`` in g/kWh, converted to kg/kWh).

    In RTE's file a row with an empty intensity (an hour not published yet) has no factor: it
    is left out and its line added to `left_out_lines` when given, for the caller to say so.
    In our format an empty factor is a problem like any other."""
    path = Path(path)
    time_column, factor_column, kg_per_unit = _hourly_columns(path)
    problems = Problems(path)
    times, values = [], []
    for row, dialect in iter_table(path, (time_column, factor_column), problems):
        line = row.line
        text = row[factor_column]
        if not text and kg_per_unit != 1.0:
            if left_out_lines is not None:
                left_out_lines.append(line)
            continue
        try:
            t = _time(row[time_column], dialect, path, line)
            v = _bounded(parse_number(text, factor_column, dialect.decimal_comma),
                         MAX_FACTOR_KG_PER_KWH / kg_per_unit, text, factor_column,
                         "kg CO2e/kWh" if kg_per_unit == 1.0 else "g CO2e/kWh") * kg_per_unit
        except CsvError:
            raise  # one line for the whole file
        except ValueError as exc:
            problems.add(line, str(exc))
            continue
        if v < 0:
            problems.add(line, f"{factor_column}: must be 0 or more, got {text}")
            continue
        times.append(t)
        values.append(v)
    problems.raise_if_any()
    order = np.argsort(times, kind="stable")
    return np.array(times, dtype=np.float64)[order], np.array(values, dtype=np.float64)[order]
