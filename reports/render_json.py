"""``report.json``: the report model as JSON (reports.model.Report.to_json), indented, keys
sorted, so that the same report is the same bytes (a re-run differs only in the manifest's
queried_at and generated_at). NaN and infinities, which the model never holds, would be null."""

from __future__ import annotations

from pathlib import Path

import orjson

from reports.model import Report


def report_json_bytes(report: Report) -> bytes:
    """The report as UTF-8 JSON bytes: two-space indents, sorted keys, a final newline."""
    return orjson.dumps(report.to_json(),
                        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def write_json(report: Report, path: str | Path) -> Path:
    """Write the report to `path` (replaced in one step: never half written); return the path."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(report_json_bytes(report))
    partial.replace(path)
    return path
