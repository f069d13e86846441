"""CSV files into analytics inputs, with every malformed row reported by line number.

- power: ``time,machine,power_w[,energy_import_kwh]`` (extra columns are ignored); an empty
  cell means no reading;
- sessions: ``machine,member,start,end`` (as ``wattelier simulate`` and ``demo`` write it);
- hourly emission factors: ``time,kg_co2e_per_kwh``.

Times are ISO 8601 with an offset or ``Z`` (a time without offset is refused: it names no
instant), or Unix seconds, between 1970-01-01 and 2262-04-11 (`EARLIEST_TIME_S`,
`LATEST_TIME_S`: times are kept as 64-bit nanoseconds, numpy ``datetime64[ns]`` and the
journal's ``time_ns``). Values that cannot be true are refused with their line: a power beyond
`MAX_POWER_W`, a counter beyond `MAX_COUNTER_KWH`, a factor beyond `MAX_FACTOR_KG_PER_KWH`.

Dialects: UTF-8 with or without BOM; the separator is the one of ``,`` ``;`` and tab that
splits the header into the expected columns. With ``;`` or tab (how French Excel and
LibreOffice export), numbers may have a decimal comma (``1234,5``) and spaces as thousands
separators (``1 234,5``). A comma-separated file whose rows have decimal commas, a file that is
not UTF-8 and times in a spreadsheet's display format (``10/03/2026 09:00``) are each refused
in one line that says how to export instead.

Nothing is skipped silently: a reader returns the data and the list of problems, each
``FILE:LINE: message``, and the caller refuses to go on when there is any.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analytics.records import Session

MAX_PROBLEMS = 100
EARLIEST_TIME_S = 0.0  # 1970-01-01T00:00:00Z [s]
LATEST_TIME_S = 9_223_372_036.0  # 2262-04-11T23:47:16Z [s]: the last whole second of int64 ns
MAX_POWER_W = 1e7  # [W] 10 MW: beyond any workshop machine or site, both signs (export)
MAX_COUNTER_KWH = 1e12  # [kWh] beyond it float64 steps exceed 0.1 Wh; no register counts so far
MAX_FACTOR_KG_PER_KWH = 10.0  # [kg CO2e/kWh] no grid emits more than about 1.5
SEPARATORS = (",", ";", "\t")
_SPREADSHEET_DATE = re.compile(r"\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d*")
_DECIMAL_COMMA_ROW = re.compile(r"\d,\d")
_THOUSANDS = re.compile(r"(?<=\d)[ \u00a0\u202f](?=\d{3}\b)")


class CsvError(ValueError):
    """A CSV file cannot be used; ``problems`` lists each one as ``FILE:LINE: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def check_time_s(value: float, text: str) -> float:
    """`value` [s] when it is a time the analysis can hold (`EARLIEST_TIME_S` ..
    `LATEST_TIME_S`); ValueError naming `text` and what to check otherwise."""
    if EARLIEST_TIME_S <= value <= LATEST_TIME_S:
        return value
    hint = " (it looks like milliseconds: divide by 1000)" if (
        EARLIEST_TIME_S * 1000 < value <= LATEST_TIME_S * 1000 and _is_number(text)) else ""
    raise ValueError(f"{text!r} is outside 1970-01-01 .. 2262-04-11, the times the analysis and the "
                     f"journal can hold (64-bit nanoseconds); check the year{hint}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_time_s(text: str) -> float:
    """Unix seconds [s] from ISO 8601 with an offset or Z, or from a number of seconds, between
    1970-01-01 and 2262-04-11; ValueError saying what is wrong otherwise."""
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
        return check_time_s(value, text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time or Unix seconds: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"time without offset: {text!r} (add Z or +01:00)")
    try:
        value = moment.timestamp()
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        value = -math.inf
    return check_time_s(value, text)


def _number(text: str, what: str, decimal_comma: bool = False) -> float:
    """A finite float from a cell; with `decimal_comma`, ``1234,5`` and ``1 234,5`` too."""
    cell = text
    if decimal_comma:
        cell = _THOUSANDS.sub("", cell)
        if "," in cell and _DECIMAL_COMMA.fullmatch(cell):
            cell = cell.replace(",", ".")
    try:
        value = float(cell)
    except ValueError:
        hint = " (write 1234,5 or 1234.5)" if (
            decimal_comma and "," in text) else ""
        raise ValueError(f"{what}: not a number: {text!r}{hint}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what}: not a finite number: {text!r}")
    return value


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


@dataclass
class _Dialect:
    """What the header told about the file: its separator and column names."""

    separator: str
    header: list[str]

    @property
    def decimal_comma(self) -> bool:
        """Numbers may have a decimal comma (the separator is not a comma)."""
        return self.separator != ","


def _not_utf8(path: Path) -> CsvError:
    """The one-line error of a file that is not UTF-8, with the line of its first bad byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # the decoder may hold up to 3 bytes of an earlier chunk: count lines before it
                start = max(0, exc.start - len(exc.object) + len(chunk))
                line += chunk.count(b"\n", 0, start)
                return CsvError([f"{path}:{line}: not UTF-8 text (byte {chunk[start:start + 1]!r} at "
                                 f"offset {offset + start}); save it as CSV UTF-8 (Excel: 'CSV UTF-8'; "
                                 "LibreOffice: character set Unicode (UTF-8))"])
            line += chunk.count(b"\n")
            offset += len(chunk)
    return CsvError([f"{path}: not UTF-8 text at its end; save it as CSV UTF-8"])


def csv_error_text(exc: csv.Error) -> str:
    """What a csv.Error means, and what to do when it is a cell beyond the csv module's limit
    (a quote opened and never closed reads the rest of the file into one cell)."""
    if "field larger than field limit" in str(exc):
        return (f"a cell runs over {csv.field_size_limit()} characters from this line: a quote (\") "
                "opened and never closed? close it, or remove it")
    return str(exc)


def _dialect(path: Path, first_line: str, required: tuple[str, ...]) -> _Dialect:
    """The separator that splits the header line into the required columns; CsvError when none."""
    if not first_line.strip():
        raise CsvError([f"{path}:1: empty file (expected a header: {','.join(required)})"])
    found = []
    for separator in SEPARATORS:
        try:
            cells = next(csv.reader([first_line], delimiter=separator), [])
        except csv.Error as exc:
            raise CsvError([f"{path}:1: {exc}"]) from exc
        header = [h.strip() for h in cells]
        found.append((sum(c in header for c in required), len(header), separator, header))
        if all(c in header for c in required):
            return _Dialect(separator, header)
    _, _, separator, header = max(found)
    missing = [c for c in required if c not in header]
    raise CsvError([f"{path}:1: missing column(s) {', '.join(missing)} in the header "
                    f"(expected {','.join(required)}; found {', '.join(repr(h) for h in header[:10])})"])


def _rows(path: Path, required: tuple[str, ...], problems: _Problems):
    """(line number, row dict, dialect) of each data row; header problems are raised at line 1.

    A CsvError of one line when the file is not UTF-8 or is comma-separated with decimal
    commas (rows with more cells than the header that hold digit,digit)."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CsvError([f"{path}: cannot read: {exc.strerror}"]) from exc
    with handle:
        try:
            dialect = _dialect(path, handle.readline(), required)
            handle.seek(0)
            reader = csv.reader(handle, delimiter=dialect.separator)
            next(reader)
            header = dialect.header
            decimal_commas: list[int] = []
            while True:
                first = reader.line_num + 1  # the line the next row starts on
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    problems.add(first, csv_error_text(exc))
                    continue
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank line: no data
                if len(row) != len(header):
                    if len(row) > len(header) and _DECIMAL_COMMA_ROW.search(dialect.separator.join(row)):
                        decimal_commas.append(reader.line_num)
                    through = (f" (the row runs to line {reader.line_num}: a quote (\") never closed?)"
                               if reader.line_num > first else "")
                    problems.add(first, f"{len(row)} cells, the header has {len(header)}{through}")
                    continue
                yield reader.line_num, dict(zip(header, (cell.strip() for cell in row))), dialect
        except UnicodeDecodeError:
            raise _not_utf8(path) from None
        except OSError as exc:
            raise CsvError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    if decimal_commas:
        raise CsvError([f"{path}:{decimal_commas[0]}: {len(decimal_commas)} row(s) have more cells "
                        f"than the {len(header)} of the header, as decimal commas (100,5) in a "
                        "comma-separated file do; export with ';' as the separator (LibreOffice: "
                        "field delimiter ';'; Excel: 'CSV (semicolon)') or with a decimal point"])


def _time(text: str, dialect: _Dialect, path: Path, line: int) -> float:
    """parse_time_s, with a decimal comma in Unix seconds where the dialect allows one.

    A spreadsheet's display date (10/03/2026 09:00) is a CsvError of one line saying how to
    export the column (every row would have it)."""
    if dialect.decimal_comma and _DECIMAL_COMMA.fullmatch(text):
        text = text.replace(",", ".")
    try:
        return parse_time_s(text)
    except ValueError:
        if _SPREADSHEET_DATE.match(text):
            raise CsvError([f"{path}:{line}: time {text!r} is in a spreadsheet's display format; "
                            "format the column as YYYY-MM-DDTHH:MM:SS with the UTC offset (+01:00, "
                            "or Z for UTC), or as Unix seconds, before exporting"]) from None
        raise


def read_power_csv(path: str | Path) -> dict[str, PowerSeries]:
    """Power [W] (and counter [kWh]) readings per machine, times [s] sorted, from
    ``time,machine,power_w[,energy_import_kwh]`` (see the module docstring for the dialects).

    Raises CsvError listing every malformed row (bad time, missing machine, a cell that is not a
    finite number, a power or counter that cannot be true, a negative counter) with its line
    number.
    """
    path = Path(path)
    problems = _Problems(path)
    by_machine: dict[str, _Collect] = {}
    for line, row, dialect in _rows(path, ("time", "machine", "power_w"), problems):
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
                power = _bounded(_number(power_text, "power_w", comma), MAX_POWER_W, power_text,
                                 "power_w", "W")
            if energy_text:
                energy = _bounded(_number(energy_text, "energy_import_kwh", comma), MAX_COUNTER_KWH,
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


def read_sessions_csv(path: str | Path) -> list[Session]:
    """Sessions from ``machine,member,start,end`` (extra columns ignored), source "csv".

    Raises CsvError listing every malformed row (bad time, empty machine or member, an end not
    after its start).
    """
    path = Path(path)
    problems = _Problems(path)
    out = []
    for line, row, dialect in _rows(path, ("machine", "member", "start", "end"), problems):
        try:
            start = _time(row["start"], dialect, path, line)
            end = _time(row["end"], dialect, path, line)
        except CsvError:
            raise  # one line for the whole file
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
    """(time_s [s], kg_co2e_per_kwh [kg CO2e/kWh]) from ``time,kg_co2e_per_kwh``, sorted by time."""
    path = Path(path)
    problems = _Problems(path)
    times, values = [], []
    for line, row, dialect in _rows(path, ("time", "kg_co2e_per_kwh"), problems):
        text = row["kg_co2e_per_kwh"]
        try:
            t = _time(row["time"], dialect, path, line)
            v = _bounded(_number(text, "kg_co2e_per_kwh", dialect.decimal_comma),
                         MAX_FACTOR_KG_PER_KWH, text, "kg_co2e_per_kwh", "kg CO2e/kWh")
        except CsvError:
            raise  # one line for the whole file
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
