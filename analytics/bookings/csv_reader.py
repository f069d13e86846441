"""The one CSV reader of the files a user hands in (sessions, power, hourly emission factors).

API::

    table = read_table(path, ("time", "machine", "power_w"))   # CsvError for the file itself
    for row in table.rows:                                     # Row(line, cells)
        try:
            value = parse_number(row["power_w"], "power_w", table.decimal_comma)
        except ValueError as exc:
            table.problems.add(row.line, str(exc))
    table.problems.raise_if_any()                              # CsvError: FILE:LINE: message

`iter_table` is the same as a generator (big power files are not held twice in memory).

What it reads:

- the header is the first non-blank line; column names are matched without case and spaces
  (``Machine`` is ``machine``), a required column missing or a column named twice is a
  CsvError at the header's line naming what was found;
- the separator is the one of ``,`` ``;`` and tab that splits the header into the required
  columns (French Excel and LibreOffice export ``;``); with ``;`` or tab, numbers may have a
  decimal comma (``1234,5``) and spaces as thousands separators (``1 234,5``, `parse_number`);
- UTF-8 with or without BOM; another encoding is one line naming the line of the first bad
  byte and how to save as UTF-8;
- a comma-separated file whose rows have decimal commas (more cells than the header, with
  digit,digit) is one line saying to export with ';';
- a row with another number of cells than the header, a quote never closed, are problems of
  their line; blank lines are skipped.

Problems are collected (up to `MAX_PROBLEMS`, the rest counted), each ``FILE:LINE: message``.
"""

from __future__ import annotations

import codecs
import csv
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAX_PROBLEMS = 100  # problems listed in one error; the rest are counted
SEPARATORS = (",", ";", "\t")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d*")
_DECIMAL_COMMA_ROW = re.compile(r"\d,\d")
_THOUSANDS = re.compile(r"(?<=\d)[ \u00a0\u202f](?=\d{3}\b)")


