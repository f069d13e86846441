"""The one CSV reader (analytics/bookings/csv_reader.py): dialects, decimal commas, encodings,
problems collected with file and line."""

from __future__ import annotations

import pytest

from analytics.bookings.csv_reader import CsvError, parse_number, read_table


def test_semicolons_bom_case_and_blank_lines(tmp_path):
    path = tmp_path / "eco2mix.csv"
    path.write_bytes("\ufeff\r\nDate_Heure_UTC;Intensite_Emissions_Conso;part_enr_conso\r\n"
                     "2026-03-10T09:00:00+00:00;32,5;41\r\n\r\n2026-03-10T10:00:00+00:00;1 030,25;40\r\n"
                     .encode("utf-8"))
    table = read_table(path, ("date_heure_utc", "intensite_emissions_conso"))
    assert table.dialect.separator == ";" and table.decimal_comma and table.dialect.header_line == 2
    assert [(r.line, r["date_heure_utc"]) for r in table.rows] == [(3, "2026-03-10T09:00:00+00:00"),
                                                                  (5, "2026-03-10T10:00:00+00:00")]
    assert [parse_number(r["intensite_emissions_conso"], "intensity", table.decimal_comma)
            for r in table.rows] == [32.5, 1030.25]
    assert not table.problems
    table.problems.add(5, "intensite_emissions_conso: too high")
    with pytest.raises(CsvError) as err:
        table.problems.raise_if_any()
    assert err.value.problems == [f"{path}:5: intensite_emissions_conso: too high"]


def test_tabs_and_commas(tmp_path):
    for separator in (",", "\t"):
        path = tmp_path / "t.csv"
        path.write_text(separator.join(("time", "value")) + "\n" + separator.join(("1", "2")) + "\n")
        table = read_table(path, ("time", "value"))
        assert table.dialect.separator == separator and table.rows[0].cells == {"time": "1", "value": "2"}


def test_file_faults_are_one_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"time;value\n1;2\n3;\xe9\n")
    with pytest.raises(CsvError) as err:
        read_table(path, ("time", "value"))
    assert err.value.problems == [f"{path}:3: not UTF-8 text (byte b'\\xe9' at offset 17); save it as CSV UTF-8 "
                                  "(Excel: 'CSV UTF-8'; LibreOffice: character set Unicode (UTF-8))"]
    path.write_text("time,value,value\n1,2,3\n")
    with pytest.raises(CsvError, match=r"bad.csv:1: column\(s\) value named more than once"):
        read_table(path, ("time", "value"))
    path.write_text("temps;valeur\n1;2\n")
    with pytest.raises(CsvError, match=r"bad.csv:1: missing column\(s\) time, value in the header .*found 'temps'"):
        read_table(path, ("time", "value"))
    path.write_text("time,value\n1,2,5\n3,4,5\n")
    with pytest.raises(CsvError, match=r"bad.csv:2: 2 row\(s\) have more cells .* export with ';'"):
        read_table(path, ("time", "value"))
    path.write_text("")
    with pytest.raises(CsvError, match=r"bad.csv:1: empty file"):
        read_table(path, ("time", "value"))
    with pytest.raises(CsvError, match="cannot read"):
        read_table(tmp_path / "missing.csv", ("time",))


def test_row_problems_are_collected_with_their_line(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('time,value\n1,2\n3\n"4,5\n6,7\n')
    table = read_table(path, ("time", "value"))
    assert [r.line for r in table.rows] == [2]
    assert table.problems.listed() == [
        f"{path}:3: 1 cells, the header has 2; quote cells that contain ','",
        f"{path}:4: 1 cells, the header has 2 (the row runs to line 5: a quote (\") never closed?)"]
