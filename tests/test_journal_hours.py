"""Packed hours of the journal (storage/journal_hours.py): a point is in exactly one place, a
row or a packed hour, and reads back as written through every sequence of writes, late points,
packing, overflow and forwarding; an hour is packed only once every forwarding target has its
rows; ids are never given twice; a history written straight into hours reads and forwards as
rows would."""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.inputs import JournalInputs
from devices import vocabulary
from storage.forward_store import ForwardStore, journal_status
from storage.journal import Journal
from storage.journal_reader import JournalReader
from storage.journal_schema import HOUR_NS
from storage.points import Point, to_line
from storage.rollup import COLUMN, STAT_COLUMNS, unpack, unpack_histogram

T0_NS = 1_794_182_400 * 10**9  # an hour boundary (2026-11-09 00:00 UTC)
FIELDS = ("power_w", "energy_import_kwh")
TARGET = "http://127.0.0.1:8086 v1 db=w"


def _meter(time_ns: int, power_w, energy_kwh=None, meter: str = "m1") -> Point:
    fields = {"power_w": power_w}
    if energy_kwh is not None:
        fields["energy_import_kwh"] = energy_kwh
    return Point("meter", {"site": "s", "meter": meter, "machine": meter}, fields, time_ns)


def _points(path, measurement: str = "meter") -> dict[str, list[tuple[int, dict]]]:
    """{series key: [(time_ns, fields)]} of a measurement, read back."""
    reader = JournalReader(path)
    try:
        return {json.dumps(s.tags, sort_keys=True): reader.points(s.series_id) for s in reader.series(measurement)}
    finally:
        reader.close()


def _hours(journal: Journal) -> list[tuple[int, int, int]]:
    return journal._db.execute("SELECT series_id, start_ns, count FROM hours ORDER BY series_id, start_ns").fetchall()


def _rows(journal: Journal, measurement: str = "meter") -> int:
    return journal._db.execute("SELECT count(*) FROM points WHERE series_id IN (SELECT id FROM series WHERE "
                               "measurement = ?)", (measurement,)).fetchone()[0]


def _rollups(journal: Journal) -> dict[int, str]:
    """{hour start ns: fields JSON} of the rollup points in the journal."""
    return dict(journal._db.execute(
        "SELECT time_ns, fields FROM points WHERE series_id IN (SELECT id FROM series WHERE measurement = ?) "
        "ORDER BY time_ns", (vocabulary.ROLLUP,)).fetchall())


