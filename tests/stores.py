"""Compare what the journal holds with what InfluxDB or VictoriaMetrics holds."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

from collector.forwarder import Forwarder
from storage.influxdb import InfluxSettings, InfluxTarget
from storage.points import clean_name
from tests.servers import InfluxServer, VictoriaServer

Key = tuple[str, tuple[tuple[str, str], ...], int]


def journal_points(path: Path) -> dict[Key, dict]:
    """Every journal point as {(measurement, tags, time_ns): fields}, names as line protocol
    carries them (storage.points.clean_name).

    Rows of one series at one instant are one point, as in InfluxDB: their fields are merged.
    That happens when a controller value arrives again with its original source timestamp
    (after a reconnection or a restart, docs/design.md, "Edge timestamps"); such rows must
    agree, which is asserted here."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    out: dict[Key, dict] = {}
    try:
        for measurement, tags, time_ns, fields in db.execute(
                "SELECT s.measurement, s.tags, p.time_ns, p.fields FROM points p "
                "JOIN series s ON s.id = p.series_id"):
            tag_items = tuple(sorted((clean_name(k), clean_name(v)) for k, v in json.loads(tags).items()
                                     if clean_name(v)))
            key = (clean_name(measurement), tag_items, time_ns)
            merged = out.setdefault(key, {})
            for k, v in json.loads(fields).items():
                k = clean_name(k)
                assert merged.get(k, v) == v, f"{key}: {k} journaled twice with different values"
                merged[k] = v
    finally:
        db.close()
    return out


def influx_points(server: InfluxServer, database: str) -> dict[Key, dict]:
    """Every point of an InfluxDB 1.x database, in the same form."""
    out: dict[Key, dict] = {}
    for series in server.query("SELECT * FROM /.*/ GROUP BY *", database):
        tags = tuple(sorted((k, v) for k, v in series.get("tags", {}).items() if v != ""))
        for values in series["values"]:
            row = dict(zip(series["columns"], values))
            time_ns = row.pop("time")
            key = (series["name"], tags, time_ns)
            assert key not in out
            out[key] = {k: v for k, v in row.items() if v is not None}
    return out


def victoria_samples(server: VictoriaServer, expected: dict | None = None,
                     timeout_s: float = 15.0) -> dict[tuple[str, tuple, int], float]:
    """Every VictoriaMetrics sample as {(metric, labels, time_ms): value}.

    expected: keys that must be there; the export is asked again (up to timeout_s) while some
    are missing. Accepted samples of new series may take VictoriaMetrics 1.79 a moment to show,
    even after /internal/force_flush (seen once: a whole new series missing from the export
    right after the writes were accepted)."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = {}
        for series in server.export():
            metric = dict(series["metric"])
            name = metric.pop("__name__")
            labels = tuple(sorted(metric.items()))
            for value, time_ms in zip(series["values"], series["timestamps"]):
                out[(name, labels, time_ms)] = value
        if expected is None or set(expected) <= set(out) or time.monotonic() > deadline:
            return out
        time.sleep(0.5)


def expected_victoria(points: dict[Key, dict]) -> dict[tuple[str, tuple, int], float]:
    """What VictoriaMetrics makes of journal points: one sample per numeric field, named
    measurement_field, at millisecond precision (it keeps no strings)."""
    out = {}
    for (measurement, tags, time_ns), fields in points.items():
        for field, value in fields.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            out[(f"{measurement}_{field}", tags, time_ns // 1_000_000)] = float(value)
    return out


async def forward_all(journal_path: Path, settings: InfluxSettings, timeout_s: float = 120.0,
                      **options) -> Forwarder:
    """Run a forwarder until the journal's backlog is empty, then stop it."""
    forwarder = Forwarder(journal_path, InfluxTarget(settings), **options)
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop, drain_timeout_s=timeout_s))
    stop.set()  # drain what is there, then stop
    await asyncio.wait_for(task, timeout=timeout_s + 10)
    return forwarder
