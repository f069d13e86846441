"""A FAKE Fab-manager Open API for the tests and the benchmark (Fab-manager itself cannot run
here: Rails, PostgreSQL, Redis, Elasticsearch).

`GET /open_api/v1/reservations` as the real controller answers it (see
tests/data/fabmanager/README.md for the sources): the reservations ordered by `created_at`,
newest first; `after` keeps those created at or after a time (`created_at >= after`, as
reservations_filters_concern.rb); `page` and `per_page` (20 by default) cut the list as
kaminari does; the `Authorization: Token token=...` header checked (401
`{"errors": ["Bad credentials"]}` otherwise); pagination headers as api-pagination writes
them (`Link`, `Total`, `Per-Page`); an empty list after the last page.

The list is the recorded answers in tests/data/fabmanager (`pages`, which tests may change or
add to) and any reservations given or added (`add`), newest first whatever the order given.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devices.sim.ports import free_port

DATA = Path(__file__).parent / "data" / "fabmanager"
TOKEN = "fm-open-api-token-0123456789"


def created_s(reservation: dict) -> float:
    """A reservation's `created_at` [Unix s] (0 when it has none: listed last)."""
    text = reservation.get("created_at")
    return dt.datetime.fromisoformat(text).timestamp() if isinstance(text, str) else 0.0


class FakeFabmanager:
    """The fake server on a free loopback port (`url`); `requests` records (path, query,
    Authorization header) of each request.

    link: send the Link header (False: the client must stop on a short or empty page).
    fail_page: answer that page with HTTP 500.
    recorded: serve the recorded pages of tests/data/fabmanager (False: only `reservations`).
    honour_after: filter on `after` (False: a server that ignores it and lists everything).
    """

    def __init__(self, token: str = TOKEN, link: bool = True, fail_page: int | None = None, *,
                 recorded: bool = True, reservations: list[dict] | None = None,
                 honour_after: bool = True) -> None:
        self.token = token
        self.link = link
        self.fail_page = fail_page
        self.honour_after = honour_after
        self.pages: dict[int, dict] = {n: json.loads((DATA / f"reservations_page{n}.json").read_text(encoding="utf-8"))
                                       for n in (1, 2, 3)} if recorded else {}
        self.extra: list[dict] = list(reservations or [])
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        self._order_key: tuple | None = None
        self._ordered: list[dict] = []
        self._negated: list[float] = []  # -created_s of _ordered: ascending, for bisect
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                fake._answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def add(self, *reservations: dict) -> None:
        """Reservations created in Fab-manager since (listed by their created_at)."""
        self.extra.extend(reservations)

    def reservation(self, rid: int) -> dict:
        """The served reservation with this id (to change its slots in place)."""
        return next(r for r in self._everything() if r["id"] == rid)

    def _everything(self) -> list[dict]:
        return [r for n in sorted(self.pages) for r in self.pages[n]["reservations"]] + self.extra

    def listed(self) -> tuple[list[dict], list[float]]:
        """Every reservation, newest first (ties in the order given), and their -created_s.
        The order is kept while no list is replaced or grows (slots may change in place)."""
        key = tuple((n, id(p), id(p["reservations"]), len(p["reservations"])) for n, p in sorted(self.pages.items()))
        key += (len(self.extra),)
        with self._lock:
            if key != self._order_key:
                everything = self._everything()
                order = sorted(range(len(everything)), key=lambda i: -created_s(everything[i]))
                self._ordered = [everything[i] for i in order]
                self._negated = [-created_s(r) for r in self._ordered]
                self._order_key = key
            return self._ordered, self._negated

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: object,
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(parts.query)
        self.requests.append((parts.path, query, handler.headers.get("Authorization")))
        if parts.path != "/open_api/v1/reservations":
            return self._send(handler, 404, {"errors": ["Not found"]})
        if handler.headers.get("Authorization") != f"Token token={self.token}":
            return self._send(handler, 401, {"errors": ["Bad credentials"]})
        page = int(query.get("page", ["1"])[0])
        per_page = int(query.get("per_page", ["20"])[0])
        if page == self.fail_page:
            return self._send(handler, 500, {"error": ["Server error", "undefined method"]})
        ordered, negated = self.listed()
        count = len(ordered)
        if "after" in query and self.honour_after:
            try:
                after_s = dt.datetime.fromisoformat(query["after"][0]).timestamp()
            except ValueError:
                return self._send(handler, 400, {"errors": ["after: not a time"]})
            count = bisect.bisect_right(negated, -after_s)  # those with created_s >= after_s
        last = max(1, -(-count // per_page))
        body = {"reservations": ordered[(page - 1) * per_page: min(page * per_page, count)]}
        headers = {"Total": str(count), "Per-Page": str(per_page)}
        if self.link:
            def href(n: int) -> str:
                q = dict(query, page=[str(n)])
                return f"<{self.url}{parts.path}?{urllib.parse.urlencode(q, doseq=True)}>"
            links = []
            if page > 1:
                links += [f'{href(1)}; rel="first"', f'{href(page - 1)}; rel="prev"']
            if page < last:
                links += [f'{href(page + 1)}; rel="next"', f'{href(last)}; rel="last"']
            if links:
                headers["Link"] = ", ".join(links)
        return self._send(handler, 200, body, headers)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
