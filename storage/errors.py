"""wattelier's own storage errors. The storage adapters (SQLite for the journal, HTTP for
InfluxDB) turn their libraries' exceptions into these; every message is one line for the user.

    StorageError
    ├── JournalError (storage.journal_schema)   the journal file cannot be used as it is
    ├── HttpUnreachable (storage.http_client)   an HTTP API (Fab-manager, Grafana) gave no answer
    └── InfluxError                             writing to or querying InfluxDB failed
        ├── InfluxUnavailable     unreachable, timeout, 5xx, 429: retry later
        ├── InfluxRejected        400/422: some lines (or a query) refused for good
        ├── InfluxTooLarge        413: smaller batches
        ├── InfluxAuthError       401/403
        └── InfluxNotFound        404: no such database or bucket
"""

from __future__ import annotations


class StorageError(Exception):
    """Root of wattelier storage errors."""


class InfluxError(StorageError):
    """Writing to or querying InfluxDB failed."""

    kind = "influx"


class InfluxUnavailable(InfluxError):
    """Unreachable, timed out, 5xx, 429 or 408: try again later (after `retry_after_s` if set)."""

    kind = "influx_unavailable"

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InfluxRejected(InfluxError):
    """The server refused lines of the batch for good (400, 422): they need isolating."""

    kind = "influx_rejected"

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class InfluxTooLarge(InfluxError):
    """413: the request body is over the server's limit; send smaller batches."""

    kind = "influx_too_large"


class InfluxAuthError(InfluxError):
    """401 or 403: the token, user or password is wrong or lacks the write permission."""

    kind = "influx_auth"


class InfluxNotFound(InfluxError):
    """404: no such database or bucket (or not an InfluxDB endpoint)."""

    kind = "influx_not_found"
