"""CSV files into analytics inputs, with every malformed row reported by line number.

- power: ``time,machine,power_w[,energy_import_kwh]`` (extra columns are ignored); an empty
  cell means no reading;
- sessions: ``machine,member,start,end`` (as ``wattelier simulate`` and ``demo`` write it);
- hourly emission factors: ``time,kg_co2e_per_kwh``.

Times are ISO 8601 with an offset or ``Z`` (a time without offset is refused: it names no
instant), or Unix seconds. Nothing is skipped silently: a reader returns the data and the list
of problems, each ``FILE:LINE: message``, and the caller refuses to go on when there is any.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analytics.records import Session

MAX_PROBLEMS = 100


class CsvError(ValueError):
    """A CSV file cannot be used; ``problems`` lists each one as ``FILE:LINE: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_time_s(text: str) -> float:
    """Unix seconds from ISO 8601 with an offset or Z, or from a number of seconds."""
    text = text.strip()
    if not text:
        raise ValueError("empty time")
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"not a time: {text!r}")
        return value
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time or Unix seconds: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"time without offset: {text!r} (add Z or +01:00)")
    return moment.timestamp()


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what}: not a finite number: {text!r}")
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


class _Problems:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[str] = []
        self.count = 0

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(f"{self.path}:{line}: {message}")

    def raise_if_any(self) -> None:
        if self.count:
            items = list(self.items)
            if self.count > len(items):
                items.append(f"{self.path}: ... and {self.count - len(items)} more malformed rows")
            raise CsvError(items)


def _rows(path: Path, required: tuple[str, ...], problems: _Problems):
    """(line number, row dict) of each data row; header problems are reported at line 1."""
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise CsvError([f"{path}: cannot read: {exc.strerror}"]) from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise CsvError([f"{path}:1: empty file (expected a header: {','.join(required)})"])
        except (csv.Error, UnicodeDecodeError) as exc:
            raise CsvError([f"{path}:1: {exc}"]) from exc
        header = [h.strip().lstrip("\ufeff") for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise CsvError([f"{path}:1: missing column(s) {', '.join(missing)} in the header "
                            f"(expected {','.join(required)})"])
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                problems.add(reader.line_num, str(exc))
                continue
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line: no data
            if len(row) != len(header):
                problems.add(reader.line_num, f"{len(row)} cells, the header has {len(header)}")
                continue
            yield reader.line_num, dict(zip(header, (cell.strip() for cell in row)))


def read_power_csv(path: str | Path) -> dict[str, PowerSeries]:
    """Power (and counter) readings per machine from ``time,machine,power_w[,energy_import_kwh]``.

    Raises CsvError listing every malformed row (bad time, missing machine, a cell that is not a
    finite number, a negative counter) with its line number.
    """
    path = Path(path)
    problems = _Problems(path)
    by_machine: dict[str, _Collect] = {}
    for line, row in _rows(path, ("time", "machine", "power_w"), problems):
        try:
            time_s = parse_time_s(row["time"])
        except ValueError as exc:
            problems.add(line, f"time: {exc}")
            continue
        machine = row["machine"]
        if not machine:
            problems.add(line, "machine: empty")
            continue
        power_text = row["power_w"]
        energy_text = row.get("energy_import_kwh", "")
        try:
            power = _number(power_text, "power_w") if power_text else None
            energy = _number(energy_text, "energy_import_kwh") if energy_text else None
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


def read_sessions_csv(path: str | Path) -> list[Session]:
    """Sessions from ``machine,member,start,end`` (extra columns ignored), source "csv".

    Raises CsvError listing every malformed row (bad time, empty machine or member, an end not
    after its start).
    """
    path = Path(path)
    problems = _Problems(path)
    out = []
    for line, row in _rows(path, ("machine", "member", "start", "end"), problems):
        try:
            start = parse_time_s(row["start"])
            end = parse_time_s(row["end"])
        except ValueError as exc:
            problems.add(line, str(exc))
            continue
        if not row["machine"] or not row["member"]:
            problems.add(line, "machine and member must not be empty")
            continue
        if not end > start:
            problems.add(line, f"the session ends before it starts: {row['start']} .. {row['end']}")
            continue
        out.append(Session(row["machine"], row["member"], start, end, "csv", f"{path.name}:{line}"))
    problems.raise_if_any()
    return out


def read_hourly_factors_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(time_s, kg_co2e_per_kwh) from ``time,kg_co2e_per_kwh``, sorted by time."""
    path = Path(path)
    problems = _Problems(path)
    times, values = [], []
    for line, row in _rows(path, ("time", "kg_co2e_per_kwh"), problems):
        try:
            t = parse_time_s(row["time"])
            v = _number(row["kg_co2e_per_kwh"], "kg_co2e_per_kwh")
        except ValueError as exc:
            problems.add(line, str(exc))
            continue
        if v < 0:
            problems.add(line, f"kg_co2e_per_kwh: must be 0 or more, got {v}")
            continue
        times.append(t)
        values.append(v)
    problems.raise_if_any()
    order = np.argsort(times, kind="stable")
    return np.array(times, dtype=np.float64)[order], np.array(values, dtype=np.float64)[order]
