"""Booking intake: one module per source, one time parser and one CSV reader between them.

- `csv_sessions`: sessions CSV files (``machine,member,start,end``; French spreadsheets too);
- `ical`: iCalendar files, read with `icalendar` and expanded with `recurring-ical-events`;
- `fabmanager`: the Fab-manager Open API, read incrementally;
- `times`: the one reader of times (ISO 8601, Unix seconds, day-first local dates);
- `csv_reader`: the one CSV reader (dialects, decimal commas, encodings, problems by line);
- `names`: machines and members by the names bookings give them;
- `report`: `SessionsError` and `ImportReport`.

A session is a member holding a machine for a time window (docs/design.md, "Sessions";
`analytics.records.Session`). Readers only parse: they return `Session` records or raise
`SessionsError`, whose `problems` each say where (file and line, or page and reservation),
what is wrong and what to do. Nothing is skipped silently: what is left out on purpose (a
cancelled booking, a machine the site does not know) is in an `ImportReport`.
Times are float Unix seconds (UTC) kept to the millisecond.
"""
