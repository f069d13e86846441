"""storage.http_client against a real local http.server on a loopback port: every status is an
answer (3xx not followed unless asked), and every network failure one HttpUnreachable saying
whether it timed out and whether the request had been sent."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devices.sim.ports import free_port
from storage.errors import StorageError
from storage.http_client import HttpAnswer, HttpUnreachable, request

HEADERS = {"Authorization": "Token token=secret", "Accept": "application/json"}


class _Server:
    """http.server on 127.0.0.1 (port 0: a free one) answering by path; `seen` records
    (method, path, Authorization, body) of each request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None, bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.seen.append((self.command, self.path, self.headers.get("Authorization"),
                                    self.rfile.read(length)))

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                      length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) if length is None else length))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._record()
                if self.path == "/ok":
                    self._send(200, b'{"reservations": []}', {"Link": '<http://x/?page=2>; rel="next"'})
                elif self.path == "/moved":
                    self._send(302, b"moved", {"Location": "/ok"})
                elif self.path == "/short":  # 100 bytes announced, 10 sent, then the connection closes
                    self._send(200, b'{"reserva', length=100)
                    self.close_connection = True
                elif self.path == "/reset":  # 10 of 100 bytes, then a TCP reset
                    self._send(200, b'{"reserva', length=100)
                    time.sleep(0.05)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                else:
                    self._send(404, b'{"errors": ["Not found"]}')

            def do_POST(self) -> None:
                self._record()
                self._send(200, json.dumps({"got": len(server.seen[-1][3])}).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def server():
    running = _Server()
    yield running
    running.close()


def test_a_200_with_its_body_and_headers(server):
    answer = request("GET", server.url + "/ok", headers=HEADERS, timeout_s=5)
    assert isinstance(answer, HttpAnswer) and answer.ok
    assert (answer.status, answer.reason, answer.body) == (200, "OK", b'{"reservations": []}')
    assert answer.headers.get("link") == '<http://x/?page=2>; rel="next"'  # any case
    assert server.seen == [("GET", "/ok", "Token token=secret", b"")]


def test_a_post_sends_its_body(server):
    answer = request("POST", server.url + "/api", headers={"Content-Type": "application/json"},
                     body=b'{"a": 1}', timeout_s=5)
    assert answer.status == 200 and json.loads(answer.body) == {"got": 8}
    assert server.seen == [("POST", "/api", None, b'{"a": 1}')]


def test_a_404_is_an_answer_not_an_exception(server):
    answer = request("GET", server.url + "/nothing", headers=HEADERS, timeout_s=5)
    assert (answer.status, answer.reason, answer.ok) == (404, "Not Found", False)
    assert json.loads(answer.body) == {"errors": ["Not found"]}


def test_a_redirect_is_not_followed_unless_asked(server):
    answer = request("GET", server.url + "/moved", headers=HEADERS, timeout_s=5)
    assert (answer.status, answer.headers.get("Location"), answer.body) == (302, "/ok", b"moved")
    assert [path for _, path, _, _ in server.seen] == ["/moved"]  # the token went nowhere else
    followed = request("GET", server.url + "/moved", headers=HEADERS, timeout_s=5, follow_redirects=True)
    assert (followed.status, followed.body) == (200, b'{"reservations": []}')
    assert [path for _, path, _, _ in server.seen] == ["/moved", "/moved", "/ok"]


def test_a_refused_connection_is_unreachable_not_timed_out():
    with pytest.raises(HttpUnreachable) as err:
        request("GET", f"http://127.0.0.1:{free_port()}/ok", headers=HEADERS, timeout_s=5)
    assert isinstance(err.value, StorageError)
    assert "refused" in err.value.reason and str(err.value) == err.value.reason
    assert (err.value.timed_out, err.value.connected) == (False, False)


def test_a_server_that_never_answers_times_out_within_the_timeout():
    with socket.socket() as silent:  # listens (the kernel accepts), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(HttpUnreachable) as err:
            request("GET", f"http://127.0.0.1:{silent.getsockname()[1]}/ok", headers=HEADERS, timeout_s=0.3)
        elapsed = time.monotonic() - started
    assert err.value.timed_out and err.value.connected and err.value.reason == "timed out"
    assert 0.25 <= elapsed < 3


@pytest.mark.parametrize("path", ["/short", "/reset"])
def test_a_connection_cut_mid_body_is_unreachable(server, path):
    with pytest.raises(HttpUnreachable) as err:
        request("GET", server.url + path, headers=HEADERS, timeout_s=5)
    assert (err.value.timed_out, err.value.connected) == (False, True)
    assert err.value.reason and "\n" not in err.value.reason


def test_an_unknown_scheme_is_unreachable_not_opened(tmp_path):
    local = tmp_path / "secret.json"
    local.write_text("{}", encoding="utf-8")
    with pytest.raises(HttpUnreachable, match="unknown url type: file"):
        request("GET", local.as_uri(), headers=HEADERS, timeout_s=5)
