"""The InfluxDB adapter: the only module that imports influxdb-client and urllib3. With
storage.influxql (InfluxQL queries, which borrows its HTTP error mapping), the one InfluxDB
client of the project: writes, deletes and queries, one error tree (storage.errors).

Two write paths for line protocol (docs/design.md, "Line protocol in, InfluxQL out"):
- ``v2``: the `/api/v2/write` API through influxdb-client (InfluxDB 2.x, 3.x, 1.8+, and
  VictoriaMetrics), gzip-compressed by the client;
- ``v1``: the `/write` endpoint of InfluxDB 1.x, gzip-compressed here (Content-Encoding: gzip)
  unless the server is on this machine (InfluxSettings.compressed).
``auto`` picks one from the `X-Influxdb-Version` header of `/ping` (1.x -> v1, else v2).
influxdb-client is imported on the first v2 write only: importing it takes about 0.2 s, which
every `wattelier analyze` writing to InfluxDB 1.x would otherwise pay for nothing.

Every failure becomes one of our errors (storage.errors):
- `InfluxUnavailable` (network error, timeout, 5xx, 429, 408): retry later, with
  `retry_after_s` from the Retry-After header when the server sent one;
- `InfluxRejected` (400, 422): the server refused some lines of the batch for good;
- `InfluxTooLarge` (413): send it in smaller batches;
- `InfluxAuthError` (401, 403) and `InfluxNotFound` (404: no such database or bucket).

Stopping: `abort()`, called from any thread, cuts every request in flight at once (the socket
of each open connection, ours and influxdb-client's, is shut down): the blocked request raises
`InfluxUnavailable` in its thread instead of waiting for `timeout_s` (a black-holed server
accepts the connection and never answers). A connection still being opened is not cut; it
ends within its connect timeout, min(5 s, timeout_s).

Secrets: the token (or password) travels in the Authorization header only, which nothing
logs; settings refuse a URL carrying a secret (storage.influx_config.check_url), and every
error message is scrubbed of the token in case a server echoes it back.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import socket
import threading
import urllib.parse

import urllib3

from storage.errors import InfluxError, InfluxRejected, InfluxUnavailable
from storage.errors import influx_error_for as _error_for
from storage.errors import parse_retry_after  # noqa: F401 (re-exported: the forwarder's backoff)
from storage.influx_config import InfluxSettings  # noqa: F401 (re-exported: the adapter's settings)

log = logging.getLogger("wattelier.collector.influx")

_POOL_PREFIX = re.compile(r"^\w*Connection(?:Pool)?\(host=[^)]*\): ")


def _reason(exc: BaseException) -> str:
    """A network error's text without urllib3's `HTTPConnectionPool(host=..., port=...): ` (the
    message names the URL already)."""
    text = str(exc)
    while (cut := _POOL_PREFIX.sub("", text)) != text:
        text = cut
    return text or type(exc).__name__


class _OpenSockets:
    """The sockets of a pool's open connections, so that a stop can cut the requests in flight
    on them from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set = set()

    def add(self, sock) -> None:
        with self._lock:
            self._sockets.add(sock)

    def discard(self, sock) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def abort(self) -> int:
        """Shut every socket down (a blocked read or write returns at once); return how many."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP socket, under TLS too
            except (OSError, TypeError):
                pass  # already closed, or not a plain socket
        return len(sockets)


def _tracking_pool(pool_cls: type, sockets: _OpenSockets) -> type:
    """A subclass of a urllib3 connection pool class whose connections register their socket."""

    class TrackedConnection(pool_cls.ConnectionCls):
        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

        def close(self) -> None:
            sockets.discard(self.sock)
            super().close()

    return type(f"Tracked{pool_cls.__name__}", (pool_cls,), {"ConnectionCls": TrackedConnection})


def _track_sockets(manager, sockets: _OpenSockets) -> None:
    """Make a urllib3 PoolManager's future connections register their sockets in `sockets`."""
    classes = getattr(manager, "pool_classes_by_scheme", None)
    if isinstance(classes, dict):
        manager.pool_classes_by_scheme = {scheme: _tracking_pool(cls, sockets)
                                          for scheme, cls in classes.items()}


