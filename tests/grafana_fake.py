"""A stand-in for Grafana's HTTP API (Grafana cannot run here): a local HTTP(S) server that
answers `POST /api/dashboards/db` as Grafana's "Dashboard HTTP API" documents it.

- no `Authorization: Bearer <token>` with the expected token: 401 {"message": "Unauthorized"};
- a dashboard whose uid is in `refuse`: 412 {"status": "version-mismatch", "message": ...}, as
  Grafana answers when the stored dashboard changed (or 400 for a body that is not JSON);
- otherwise 200 {"id", "uid", "url", "status": "success", "version", "slug"}, and the body is
  kept in `received` (with the Authorization header it came with).
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeGrafana:
    """Grafana's dashboard API on 127.0.0.1 (a free port); HTTPS when given a certificate."""

    def __init__(self, token: str, refuse: set[str] = frozenset(), certificate: tuple[Path, Path] | None = None):
        self.token = token
        self.refuse = set(refuse)
        self.received: list[dict] = []
        self.authorizations: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if self.path != "/api/dashboards/db":
                    return self._answer(404, {"message": "Not found"})
                authorization = self.headers.get("Authorization", "")
                fake.authorizations.append(authorization)
                if authorization != f"Bearer {fake.token}":
                    return self._answer(401, {"message": "Unauthorized"})
                try:
                    body = json.loads(raw)
                    dashboard = body["dashboard"]
                except (ValueError, KeyError):
                    return self._answer(400, {"message": "bad request data"})
                fake.received.append(body)
                uid = dashboard.get("uid", "")
                if uid in fake.refuse:
                    return self._answer(412, {"status": "version-mismatch",
                                              "message": "The dashboard has been changed by someone else"})
                self._answer(200, {"id": len(fake.received), "uid": uid, "url": f"/d/{uid}/x", "status": "success",
                                   "version": 1, "slug": "x"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(certificate[0]), str(certificate[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "FakeGrafana":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
