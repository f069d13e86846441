"""A SIGTERM stops `wattelier collect` within its documented bound while InfluxDB is black-holed.

A black-holed server accepts the TCP connection and never answers (a real loopback socket, no
mock): a request in flight would wait for its `timeout_s` (30 s by default). The collector runs
as a real process on a journal holding points and no devices, the test waits until a request
is in flight, sends SIGTERM and checks the exit code, the stop time against the bound of
collector.runtime's docstring and the unit's TimeoutStopSec, and that every point is still in
the journal.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from collector.forwarder import ABORT_GRACE_S
from storage.journal import Journal
from storage.points import Point
from collector.runtime import FORWARDER_CLOSE_S, STOP_GRACE_S
from devices.site import InfluxDB
from tests.cli_process import ROOT

DRAIN_S = 2.0  # the site's drain_timeout_s here (short for CI)
POINTS = 500
T0_NS = 1_800_000_000_000_000_000


class BlackHole:
    """A loopback TCP server that accepts connections and never answers.

    With `answer_queries`, it answers InfluxDB 1.x's `/query` (SHOW DATABASES lists every
    database), so that a v1 forwarder gets to its first `/write`; the first request of any
    other path is left unanswered, unread past its head.
    """

    def __init__(self, answer_queries: bool = False) -> None:
        self.answer_queries = answer_queries
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.waiting_paths: list[str] = []  # request paths left unanswered (answer_queries)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            if self.answer_queries:
                threading.Thread(target=self._serve_queries, args=(conn,), daemon=True).start()

    def _serve_queries(self, conn: socket.socket) -> None:
        data = b""
        try:
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, data = data.split(b"\r\n\r\n", 1)
                path = head.split(b" ", 2)[1].decode()
                if not path.startswith("/query"):
                    self.waiting_paths.append(path)
                    return  # leave it in flight for good
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(data) < length:
                    data += conn.recv(65536)
                data = data[length:]
                body = b'{"results":[{"statement_id":0,"series":[{"name":"databases",' \
                       b'"columns":["name"],"values":[["wattelier"]]}]}]}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            return

    def request_in_flight(self) -> bool:
        """A request arrived and was not answered (looked at without reading it)."""
        if self.answer_queries:
            return bool(self.waiting_paths)
        for conn in list(self.connections):
            try:
                if conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    return True
            except (BlockingIOError, OSError):
                pass
        return False

    def close(self) -> None:
        self.listener.close()
        for conn in self.connections:
            conn.close()


def _rows(path: Path) -> list[tuple]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT id, series_id, time_ns, fields FROM points ORDER BY id").fetchall()
    finally:
        db.close()


def _cursors(path: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT target, last_id FROM forward_cursor"))
    finally:
        db.close()


def _unit_timeout_stop_s() -> float:
    unit = (ROOT / "deploy" / "wattelier-collector.service").read_text(encoding="utf-8")
    return float(re.search(r"^TimeoutStopSec=(\d+)", unit, re.M).group(1))


def documented_bound_s(drain_timeout_s: float) -> float:
    """The stop bound of collector.runtime's docstring (the journal's last commit aside)."""
    return STOP_GRACE_S + drain_timeout_s + ABORT_GRACE_S + FORWARDER_CLOSE_S


def test_the_bound_with_default_settings_is_well_under_the_units_timeout():
    defaults = InfluxDB(url="http://127.0.0.1:8086")
    assert documented_bound_s(defaults.drain_timeout_s) == 18.0
    assert documented_bound_s(defaults.drain_timeout_s) + 20 <= _unit_timeout_stop_s() == 60


def _journal_with_points(path: Path) -> list[tuple]:
    journal = Journal(path)
    journal.put([Point("meter", {"site": "stop-bound", "meter": "m1", "machine": "router-1"},
                       {"power_w": 100.0 + i}, T0_NS + i * 10**9) for i in range(POINTS)])
    journal.commit()
    journal.close()
    return _rows(path)


@pytest.mark.parametrize("api, answer_queries, in_flight", [
    ("v1", True, "/write"),   # the v1 path (our urllib3 requests) with a write in flight
    ("v2", False, "write"),   # the v2 path (influxdb-client) with a write in flight
    ("v1", False, "query"),   # v1 still checking its database (the first request) at the stop
])
def test_sigterm_with_a_request_in_flight_stops_within_the_bound(tmp_path, api, answer_queries, in_flight):
    server = BlackHole(answer_queries=answer_queries)
    journal = tmp_path / "journal.sqlite"
    before = _journal_with_points(journal)
    site = tmp_path / "site.toml"
    site.write_text(f'[site]\nname = "stop-bound"\n\n[influxdb]\nurl = "{server.url}"\n'
                    f"drain_timeout_s = {DRAIN_S}\n", encoding="utf-8")  # timeout_s: 30 s default
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("JOURNAL_STREAM", None)
    log_path = tmp_path / "collect.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "wattelier.cli", "collect", "--config", str(site),
                                 "--journal", str(journal), "--influx-api", api],
                                cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not server.request_in_flight():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        if answer_queries:
            assert server.waiting_paths[0].startswith(in_flight)
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=_unit_timeout_stop_s())
        stop_s = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.close()
    output = log_path.read_text()
    print(f"{api} ({in_flight} in flight): stopped in {stop_s:.2f} s")  # shown with -s
    assert code == 0, output
    assert "Traceback" not in output, output
    assert stop_s <= documented_bound_s(DRAIN_S) < _unit_timeout_stop_s()
    # No device: the sources stop at once, so the drain and the cut are all that is left
    # (without the cut, the request would hold the stop for its 30 s timeout).
    assert DRAIN_S <= stop_s <= DRAIN_S + ABORT_GRACE_S + 1.0, output
    assert "cut the request in flight" in output
    assert "sent at the next start" in output
    after = _rows(journal)
    assert after[:POINTS] == before  # every point still there, unchanged
    assert all(last_id == 0 for last_id in _cursors(journal).values())  # none counted as sent



# -- the forwarder on its own, in this process ---------------------------------------------
async def _forward_until_stopped(journal: Path, settings, wait_for, drain_s: float, **options):
    """Run a Forwarder until `wait_for()` holds, stop it; return it and its stop time [s]."""
    import asyncio

    from collector.forwarder import Forwarder
    from storage.influxdb import InfluxTarget

    forwarder = Forwarder(journal, InfluxTarget(settings), **options)
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop, drain_timeout_s=drain_s))
    deadline = time.monotonic() + 20
    while not wait_for(forwarder):
        assert not task.done() and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    stop.set()
    started = time.monotonic()
    await asyncio.wait_for(task, 60)
    return forwarder, time.monotonic() - started


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_the_cut_request_returns_at_once_and_its_thread_ends(tmp_path, api):
    from storage.influxdb import InfluxSettings

    server = BlackHole(answer_queries=True)
    journal = tmp_path / "journal.sqlite"
    before = _journal_with_points(journal)
    try:
        forwarder, stop_s = await _forward_until_stopped(
            journal, InfluxSettings(server.url, api=api, timeout_s=30.0),
            lambda f: server.request_in_flight(), drain_s=0.5)
    finally:
        server.close()
    assert 0.5 <= stop_s < 0.5 + ABORT_GRACE_S
    assert forwarder.stats.requests_cut == 1
    assert forwarder.stats.requests_left_behind == 0  # the socket was cut: the request returned
    assert forwarder.stats.forwarded == 0 and _rows(journal) == before
    assert not [t for t in threading.enumerate() if t.name == "influx-request"]


async def test_a_retry_due_after_the_deadline_is_not_waited_for(tmp_path):
    """InfluxDB refusing connections, a 20-40 s backoff under way: the stop does not wait for it."""
    from storage.influxdb import InfluxSettings
    from devices.sim.ports import free_port

    journal = tmp_path / "journal.sqlite"
    _journal_with_points(journal)
    forwarder, stop_s = await _forward_until_stopped(
        journal, InfluxSettings(f"http://127.0.0.1:{free_port()}", api="v1"),
        lambda f: f.stats.up is False, drain_s=10.0, backoff_initial_s=40.0, backoff_max_s=40.0)
    assert stop_s < 0.5
    assert forwarder.stats.requests_cut == 0
