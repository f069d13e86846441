"""The journal defends itself (issue 14): a damaged, foreign or newer journal is refused with one
clear line and left byte for byte as it was; a second collector is refused; a full or read-only
disk is said once and retried; reject_new recovers once points are forwarded; no credential of a
URL is stored; a configured target that never accepted a write is shown."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.journal_reader import JournalReader
from storage.forward_store import ForwardStore, journal_status, quarantined_lines, record_target
from storage.journal import FORWARDED_DELETED, Journal
from storage.points import Point
from storage import journal_schema
from storage.journal_schema import (SCHEMA_VERSION, JournalDamaged, JournalError, JournalFull,
                                    JournalLocked, JournalUnwritable, JournalVersionError,
                                    check_journal)
from devices.site import example_site_path
from tests.cli_process import ROOT, assert_clear_failure, run_wattelier

T0_NS = 1_700_000_000 * 10**9
EXAMPLE_SECRETS = {"WATTELIER_MILL1_PASSWORD": "not-used"}  # the example site's mill asks for one


def _meter(n: int, start: int = 0, meter: str = "m1") -> list[Point]:
    return [Point("meter", {"site": "s", "meter": meter, "machine": meter},
                  {"power_w": float(i % 50), "energy_import_kwh": i / 3600}, T0_NS + i * 10**9)
            for i in range(start, start + n)]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _small_journal(path: Path) -> Path:
    """A valid journal with every table used: points of two meters over two hours (packed into
    hours, with rollups), a booking, drops, a forwarding cursor, a quarantined line, a target."""
    journal = Journal(path)
    journal.put(_meter(3 * 3600 // 10, meter="m1"))
    journal.put([Point("meter", {"site": "s", "meter": "m2", "machine": "m2"}, {"power_w": 5.0},
                       T0_NS + i * 10 * 10**9) for i in range(400)])
    journal.put([Point("booking", {"site": "s", "machine": "m1", "member": "ada"},
                       {"end_s": 1_700_000_900.0, "booking_id": "b1"}, T0_NS)])
    journal.drop("nan_or_infinite", 2)
    journal.commit()
    journal.compact(horizon_ns=T0_NS + 4 * 3600 * 10**9)
    journal.close()
    store = ForwardStore(path, "http://127.0.0.1:8086 v1 db=w")
    batch = store.read_batch(0, 50)
    store.record(batch, [(batch.point_ids[0], batch.lines[0], "partial write: field type conflict")])
    store.close()
    record_target(path, "http://127.0.0.1:8086", error="connection refused")
    return path


@pytest.fixture(scope="module")
def valid_journal(tmp_path_factory) -> Path:
    return _small_journal(tmp_path_factory.mktemp("valid") / "journal.sqlite")


def _copy(valid: Path, to: Path, data: bytes | None = None) -> Path:
    to.write_bytes(valid.read_bytes() if data is None else data)
    return to


def _damaged_files(valid: Path, folder: Path) -> dict[str, Path]:
    data = valid.read_bytes()
    page = 4096
    zeroed = bytearray(data)
    zeroed[3 * page:4 * page] = bytes(page)
    flipped_header = bytearray(data)
    flipped_header[3] ^= 0x20
    other = folder / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    db.commit()
    db.close()
    files = {
        "text": _copy(valid, folder / "text.sqlite", b"machine,member,start,end\n" * 40),
        "truncated mid-page": _copy(valid, folder / "cut.sqlite", data[:len(data) // 2 + 100]),
        "truncated to whole pages": _copy(valid, folder / "cutpages.sqlite", data[:4 * page]),
        "zeroed page": _copy(valid, folder / "zeroed.sqlite", bytes(zeroed)),
        "bad header": _copy(valid, folder / "header.sqlite", bytes(flipped_header)),
        "other database": other,
    }
    for name, version in (("newer version", str(SCHEMA_VERSION + 1)), ("unknown version", "v4-beta")):
        path = _copy(valid, folder / f"{name.split()[0]}.sqlite")
        db = sqlite3.connect(path)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
        db.commit()
        db.execute("PRAGMA journal_mode=DELETE")  # everything in the file itself, no log beside
        db.close()
        files[name] = path
    return files


def _refused_untouched(path: Path, opener) -> JournalError:
    before = _sha(path)
    with pytest.raises(JournalError) as refused:
        opener(path)
    assert _sha(path) == before, f"{path} was written into"
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    return refused.value


def test_damaged_or_foreign_journals_are_refused_and_left_as_they_were(valid_journal, tmp_path):
    files = _damaged_files(valid_journal, tmp_path)
    openers = (JournalReader, Journal, lambda p: ForwardStore(p, "http://h:8086 v1 db=w"), journal_status,
               quarantined_lines)
    for name, path in files.items():
        for opener in openers:
            error = _refused_untouched(path, opener)
            if name.endswith("version"):
                assert isinstance(error, JournalVersionError), name
                assert "newer wattelier" in str(error) if name == "newer version" else "unknown" in str(error)
            else:
                assert isinstance(error, JournalDamaged), (name, error)
                assert "--journal" in str(error), error
    assert "truncated" in str(_refused_untouched(files["truncated to whole pages"], JournalReader))
    assert "not a wattelier journal" in str(_refused_untouched(files["other database"], Journal))


def test_the_version_is_never_relabelled(valid_journal, tmp_path):
    path = _copy(valid_journal, tmp_path / "j.sqlite")
    assert check_journal(path) == SCHEMA_VERSION
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 3),))
    db.commit()
    db.close()
    with pytest.raises(JournalVersionError):
        Journal(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION + 3),)
    db.close()


def test_opening_an_up_to_date_journal_writes_nothing(valid_journal, tmp_path):
    """So that a collector starting on a full disk opens its journal, and retries its commits."""
    path = _copy(valid_journal, tmp_path / "j.sqlite")
    before = _sha(path)
    Journal(path).close()
    JournalReader(path).close()
    assert _sha(path) == before
    db = sqlite3.connect(path)
    db.execute("DROP TABLE forward_target")  # a table missing: made again
    db.commit()
    db.close()
    Journal(path).close()
    assert check_journal(path) == SCHEMA_VERSION and "forward_target" in journal_schema._expected_columns()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM forward_target").fetchone() == (0,)


def test_an_empty_file_is_refused_by_readers_and_made_a_journal_by_writers(tmp_path):
    """A 0-byte file is what SQLite makes of a new database: a writer makes a journal of it,
    a reader says no journal was written there. Beside a write-ahead log that may hold the
    points, both refuse it (SQLite would delete that log)."""
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    assert "empty file (0 bytes)" in str(_refused_untouched(empty, JournalReader))
    journal = Journal(empty)
    journal.put(_meter(3))
    journal.commit()
    journal.close()
    assert JournalReader(empty).count_by_series() == {1: 3}
    orphan = tmp_path / "orphan.sqlite"
    orphan.write_bytes(b"")
    Path(f"{orphan}-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(60))
    for opener in (Journal, JournalReader):
        assert "write-ahead log" in str(_refused_untouched(orphan, opener))
    assert Path(f"{orphan}-wal").stat().st_size == 64


def test_damage_found_by_a_read_is_a_journal_error(valid_journal, tmp_path):
    """Over FULL_CHECK_MAX_BYTES only the small tables are checked at opening: damage met by a
    later read is raised as JournalDamaged too (a bad JSON field of a row, a packed hour whose
    blob is cut short)."""
    path = _copy(valid_journal, tmp_path / "j.sqlite")
    db = sqlite3.connect(path)
    db.execute("UPDATE points SET fields = '{\"end_s\": 1.0' WHERE series_id IN "
               "(SELECT id FROM series WHERE measurement = 'booking')")
    db.execute("UPDATE hours SET blob = substr(blob, 1, 20) WHERE series_id IN "
               "(SELECT id FROM series WHERE key LIKE 'meter,%meter=m1%')")
    db.commit()
    db.close()
    reader = JournalReader(path)
    [m1] = reader.series("meter", meter="m1")
    [booking] = reader.series("booking")
    with pytest.raises(JournalDamaged, match="not JSON"):
        reader.points(booking.series_id)
    with pytest.raises(JournalDamaged, match="malformed JSON"):
        reader.field(booking.series_id, "end_s")
    with pytest.raises(JournalDamaged, match="a packed hour of series"):
        reader.points(m1.series_id)
    with pytest.raises(JournalDamaged, match="a packed hour of series"):
        reader.field(m1.series_id, "power_w")
    reader.close()


def test_journal_command_refuses_damaged_journals_in_one_line(valid_journal, tmp_path):
    files = _damaged_files(valid_journal, tmp_path)
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    for name, path in (("text", files["text"]), ("truncated", files["truncated to whole pages"]),
                       ("newer", files["newer version"]), ("empty", empty)):
        before = _sha(path)
        done = run_wattelier("journal", "--journal", str(path))
        assert_clear_failure(done, str(path), "--journal" if name != "empty" else "0 bytes", exit_code=2)
        assert _sha(path) == before, name


def test_collect_analyze_and_sessions_refuse_a_damaged_journal_in_one_line(valid_journal, tmp_path):
    data = bytearray(valid_journal.read_bytes())
    data[2 * 4096:3 * 4096] = bytes(4096)
    path = _copy(valid_journal, tmp_path / "damaged.sqlite", bytes(data))
    before = _sha(path)
    site = str(example_site_path())
    for args in (("collect", "--config", site, "--journal", str(path)),
                 ("analyze", "--config", site, "--journal", str(path)),
                 ("sessions", "add", "--config", site, "--journal", str(path), "--machine", "laser-1",
                  "--member", "amelie", "--start", "2026-01-05T09:00", "--end", "2026-01-05T10:00")):
        done = run_wattelier(*args, cwd=tmp_path, env=EXAMPLE_SECRETS)
        assert_clear_failure(done, str(path), "damaged", "--journal NEW.sqlite", exit_code=2)
        assert _sha(path) == before, args


# -- two collectors ----------------------------------------------------------------------------
def test_a_second_collector_is_refused_naming_the_holder_and_readers_keep_working(tmp_path):
    path = tmp_path / "j.sqlite"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from storage.journal import Journal
        journal = Journal({str(path)!r}, collector=True)
        print("holding", flush=True)
        time.sleep(60)
    """)], cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(JournalLocked, match=f"another collector \\(PID {holder.pid}\\)"):
            Journal(path, collector=True)
        # readers, and writers that are not collectors (the analysis, sessions), go on
        writer = Journal(path)
        writer.put(_meter(5))
        assert writer.commit() == 5
        writer.close()
        assert JournalReader(path).count_by_series() == {1: 5}
        assert journal_status(path).points == 5
    finally:
        holder.kill()
        holder.wait()
    # the lock died with its holder (SIGKILL: no clean-up ran)
    journal = Journal(path, collector=True)
    with pytest.raises(JournalLocked, match=f"PID {os.getpid()}"):
        Journal(path, collector=True)
    journal.close()
    Journal(path, collector=True).close()  # released by close


