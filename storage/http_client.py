"""The small HTTP adapter for the JSON APIs wattelier talks to, other than InfluxDB (which has
its own client, storage.influxdb): the only module outside it that imports an HTTP client
library (urllib.request, from the standard library).

Callers: analytics.bookings.fabmanager (GET pages of Fab-manager's Open API) and
dashboards.push (POST dashboards to Grafana's HTTP API). They turn an `HttpAnswer` or an
`HttpUnreachable` into their own messages.

- Every HTTP status comes back as an `HttpAnswer` (4xx, 5xx and 3xx too: no exception).
- Redirects are not followed unless asked (`follow_redirects`): the Authorization header
  would follow them, so a token would leave for whatever address the server names.
- A network failure (DNS, refused, TLS, timeout, a connection that breaks while the answer
  or its body is read) raises `HttpUnreachable`, with one line saying why.
- http and https only; proxies from the environment (http_proxy, https_proxy, no_proxy) are
  used, as urllib does by default.
"""

from __future__ import annotations

import email.message
import http.client
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from storage.errors import StorageError


@dataclass(frozen=True)
class HttpAnswer:
    """What the server answered: status code, reason phrase, headers (`.get` is
    case-insensitive and gives the first of repeated headers) and the whole body."""

    status: int
    reason: str
    headers: email.message.Message
    body: bytes

    @property
    def ok(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status < 300


class HttpUnreachable(StorageError):
    """No HTTP answer: the server could not be reached, or the connection broke or went quiet.

    reason: one line saying why (the network library's own words, e.g. "[Errno 111]
    Connection refused", "timed out").
    timed_out: no answer (or no more of it) within the timeout.
    connected: False when the failure came before the request was sent (address, DNS,
    refused, TLS handshake, sending); True when the request was sent and the answer then
    did not come, or broke off while its headers or body were read.
    """

    def __init__(self, reason: str, *, timed_out: bool, connected: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timed_out = timed_out
        self.connected = connected


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answers: the 3xx comes back to the caller, the token stays here."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


def _one_line(cause: object) -> str:
    text = str(cause) or type(cause).__name__
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def _unreachable(cause: object, *, connected: bool) -> HttpUnreachable:
    return HttpUnreachable(_one_line(cause), timed_out=isinstance(cause, TimeoutError), connected=connected)


def _opener(follow_redirects: bool, tls_context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    """urllib's default opener for http and https only (other schemes: "unknown url type")."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(),
                    urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(context=tls_context),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor(),
                    urllib.request.HTTPRedirectHandler() if follow_redirects else _NoRedirect()):
        opener.add_handler(handler)
    return opener


def request(method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None,
            timeout_s: float, follow_redirects: bool = False,
            tls_context: ssl.SSLContext | None = None) -> HttpAnswer:
    """Send one request and read the whole answer, whatever its status.

    timeout_s: for connecting and for each wait on the server (not the whole exchange).
    tls_context: TLS settings for https (None: the default, which verifies the certificate
    against the system's authorities).
    Raises HttpUnreachable when no complete answer comes (see the class); ValueError for a
    URL urllib cannot parse.
    """
    prepared = urllib.request.Request(url, data=body, headers=dict(headers), method=method)
    try:
        response = _opener(follow_redirects, tls_context).open(prepared, timeout=timeout_s)
    except urllib.error.HTTPError as exc:  # a status urllib calls an error: an answer all the same
        response = exc
    except urllib.error.URLError as exc:  # before the request was sent
        raise _unreachable(exc.reason, connected=False) from exc
    except (OSError, http.client.HTTPException) as exc:  # waiting for the status line and headers
        raise _unreachable(exc, connected=True) from exc
    try:
        try:
            data = response.read()
        finally:
            response.close()
    except (OSError, http.client.HTTPException) as exc:  # the body broke off (or went quiet)
        raise _unreachable(exc, connected=True) from exc
    return HttpAnswer(response.status, str(response.reason or ""), response.headers, data)
