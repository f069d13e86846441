"""The journal: batched commits, bounded size with named policies, drops counted, crash safety."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from storage.journal_reader import JournalReader
from collector.errors import ConfigError
from storage.journal import Journal
from storage.points import Point


def _points(n: int, start: int = 0) -> list[Point]:
    return [Point("meter", {"site": "s", "meter": "m1", "machine": "a"},
                  {"power_w": float(i), "energy_import_kwh": i / 1000}, 1_700_000_000_000_000_000 + i * 10**9)
            for i in range(start, start + n)]


def test_commit_and_read_back(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.put(_points(100))
    assert journal.commit() == 100
    journal.close()
    reader = JournalReader(tmp_path / "j.sqlite")
    [series] = reader.series("meter", meter="m1")
    times, power = reader.field(series.series_id, "power_w")
    assert list(power) == [float(i) for i in range(100)]
    assert times[1] - times[0] == pytest.approx(1.0)


def test_wal_mode(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_drop_oldest_counts_every_deleted_point(tmp_path):
    journal = Journal(tmp_path / "j.sqlite", max_points=1000, overflow="drop_oldest")
    journal.put(_points(800))
    journal.commit()
    journal.put(_points(500, start=800))
    journal.commit()
    assert journal.count() == 1000
    assert journal.drops() == {"journal_full_oldest_deleted": 300}
    reader = JournalReader(tmp_path / "j.sqlite")
    _, power = reader.field(reader.series("meter")[0].series_id, "power_w")
    assert power[0] == 300.0 and power[-1] == 1299.0


def _bookings(n: int) -> list[Point]:
    return [Point("booking", {"site": "s", "machine": "a", "member": f"m{i}"},
                  {"end_s": 1_700_000_100.0 + i, "source": "manual"}, 1_600_000_000_000_000_000 + i * 10**9)
            for i in range(n)]


def test_drop_oldest_never_deletes_bookings(tmp_path):
    journal = Journal(tmp_path / "j.sqlite", max_points=100, overflow="drop_oldest")
    journal.put(_bookings(5))  # the oldest points of the journal
    journal.put(_points(60))
    journal.commit()
    journal.put(_points(80, start=60))
    journal.commit()
    assert journal.count() == 100
    assert journal.drops() == {"journal_full_oldest_deleted": 45}
    reader = JournalReader(tmp_path / "j.sqlite")
    assert len(reader.series("booking")) == 5
    _, power = reader.field(reader.series("meter")[0].series_id, "power_w")
    assert len(power) == 95 and power[0] == 45.0 and power[-1] == 139.0
    # a journal holding only bookings: new readings are the ones that go, each counted
    full = Journal(tmp_path / "full.sqlite", max_points=5, overflow="drop_oldest")
    full.put(_bookings(5))
    full.commit()
    full.put(_points(3))
    full.commit()
    assert full.count() == 5 and full.drops() == {"journal_full_oldest_deleted": 3}


def test_reject_new_counts_every_refused_point(tmp_path):
    journal = Journal(tmp_path / "j.sqlite", max_points=1000, overflow="reject_new")
    journal.put(_points(1200))
    journal.commit()
    assert journal.count() == 1000
    assert journal.drops() == {"journal_full_rejected": 200}


def test_drop_reasons_persist(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.drop("nan_or_infinite", 3)
    journal.drop("counter_backwards")
    journal.commit()
    journal.close()
    assert Journal(tmp_path / "j.sqlite").drops() == {"nan_or_infinite": 3, "counter_backwards": 1}


def test_bad_settings_refused(tmp_path):
    with pytest.raises(ConfigError):
        Journal(tmp_path / "j.sqlite", overflow="drop_everything")
    with pytest.raises(ConfigError):
        Journal(tmp_path / "j.sqlite", commit_interval_s=5)


async def test_run_commits_within_interval_and_on_stop(tmp_path):
    journal = Journal(tmp_path / "j.sqlite", commit_interval_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(journal.run(stop))
    journal.put(_points(10))
    await asyncio.sleep(0.35)
    assert journal.count() == 10  # committed by the periodic commit, not by the stop
    journal.put(_points(5, start=10))
    stop.set()
    await task
    assert journal.count() == 15


def test_sigkill_loses_at_most_the_uncommitted_batch(tmp_path):
    """A process killed with SIGKILL leaves every committed point readable."""
    path = tmp_path / "j.sqlite"
    script = textwrap.dedent(f"""
        import os, signal
        from storage.journal import Journal
        from storage.points import Point
        j = Journal({str(path)!r})
        for batch in range(20):
            j.put([Point("meter", {{"meter": "m"}}, {{"power_w": float(i)}}, batch * 1000 + i) for i in range(100)])
            j.commit()
        j.put([Point("meter", {{"meter": "m"}}, {{"power_w": 1.0}}, 10**9)])  # never committed
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    reader = JournalReader(path)
    assert reader.count_by_series() == {1: 2000}