# -- overflow ------------------------------------------------------------------------------------
def _forward_all(path: Path, target: str) -> int:
    """Mark every point forwarded, through the cursor API the forwarder uses."""
    store = ForwardStore(path, target)
    sent = 0
    while True:
        batch = store.read_batch(store.cursor(), 1000)
        if not batch.lines:
            break
        store.record(batch, [])
        sent += len(batch)
    store.close()
    return sent


def test_reject_new_recovers_once_points_are_forwarded(tmp_path, caplog):
    path = tmp_path / "j.sqlite"
    journal = Journal(path, max_points=1000, overflow="reject_new")
    caplog.set_level(logging.WARNING, logger="wattelier.storage.journal")
    journal.put(_meter(1000))
    journal.commit()
    journal.put(_meter(50, start=1000))
    journal.commit()
    journal.put(_meter(50, start=1050))
    journal.commit()
    assert journal.drops() == {"journal_full_rejected": 100}
    full = [r for r in caplog.records if "is full" in r.getMessage()]
    assert len(full) == 1 and "refused" in full[0].getMessage()
    assert _forward_all(path, "http://127.0.0.1:8086 v1 db=w") == 1000
    journal.put(_meter(300, start=2000))
    assert journal.commit() == 300  # forwarded points made room: nothing refused
    assert journal.count() == 1000
    assert journal.drops() == {"journal_full_rejected": 100}
    assert journal.counters()[FORWARDED_DELETED] == 300
    assert [r.getMessage() for r in caplog.records if "has room again" in r.getMessage()] != []
    reader = JournalReader(path)
    _, power = reader.field(reader.series("meter")[0].series_id, "energy_import_kwh")
    assert len(power) == 1000 and power[-1] == pytest.approx(2299 / 3600)
    journal.close()