class InfluxTarget:
    """A connection to one InfluxDB (or compatible) server for writes and small queries."""

    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        self._http = urllib3.PoolManager(
            num_pools=2, maxsize=2, retries=False,
            cert_reqs="CERT_REQUIRED" if settings.verify_tls else "CERT_NONE",
            timeout=urllib3.Timeout(connect=min(5.0, settings.timeout_s), read=settings.timeout_s))
        self._sockets = _OpenSockets()
        _track_sockets(self._http, self._sockets)
        self.api = settings.api
        self._client = None  # an influxdb_client.InfluxDBClient once v2 is used
        self._write_api = None
        token = settings.token or ""
        basic = base64.b64encode(f"{settings.username}:{token}".encode()).decode() if settings.username else ""
        # A token under 4 characters is blanked nowhere: it would garble every message.
        self._secrets = [secret for secret in (token, basic) if len(token) >= 4 and secret]

    def _scrub(self, error: InfluxError) -> InfluxError:
        """The error with the token (and the v1 basic-auth form of it) blanked out of its text,
        should a server or a library echo it."""
        text = str(error)
        if any(secret in text for secret in self._secrets):
            for secret in self._secrets:
                text = text.replace(secret, "***")
            error.args = (text, *error.args[1:])
        return error

    def abort(self) -> int:
        """Cut every request in flight now (safe from any thread); return the sockets shut."""
        return self._sockets.abort()

    # -- plumbing --------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        s = self.settings
        headers: dict[str, str] = {}
        if s.token and s.username:
            headers.update(urllib3.make_headers(basic_auth=f"{s.username}:{s.token}"))
        elif s.token:
            headers["Authorization"] = f"Token {s.token}"
        return headers

    def _request(self, method: str, path: str, doing: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, fields: dict | None = None):
        url = self.settings.url.rstrip("/") + path
        if fields:
            url += "?" + urllib.parse.urlencode(fields)
        try:
            response = self._http.request(method, url, body=body,
                                          headers={**self._headers(), **(headers or {})},
                                          preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise self._scrub(InfluxUnavailable(f"{doing}: {self.settings.url} unreachable: {_reason(exc)}")) from exc
        if response.status >= 300:
            raise self._scrub(_error_for(response.status, response.data, response.headers, doing))
        return response

    # -- discovery -------------------------------------------------------------------------
    def ping(self) -> str | None:
        """The server's version from /ping (None when it does not say)."""
        response = self._request("GET", "/ping", "ping")
        return response.headers.get("X-Influxdb-Version")

    def resolve_api(self) -> str:
        """Settle `auto` into v1 or v2 from /ping; return the API used."""
        if self.api == "auto":
            version = self.ping()
            self.api = "v1" if version and version.lstrip("v").startswith("1.") else "v2"
            log.info("InfluxDB at %s reports version %s: writing with the %s API",
                     self.settings.url, version or "(none)", self.api)
        return self.api

    @property
    def target_key(self) -> str:
        return self.settings.target_key(self.resolve_api())

    def query_v1(self, query: str, database: str | None = None) -> list[dict]:
        """Run InfluxQL through /query (v1 API): one statement, or several separated by
        semicolons (an error in any raises); return the first one's series."""
        fields = {"q": query, "epoch": "ns"}
        if database:
            fields["db"] = database
        response = self._request("POST", "/query", "query", body=urllib.parse.urlencode(fields).encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        results = json.loads(response.data)["results"]  # one per statement
        errors = [r["error"] for r in results if "error" in r]
        if errors:  # the failing statement's, rather than "not executed" of the others
            message = next((e for e in errors if e != "not executed"), errors[0])
            raise InfluxRejected(f"query {query!r}: {message}", status=200)
        return results[0].get("series", [])

    def ensure_database(self) -> bool:
        """v1: create the database when missing; return True when it was created."""
        if self.resolve_api() != "v1":
            return False
        name = self.settings.database
        series = self.query_v1("SHOW DATABASES")
        existing = {row[0] for s in series for row in s.get("values", [])}
        if name in existing:
            return False
        self.query_v1(f'CREATE DATABASE "{name}"')
        log.warning("InfluxDB database %r did not exist at %s: created it", name, self.settings.url)
        return True

    def delete_window(self, measurements: list[str], site: str, start_ns: int, end_ns: int) -> None:
        """Delete the points of `measurements` tagged `site` in [start_ns, end_ns) (results about
        to be recomputed). v1: InfluxQL DELETE; v2: the /api/v2/delete API."""
        if self.resolve_api() == "v1":
            quoted_site = "'" + site.replace("\\", "\\\\").replace("'", "\\'") + "'"
            statements = []
            for m in measurements:
                name = '"' + m.replace('"', '\\"') + '"'
                statements.append(f'DELETE FROM {name} WHERE "site" = {quoted_site} AND time >= {start_ns} '
                                  f"AND time < {end_ns}")
            self.query_v1("; ".join(statements), self.settings.database)  # one request
            return
        import datetime as dt

        from influxdb_client.rest import ApiException

        start = dt.datetime.fromtimestamp(start_ns / 1e9, dt.timezone.utc)
        stop = dt.datetime.fromtimestamp(end_ns / 1e9, dt.timezone.utc)
        self._v2_api()
        delete_api = self._client.delete_api()
        site_literal = site.replace('"', '\\"')
        for m in measurements:
            try:
                delete_api.delete(start, stop, f'_measurement="{m}" AND site="{site_literal}"',
                                  bucket=self.settings.bucket, org=self.settings.org)
            except ApiException as exc:
                raise self._scrub(_error_for(exc.status or 0, exc.body, exc.headers, "delete")) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise self._scrub(InfluxUnavailable(f"delete: {self.settings.url} unreachable: "
                                                    f"{_reason(exc)}")) from exc

    # -- writing ---------------------------------------------------------------------------
    def encode(self, lines: list[str]) -> bytes:
        """The request body for lines: gzip-compressed for v1 (InfluxSettings.compressed: not
        over loopback); plain for v2, where influxdb-client compresses. Callers may prepare it
        ahead of `write_body`."""
        data = ("\n".join(lines) + "\n").encode("utf-8")
        if self.resolve_api() == "v1" and self.settings.compressed:
            return gzip.compress(data, compresslevel=self.settings.gzip_level)
        return data

    def write_lines(self, lines: list[str]) -> None:
        """Write line protocol lines (nanosecond times); raise an InfluxError on failure."""
        if lines:
            self.write_body(self.encode(lines))

    def write_body(self, body: bytes) -> None:
        """Write a body made by `encode`; raise an InfluxError on failure."""
        if self.resolve_api() == "v1":
            self._write_v1(body)
        else:
            self._write_v2(body)

    def _write_v1(self, body: bytes) -> None:
        s = self.settings
        fields = {"db": s.database, "precision": "ns"}
        if s.retention_policy:
            fields["rp"] = s.retention_policy
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if s.compressed:
            headers["Content-Encoding"] = "gzip"
        self._request("POST", "/write", "write", body=body, headers=headers, fields=fields)

    def _v2_api(self):
        if self._write_api is None:
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS

            s = self.settings
            self._client = InfluxDBClient(url=s.url, token=s.token or "", org=s.org,
                                          timeout=int(s.timeout_s * 1000), enable_gzip=s.compressed,
                                          verify_ssl=s.verify_tls)
            rest = getattr(getattr(self._client, "api_client", None), "rest_client", None)
            _track_sockets(getattr(rest, "pool_manager", None), self._sockets)
            self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        return self._write_api

    def _write_v2(self, data: bytes) -> None:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        s = self.settings
        try:
            self._v2_api().write(bucket=s.bucket, org=s.org, record=data,
                                 write_precision=WritePrecision.NS)
        except ApiException as exc:
            if exc.status == 0 or exc.status is None:
                raise self._scrub(InfluxUnavailable(f"write: {s.url} unreachable: {exc.reason}")) from exc
            raise self._scrub(_error_for(exc.status, exc.body, exc.headers, "write")) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._scrub(InfluxUnavailable(f"write: {s.url} unreachable: {_reason(exc)}")) from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._write_api = None
        self._http.clear()

