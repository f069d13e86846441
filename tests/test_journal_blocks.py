"""Column blocks of the journal: packed hours read back exactly as the point rows, and a block
never outlives a change to the points of its hour (insert, overflow deletion, replaced results)."""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.inputs import JournalInputs
from storage.journal import Journal
from storage.points import Point
from devices import vocabulary
from storage.journal_schema import BLOCK_NS
from storage.rollup import COLUMN, STAT_COLUMNS, unpack, unpack_histogram

T0_NS = 1_794_182_400 * 10**9  # an hour boundary (2026-11-09 00:00 UTC)
FIELDS = ("power_w", "energy_import_kwh")


def _meter(time_ns: int, power_w, energy_kwh=None, meter: str = "m1") -> Point:
    fields = {"power_w": power_w}
    if energy_kwh is not None:
        fields["energy_import_kwh"] = energy_kwh
    return Point("meter", {"site": "s", "meter": meter, "machine": meter}, fields, time_ns)


def _read(path, series_id: int, start_ns: int, end_ns: int, use_blocks: bool):
    reader = JournalInputs(path)
    try:
        if use_blocks:
            return reader.numeric_series(series_id, FIELDS, start_ns, end_ns)
        return reader._numeric_rows(series_id, FIELDS, start_ns, end_ns)
    finally:
        reader.close()


def _assert_same(path, start_ns: int, end_ns: int, series_id: int = 1) -> int:
    t_rows, v_rows = _read(path, series_id, start_ns, end_ns, use_blocks=False)
    t_blocks, v_blocks = _read(path, series_id, start_ns, end_ns, use_blocks=True)
    np.testing.assert_array_equal(t_blocks, t_rows)
    np.testing.assert_array_equal(v_blocks, v_rows)  # NaN equals NaN here
    return len(t_rows)


def _rollups(journal: Journal) -> dict[int, str]:
    """{hour start ns: fields JSON} of the rollup points in the journal."""
    return dict(journal._db.execute(
        "SELECT time_ns, fields FROM points WHERE series_id IN (SELECT id FROM series WHERE measurement = ?) "
        "ORDER BY time_ns", (vocabulary.ROLLUP,)).fetchall())


def _blocks(journal: Journal) -> list[tuple[int, int, int]]:
    return journal._db.execute("SELECT series_id, start_ns, count FROM blocks ORDER BY series_id, start_ns").fetchall()