def test_no_policy_loses_an_unsent_point_while_sent_ones_can_make_room(tmp_path):
    """Two targets: only points both accepted go; a configured target that never accepted a
    write keeps every point (it has not got any)."""
    for overflow in ("drop_oldest", "reject_new"):
        path = tmp_path / f"{overflow}.sqlite"
        journal = Journal(path, max_points=100, overflow=overflow)
        journal.put(_meter(100))
        journal.commit()
        ahead, behind = "http://a:8086 v1 db=w", "http://b:8086 v1 db=w"
        _forward_all(path, ahead)
        store = ForwardStore(path, behind)
        store.record(store.read_batch(0, 30), [])  # b accepted the 30 oldest
        store.close()
        journal.put(_meter(20, start=100))
        journal.commit()
        assert journal.drops() == {} and journal.counters()[FORWARDED_DELETED] == 20
        journal.put(_meter(20, start=120))  # 10 sent to both are left, then unsent ones
        journal.commit()
        expected = {"drop_oldest": {"journal_full_oldest_deleted": 10},
                    "reject_new": {"journal_full_rejected": 10}}[overflow]
        assert journal.drops() == expected and journal.counters()[FORWARDED_DELETED] == 30
        record_target(path, "http://c:8086")  # configured, nothing accepted yet
        _forward_all(path, behind)
        journal.put(_meter(5, start=140))
        journal.commit()
        assert journal.counters()[FORWARDED_DELETED] == 30, "a point c never got was deleted as sent"
        journal.close()