class CsvError(ValueError):
    """A CSV file cannot be used; ``problems`` lists each one as ``FILE:LINE: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Problems:
    """The problems of one file, each ``FILE:LINE: message``; the first MAX_PROBLEMS kept."""

    def __init__(self, path: Path, what: str = "malformed rows") -> None:
        self.path = path
        self.what = what
        self.items: list[str] = []
        self.count = 0

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(f"{self.path}:{line}: {message}")

    def __bool__(self) -> bool:
        return self.count > 0

    def listed(self) -> list[str]:
        """The problems, with a last line counting those not listed."""
        items = list(self.items)
        if self.count > len(items):
            items.append(f"{self.path}: ... and {self.count - len(items)} more {self.what}")
        return items

    def raise_if_any(self, error: type[Exception] = CsvError) -> None:
        """Raise `error(problems)` when there is any problem."""
        if self.count:
            raise error(self.listed())


@dataclass(frozen=True)
class Dialect:
    """What the header told about the file: its separator, column names (lower case) and the
    line of the header."""

    separator: str
    header: tuple[str, ...]
    header_line: int = 1

    @property
    def decimal_comma(self) -> bool:
        """Numbers may have a decimal comma (the separator is not a comma)."""
        return self.separator != ","


@dataclass(frozen=True)
class Row:
    """One data row: the line it starts on and its cells by (lower-case) column name, stripped."""

    line: int
    cells: dict[str, str]

    def __getitem__(self, column: str) -> str:
        return self.cells[column]

    def get(self, column: str, default: str = "") -> str:
        return self.cells.get(column, default)


@dataclass
class Table:
    """A CSV file read by `read_table`: its dialect, rows and the problems of its rows."""

    path: Path
    dialect: Dialect
    rows: list[Row] = field(default_factory=list)
    problems: Problems | None = None

    @property
    def decimal_comma(self) -> bool:
        return self.dialect.decimal_comma


def not_utf8(path: Path) -> CsvError:
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


def _column(name: str) -> str:
    return " ".join(name.strip().lower().split())


def _dialect(path: Path, first_line: str, line: int, required: Sequence[str]) -> Dialect:
    """The separator that splits the header line into the required columns; CsvError when none."""
    if not first_line.strip():
        raise CsvError([f"{path}:1: empty file (expected a header: {','.join(required)})"])
    found = []
    for separator in SEPARATORS:
        try:
            cells = next(csv.reader([first_line.rstrip("\r\n")], delimiter=separator), [])
        except csv.Error as exc:
            raise CsvError([f"{path}:{line}: {exc}"]) from exc
        shown = [c.strip() for c in cells]
        header = [_column(c) for c in cells]
        found.append((sum(c in header for c in required), len(header), separator, header, shown))
        if all(c in header for c in required):
            doubled = sorted({c for c in header if c and header.count(c) > 1})
            if doubled:
                raise CsvError([f"{path}:{line}: column(s) {', '.join(doubled)} named more than once in "
                                "the header; keep one of each"])
            return Dialect(separator, tuple(header), line)
    _, _, separator, header, shown = max(found)
    missing = [c for c in required if c not in header]
    raise CsvError([f"{path}:{line}: missing column(s) {', '.join(missing)} in the header "
                    f"(expected {','.join(required)}; found {', '.join(repr(h) for h in shown[:10])})"])


def iter_table(path: str | Path, required: Sequence[str],
               problems: Problems | None = None) -> Iterator[tuple[Row, Dialect]]:
    """(row, dialect) of each data row of a CSV file (see the module docstring).

    Rows with the wrong number of cells and broken quoting go to `problems` (a new collection
    when None, then raised as CsvError at the end); the file's own faults (unreadable, not
    UTF-8, header, decimal commas in a comma-separated file) raise CsvError at once.
    """
    path = Path(path)
    own = problems is None
    problems = problems if problems is not None else Problems(path)
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CsvError([f"{path}: cannot read: {exc.strerror}"]) from exc
    decimal_commas: list[int] = []
    header: tuple[str, ...] = ()
    with handle:
        try:
            skipped = 0
            first = handle.readline()
            while first and not first.strip():
                skipped += 1
                first = handle.readline()
            dialect = _dialect(path, first, skipped + 1, required)
            header = dialect.header
            handle.seek(0)
            for _ in range(skipped):
                handle.readline()
            reader = csv.reader(handle, delimiter=dialect.separator)
            next(reader)
            while True:
                start = reader.line_num + 1 + skipped  # the line the next row starts on
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    problems.add(start, csv_error_text(exc))
                    continue
                line = reader.line_num + skipped
                if not cells or all(not cell.strip() for cell in cells):
                    continue  # blank line: no data
                if len(cells) != len(header):
                    if len(cells) > len(header) and _DECIMAL_COMMA_ROW.search(dialect.separator.join(cells)):
                        decimal_commas.append(line)
                    if line > start:
                        problems.add(start, f"{len(cells)} cells, the header has {len(header)} (the row "
                                            f"runs to line {line}: a quote (\") never closed?)")
                    else:
                        problems.add(start, f"{len(cells)} cells, the header has {len(header)}; quote "
                                            f"cells that contain {dialect.separator!r}")
                    continue
                yield Row(line, dict(zip(header, (cell.strip() for cell in cells)))), dialect
        except UnicodeDecodeError:
            raise not_utf8(path) from None
        except OSError as exc:
            raise CsvError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    if decimal_commas:
        raise CsvError([f"{path}:{decimal_commas[0]}: {len(decimal_commas)} row(s) have more cells "
                        f"than the {len(header)} of the header, as decimal commas (100,5) in a "
                        "comma-separated file do; export with ';' as the separator (LibreOffice: "
                        "field delimiter ';'; Excel: 'CSV (semicolon)') or with a decimal point"])
    if own:
        problems.raise_if_any()


def read_table(path: str | Path, required: Sequence[str]) -> Table:
    """Every data row of a CSV file with the given required columns (see the module docstring).

    Raises CsvError for the file's own faults; the rows' problems are in ``table.problems``
    (add yours with ``table.problems.add(row.line, message)``, then ``raise_if_any()``).
    """
    path = Path(path)
    problems = Problems(path)
    rows: list[Row] = []
    dialect = None
    for row, dialect in iter_table(path, required, problems):
        rows.append(row)
    if dialect is None:  # no data row: the header still tells the dialect
        dialect = _header_only(path, required)
    return Table(path, dialect, rows, problems)


def _header_only(path: Path, required: Sequence[str]) -> Dialect:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        line = 0
        for line, text in enumerate(handle, 1):
            if text.strip():
                return _dialect(path, text, line, required)
    return _dialect(path, "", 1, required)


def parse_number(text: str, what: str, decimal_comma: bool = False) -> float:
    """A finite float from a cell; with `decimal_comma`, ``1234,5`` and ``1 234,5`` too.
    ValueError naming `what` otherwise."""
    cell = text
    if decimal_comma:
        cell = _THOUSANDS.sub("", cell)
        if "," in cell and _DECIMAL_COMMA.fullmatch(cell):
            cell = cell.replace(",", ".")
    try:
        value = float(cell)
    except ValueError:
        hint = " (write 1234,5 or 1234.5)" if decimal_comma and "," in text else ""
        raise ValueError(f"{what}: not a number: {text!r}{hint}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what}: not a finite number: {text!r}")
    return value


def unix_decimal_comma(text: str, decimal_comma: bool) -> str:
    """Unix seconds written with a decimal comma (``1773133220,5``) as the time parser reads them."""
    if decimal_comma and _DECIMAL_COMMA.fullmatch(text):
        return text.replace(",", ".")
    return text
