"""The forwarder against real servers: InfluxDB 1.6.7 (v1 API) and VictoriaMetrics (v2 API)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.errors import InfluxNotFound, InfluxRejected, InfluxUnavailable
from collector.forward_store import ForwardStore, journal_status
from collector.influx_adapter import InfluxSettings, InfluxTarget, parse_retry_after
from collector.journal import Journal
from collector.points import Point, clean_name
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
    stored = victoria_samples(victoria_server)
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
tag_values = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=16)
strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(measurement=names, tag_key=names, tag_value=tag_values, field_key=names, text=strings,
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