def test_packed_hours_read_back_as_the_rows(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    points = [_meter(T0_NS + i * 10**9, float(i % 97), 1000.0 + i / 3600) for i in range(3 * 3600 + 600)]
    points[5] = _meter(T0_NS + 5 * 10**9, float("nan"), 1000.0)   # NaN: left out, counted
    points[7] = _meter(T0_NS + 7 * 10**9, 12.5)                   # no counter in this point
    points[9] = _meter(T0_NS + 9 * 10**9, "n/a", 1000.0)          # not a number
    journal.put(points)
    journal.commit()
    assert journal.drops() == {"non_finite_value": 1}
    packed = journal.compact(horizon_ns=T0_NS + 4 * BLOCK_NS)
    # Three complete hours and the partial fourth one (its hour ended before the horizon).
    assert packed == len(points)
    assert [b[1] for b in _blocks(journal)] == [T0_NS + k * BLOCK_NS for k in range(4)]
    journal.close()
    # The whole range, a window cut inside blocks, a window inside one block.
    assert _assert_same(path, T0_NS - 10**9, T0_NS + 5 * BLOCK_NS) == len(points)
    assert _assert_same(path, T0_NS + 1800 * 10**9 + 1, T0_NS + 2 * BLOCK_NS + 17 * 10**9) == 5416  # seconds 1801..7216
    assert _assert_same(path, T0_NS + 10 * 10**9, T0_NS + 20 * 10**9) == 10
    t, v = _read(path, 1, T0_NS, T0_NS + 10 * 10**9, use_blocks=True)
    assert math.isnan(v[0][5]) and math.isnan(v[1][7]) and math.isnan(v[0][9]) and v[0][8] == 8.0


def test_compaction_stops_at_the_horizon_and_resumes(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([_meter(T0_NS + i * 10**9, 100.0) for i in range(0, 5 * 3600, 10)])
    journal.commit()
    assert journal.compact(horizon_ns=T0_NS + 2 * BLOCK_NS + 5 * 10**9) == 720  # hours 0 and 1 only
    assert journal.compact(horizon_ns=T0_NS + 2 * BLOCK_NS + 5 * 10**9) == 0    # nothing new
    assert journal.compact(horizon_ns=T0_NS + 10 * BLOCK_NS, hours_per_transaction=1) == 3 * 360
    assert len(_blocks(journal)) == 5
    journal.close()
    _assert_same(path, T0_NS, T0_NS + 6 * BLOCK_NS)


def test_a_late_point_deletes_its_hours_block_and_the_next_compaction_rebuilds_it(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([_meter(T0_NS + i * 10**9, 50.0, 1.0) for i in range(0, 3 * 3600, 2)])
    journal.commit()
    journal.compact(horizon_ns=T0_NS + 3 * BLOCK_NS)
    assert len(_blocks(journal)) == 3
    # A point arriving late into the middle hour (odd second: between two packed ones).
    journal.put([_meter(T0_NS + BLOCK_NS + 11 * 10**9, 999.0, 1.0)])
    journal.commit()
    assert [b[1] for b in _blocks(journal)] == [T0_NS, T0_NS + 2 * BLOCK_NS]
    journal.close()
    assert _assert_same(path, T0_NS, T0_NS + 3 * BLOCK_NS) == 3 * 1800 + 1
    journal = Journal(path)
    assert journal.compact(horizon_ns=T0_NS + 3 * BLOCK_NS) == 1801
    assert _blocks(journal)[1] == (1, T0_NS + BLOCK_NS, 1801)
    journal.close()
    t, v = _read(path, 1, T0_NS + BLOCK_NS, T0_NS + 2 * BLOCK_NS, use_blocks=True)
    assert v[0][list(t).index(T0_NS + BLOCK_NS + 11 * 10**9)] == 999.0


def test_a_point_in_an_empty_hour_below_the_cursor_gets_packed(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([_meter(T0_NS + i * 10**9, 1.0) for i in range(60)])
    journal.put([_meter(T0_NS + 5 * BLOCK_NS + i * 10**9, 2.0) for i in range(60)])
    journal.commit()
    journal.compact(horizon_ns=T0_NS + 6 * BLOCK_NS)
    assert len(_blocks(journal)) == 2
    journal.put([_meter(T0_NS + 3 * BLOCK_NS, 3.0)])  # hour 3 had no points when packing passed it
    journal.commit()
    assert journal.compact(horizon_ns=T0_NS + 6 * BLOCK_NS) == 1
    assert [b[1] for b in _blocks(journal)] == [T0_NS, T0_NS + 3 * BLOCK_NS, T0_NS + 5 * BLOCK_NS]
    journal.close()
    assert _assert_same(path, T0_NS, T0_NS + 6 * BLOCK_NS) == 121


def test_overflow_deleting_the_oldest_points_deletes_their_blocks(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path, max_points=3 * 360)
    journal.put([_meter(T0_NS + i * 10**9, float(i)) for i in range(0, 3 * 3600, 10)])
    journal.commit()
    journal.compact(horizon_ns=T0_NS + 3 * BLOCK_NS)
    assert len(_blocks(journal)) == 3
    assert len(_rollups(journal)) == 3  # one rollup point per packed meter hour, counted too
    journal.put([_meter(T0_NS + 3 * BLOCK_NS + i * 10**9, 7.0) for i in range(0, 400, 10)])  # 40 over
    journal.commit()
    # 40 new points and 3 rollups over the bound: the 43 oldest meter points make room
    assert journal.drops() == {"journal_full_oldest_deleted": 43}
    assert [b[1] for b in _blocks(journal)] == [T0_NS + BLOCK_NS, T0_NS + 2 * BLOCK_NS]
    first_rollup = _rollups(journal)[T0_NS]
    journal.compact(horizon_ns=T0_NS + 3 * BLOCK_NS)
    # the first hour lost points: packed again, but its rollup stays the one of the whole hour
    assert _rollups(journal)[T0_NS] == first_rollup
    assert json.loads(first_rollup)["samples"] == 360.0
    journal.close()
    assert _assert_same(path, T0_NS, T0_NS + 4 * BLOCK_NS) == 3 * 360 + 40 - 43


def test_other_measurements_and_fields_are_not_packed(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([Point("cnc", {"site": "s", "machine": "a"}, {"execution": "ACTIVE"}, T0_NS + i * 10**9)
                 for i in range(100)])
    journal.put([_meter(T0_NS + i * 10**9, 5.0) for i in range(100)])
    journal.commit()
    assert journal.compact(horizon_ns=T0_NS + BLOCK_NS) == 100
    [(series_id, _, _)] = _blocks(journal)
    measurement = journal._db.execute("SELECT measurement FROM series WHERE id = ?", (series_id,)).fetchone()[0]
    assert measurement == "meter"
    assert journal._db.execute("SELECT fields FROM blocks").fetchone()[0] == "power_w,energy_import_kwh"
    journal.close()


def test_the_collector_loop_packs_blocks_as_it_runs(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path, commit_interval_s=0.05, compact_every_s=0.1)
    journal.put([_meter(T0_NS + i * 10**9, 1.0) for i in range(100)])  # an old hour

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(journal.run(stop))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if _blocks(journal):
                break
        stop.set()
        await task

    asyncio.run(main())
    assert _blocks(journal) == [(1, T0_NS, 100)]
    journal.close()


# Operations of the property test: (kind, hour 0..5, second 0..3599, value).
_ops = st.lists(st.tuples(st.sampled_from(["put", "put", "put", "compact", "overflow"]),
                          st.integers(0, 5), st.integers(0, 3599),
                          st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")))),
                min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_any_sequence_of_writes_packs_and_deletes_reads_back_as_the_rows(tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("blocks") / "j.sqlite"
    journal = Journal(path, max_points=400)
    for kind, hour, second, value in ops:
        if kind == "put":
            base = T0_NS + hour * BLOCK_NS + second * 10**9
            journal.put([_meter(base + k * 7 * 10**9, value + k, 1.0 + k) for k in range(30)])
            journal.put([_meter(base, value, meter="m2")])
            journal.commit()
        elif kind == "compact":
            journal.compact(horizon_ns=T0_NS + hour * BLOCK_NS, hours_per_transaction=2)
        else:
            journal.put([_meter(T0_NS + 6 * BLOCK_NS + k, 0.0, meter="m3") for k in range(second % 200)])
            journal.commit()
    journal.compact(horizon_ns=T0_NS + 8 * BLOCK_NS)
    series = [sid for sid, in journal._db.execute("SELECT id FROM series")]
    journal.close()
    for series_id in series:
        _assert_same(path, T0_NS - BLOCK_NS, T0_NS + 8 * BLOCK_NS, series_id)
        _assert_same(path, T0_NS + 1234 * 10**9, T0_NS + 3 * BLOCK_NS + 77 * 10**9, series_id)


def test_packing_writes_one_rollup_per_meter_hour_and_replaces_it_after_a_late_point(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([_meter(T0_NS + i * 10**9, 100.0 + i % 7, 5.0 + i / 3600) for i in range(0, 7200, 2)])
    journal.commit()
    journal.compact(horizon_ns=T0_NS + 2 * BLOCK_NS)
    rollups = _rollups(journal)
    assert list(rollups) == [T0_NS, T0_NS + BLOCK_NS]
    fields = json.loads(rollups[T0_NS])
    assert fields["samples"] == 1800.0 and fields["power_min_w"] == 100.0 and fields["power_max_w"] == 106.0
    hour = unpack(fields["hour"], len(STAT_COLUMNS))[0]
    assert hour[COLUMN["first_s"]] == T0_NS / 1e9 and hour[COLUMN["last_s"]] == T0_NS / 1e9 + 3598
    minutes = unpack(fields["minutes"], len(STAT_COLUMNS))
    assert minutes.shape == (60, len(STAT_COLUMNS))
    assert np.all(minutes[:, COLUMN["samples"]] == 30) and np.all(minutes[:, COLUMN["max_step_s"]] == 2.0)
    assert minutes[0, COLUMN["counter_first_kwh"]] == 5.0 and minutes[0, COLUMN["counter_irregular"]] == 0
    below, bins, counts = unpack_histogram(fields["histogram"])
    # 0.02-decade bins: 100 W .. 104.7 W is bin 100 (log10 = 2.00), 106 W is in bin 101
    assert below == 0 and counts.sum() == 1800 and list(bins) == [100, 101]
    # a late point in the first hour: its rollup is made again, still one point per hour
    journal.put([_meter(T0_NS + 1801 * 10**9, 2000.0, 5.5)])
    journal.commit()
    journal.compact(horizon_ns=T0_NS + 2 * BLOCK_NS)
    rollups = _rollups(journal)
    assert list(rollups) == [T0_NS, T0_NS + BLOCK_NS]
    fields = json.loads(rollups[T0_NS])
    assert fields["samples"] == 1801.0 and fields["power_max_w"] == 2000.0
    journal.close()


def test_a_journal_of_schema_3_is_packed_again_with_rollups(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put([_meter(T0_NS + i * 10**9, 50.0) for i in range(0, 3600, 10)])
    journal.commit()
    journal.compact(horizon_ns=T0_NS + BLOCK_NS)
    # what a version 3 journal looks like: blocks, no rollups
    journal._db.execute("DELETE FROM points WHERE series_id IN (SELECT id FROM series WHERE measurement = ?)",
                        (vocabulary.ROLLUP,))
    journal._db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    journal.close()
    journal = Journal(path)
    assert _blocks(journal) == [] and _rollups(journal) == {}
    journal.compact(horizon_ns=T0_NS + BLOCK_NS)
    assert len(_blocks(journal)) == 1 and list(_rollups(journal)) == [T0_NS]
    journal.close()
    assert _assert_same(path, T0_NS, T0_NS + BLOCK_NS) == 360