def test_replace_window_leaves_one_copy_of_recomputed_results(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    tags = {"site": "s", "machine": "a"}
    day = Point("usage", {**tags, "period": "day"}, {"energy_kwh": 1.0}, 1_000)  # before the window
    inside = [Point("job", tags, {"energy_kwh": float(i)}, 5_000 + i) for i in range(3)]
    other_site = Point("job", {"site": "t", "machine": "a"}, {"energy_kwh": 9.0}, 5_001)
    earlier_job = Point("job", tags, {"energy_kwh": 7.0}, 2_000)  # outside, not recomputed
    raw = _points(2)
    journal.put([day, *inside, other_site, earlier_job, *raw])
    journal.commit()
    new = [Point("usage", {**tags, "period": "day"}, {"energy_kwh": 2.0}, 1_000),
           Point("job", tags, {"energy_kwh": 5.0}, 5_000)]
    deleted, written = journal.replace_window(["job", "usage"], "s", 4_000, 6_000, new)
    assert (deleted, written) == (4, 2)  # three jobs in the window, the day's usage
    again = journal.replace_window(["job", "usage"], "s", 4_000, 6_000, new)
    assert again == (2, 2)
    assert journal.count() == 2 + 1 + 1 + 2  # raw, other site, earlier job, the new two
    journal.close()
    reader = JournalReader(tmp_path / "j.sqlite")
    [usage] = reader.series("usage")
    assert reader.points(usage.series_id) == [(1_000, {"energy_kwh": 2.0})]
    [job] = reader.series("job", site="s")
    assert reader.points(job.series_id) == [(2_000, {"energy_kwh": 7.0}), (5_000, {"energy_kwh": 5.0})]
    reader.close()



def test_results_read_back_as_written_whatever_their_values(tmp_path):
    """Results are written by orjson where it can (storage.journal._encode_result_fields), by
    the standard encoder otherwise: either way they read back as written, and a NaN is left
    out and counted as for any point."""
    journal = Journal(tmp_path / "j.sqlite")
    tags = {"site": "s", "machine": "a", "member": "Zoé « null » 🙂"}
    cases = [
        {"energy_kwh": 1e-7, "end_s": 1794787200.5, "co2e_kg": 0.0, "jobs": 3.0},
        {"program": 'O1234 "null" \\ \n', "attributed": True, "outcome": "ended", "energy_kwh": 5e-324},
        {"big": 2**70, "small": -(2**63), "energy_kwh": 1e16},
        {"energy_kwh": float("nan"), "duration_s": 10.0},
    ]
    points = [Point("job", tags, fields, 5_000 + i) for i, fields in enumerate(cases)]
    assert journal.replace_window(["job"], "s", 4_000, 6_000, points) == (0, 4)
    assert journal.drops() == {"non_finite_value": 1}
    journal.close()
    reader = JournalReader(tmp_path / "j.sqlite")
    [job] = reader.series("job")
    assert job.tags == tags
    back = [fields for _, fields in reader.points(job.series_id)]
    assert back[:3] == cases[:3] and back[3] == {"duration_s": 10.0}
    assert [type(v) for f in back for v in f.values()] == [type(v) for f in cases[:3] for v in f.values()] + [float]
    reader.close()


def test_two_writers_keep_the_stored_count_exact_and_the_bound(tmp_path):
    """The count of stored points lives in the journal, so a second writer (the analysis storing
    results beside the collector) is seen, and reopening needs no count of every row."""
    path = tmp_path / "j.sqlite"
    collector_side = Journal(path, max_points=250)
    analysis_side = Journal(path, max_points=250)
    collector_side.put(_points(100))
    collector_side.commit()
    analysis_side.put(_points(100, start=100))
    analysis_side.commit()
    collector_side.put(_points(100, start=200))  # 50 over the bound: the 50 oldest go
    collector_side.commit()
    rows = collector_side._db.execute("SELECT count(*) FROM points").fetchone()[0]
    assert rows == collector_side.count() == 250
    assert collector_side.drops() == {"journal_full_oldest_deleted": 50}
    collector_side.close()
    analysis_side.close()
    assert Journal(path).count() == 250
