"""A forwarding target the site file no longer names is forgotten when the collector starts:
its cursor would otherwise hold packing and overflow back for ever (storage.journal waits for
every target the journal knows)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from collector.runtime import Collector, retire_unconfigured_targets
from storage.forward_store import ForwardStore, journal_status, record_target, retire_targets
from storage.influx_config import InfluxSettings
from storage.journal import Journal
from storage.points import Point

HOUR_NS = 3600 * 10**9
T0_NS = 1_800_000_000 // 3600 * 3600 * 10**9  # an hour boundary
KEPT = InfluxSettings("http://127.0.0.1:9", api="v1", database="wattelier")  # nothing listens
GONE = InfluxSettings("http://old-server.example:8086", api="v1", database="old")


def _readings(hours: int) -> list[Point]:
    return [Point("meter", {"site": "s", "meter": "m1", "machine": "router-1"},
                  {"power_w": 100.0 + i % 7, "energy_import_kwh": 1.0 + i / 3600}, T0_NS + i * 60 * 10**9)
            for i in range(hours * 60)]


def _accept(path, settings: InfluxSettings, points: int) -> None:
    """What the forwarder does when a target accepts `points` points: its cursor moves on."""
    record_target(path, settings.url)
    store = ForwardStore(path, settings.target_key("v1"))
    try:
        store.record(store.read_batch(store.cursor(), points), [])
    finally:
        store.close()


def _journal_with_two_targets(path) -> Journal:
    journal = Journal(path)
    journal.put(_readings(3))
    journal.commit()
    _accept(path, KEPT, 180)  # the target still configured has everything
    _accept(path, GONE, 30)  # the old one stopped half an hour in
    return journal


def test_a_removed_target_holds_packing_back_until_it_is_retired(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = _journal_with_two_targets(path)
    horizon = T0_NS + 4 * HOUR_NS
    assert journal.compact(horizon_ns=horizon) == 0  # the old target's cursor is in the first hour
    retired = retire_targets(path, KEPT.possible_target_keys())
    assert [(r.target, r.unsent) for r in retired] == [(GONE.target_key("v1"), 150)]
    assert journal.compact(horizon_ns=horizon) == 180  # the three hours, every point
    status = journal_status(path, configured=[KEPT.url])
    # what the kept target has not had: the three hours' rollups, made by the packing
    assert status.backlog == {KEPT.target_key("v1"): 3}
    assert retire_targets(path, KEPT.possible_target_keys()) == []  # once
    journal.close()


def test_auto_keeps_both_apis_and_no_influxdb_retires_every_target(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = _journal_with_two_targets(path)
    auto = dataclasses.replace(KEPT, api="auto")
    assert [r.target for r in retire_targets(path, auto.possible_target_keys())] == [GONE.target_key("v1")]
    record_target(path, "http://never-answered.example:8086")  # configured once, never accepted a write
    assert journal.compact(horizon_ns=T0_NS + 4 * HOUR_NS) == 0  # a target that has nothing holds it back
    retired = retire_targets(path, ())
    assert sorted((r.target, r.unsent) for r in retired) == [
        (KEPT.target_key("v1"), 0), ("http://never-answered.example:8086", 180)]
    assert journal.compact(horizon_ns=T0_NS + 4 * HOUR_NS) == 180
    journal.close()


def test_the_collector_says_which_target_it_forgets_and_what_it_had_not_sent(tmp_path, caplog):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put(_readings(1))
    journal.commit()
    _accept(path, GONE, 20)
    journal.close()
    with caplog.at_level(logging.WARNING, logger="wattelier"):
        assert retire_unconfigured_targets(path, KEPT) == [GONE.target_key("v1")]
    [message] = [r.getMessage() for r in caplog.records if "no longer in the site file" in r.getMessage()]
    assert GONE.target_key("v1") in message and "40 points" in message
    assert retire_unconfigured_targets(tmp_path / "none.sqlite", KEPT) == []  # no journal: nothing to do


async def test_a_collector_started_without_that_target_forgets_it(tmp_path, example_site):
    """The collector forgets the target as it starts (the example site's meters are not
    running here: their sources just retry; its controllers, which need secrets, left out)."""
    path = tmp_path / "j.sqlite"
    journal = _journal_with_two_targets(path)
    journal.close()
    site = example_site.model_copy(update={"controllers": {}})
    collector = Collector(site, Journal(path), influx=KEPT)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    try:
        for _ in range(100):
            if set(journal_status(path).backlog) == {KEPT.target_key("v1")}:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        collector.journal.close()
    assert set(journal_status(path).backlog) == {KEPT.target_key("v1")}
