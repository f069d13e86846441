"""InfluxQL: queries to InfluxDB (1.x `/query`, 2.x through its v1 compatibility API and a
DBRP mapping, 3.x), answered in JSON or CSV, and the quoting of InfluxQL text. Part of the one
InfluxDB client with storage.influxdb (writes and deletes); its errors are those of
storage.errors (influx_error_for maps an HTTP status). One kept-alive connection of the
standard library's http.client: a query costs no connection set-up after the first, and a
command that reads (analyze, report) does not import urllib3 (35 ms) before its answer.
"""

from __future__ import annotations

import base64
import csv
import http.client
import io
import json
import socket
import urllib.parse

from storage.errors import InfluxRejected, InfluxUnavailable, influx_error_for

def parse_csv_answer(text: str, where: str) -> list[dict]:
    """Series from InfluxDB's CSV answer to one statement (columns name, tags, time, fields;
    a new header row where a series' columns change; `error` and its message on failure:
    InfluxRejected). Tags come as `key=value,key=value` without escaping: only for
    statements whose GROUP BY tags hold no comma or equals sign (or that group by none)."""
    # without a double quote (base64 texts and numbers: no field is quoted) lines split on
    # commas; else the csv module, five times slower on long fields, reads quoted fields
    # (commas, quotes, newlines inside)
    if '"' in text:
        rows = csv.reader(io.StringIO(text))
    else:
        rows = (line.split(",") if line else [] for line in text.split("\n"))
    series: list[dict] = []
    columns: list[str] | None = None
    current: tuple[str, str] | None = None
    for row in rows:
        if not row:
            columns = None  # a blank line: the next row is a header
            continue
        if columns is None:
            if row == ["error"]:
                raise InfluxRejected(f"{where}: {next(rows, ['(no message)'])[0]}", status=200)
            columns = row[2:]
            current = None
            continue
        name, tags = row[0], row[1]
        if (name, tags) != current:
            current = (name, tags)
            tag_map = dict(pair.split("=", 1) for pair in tags.split(",")) if tags else {}
            series.append({"name": name, "tags": tag_map, "columns": columns, "values": []})
        values = [None if v == "" else v for v in row[2:]]
        values[0] = int(row[2])
        series[-1]["values"].append(values)
    return series


def quote_string(value: str) -> str:
    """An InfluxQL string literal (single quotes; backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    """An InfluxQL identifier (double quotes; backslash and quote escaped)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxQL:
    """InfluxQL queries to one database: InfluxDB 1.x `/query`, 2.x through its v1
    compatibility API (a DBRP mapping), 3.x. Answers in JSON or in CSV; times in ns.

    url: server base URL; database: the database (v1) or the DBRP-mapped name (2.x);
    username/password: v1 basic auth; token: InfluxDB 2.x/3.x token. One kept-alive
    connection (http.client), made in the process that queries (never share one across a fork).
    Failures: InfluxUnavailable (unreachable, 5xx), InfluxRejected (a statement refused:
    its message and the statement), InfluxAuthError, InfluxNotFound (storage.errors)."""

    def __init__(self, url: str, database: str, username: str | None = None,
                 password: str | None = None, token: str | None = None, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.headers: dict[str, str] = {"Content-Type": "application/x-www-form-urlencoded"}
        if username and password is not None:
            raw = f"{username}:{password}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        elif token:
            self.headers["Authorization"] = f"Token {token}"
        self.timeout_s = timeout_s
        self.queries = 0  # statements sent
        self.requests = 0  # HTTP requests (several statements each at most per_request)
        parts = urllib.parse.urlsplit(self.url)
        self._scheme, self._host, self._port = parts.scheme, parts.hostname or "", parts.port
        self._path = parts.path + "/query"
        self._connection: http.client.HTTPConnection | None = None  # made by the first query

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self.timeout_s)
        return self._connection

    def query(self, q: str) -> list[dict]:
        """Series of one InfluxQL statement (times in ns)."""
        return self.query_many([q])[0]

    def query_many(self, statements: list[str], per_request: int = 100) -> list[list[dict]]:
        """Series of each statement, several statements per request (InfluxQL separates them
        with semicolons and answers each on its own)."""
        out: list[list[dict]] = []
        for i in range(0, len(statements), per_request):
            chunk = statements[i:i + per_request]
            _, body = self._post(chunk, "application/json")
            out.extend(self._json_series(body, chunk))
        return out

    def query_csv(self, q: str) -> list[dict]:
        """Series of one statement answered as CSV: the same shape as `query`, with times as
        int (ns) and every other value as text (None where empty).

        InfluxDB 1.x encodes long strings in JSON about 2.5 times slower than in CSV (a week of
        one meter's rollups: 18 ms against 7 ms). But its CSV answer leaves out a statement's
        error (no such database answers nothing at all): callers use it only for data whose
        presence they can check, and ask again with `query` when rows are missing. A server
        that answers JSON anyway is read as JSON."""
        kind, body = self._post([q], "application/csv")
        if "csv" not in kind:
            return self._json_series(body, [q])[0]
        return parse_csv_answer(body.decode("utf-8"), f"{self.url} (query: {q})")

    def _post(self, statements: list[str], accept: str) -> tuple[str, bytes]:
        """(Content-Type, body) of InfluxDB's answer to these statements, in one request. A
        kept-alive connection the server closed meanwhile is opened again once."""
        data = urllib.parse.urlencode({"q": ";".join(statements), "db": self.database, "epoch": "ns"}).encode()
        self.queries += len(statements)
        self.requests += 1
        headers = dict(self.headers, Accept=accept)
        for attempt in (1, 2):
            connection = self._connect()
            try:
                connection.request("POST", self._path, body=data, headers=headers)
                response = connection.getresponse()
                body = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if attempt == 2:
                    raise InfluxUnavailable(f"{self.url}: unreachable: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                said = " ".join(str(exc).split())[:120]
                if isinstance(exc, socket.timeout):
                    reason = "unreachable: no answer within the timeout"
                elif isinstance(exc, http.client.HTTPException):  # something answers, not HTTP
                    reason = f"not an HTTP answer ({said or type(exc).__name__}): is it InfluxDB?"
                else:
                    reason = f"unreachable: {said}"
                raise InfluxUnavailable(f"{self.url}: {reason}") from exc
        if response.status >= 300:
            raise influx_error_for(response.status, body, response.headers, f"{self.url}: query refused")
        return response.headers.get("Content-Type", ""), body

    def _json_series(self, body: bytes, statements: list[str]) -> list[list[dict]]:
        """Series of each statement from a JSON answer; a statement's error raised."""
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise InfluxUnavailable(f"{self.url}: an answer that is not JSON ({exc})") from exc
        if "error" in answer:
            raise InfluxRejected(f"{self.url}: {answer['error']} (query: {statements[0]} ...)", status=200)
        by_id = {r.get("statement_id", k): r for k, r in enumerate(answer.get("results", []))}
        out = []
        for k, q in enumerate(statements):
            result = by_id.get(k, {})
            if "error" in result:
                raise InfluxRejected(f"{self.url}: {result['error']} (query: {q})", status=200)
            out.append(result.get("series", []))
        return out

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