# -- full or read-only disk -------------------------------------------------------------------
def _run_journal(journal: Journal, during):
    """Run the journal's commit loop while `during(journal)` (a coroutine function) runs."""
    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(journal.run(stop))
        try:
            await during(journal)
        finally:
            stop.set()
            await task
    asyncio.run(main())


def test_disk_full_said_once_retried_and_said_once_when_over_max_page_count_stand_in(tmp_path, caplog):
    """SQLite's max_page_count stands in for a full disk (the same SQLITE_FULL error): the
    collector says 'disk full at PATH' once, keeps the readings in memory and retries, keeps
    what is committed, says once when it is over, and counts what memory could not hold."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path, commit_interval_s=0.05, max_buffered=2000)
    journal.put(_meter(100))
    journal.commit()
    pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
    caplog.set_level(logging.INFO, logger="wattelier.storage.journal")

    async def during(j: Journal):
        j._db.execute(f"PRAGMA max_page_count = {pages}")
        for start in range(100, 3100, 500):
            j.put(_meter(500, start=start))
            await asyncio.sleep(0.06)
        await asyncio.sleep(0.3)  # many failed commits
        assert j.count() == 100 and j.buffered == 2000  # the newest 2000 held
        j._db.execute("PRAGMA max_page_count = 1000000")
        await asyncio.sleep(0.3)

    _run_journal(journal, during)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("disk full at " + str(path) in m for m in messages) == 2, messages  # once, and once over
    assert any(m.startswith(f"disk full at {path} is over") for m in messages)
    assert not any("rollback" in m for m in messages)
    assert journal.count() == 2100
    assert journal.drops() == {"journal_write_failed": 1000}
    journal.close()
    reader = JournalReader(path)
    _, energy = reader.field(reader.series("meter")[0].series_id, "energy_import_kwh")
    assert len(energy) == 2100 and energy[99] == pytest.approx(99 / 3600) and energy[100] == pytest.approx(1100 / 3600)



@pytest.mark.parametrize("fails", [False, True])
def test_a_batch_being_written_still_counts_as_buffered(tmp_path, fails):
    """`buffered` is what memory holds and disk does not yet: a batch whose commit is under way
    counts, and after a failed write it is held back, never counted twice or not at all (a
    check made mid-commit used to read 0)."""
    import threading

    journal = Journal(tmp_path / "j.sqlite")
    writing, finish = threading.Event(), threading.Event()
    real = journal._commit_locked

    def slow_commit(points, drops, **kwargs):
        writing.set()
        finish.wait(5)
        if fails:
            raise sqlite3.OperationalError("disk I/O error")
        return real(points, drops, **kwargs)

    journal._commit_locked = slow_commit
    journal.put(_meter(300))
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(_commit_outcome(journal)))
    thread.start()
    assert writing.wait(5)
    journal.put(_meter(20, start=300))
    assert journal.buffered == 320  # 300 being written, 20 new
    finish.set()
    thread.join(5)
    assert outcome == (["failed"] if fails else [300])
    assert journal.buffered == (320 if fails else 20)
    journal._commit_locked = real
    assert journal.commit() == (320 if fails else 20) and journal.buffered == 0 and journal.count() == 320
    journal.close()


def _commit_outcome(journal: Journal):
    try:
        return journal.commit()
    except JournalError:
        return "failed"


def test_commit_on_a_full_database_raises_journal_full_and_keeps_the_batch(tmp_path):
    """max_page_count stand-in for a full disk: commit raises JournalFull (not 'cannot rollback')."""
    journal = Journal(tmp_path / "j.sqlite")
    journal.put(_meter(10))
    journal.commit()
    journal._db.execute(f"PRAGMA max_page_count = {journal._db.execute('PRAGMA page_count').fetchone()[0]}")
    journal.put(_meter(2000, start=10))
    with pytest.raises(JournalFull, match="disk full"):
        journal.commit()
    assert journal.buffered == 2000 and journal.count() == 10
    journal._db.execute("PRAGMA max_page_count = 1000000")
    assert journal.commit() == 2000
    journal.close()


def _read_only(path: Path) -> None:
    """Make a file or folder read-only for root too: the immutable attribute (root ignores file
    modes). Checked by really trying to write."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, f"chattr +i {path} failed ({done.stderr.strip()}): needs root on ext4/xfs/btrfs"
    probe = path / "probe" if path.is_dir() else path
    with pytest.raises(OSError):
        with open(probe, "a") as file:
            file.write("x")


