"""The forwarder against real servers: InfluxDB 1.6.7 (v1 API) and VictoriaMetrics (v2 API)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.errors import InfluxNotFound, InfluxRejected, InfluxUnavailable
from storage.forward_store import ForwardStore, journal_status
from collector.forwarder import Forwarder
from storage.influxdb import InfluxSettings, InfluxTarget, parse_retry_after
from storage.journal import Journal
from storage.points import Point, clean_name
from tests.stores import (expected_victoria, forward_all, influx_points, journal_points,
                          victoria_samples)

T0_NS = 1_800_000_000_000_000_000


def _meter_points(n: int, meter: str = "m1", start: int = 0, t0_ns: int = T0_NS) -> list[Point]:
    return [Point("meter", {"site": "Manufacture du Canal", "meter": meter, "machine": "router-1"},
                  {"power_w": 1000.0 + i, "energy_import_kwh": 12.5 + i / 1000}, t0_ns + i * 10**9)
            for i in range(start, start + n)]


def _journal(path, points) -> None:
    journal = Journal(path)
    journal.put(points)
    journal.commit()
    journal.close()


async def test_v1_forwards_everything_and_creates_the_database(tmp_path, influx_server, influx_db, caplog):
    points = _meter_points(25_000) + [
        Point("cnc", {"site": "s", "machine": "router-1", "controller": "c"},
              {"execution": "running", "program": 'O1000 "roughing", pass=2', "part_count": 7}, T0_NS + 5)]
    _journal(tmp_path / "j.sqlite", points)
    caplog.set_level(logging.INFO)
    forwarder = await forward_all(tmp_path / "j.sqlite",
                                  InfluxSettings(influx_server.url, api="v1", database=influx_db),
                                  batch_points=5000)
    assert any("did not exist" in r.message and "created it" in r.message for r in caplog.records)
    assert forwarder.stats.forwarded == len(points)
    assert forwarder.stats.requests == 6  # 25 001 points in batches of 5000
    assert influx_points(influx_server, influx_db) == journal_points(tmp_path / "j.sqlite")
    status = journal_status(tmp_path / "j.sqlite")
    [(target, backlog)] = status.backlog.items()
    assert backlog == 0 and f"db={influx_db}" in target


async def test_auto_detects_v1_from_ping(influx_server):
    target = InfluxTarget(InfluxSettings(influx_server.url, api="auto"))
    assert target.resolve_api() == "v1"
    assert target.ping().startswith("1.6.7")


async def test_v2_path_into_victoria_metrics(tmp_path, victoria_server):
    # VictoriaMetrics refuses samples far in the future: recent times here.
    t0_ns = (time.time_ns() // 10**9 - 7200) * 10**9
    points = _meter_points(3000, meter="vm-1", t0_ns=t0_ns) + _meter_points(10, meter="vm 2, with=specials",
                                                                          t0_ns=t0_ns)
    _journal(tmp_path / "j.sqlite", points)
    settings = InfluxSettings(victoria_server.url, api="auto", bucket="wattelier", org="workshop")
    forwarder = await forward_all(tmp_path / "j.sqlite", settings, batch_points=1000)
    assert forwarder.target.api == "v2"  # VictoriaMetrics sends no InfluxDB version
    assert forwarder.stats.forwarded == len(points)
    expected = expected_victoria(journal_points(tmp_path / "j.sqlite"))
    stored = victoria_samples(victoria_server, expected)
    assert set(expected) <= set(stored)
    # VictoriaMetrics keeps about 12 significant digits (its decimal compression).
    assert {k: stored[k] for k in expected} == pytest.approx(expected, rel=1e-11)


async def test_a_refused_line_is_quarantined_and_its_neighbours_written(tmp_path, influx_server, influx_db):
    points = _meter_points(1000)
    # The same field as a string in a float series: InfluxDB refuses this one line for good.
    bad = Point("meter", points[0].tags, {"power_w": "not a number"}, T0_NS + 500 * 10**9 + 1)
    points.insert(500, bad)
    _journal(tmp_path / "j.sqlite", points)
    forwarder = await forward_all(tmp_path / "j.sqlite",
                                  InfluxSettings(influx_server.url, api="v1", database=influx_db))
    assert forwarder.stats.forwarded == 1000 and forwarder.stats.quarantined == 1
    stored = influx_points(influx_server, influx_db)
    expected = journal_points(tmp_path / "j.sqlite")
    bad_key = next(k for k, v in expected.items() if v == {"power_w": "not a number"})
    del expected[bad_key]
    assert stored == expected
    store = ForwardStore(tmp_path / "j.sqlite", forwarder.store.target)
    [q] = store.quarantined()
    store.close()
    assert "field type conflict" in q.error and 'power_w="not a number"' in q.line
    assert store.target in journal_status(tmp_path / "j.sqlite").quarantine


async def test_unreachable_server_keeps_the_backlog_and_logs_once(tmp_path, caplog):
    from tests.servers import free_port

    _journal(tmp_path / "j.sqlite", _meter_points(100))
    target = InfluxTarget(InfluxSettings(f"http://127.0.0.1:{free_port()}", api="v1", timeout_s=1))
    from collector.forwarder import Forwarder

    forwarder = Forwarder(tmp_path / "j.sqlite", target, backoff_initial_s=0.05, backoff_max_s=0.2)
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING)
    task = asyncio.create_task(forwarder.run(stop, drain_timeout_s=0.5))
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert forwarder.stats.errors_by_kind["influx_unavailable"] >= 5
    assert forwarder.stats.forwarded == 0
    down = [r for r in caplog.records if "not accepting writes" in r.message]
    assert len(down) == 1


def test_retry_after_and_backoff():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now_s=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    from collector.forwarder import Forwarder

    f = Forwarder("unused.sqlite", InfluxTarget(InfluxSettings("http://127.0.0.1:1")),
                  backoff_initial_s=1.0, backoff_max_s=30.0)
    waits = [f.backoff_s(n) for n in range(1, 12)]
    assert all(0.5 <= w <= 1.0 for w in waits[:1])
    assert all(w <= 30.0 for w in waits) and max(waits) >= 15.0
    assert waits[4] >= 8.0  # 16 s base, at most half taken off
    assert f.backoff_s(1, retry_after_s=42.0) == 42.0


def test_adapter_errors_are_ours(influx_server):
    target = InfluxTarget(InfluxSettings(influx_server.url, api="v1", database="adapter_errors"))
    with pytest.raises(InfluxNotFound):
        target.write_lines(["m f=1 1"])
    assert target.ensure_database() is True and target.ensure_database() is False
    with pytest.raises(InfluxRejected):
        target.write_lines(["bad line without fields"])
    gone = InfluxTarget(InfluxSettings("http://127.0.0.1:9", api="v1", timeout_s=1))
    with pytest.raises(InfluxUnavailable):
        gone.write_lines(["m f=1 1"])


# -- escaping, property-based, through the forwarder into the real InfluxDB ------------------
_NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='\\"')
names = st.text(_NAME_CHARS, min_size=1, max_size=10).filter(
    lambda s: s.strip() and s != "time" and not s.startswith("_"))
# A line starting with '#' is a comment to InfluxDB (answered 204, nothing stored): the
# measurements are the vocabulary's names, none of which starts so (storage.points).
measurements = names.filter(lambda s: not s.startswith("#"))
tag_values = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=16)
strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(measurement=measurements, tag_key=names, tag_value=tag_values, field_key=names, text=strings,
       number=floats)
def test_escaping_round_trips_through_influxdb(tmp_path_factory, influx_server, measurement, tag_key,
                                               tag_value, field_key, text, number):
    number_key = field_key + "_n"
    path = tmp_path_factory.mktemp("esc") / "j.sqlite"
    database = f"esc_{abs(hash((measurement, tag_key, tag_value, field_key, text, number))) % 10**9}"
    point = Point(measurement, {tag_key: tag_value}, {field_key: text, number_key: number}, T0_NS)
    _journal(path, [point])
    forwarder = asyncio.run(forward_all(path, InfluxSettings(influx_server.url, api="v1",
                                                              database=database)))
    assert forwarder.stats.quarantined == 0, forwarder.store and forwarder.stats.last_error
    [series] = influx_server.query("SELECT * FROM /.*/ GROUP BY *", database)
    assert series["name"] == clean_name(measurement)
    expected_tags = {clean_name(tag_key): clean_name(tag_value)} if clean_name(tag_value) else {}
    assert series.get("tags", {}) == expected_tags
    row = dict(zip(series["columns"], series["values"][0]))
    assert row[clean_name(field_key)] == text
    # InfluxDB's JSON prints an integral float as an integer: compare as floats.
    assert float(row[clean_name(number_key)]) == number
    influx_server.query(f'DROP DATABASE "{database}"')


class FlakyProxy:
    """A fake at the network seam: an HTTP proxy in front of the real InfluxDB that answers the
    first `refusals` writes itself with the given status and Retry-After header (InfluxDB 1.6.7
    never sends 429 or Retry-After), then passes everything through. Records request times."""

    def __init__(self, upstream_port: int, refusals: list[tuple[int, str | None]]) -> None:
        import http.client
        import http.server
        import threading

        proxy = self
        self.refusals = list(refusals)
        self.write_times: list[float] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _relay(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                if self.path.startswith("/write"):
                    proxy.write_times.append(time.monotonic())
                    if proxy.refusals:
                        status, retry_after = proxy.refusals.pop(0)
                        self.send_response(status)
                        if retry_after is not None:
                            self.send_header("Retry-After", retry_after)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(method, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def do_POST(self):
                self._relay("POST")

            def do_GET(self):
                self._relay("GET")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_429_and_503_are_retried_honouring_retry_after(tmp_path, influx_server, influx_db):
    _journal(tmp_path / "j.sqlite", _meter_points(300))
    proxy = FlakyProxy(influx_server.port, [(429, "2"), (503, None)])
    try:
        forwarder = await forward_all(tmp_path / "j.sqlite",
                                      InfluxSettings(proxy.url, api="v1", database=influx_db),
                                      backoff_initial_s=0.1, backoff_max_s=0.2)
    finally:
        proxy.close()
    t = proxy.write_times
    assert len(t) == 3
    assert t[1] - t[0] >= 2.0  # Retry-After: 2 honoured although the backoff was 0.1 s
    assert t[2] - t[1] < 1.0   # 503 without Retry-After: the short backoff
    assert forwarder.stats.errors_by_kind == {"influx_unavailable": 2}
    assert forwarder.stats.forwarded == 300
    assert influx_points(influx_server, influx_db) == journal_points(tmp_path / "j.sqlite")


def test_journal_command_shows_backlog_quarantine_and_drops(tmp_path, influx_server, influx_db):
    import json as jsonlib

    from typer.testing import CliRunner

    from wattelier.cli import app

    points = _meter_points(50)
    points.insert(10, Point("meter", points[0].tags, {"power_w": "oops"}, T0_NS + 10 * 10**9 + 1))
    journal = Journal(tmp_path / "j.sqlite")
    journal.put(points)
    journal.drop("nan_or_infinite", 3)
    journal.commit()
    journal.close()
    asyncio.run(forward_all(tmp_path / "j.sqlite", InfluxSettings(influx_server.url, api="v1",
                                                                   database=influx_db)))
    journal = Journal(tmp_path / "j.sqlite")
    journal.put(_meter_points(7, start=100))
    journal.commit()
    journal.close()
    runner = CliRunner()
    result = runner.invoke(app, ["journal", "--journal", str(tmp_path / "j.sqlite"), "--json"])
    assert result.exit_code == 0, result.output
    doc = jsonlib.loads(result.output)
    assert doc["points"] == 58
    [(target, info)] = doc["targets"].items()
    assert info["backlog"] == 7 and info["quarantined"] == 1
    assert info["oldest_unsent"].startswith("2027-01-15T08:01:40")
    assert doc["drops"] == {"nan_or_infinite": 3}
    assert 'power_w="oops"' in doc["quarantine"][0]["line"]
    text = runner.invoke(app, ["journal", "--journal", str(tmp_path / "j.sqlite")])
    assert text.exit_code == 0 and "quarantine" in text.output and "nan_or_infinite" in text.output
    missing = runner.invoke(app, ["journal", "--journal", str(tmp_path / "nope.sqlite")])
    assert missing.exit_code == 2 and "no journal here" in missing.output


_plain_keys = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz_0123456789"), min_size=1, max_size=12)
_any_values = st.one_of(floats, st.integers(-2**63, 2**63 - 1), st.booleans(), strings)


@given(st.dictionaries(_plain_keys, floats, min_size=1, max_size=20))
def test_fast_float_path_equals_the_general_formatter(fields):
    import json as jsonlib

    from storage.points import fields_to_line, json_fields_to_line

    text = jsonlib.dumps(fields, separators=(",", ":"))
    fast = json_fields_to_line(text)
    assert sorted(fast.split(",")) == sorted(fields_to_line(fields).split(","))


@given(st.dictionaries(st.one_of(_plain_keys, names), _any_values, min_size=1, max_size=8))
def test_json_fields_to_line_matches_for_any_fields(fields):
    import json as jsonlib

    from storage.points import fields_to_line, json_fields_to_line

    text = jsonlib.dumps(fields, separators=(",", ":"))
    try:
        expected = fields_to_line(fields)
    except ValueError:
        with pytest.raises(ValueError):
            json_fields_to_line(text)
        return
    got = json_fields_to_line(text)
    if got != expected:  # the fast path keeps the JSON order; same fields either way
        assert all(isinstance(v, float) for v in fields.values())
        assert sorted(got.split(",")) == sorted(expected.split(","))


# -- secrets: never in the URL, never in a log or the journal --------------------------------
def test_a_url_with_a_secret_is_refused_without_echoing_it():
    from collector.errors import ConfigError
    from storage.influx_config import check_url

    for url in ("http://wattelier:hunter2@127.0.0.1:8086", "http://:hunter2@host", "http://hunter2@host",
                "wattelier:hunter2@host:8086", "https://host:8086/?u=wattelier&p=hunter2",
                "http://host:8086/?auth=hunter2", "http://host:8086/#hunter2"):
        with pytest.raises(ConfigError) as refused:
            check_url(url, "--influx-url")
        message = str(refused.value)
        assert "hunter2" not in message and "\n" not in message, message
        assert message.startswith("--influx-url"), message
        if "@" in url or "p=" in url:
            assert "WATTELIER_INFLUX_TOKEN" in message and "influx_token" in message, message
        with pytest.raises(ConfigError):
            InfluxSettings(url)  # no path builds settings with a secret in the URL
    check_url("https://influx.example.org:8086/prefix/")  # a plain base URL passes


def test_demo_refuses_credentials_in_the_influx_url_in_one_line(tmp_path):
    """`demo` (like `analyze`) builds its InfluxDB settings through storage.influx_config."""
    from tests.cli_process import assert_clear_failure, run_wattelier

    done = run_wattelier("demo", "--out", str(tmp_path / "out"),
                         "--influx-url", "http://wattelier:hunter2-secret@127.0.0.1:8086")
    assert_clear_failure(done, "--influx-url", "[influxdb] username", "WATTELIER_INFLUX_TOKEN",
                         "influx_token", exit_code=2)
    assert "hunter2-secret" not in done.output
    assert not (tmp_path / "out" / "journal.sqlite").exists()


class EchoingServer:
    """An HTTP server that refuses the first `refusals` writes with 401 and echoes the request's
    Authorization header in its error body (as a careless proxy might), then accepts them."""

    def __init__(self, refusals: int) -> None:
        import http.server
        import threading

        server = self
        self.refusals = refusals
        self.authorizations: list[str] = []
        self.accepted_writes = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                auth = self.headers.get("Authorization", "")
                server.authorizations.append(auth)
                if self.path.startswith("/query") or server.refusals > 0:
                    server.refusals -= not self.path.startswith("/query")
                    self._answer(401, f'{{"error": "authorization failed for {auth}"}}'.encode())
                else:
                    server.accepted_writes += 1
                    self._answer(204)

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.mark.parametrize("api, username", [("v1", "wattelier"), ("v2", None)])
def test_no_secret_in_the_log_or_the_journal(tmp_path, api, username):
    """A whole run's log and journal files hold neither the token nor its basic-auth form,
    although the server echoes the Authorization header in its refusals."""
    import base64
    import os
    import signal
    import subprocess
    import sys

    from tests.cli_process import ROOT

    token = "tok-3f9c2a7e-known-secret"
    server = EchoingServer(refusals=2)
    journal = tmp_path / "journal.sqlite"
    _journal(journal, _meter_points(50))
    site = tmp_path / "site.toml"
    site.write_text(f'[site]\nname = "secrets"\n\n[influxdb]\nurl = "{server.url}"\napi = "{api}"\n'
                    + (f'username = "{username}"\n' if username else ""), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "WATTELIER_INFLUX_TOKEN": token}
    env.pop("JOURNAL_STREAM", None)
    log_path = tmp_path / "collect.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "wattelier.cli", "collect", "--config", str(site),
                                 "--journal", str(journal)], cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not server.accepted_writes:
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    secrets = [token, base64.b64encode(f"{username}:{token}".encode()).decode()] if username else [token]
    assert any(secrets[-1] in auth for auth in server.authorizations)  # the secret was sent
    output = log_path.read_text()
    assert "not accepting writes" in output and "authorization failed for" in output  # echo logged...
    assert output.count("not accepting writes") == 1 and output.count(" is back after ") == 1
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("journal.sqlite*"))
    for secret in secrets:
        assert secret not in output, output  # ...scrubbed
        assert secret.encode() not in stored
    assert "Traceback" not in output


def test_a_measurement_read_as_a_comment_is_refused_not_lost():
    from storage.points import to_line

    with pytest.raises(ValueError, match="comment"):
        to_line(Point("#meter", {"site": "s"}, {"power_w": 1.0}, T0_NS))


async def test_a_journal_that_cannot_take_the_cursor_for_a_while_does_not_stop_forwarding(
        tmp_path, influx_server, influx_db, monkeypatch, caplog):
    """The cursor update fails twice (a full disk) and then works: the forwarder says it once,
    waits, and forwards everything; it does not die on the first failure."""
    from storage.journal_schema import JournalFull

    path = tmp_path / "j.sqlite"
    points = _meter_points(3000)
    _journal(path, points)
    real_record = ForwardStore.record
    failures = iter([True, True])

    def record(self, batch, quarantined):
        if next(failures, False):
            raise JournalFull(path, "disk full (stand-in)")
        return real_record(self, batch, quarantined)

    monkeypatch.setattr(ForwardStore, "record", record)
    caplog.set_level(logging.WARNING)
    forwarder = Forwarder(path, InfluxTarget(InfluxSettings(influx_server.url, api="v1", database=influx_db)),
                          batch_points=1000, backoff_initial_s=0.05, backoff_max_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop, drain_timeout_s=5))
    deadline = time.monotonic() + 30
    while forwarder.stats.forwarded < len(points) and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 20)
    assert forwarder.stats.forwarded == len(points)
    assert journal_status(path).backlog[next(iter(journal_status(path).backlog))] == 0
    said = [r.message for r in caplog.records if "cannot note in the journal" in r.message]
    assert len(said) == 1