def test_packed_hours_read_back_as_written(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    points = [_meter(T0_NS + i * 10**9, float(i % 97), 1000.0 + i / 3600) for i in range(3 * 3600 + 600)]
    points[5] = _meter(T0_NS + 5 * 10**9, float("nan"), 1000.0)   # NaN: left out, counted
    points[7] = _meter(T0_NS + 7 * 10**9, 12.5)                   # no counter in this point
    points[9] = _meter(T0_NS + 9 * 10**9, "n/a", 1000.0)          # not a number
    journal.put(points)
    journal.commit()
    before = _points(path)
    assert journal.drops() == {"non_finite_value": 1}
    assert journal.compact(horizon_ns=T0_NS + 4 * HOUR_NS) == len(points)
    assert [h[1] for h in _hours(journal)] == [T0_NS + k * HOUR_NS for k in range(4)]
    assert _rows(journal) == 0 and journal.count() == len(points) + 4  # and 4 rollups
    journal.close()
    assert _points(path) == before
    reader = JournalReader(path)
    t, v = reader.numeric_series(1, FIELDS, T0_NS, T0_NS + 10 * 10**9)
    assert list(t) == [T0_NS + i * 10**9 for i in range(10)]
    assert math.isnan(v[1][7]) and math.isnan(v[0][9]) and v[0][8] == 8.0 and v[0][5] != v[0][5]
    t, v = reader.numeric_series(1, FIELDS, T0_NS + 1800 * 10**9 + 1, T0_NS + 2 * HOUR_NS + 17 * 10**9)
    assert len(t) == 5416 and t[0] == T0_NS + 1801 * 10**9  # cut inside hours
    reader.close()


def test_packing_stops_at_the_horizon_and_resumes(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([_meter(T0_NS + i * 10**9, 100.0) for i in range(0, 5 * 3600, 10)])
    journal.commit()
    assert journal.compact(horizon_ns=T0_NS + 2 * HOUR_NS + 5 * 10**9) == 720  # hours 0 and 1 only
    assert journal.compact(horizon_ns=T0_NS + 2 * HOUR_NS + 5 * 10**9) == 0    # nothing new
    assert journal.compact(horizon_ns=T0_NS + 10 * HOUR_NS, hours_per_transaction=1) == 3 * 360
    assert len(_hours(journal)) == 5 and _rows(journal) == 0
    journal.close()


def test_a_late_point_is_a_row_until_the_next_packing_adds_it_to_its_hour(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([_meter(T0_NS + i * 10**9, 50.0, 1.0) for i in range(0, 3 * 3600, 2)])
    journal.commit()
    journal.compact(horizon_ns=T0_NS + 3 * HOUR_NS)
    journal.put([_meter(T0_NS + HOUR_NS + 11 * 10**9, 999.0, 1.0),  # between two packed points
                 _meter(T0_NS + HOUR_NS + 12 * 10**9, 998.0, 1.0)])  # at the time of a packed one
    journal.commit()
    assert _rows(journal) == 2
    reader = JournalInputs(path)
    t, v = reader.numeric_series(1, FIELDS, T0_NS + HOUR_NS, T0_NS + HOUR_NS + 14 * 10**9)
    assert list(t - T0_NS - HOUR_NS) == [k * 10**9 for k in (0, 2, 4, 6, 8, 10, 11, 12, 12)]
    assert list(v[0][-3:]) == [999.0, 50.0, 998.0]  # at one time: the packed point first
    assert reader.whole_packed_hours(1, T0_NS, T0_NS + 3 * HOUR_NS) == {T0_NS, T0_NS + 2 * HOUR_NS}
    reader.close()
    before = _points(path)
    assert journal.compact(horizon_ns=T0_NS + 3 * HOUR_NS) == 2
    assert _hours(journal)[1] == (1, T0_NS + HOUR_NS, 1802) and _rows(journal) == 0
    journal.close()
    assert _points(path) == before


def test_an_hour_waits_until_every_forwarding_target_has_its_rows(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([_meter(T0_NS + i * 10**9, 1.0) for i in range(0, 2 * 3600, 10)])
    journal.commit()
    store = ForwardStore(path, TARGET)
    batch = store.read_batch(0, 360)  # the first hour accepted, not the second
    store.record(batch, [])
    assert journal.compact(horizon_ns=T0_NS + 2 * HOUR_NS) == 360
    assert [h[1] for h in _hours(journal)] == [T0_NS]
    assert store.backlog() == 360 + 1  # the second hour's rows, and the first hour's rollup
    batch = store.read_batch(store.cursor(), 5000)
    assert len(batch) == 361 and not any(" 1794182400000000000" in line and "power_rollup" not in line
                                         for line in batch.lines)  # the packed hour is not sent again
    store.record(batch, [])
    assert journal.compact(horizon_ns=T0_NS + 2 * HOUR_NS) == 360
    assert store.backlog() == 1  # the second hour's rollup, a new row
    store.close()
    journal.close()


def test_a_history_written_into_hours_reads_and_forwards_as_rows_would(tmp_path):
    history, rows = tmp_path / "history.sqlite", tmp_path / "rows.sqlite"
    t = T0_NS + np.arange(0, 2 * 3600, 2, dtype=np.int64) * 10**9 + 1500
    power = np.float32(np.linspace(0, 3000, len(t))).astype(np.float64)
    counter = np.round(np.linspace(10, 12, len(t)) * 100) / 100
    tags = {"site": "s", "meter": "m1", "machine": "m1"}
    journal = Journal(history)
    assert journal.write_history("meter", tags, t, {"power_w": power, "energy_import_kwh": counter}) == len(t)
    assert len(_hours(journal)) == 2 and _rows(journal) == 0 and journal.count() == len(t) + 2
    other = Journal(rows)
    other.put([Point("meter", tags, {"power_w": p, "energy_import_kwh": c}, int(ti))
               for ti, p, c in zip(t.tolist(), power.tolist(), counter.tolist())])
    other.commit()
    other.compact(horizon_ns=T0_NS + 2 * HOUR_NS)
    assert _rollups(journal) == _rollups(other)  # the same rollup either way
    assert journal._db.execute("SELECT blob FROM hours").fetchall() == other._db.execute(
        "SELECT blob FROM hours").fetchall()  # and the same bytes
    journal.close()
    other.close()
    assert _points(history) == _points(rows)
    status = journal_status(history)  # what `wattelier journal` shows: the packed points counted
    assert (status.points, status.oldest_point_ns, status.newest_point_ns) == (len(t) + 2, T0_NS, int(t[-1]))
    store = ForwardStore(history, TARGET)
    lines = []
    while batch := store.read_batch(store.cursor(), 1000):
        lines += batch.lines
        store.record(batch, [])
    store.close()
    expected = [to_line(Point("meter", tags, {"energy_import_kwh": c, "power_w": p}, int(ti)))
                for ti, p, c in zip(t.tolist(), power.tolist(), counter.tolist())]
    assert sorted(line for line in lines if line.startswith("meter")) == sorted(expected)
    assert sum(line.startswith("power_rollup") for line in lines) == 2


def test_overflow_deletes_the_oldest_points_packed_or_not_and_counts_each(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path, max_points=3 * 360)
    journal.put([_meter(T0_NS + i * 10**9, float(i)) for i in range(0, 3 * 3600, 10)])
    journal.commit()
    journal.compact(horizon_ns=T0_NS + 3 * HOUR_NS)
    assert len(_hours(journal)) == 3 and len(_rollups(journal)) == 3  # rollups are counted too
    journal.put([_meter(T0_NS + 3 * HOUR_NS + i * 10**9, 7.0) for i in range(0, 400, 10)])  # 40 over
    journal.commit()
    # 40 new points and 3 rollups over the bound: the 43 oldest meter points make room
    assert journal.drops() == {"journal_full_oldest_deleted": 43}
    assert [h[1:] for h in _hours(journal)] == [(T0_NS, 360 - 43), (T0_NS + HOUR_NS, 360), (T0_NS + 2 * HOUR_NS, 360)]
    first_rollup = _rollups(journal)[T0_NS]
    journal.put([_meter(T0_NS + 17, 1.0)])  # a late point in the hour that lost points: one more out
    journal.commit()
    assert journal.drops() == {"journal_full_oldest_deleted": 44}
    journal.compact(horizon_ns=T0_NS + 3 * HOUR_NS)
    # the first hour lost points: packed again, but its rollup stays the one of the whole hour
    assert _rollups(journal)[T0_NS] == first_rollup and json.loads(first_rollup)["samples"] == 360.0
    assert journal.count() == 3 * 360
    journal.close()
    [meter] = _points(path).values()
    assert [t for t, _ in meter][:3] == [T0_NS + 17, T0_NS + 440 * 10**9, T0_NS + 450 * 10**9]
    assert len(meter) == 3 * 360 + 40 + 1 - 44


def test_results_and_bookings_stay_rows_readings_are_packed(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([Point("cnc", {"site": "s", "machine": "a"}, {"execution": "ACTIVE", "part_count": i, "ok": True},
                       T0_NS + i * 10**9) for i in range(100)])
    journal.put([_meter(T0_NS + i * 10**9, 5.0) for i in range(100)])
    journal.put([Point("booking", {"site": "s", "machine": "a", "member": "m"}, {"end_s": 1.0}, T0_NS)])
    journal.put([Point("job", {"site": "s", "machine": "a"}, {"energy_kwh": 1.0}, T0_NS)])
    journal.commit()
    before = {m: _points(path, m) for m in ("cnc", "meter", "booking", "job")}
    assert journal.compact(horizon_ns=T0_NS + HOUR_NS) == 200
    assert _rows(journal, "booking") == _rows(journal, "job") == 1 and _rows(journal, "cnc") == 0
    journal.close()
    assert {m: _points(path, m) for m in before} == before  # ints stay ints, bools bools


def test_a_deleted_rows_id_is_never_given_again(tmp_path):
    """A new point must never fall at or below a forwarding cursor: ids keep rising even when
    the newest rows are packed or replaced."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([_meter(T0_NS + i * 10**9, 1.0) for i in range(10)])
    journal.commit()
    store = ForwardStore(path, TARGET)
    store.record(store.read_batch(0, 100), [])
    sent = store.cursor()
    journal.compact(horizon_ns=T0_NS + HOUR_NS)  # the newest rows go into an hour
    journal.replace_window(["job"], "s", 0, 1, [])
    journal.put([_meter(T0_NS + HOUR_NS, 2.0)])
    journal.commit()
    assert journal._db.execute("SELECT min(id) FROM points WHERE series_id = 1").fetchone()[0] > sent
    assert [line.split()[-1] for line in store.read_batch(sent, 100).lines if line.startswith("meter")] == [
        str(T0_NS + HOUR_NS)]
    store.close()
    journal.close()


def test_the_collector_loop_packs_as_it_runs(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path, commit_interval_s=0.05, compact_every_s=0.1)
    journal.put([_meter(T0_NS + i * 10**9, 1.0) for i in range(100)])  # an old hour

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(journal.run(stop))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if _hours(journal):
                break
        stop.set()
        await task

    asyncio.run(main())
    assert _hours(journal) == [(1, T0_NS, 100)]
    journal.close()


def test_packing_writes_one_rollup_per_meter_hour_and_replaces_it_after_a_late_point(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([_meter(T0_NS + i * 10**9, 100.0 + i % 7, 5.0 + i / 3600) for i in range(0, 7200, 2)])
    journal.commit()
    journal.compact(horizon_ns=T0_NS + 2 * HOUR_NS)
    rollups = _rollups(journal)
    assert list(rollups) == [T0_NS, T0_NS + HOUR_NS]
    fields = json.loads(rollups[T0_NS])
    assert fields["samples"] == 1800.0 and fields["power_min_w"] == 100.0 and fields["power_max_w"] == 106.0
    hour = unpack(fields["hour"], len(STAT_COLUMNS))[0]
    assert hour[COLUMN["first_s"]] == T0_NS / 1e9 and hour[COLUMN["last_s"]] == T0_NS / 1e9 + 3598
    minutes = unpack(fields["minutes"], len(STAT_COLUMNS))
    assert minutes.shape == (60, len(STAT_COLUMNS))
    assert np.all(minutes[:, COLUMN["samples"]] == 30) and np.all(minutes[:, COLUMN["max_step_s"]] == 2.0)
    below, bins, counts = unpack_histogram(fields["histogram"])
    assert below == 0 and counts.sum() == 1800 and list(bins) == [100, 101]
    journal.put([_meter(T0_NS + 1801 * 10**9, 2000.0, 5.5)])
    journal.commit()
    journal.compact(horizon_ns=T0_NS + 2 * HOUR_NS)
    rollups = _rollups(journal)
    assert list(rollups) == [T0_NS, T0_NS + HOUR_NS]
    fields = json.loads(rollups[T0_NS])
    assert fields["samples"] == 1801.0 and fields["power_max_w"] == 2000.0
    journal.close()


# Operations of the property test: (kind, hour 0..5, second 0..3599, value).
_ops = st.lists(st.tuples(st.sampled_from(["put", "put", "put", "compact", "overflow", "forward"]),
                          st.integers(0, 5), st.integers(0, 3599),
                          st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")))),
                min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, bounded=st.booleans())
def test_any_sequence_of_writes_packing_forwarding_and_overflow_reads_back_as_written(tmp_path_factory, ops,
                                                                                     bounded):
    """Without a bound every point written reads back, in time order (at one time, in the
    order written); with one, what reads back is what was written less the points counted as
    deleted, and the count is exact."""
    path = tmp_path_factory.mktemp("hours") / "j.sqlite"
    journal = Journal(path, max_points=400 if bounded else 10**9)
    store = None
    written: dict[str, list[tuple[int, dict]]] = {}
    for kind, hour, second, value in ops:
        if kind == "put":
            base = T0_NS + hour * HOUR_NS + second * 10**9
            points = [_meter(base + k * 7 * 10**9, value + k, 1.0 + k) for k in range(30)]
            points.append(_meter(base, value, meter="m2"))
        elif kind == "overflow":
            points = [_meter(T0_NS + 6 * HOUR_NS + k, 0.0, meter="m3") for k in range(second % 200)]
        elif kind == "compact":
            journal.compact(horizon_ns=T0_NS + hour * HOUR_NS, hours_per_transaction=2)
            continue
        else:
            store = store or ForwardStore(path, TARGET)
            store.record(store.read_batch(store.cursor(), second % 500 + 1), [])
            continue
        journal.put(points)
        journal.commit()
        for p in points:
            fields = {k: v for k, v in p.fields.items() if not (isinstance(v, float) and math.isnan(v))}
            written.setdefault(json.dumps(p.tags, sort_keys=True), []).append((p.time_ns, fields))
    journal.compact(horizon_ns=T0_NS + 8 * HOUR_NS)
    deleted = journal.drops().get("journal_full_oldest_deleted", 0) + journal.counters().get(
        "journal_full_forwarded_deleted", 0)
    stored = journal.count()
    journal.close()
    if store is not None:
        store.close()
    read = _points(path)
    rollups = sum(len(v) for v in _points(path, vocabulary.ROLLUP).values())
    assert sum(map(len, read.values())) + rollups == stored
    for key, points in written.items():
        expected = sorted(points, key=lambda p: p[0])  # stable: the order written at one time
        got = read.get(key, [])
        if not bounded:
            assert got == expected
        else:
            remaining = list(expected)
            for point in got:  # a sub-multiset of what was written
                remaining.remove(point)
    if not bounded:
        assert deleted == 0
    else:
        lost = sum(len(v) for v in written.values()) - sum(len(v) for v in read.values())
        assert lost <= deleted  # every point gone is counted (a rollup deleted is counted too)
    reader = JournalReader(path)
    for series in reader.series("meter"):  # numbers read as the points say
        t, v = reader.numeric_series(series.series_id, FIELDS)
        points = reader.points(series.series_id)
        assert list(t) == [p[0] for p in points]
        assert np.array_equal(v[0], [p[1].get("power_w", np.nan) for p in points], equal_nan=True)
        ranges = [(T0_NS + k * 1700 * 10**9, T0_NS + k * 1700 * 10**9 + 600 * 10**9) for k in range(0, 16, 3)]
        t_ranges, v_ranges = reader.numeric_ranges(series.series_id, FIELDS, ranges)
        pieces = [reader.numeric_series(series.series_id, FIELDS, a, b) for a, b in ranges]
        assert list(t_ranges) == [t for piece in pieces for t in piece[0]]
        assert np.array_equal(v_ranges, np.concatenate([piece[1] for piece in pieces], axis=1), equal_nan=True)
    reader.close()


def test_packed_hours_are_sent_as_the_same_lines_as_their_rows(tmp_path):
    """The forwarder's lines of a packed hour (a meter hour through the column fast path, a
    controller hour with texts, ints and bools through the points) are those of its rows."""
    rows_path, packed_path = tmp_path / "rows.sqlite", tmp_path / "packed.sqlite"
    points = [_meter(T0_NS + i * 10**9, 1000.0 + i * 0.37, 5.0 + i / 3600) for i in range(0, 3600, 3)]
    points += [Point("cnc", {"site": "s", "machine": "a"}, {"execution": "ACTIVE", "part_count": i, "alarm": i % 2 == 0},
                     T0_NS + i * 10**9) for i in range(0, 3600, 60)]
    lines = {}
    for path, pack in ((rows_path, False), (packed_path, True)):
        journal = Journal(path)
        journal.put(points)
        journal.commit()
        if pack:
            journal.compact(horizon_ns=T0_NS + HOUR_NS)
            assert _rows(journal) == _rows(journal, "cnc") == 0
        journal.close()
        store = ForwardStore(path, TARGET)
        batch = store.read_batch(0, 10_000)
        store.close()
        # the field set's order is free in line protocol: rows keep the order written
        lines[pack] = sorted((key, sorted(field_set.split(",")), t) for key, field_set, t in
                             (line.split(" ") for line in batch.lines if not line.startswith("power_rollup")))
    assert lines[True] == lines[False] and len(lines[True]) == len(points)


def test_a_history_bigger_than_the_journal_keeps_the_newest_and_counts_the_rest(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path, max_points=5000)
    tags = {"site": "s", "meter": "m1", "machine": "m1"}
    for k in range(3):
        t = T0_NS + (np.arange(3600) + k * 3600) * 10**9
        assert journal.write_history("meter", tags, t, {"power_w": np.ones(3600), "energy_import_kwh": t / 1e12}) == 3600
    deleted = journal.drops()["journal_full_oldest_deleted"]
    stored = journal.count()
    assert stored == 3 * 3600 + 3 - deleted  # three hours and their rollups, less what made room
    assert stored <= 5000 + 1  # the bound, and the rollup of the hour written last
    journal.close()
    [meter] = _points(path).values()
    rollups = sum(len(v) for v in _points(path, vocabulary.ROLLUP).values())
    assert len(meter) + rollups == stored
    assert meter[-1][0] == T0_NS + (3 * 3600 - 1) * 10**9  # the newest kept
    assert [t for t, _ in meter] == sorted(t for t, _ in meter)


def test_rollup_minutes_are_the_same_read_on_their_own_or_after_the_hours(tmp_path):
    """analytics.inputs.JournalInputs reads a machine's rollups once for rollup_hours and hands
    rollup_minutes what it read; asked on its own (or for another machine) it reads them then."""
    from analytics.inputs import JournalInputs

    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([_meter(T0_NS + i * 10**9, 100.0 + 900.0 * ((i // 600) % 2), 5.0 + i / 3600)
                 for i in range(0, 4 * 3600, 2)])
    journal.commit()
    journal.compact(horizon_ns=T0_NS + 5 * HOUR_NS)
    journal.close()
    hours = np.array([T0_NS + HOUR_NS, T0_NS + 3 * HOUR_NS, T0_NS + 9 * HOUR_NS])  # the last has none
    after_hours = JournalInputs(path)
    assert [r[0] for r in after_hours.rollup_hours("m1", T0_NS, T0_NS + 4 * HOUR_NS)] == [
        T0_NS + k * HOUR_NS for k in range(4)]
    found, missing = after_hours.rollup_minutes("m1", hours)
    on_its_own = JournalInputs(path)
    assert on_its_own.rollup_minutes("m1", hours) == (found, missing)
    assert len(found) == 2 and missing == [T0_NS + 9 * HOUR_NS]
    assert all(unpack(m, len(STAT_COLUMNS)).shape == (60, len(STAT_COLUMNS)) and d for m, d in found)
    assert on_its_own.rollup_minutes("no-such-machine", hours) == ([], sorted(hours.tolist()))
    after_hours.close()
    on_its_own.close()
