"""Journals of every earlier schema version, as their own version wrote them, read and upgraded
in place by the current code (tests/data/journals/README.md says what each file holds and
how scripts/make_old_journals.py made it).

For each vN.sqlite, always on a copy in tmp_path (the files themselves are never opened):

(a) the current read-only reader (JournalReader, the analysis inputs, the bookings reader)
    reads it as it is, or refuses it with a JournalError if READABLE_WITHOUT_UPGRADE says that
    version needs the upgrade first;
(b) opening it with the current writer, Journal(path), upgrades it in place to the current
    SCHEMA_VERSION: every series keeps every point (times and fields as read before), and the
    forwarding cursors, bookings and counters stay; the rollups of version 4 (some written
    before their format settled) are deleted and made again when their hours are packed;
    packing then moves every complete hour of readings into packed hours, points unchanged;
(c) the analysis of the file's window from the file as it was (read-only, every sample) gives
    the same records (machines, jobs, sessions, states, members, days, balance, energies) as
    the stored analysis after the upgrade, both reading every sample and as `wattelier
    analyze` does by default (through the hourly rollups), to 1e-9 relative.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import sqlite3
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "journals"
VERSIONS = (1, 2, 3, 4, 5)

# Whether the current reader reads each version without upgrading it first (a: it does, all).
READABLE_WITHOUT_UPGRADE = {1: True, 2: True, 3: True, 4: True, 5: True}

# What the files hold (tests/data/journals/README.md).
METERED = ("router-1", "mill-1", "laser-1")  # machines with a meter (and "site": meter main)
BOOKINGS = {1: 0, 2: 0, 3: 10, 4: 10, 5: 10}  # current sessions in the window


from storage import bookings as bookings_mod  # noqa: E402
from storage import journal_schema as schema  # noqa: E402
from storage.journal import Journal  # noqa: E402
from storage.journal_reader import JournalReader  # noqa: E402
from storage.journal_schema import SCHEMA_VERSION, JournalError  # noqa: E402


def _maker():
    spec = importlib.util.spec_from_file_location("make_old_journals", ROOT / "scripts" / "make_old_journals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _maker()
START_S, END_S = MAKER.iso_s(MAKER.START), MAKER.iso_s(MAKER.END)


@pytest.fixture(scope="module")
def site():
    """The current example site with the meters the journals were written with."""
    from devices.site import example_site_path, parse_site

    return parse_site(MAKER.derive_site(example_site_path().read_text(encoding="utf-8")), "example.toml")


def _copy(version: int, tmp_path: Path) -> Path:
    original = DATA / f"v{version}.sqlite"
    assert original.is_file(), f"{original} missing: make it with scripts/make_old_journals.py"
    copy = tmp_path / f"v{version}.sqlite"
    shutil.copyfile(original, copy)
    return copy


def _raw(path: Path, query: str, args: tuple = ()) -> list[tuple]:
    """Rows read with plain SQLite, beside the code under test: read-only, and immutable for
    the originals (a read-only connection would leave -wal and -shm files beside them)."""
    immutable = "&immutable=1" if path.resolve().is_relative_to(DATA) else ""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{immutable}", uri=True)
    try:
        return db.execute(query, args).fetchall()
    finally:
        db.close()


def _version(path: Path) -> str | None:
    rows = _raw(path, "SELECT value FROM meta WHERE key = 'schema_version'")
    return rows[0][0] if rows else None


def _points_by_series(path: Path) -> dict[tuple, list]:
    """Every point of the journal through the current reader: (measurement, tags) -> [(time_ns,
    fields), ...] in time order."""
    reader = JournalReader(path)
    try:
        return {(s.measurement, tuple(sorted(s.tags.items()))): [(t, f) for t, f in reader.points(s.series_id)]
                for s in reader.series()}
    finally:
        reader.close()


def _readonly_analysis(site, path: Path) -> dict:
    """The analysis of the window from the journal as it is: read-only, every sample, nothing
    stored (what `wattelier analyze` computes before storing, without its packing and rollups)."""
    from analytics.inputs import JournalInputs
    from analytics.pipeline import analyze

    inputs = JournalInputs(path)
    try:
        machines = inputs.machine_data(site, START_S, END_S)
    finally:
        inputs.close()
    sessions = bookings_mod.read_booked_sessions(path, START_S, END_S)
    return analyze(machines, sessions, site, START_S, END_S).to_json()


def _differences(a, b, where: str = "") -> list[str]:
    """Where two analysis documents differ: structure, texts and integers exactly, floats to
    1e-9 relative (reading packed hours and rollups adds in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items, then {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        same = (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        return [] if same else [f"{where}: {a!r}, then {b!r}"]
    return [] if a == b and type(a) is type(b) else [f"{where}: {a!r}, then {b!r}"]


def _assert_same_analysis(before: dict, after: dict) -> None:
    assert before["jobs"] and before["sessions"] is not None and before["states"]
    differences = _differences(before, after)
    assert not differences, f"{len(differences)} differences, first: {differences[:10]}"


# -- the files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_each_file_is_of_its_version_and_small(version):
    path = DATA / f"v{version}.sqlite"
    assert path.is_file()
    assert path.stat().st_size < 3 * 2**20
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    with open(path, "rb") as f:
        assert f.read(16) == b"SQLite format 3\x00"
    assert _version(path) == str(version)  # opened immutable: nothing written beside it
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    assert version <= SCHEMA_VERSION


# -- (a) read as it is -------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_current_reader_reads_the_journal_as_it_is(version, tmp_path, site):
    path = _copy(version, tmp_path)
    if not READABLE_WITHOUT_UPGRADE[version]:
        with pytest.raises(JournalError) as refused:
            JournalReader(path)
        assert str(path) in str(refused.value)
        return
    by_series = _points_by_series(path)
    raw = dict(_raw(path, "SELECT s.key, count(p.id) FROM series s LEFT JOIN points p ON p.series_id = s.id "
                          "GROUP BY s.id"))
    assert sorted(len(points) for points in by_series.values()) == sorted(raw.values())
    assert sum(map(len, by_series.values())) == _raw(path, "SELECT count(*) FROM points")[0][0]
    meters = {dict(tags)["meter"]: points for (m, tags), points in by_series.items() if m == "meter"}
    assert sorted(meters) == sorted([*METERED, "main"])
    assert all(len(points) == 1080 for points in meters.values())  # 3 h every 10 s
    assert all(p[1]["power_w"] >= 0 and p[1]["energy_import_kwh"] > 0 for ps in meters.values() for p in ps)
    assert sum(1 for m, _ in by_series if m == "cnc") == 2

    from analytics.inputs import JournalInputs

    inputs = JournalInputs(path)
    try:
        machines = {md.name: md for md in inputs.machine_data(site, START_S, END_S)}
    finally:
        inputs.close()
    for name in METERED:
        assert len(machines[name].power_w) >= 1080 and len(machines[name].energy_import_kwh) >= 1080
    assert machines["router-1"].controller is not None and machines["mill-1"].controller is not None
    assert len(bookings_mod.read_booked_sessions(path, START_S, END_S)) == BOOKINGS[version]
    assert _version(path) == str(version)  # read, not upgraded
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [path.name]


# -- (b) upgraded in place by the writer -------------------------------------------------------
def _without_rollups(points: dict[tuple, list]) -> dict[tuple, list]:
    return {k: v for k, v in points.items() if k[0] != "power_rollup"}


@pytest.mark.parametrize("version", VERSIONS)
def test_writer_upgrades_in_place_and_keeps_every_point(version, tmp_path):
    from storage.rollup import STAT_COLUMNS, unpack

    path = _copy(version, tmp_path)
    before = _points_by_series(path)
    cursors = _raw(path, "SELECT target, last_id FROM forward_cursor ORDER BY target") if version >= 2 else []
    counters = dict(_raw(path, "SELECT name, value FROM counters"))
    count = _raw(path, "SELECT count(*) FROM points")[0][0]
    rollups = sum(len(v) for k, v in before.items() if k[0] == "power_rollup")
    highest_id = _raw(path, "SELECT max(id) FROM points")[0][0]

    journal = Journal(path)
    try:
        # version 4: its rollups (derived, some of an unsettled format) deleted, made again by packing
        assert journal.count() == count - (rollups if version == 4 else 0)
    finally:
        journal.close()

    assert _version(path) == str(SCHEMA_VERSION)
    assert schema.check_journal(path) == SCHEMA_VERSION
    assert _raw(path, "PRAGMA integrity_check") == [("ok",)]
    after = _points_by_series(path)
    assert _without_rollups(after) == _without_rollups(before)  # same series, times and fields
    if version != 4:
        assert after == before
    assert dict(_raw(path, "SELECT name, value FROM counters")) == counters
    assert int(_raw(path, "SELECT value FROM meta WHERE key = 'last_point_id'")[0][0]) >= highest_id
    if version >= 2:
        assert _raw(path, "SELECT target, last_id FROM forward_cursor ORDER BY target") == cursors
        assert cursors  # the forwarder's cursor kept: what was sent is not sent again

    journal = Journal(path)  # opening an upgraded journal again changes nothing
    journal.close()
    assert _version(path) == str(SCHEMA_VERSION)
    assert _without_rollups(_points_by_series(path)) == _without_rollups(before)

    journal = Journal(path)  # packing: every complete hour of readings into packed hours
    journal.compact(horizon_ns=int(END_S * 1e9) + 3600 * 10**9)
    journal.close()
    packed = _points_by_series(path)
    assert _without_rollups(packed) == _without_rollups(before)
    assert _raw(path, "SELECT count(*) FROM points WHERE series_id IN (SELECT id FROM series WHERE "
                      "measurement IN ('meter', 'cnc'))") == [(0,)]
    for key, points in packed.items():  # a readable rollup for every packed meter hour
        if key[0] == "power_rollup":
            assert all(unpack(f["minutes"], len(STAT_COLUMNS)).shape[0] > 0 for _, f in points)
    assert sum(len(v) for k, v in packed.items() if k[0] == "power_rollup") >= 3 * 3


def test_an_interrupted_upgrade_leaves_a_journal_that_opens(tmp_path):
    """The upgrade is one transaction: a failure in its middle leaves the journal as it was,
    and the next opening upgrades it."""
    from storage import journal_upgrade

    path = _copy(5, tmp_path)
    before = _points_by_series(path)
    original = journal_upgrade._from

    def failing(db, version, tables):
        original(db, version, tables)  # the blocks are dropped, then the process dies
        raise KeyboardInterrupt

    journal_upgrade._from = failing
    try:
        with pytest.raises(KeyboardInterrupt):
            Journal(path)
    finally:
        journal_upgrade._from = original
    assert _version(path) == "5" and "blocks" in {t for (t,) in _raw(path, "SELECT name FROM sqlite_master")}
    assert _points_by_series(path) == before  # still a version-5 journal, readable
    Journal(path).close()
    assert _version(path) == str(SCHEMA_VERSION) and _points_by_series(path) == before


# -- (c) the same analysis before and after ----------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_analysis_from_every_sample_is_the_same_after_the_upgrade(version, tmp_path, site):
    from wattelier.stored_analysis import run_once

    path = _copy(version, tmp_path)
    assert READABLE_WITHOUT_UPGRADE[version], "no before-read to compare with"
    before = _readonly_analysis(site, path)
    Journal(path).close()
    assert _version(path) == str(SCHEMA_VERSION)
    run = run_once(site, START_S, END_S, journal_path=path, rollups=False)
    _assert_same_analysis(before, run.result.to_json())
    _assert_same_analysis(before, _readonly_analysis(site, path))  # read back from the upgraded file


@pytest.mark.parametrize("version", VERSIONS)
def test_wattelier_analyze_gives_the_same_records_after_the_upgrade(version, tmp_path, site):
    """As `wattelier analyze --journal COPY --from .. --to ..` (run_once with its defaults: the
    journal packed first, power read through the hourly rollups, results stored)."""
    from wattelier.stored_analysis import run_once

    path = _copy(version, tmp_path)
    assert READABLE_WITHOUT_UPGRADE[version], "no before-read to compare with"
    before = _readonly_analysis(site, path)
    Journal(path).close()
    run = run_once(site, START_S, END_S, journal_path=path)
    _assert_same_analysis(before, run.result.to_json())
    assert run.points_written > 0
    again = run_once(site, START_S, END_S, journal_path=path)  # results replaced, the same
    _assert_same_analysis(before, again.result.to_json())
    assert again.points_written == run.points_written
