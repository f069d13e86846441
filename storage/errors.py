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

import email.utils
import json
import time


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


RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date, RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now_s if now_s is not None else time.time()))


def influx_error_for(status: int, body: bytes | str | None, headers, doing: str) -> InfluxError:
    """The InfluxError an HTTP status means (with the server's message; Retry-After read for
    the retryable ones); `doing` names what failed ("write", "query")."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        parsed = json.loads(text)
        text = parsed.get("error") or parsed.get("message") or text
    except (ValueError, AttributeError):
        pass
    text = text.strip()[:2000]
    message = f"{doing}: HTTP {status}: {text}" if text else f"{doing}: HTTP {status}"
    if status in RETRYABLE_STATUS:
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        return InfluxUnavailable(message, retry_after_s=retry_after)
    if status in (400, 422):
        return InfluxRejected(message, status=status)
    if status == 413:
        return InfluxTooLarge(message)
    if status in (401, 403):
        return InfluxAuthError(message)
    if status == 404:
        return InfluxNotFound(message)
    return InfluxUnavailable(message)