def _writable(path: Path) -> None:
    subprocess.run(["chattr", "-i", str(path)], check=True)


def test_read_only_journal_or_folder_at_start_is_one_clear_line(valid_journal, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    in_folder = _copy(valid_journal, folder / "j.sqlite")
    file_only = _copy(valid_journal, tmp_path / "file.sqlite")
    _read_only(folder)
    _read_only(file_only)
    try:
        for path, what in ((in_folder, "is read-only"), (file_only, "the file is read-only"),
                           (folder / "new.sqlite", "is read-only"), (folder / "sub" / "new.sqlite", "cannot make")):
            with pytest.raises(JournalUnwritable, match=what):
                Journal(path, collector=True)
        assert JournalReader(in_folder).count_by_series()  # reading a read-only journal works
        done = run_wattelier("journal", "--journal", str(in_folder))
        assert done.returncode == 0 and "Traceback" not in done.output, done.output
        for path, what in ((in_folder, f"its folder {folder} is read-only"), (file_only, "the file is read-only")):
            done = run_wattelier("collect", "--config", str(example_site_path()), "--journal", str(path),
                                 cwd=tmp_path, env=EXAMPLE_SECRETS)
            assert_clear_failure(done, str(path), what, exit_code=2)
    finally:
        _writable(folder)
        _writable(file_only)


# -- no secret in the journal, targets never used ------------------------------------------------
def test_no_secret_of_a_url_is_stored_or_printed(tmp_path):
    secret = "S3cr3t-pw-4711"
    token = "tok-0815-secret"
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put(_meter(20))
    journal.close()
    url = f"http://ada:{secret}@127.0.0.1:8086/?u=ada&p={secret}&token={token}"
    store = ForwardStore(path, f"{url} v1 db=w")
    batch = store.read_batch(0, 10)
    store.record(batch, [(batch.point_ids[0], batch.lines[0], f"write: {url} refused: bad field")])
    store.close()
    record_target(path, url, error=f"write: {url} unreachable: connection refused")
    db = sqlite3.connect(path)
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    dump = "\n".join(repr(row) for table in tables for row in db.execute(f"SELECT * FROM {table}"))
    db.close()
    assert "127.0.0.1:8086" in dump
    for leaked in (secret, token, "ada:"):
        assert leaked not in dump
        for file in (path, Path(f"{path}-wal")):
            assert not file.exists() or leaked.encode() not in file.read_bytes()
    done = run_wattelier("journal", "--journal", str(path), "--json")
    assert done.returncode == 0, done.output
    assert secret not in done.output and token not in done.output
    shown = json.loads(done.stdout)
    assert "http://127.0.0.1:8086/ v1 db=w" in shown["targets"]
    assert shown["quarantine"][0]["error"] == "write: http://127.0.0.1:8086/ refused: bad field"


def test_a_configured_target_that_never_accepted_a_write_is_shown(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put(_meter(426))
    journal.close()
    record_target(path, "http://127.0.0.1:9", error="write: http://127.0.0.1:9 unreachable: connection refused")
    status = journal_status(path)
    assert status.backlog == {"http://127.0.0.1:9": 426}
    assert status.never_accepted == {"http://127.0.0.1:9"}
    assert status.oldest_unsent_ns["http://127.0.0.1:9"] == T0_NS
    done = run_wattelier("journal", "--journal", str(path))
    assert done.returncode == 0, done.output
    assert ("http://127.0.0.1:9 has not accepted a write yet: backlog 426 points, oldest unsent "
            "2023-11-14T22:13:20+00:00, last error: write: http://127.0.0.1:9 unreachable: connection "
            "refused") in " ".join(done.stdout.split())
    assert "no InfluxDB target" not in done.stdout
    # a target accepted a write later: its error is over, its backlog what is left
    store = ForwardStore(path, "http://127.0.0.1:9 v1 db=w")
    store.record(store.read_batch(0, 400), [])
    store.close()
    record_target(path, "http://127.0.0.1:9", accepted=True)
    status = journal_status(path)
    assert status.backlog == {"http://127.0.0.1:9 v1 db=w": 26} and not status.never_accepted
    assert status.last_error == {}
    # the site file's target, before the forwarder noted anything
    other = tmp_path / "other.sqlite"
    Journal(other).close()
    site = tmp_path / "site.toml"
    site.write_text(example_site_path().read_text() + '\n[influxdb]\nurl = "http://127.0.0.1:7"\n')
    done = run_wattelier("journal", "--journal", str(other), "--config", str(site), "--json")
    assert json.loads(done.stdout)["targets"] == {"http://127.0.0.1:7": {
        "backlog": 0, "oldest_unsent": "-", "quarantined": 0, "accepted_a_write": False,
        "last_error": None, "last_error_at": "-"}}


# -- fuzz: the journal file itself ---------------------------------------------------------------
_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("byte"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("zero_page"), st.integers(0, 10**3), st.just(0)),
)


def _mutate(data: bytes, mutations) -> bytes:
    out = bytearray(data)
    for kind, where, value in mutations:
        if not out:
            break
        if kind == "flip":
            out[where % len(out)] ^= 1 << value
        elif kind == "byte":
            out[where % len(out)] = value
        elif kind == "truncate":
            del out[where % len(out):]
        else:
            page = (where % max(1, len(out) // 4096)) * 4096
            out[page:page + 4096] = bytes(len(out[page:page + 4096]))
    return bytes(out)


def _read_everything(path: Path) -> None:
    reader = JournalReader(path)
    try:
        for series in reader.series():
            reader.points(series.series_id)
            reader.field(series.series_id, "power_w")
        reader.count_by_series()
        reader.drops()
    finally:
        reader.close()
    journal_status(path)
    quarantined_lines(path)


@settings(max_examples=int(os.environ.get("WATTELIER_FUZZ_EXAMPLES", 200)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.lists(_mutation, min_size=1, max_size=4), full_check=st.booleans())
def test_fuzz_a_mutated_journal_is_read_cleanly_or_refused_untouched(valid_journal, mutations, full_check):
    """Bytes of a valid small journal flipped, set, cut or zeroed by page: the reader and the
    writer either work or raise JournalError, and a refused file keeps its bytes. Without
    the full check (full_check False: as for a journal over FULL_CHECK_MAX_BYTES), damage is
    met by reads and writes, and must come out as JournalError too."""
    data = _mutate(valid_journal.read_bytes(), mutations)
    limit = journal_schema.FULL_CHECK_MAX_BYTES if full_check else 0
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(journal_schema, "FULL_CHECK_MAX_BYTES", limit):
        path = Path(folder) / "journal.sqlite"
        path.write_bytes(data)
        before = _sha(path)
        try:
            _read_everything(path)
        except JournalError:
            assert _sha(path) == before
        try:
            journal = Journal(path)
        except JournalError:
            assert _sha(path) == before
            return
        try:
            journal.put(_meter(5, start=50_000))
            journal.commit()
            journal.compact(horizon_ns=T0_NS + 20 * 3600 * 10**9)
        except JournalError:
            pass  # damage met by a write after a clean opening: said as a JournalError
        finally:
            try:
                journal.close()
            except JournalError:
                pass
