"""Nothing lost: InfluxDB outages, SIGKILL and SIGTERM of the collector, with real servers.

The simulated workshop serves real OPC UA and Modbus TCP on loopback; the collector forwards
its journal to a real InfluxDB 1.6.7 started for each test (so it can be stopped and started).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

from storage.forward_store import journal_status
from storage.influx_config import influx_settings_for
from collector.runtime import Collector, journal_for
from devices.sim.workshop import SimulatedWorkshop, relocate
from devices.site import InfluxDB
from tests.servers import InfluxServer
from tests.sitefiles import dump_site_toml
from tests.stores import influx_points, journal_points


def _with_influx(site, server: InfluxServer, database: str, journal: Path, **options):
    section = InfluxDB(url=server.url, api="v1", database=database, backoff_max_s=4.0, **options)
    return site.model_copy(update={
        "influxdb": section,
        "journal": site.journal.model_copy(update={"path": str(journal)}),
    })


async def _wait_for(predicate, timeout_s: float, what: str, step_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def test_influxdb_down_for_60_s_loses_nothing(tmp_path, example_site):
    server = InfluxServer(tmp_path / "influx")
    server.start()
    workshop = SimulatedWorkshop(relocate(example_site), seed=11, pace=60, pki_dir=tmp_path / "pki")
    await workshop.start()
    journal_path = tmp_path / "journal.sqlite"
    site = _with_influx(workshop.site, server, "outage", journal_path)
    collector = Collector(site, journal_for(site), influx=influx_settings_for(site),
                          self_metrics_interval_s=2.0)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    try:
        await _wait_for(lambda: collector.forwarder.stats.forwarded > 100, 30, "first points in InfluxDB")
        server.stop()
        outage_start = time.monotonic()
        await asyncio.sleep(60)
        backlog_at_recovery = collector.journal.backlog(collector.forwarder.store.target)
        assert backlog_at_recovery > 300  # readings (about 8 points/s) kept going to the journal meanwhile
        assert collector.forwarder.stats.up is False
        server.start()
        outage_s = time.monotonic() - outage_start
        await _wait_for(lambda: collector.forwarder.stats.up and
                        collector.journal.backlog(collector.forwarder.store.target) < 50,
                        30, "the backlog to drain")
        points_after = collector.journal.count()
        await asyncio.sleep(3)  # new readings keep flowing after the drain
        assert collector.journal.count() > points_after
    finally:
        stop.set()
        await task
        collector.journal.close()
        await workshop.stop()
    try:
        journaled = journal_points(journal_path)
        stored = influx_points(server, "outage")
        assert len(stored) == len(journaled)  # zero lost, zero duplicates
        assert stored == journaled
        assert journal_status(journal_path).backlog == {collector.forwarder.store.target: 0}
        assert outage_s >= 60
        # the site's self-metrics (tagged site only) and one point per device beside them
        metrics = {t: fields for (m, tags, t), fields in journaled.items()
                   if m == "collector" and "device" not in dict(tags)}
        devices = {(dict(tags)["device"], t): fields for (m, tags, t), fields in journaled.items()
                   if m == "collector" and "device" in dict(tags)}
        assert any(f.get("influx_up") == 0 and f.get("backlog", 0) > 0 and f.get("oldest_unsent_age_s", 0) > 0
                   for f in metrics.values())
        last_t = max(metrics)
        last = metrics[last_t]
        assert {device for device, t in devices if t == last_t} == (
            {f"meter:{m}" for m in site.meters} | {f"controller:{c}" for c in site.controllers})
        assert all(devices[d, t] == {"up": 1, "failures": 0} for d, t in devices if t == last_t)
        assert {"points_read", "points_journaled", "points_forwarded", "points_quarantined",
                "points_dropped", "backlog", "devices_up", "devices_down", "reconnects",
                "influx_up", "oldest_unsent_age_s"} <= set(last)
        assert last["devices_up"] == len(site.meters) + len(site.controllers)
        assert last["points_read"] > 0 and last["points_journaled"] > 0
        assert workshop.write_attempts() == 0
    finally:
        server.close()


def _collect_command(site_file: Path) -> list[str]:
    return [sys.executable, "-m", "wattelier.cli", "collect", "--config", str(site_file)]


def _journal_rows(path: Path) -> list[tuple]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "points" not in tables:  # the collector is still creating the journal
            return []
        return db.execute("SELECT id, series_id, time_ns, fields FROM points ORDER BY id").fetchall()
    finally:
        db.close()


async def test_sigkill_then_restart_loses_and_doubles_nothing(tmp_path, example_site):
    server = InfluxServer(tmp_path / "influx")
    server.start()
    workshop = SimulatedWorkshop(relocate(example_site), seed=12, pace=60, pki_dir=tmp_path / "pki")
    await workshop.start()
    journal_path = tmp_path / "journal.sqlite"
    site = _with_influx(workshop.site, server, "killed", journal_path, drain_timeout_s=5.0)
    site_file = tmp_path / "site.toml"
    site_file.write_text(dump_site_toml(site), encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = [open(tmp_path / f"collect-{i}.log", "wb") for i in (1, 2)]
    try:
        first = await asyncio.create_subprocess_exec(*_collect_command(site_file), env=env,
                                                     stdout=logs[0], stderr=logs[0])
        await _wait_for(lambda: journal_path.exists() and len(_journal_rows(journal_path)) > 200,
                        40, "the first collector to journal points")
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
        committed = _journal_rows(journal_path)  # what was on disk at the kill
        assert committed

        second = await asyncio.create_subprocess_exec(*_collect_command(site_file), env=env,
                                                      stdout=logs[1], stderr=logs[1])
        await _wait_for(lambda: len(_journal_rows(journal_path)) > len(committed) + 200, 40,
                        "the restarted collector to journal points")
        await _wait_for(lambda: journal_status(journal_path).backlog.get(
            next(iter(journal_status(journal_path).backlog), ""), 1) < 100, 30, "forwarding to resume")
        second.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.wait_for(second.wait(), 60)
        stop_s = time.monotonic() - started
    finally:
        for log in logs:
            log.close()
        await workshop.stop()
    try:
        assert code == 0, (tmp_path / "collect-2.log").read_text()
        assert stop_s < 5.0 + 5.0 + 5.0  # sources grace + drain timeout + margin
        after = _journal_rows(journal_path)
        assert after[: len(committed)] == committed  # nothing committed was lost or changed
        journaled = journal_points(journal_path)
        stored = influx_points(server, "killed")
        assert stored == journaled  # each point once, with its journal values
        [backlog] = journal_status(journal_path).backlog.values()
        assert backlog == 0  # SIGTERM flushed everything (InfluxDB was up)
        assert "stopped with" not in (tmp_path / "collect-2.log").read_text()
        assert workshop.write_attempts() == 0
    finally:
        server.close()


async def test_opcua_servers_restarted_mid_run_are_subscribed_again_within_10_s(tmp_path, example_site):
    """Both example controllers (the secured mill and the insecure router) lose their server
    for 15 s during a collector run with default settings (reconnect backoff up to 8 s)."""
    from storage.journal import Journal

    workshop = SimulatedWorkshop(relocate(example_site), seed=13, pace=60, pki_dir=tmp_path / "pki")
    await workshop.start()
    site = workshop.site
    collector = Collector(site, Journal(tmp_path / "journal.sqlite"))
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    sources = collector.cnc_sources
    try:
        await _wait_for(lambda: all(s.subscribed for s in sources.values()), 30, "first subscriptions")
        for server in workshop.cnc_servers:
            await server.stop()
        await _wait_for(lambda: not any(s.subscribed for s in sources.values()), 20, "loss detected")
        await asyncio.sleep(15)
        for server in workshop.cnc_servers:
            await server.start()
        back_at = time.monotonic()
        await _wait_for(lambda: all(s.subscribed for s in sources.values()), 20, "resubscription")
        resubscribed_s = time.monotonic() - back_at
        points_before = dict(collector.sink.counts)
        await asyncio.sleep(3)
    finally:
        stop.set()
        await task
        collector.journal.close()
        await workshop.stop()
    print(f"resubscribed {resubscribed_s:.1f} s after the servers were back")  # shown with -s
    assert resubscribed_s < 10.0
    for name, source in sources.items():
        assert source.reconnects >= 1, name
    for server in workshop.cnc_servers:
        assert server.max_sessions_seen == 1  # never two sessions from the collector at once
        assert server.sessions_created >= 2
    assert sum(collector.sink.counts.values()) > sum(points_before.values())
    assert workshop.write_attempts() == 0


async def test_influxdb_refusing_connections_at_start_logs_once_down_and_once_back(tmp_path):
    """Nothing listens on InfluxDB's port when `collect` starts: no traceback, one line when
    writes fail, one when InfluxDB is back, and every point arrives."""
    from storage.journal import Journal
    from storage.points import Point

    server = InfluxServer(tmp_path / "influx")  # its port is chosen, nothing listens yet
    journal_path = tmp_path / "journal.sqlite"
    journal = Journal(journal_path)
    journal.put([Point("meter", {"site": "refused", "meter": "m1", "machine": "router-1"},
                       {"power_w": float(i)}, 1_800_000_000_000_000_000 + i * 10**9) for i in range(200)])
    journal.commit()
    journal.close()
    site_file = tmp_path / "site.toml"
    site_file.write_text('[site]\nname = "refused"\n', encoding="utf-8")
    log_path = tmp_path / "collect.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("JOURNAL_STREAM", None)
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *_collect_command(site_file), "--journal", str(journal_path), "--influx-url", server.url,
            "--influx-api", "v1", "--influx-db", "refused", env=env, stdout=log, stderr=log)
    try:
        await _wait_for(lambda: "not accepting writes" in log_path.read_text(), 20, "the outage logged")
        await asyncio.sleep(4)  # a few more refused attempts (backoff 1 s, 2 s, ...)
        server.start()
        await _wait_for(lambda: journal_status(journal_path).backlog
                        and not any(journal_status(journal_path).backlog.values()), 30, "the backlog sent")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        output = log_path.read_text()
        assert code == 0, output
        assert "Traceback" not in output, output
        assert output.count("not accepting writes") == 1, output
        assert "Connection refused" in output and "Connection(host=" not in output, output
        assert output.count(" is back after ") == 1, output
        stored = influx_points(server, "refused")
        assert {k: v for k, v in journal_points(journal_path).items() if k[0] == "meter"} == \
            {k: v for k, v in stored.items() if k[0] == "meter"}
        assert len([k for k in stored if k[0] == "meter"]) == 200
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        server.close()
