#!/usr/bin/env python3
"""Make one small journal of each earlier schema version (1 to 5), written by that version's
own code, as test data for upgrading journals in place (tests/data/journals/README.md).

    python3 scripts/make_old_journals.py REPO OUT [--versions 1,2,3,4,5] [--keep-worktrees]

REPO is the wattelier git repository (it must hold the commits below), OUT the folder that gets
vN.sqlite. For each version N the script:

1. checks out the version's commit in a detached worktree /tmp/journal-vN (replacing one left
   there), and reads SCHEMA_VERSION there to confirm it is N;
2. derives the site file from that commit's devices/data/sites/example.toml (SITE_METERS kept,
   every kept meter polled every POLL_S seconds: the other meter sections removed, nothing
   else changed) so that three hours stay under 3 MB;
3. runs, with cwd = the worktree and PYTHONPATH = the worktree (so every import is that
   version's; the child checks it), the version's own code:
   - meter readings and CNC controller changes over [START, END) from the version's simulator:
     devices/sim/backfill.py (backfill_workshop + backfill_rows, the code behind
     `wattelier simulate --backfill`, given a fixed window instead of "now") put and committed
     through the version's collector.journal.Journal as `simulate --backfill` does; version 1
     has no backfill module, so the same loop runs on its devices/sim/physics.Workshop;
   - version 3+: Journal.compact() packs the complete hours into column blocks (version 4+:
     and writes their power_rollup points);
   - version 2+: the version's collector.forward_store.ForwardStore records that the target
     FORWARD_URL (InfluxDB v1 API, database "wattelier") accepted every point written so far,
     as its forwarder does after each accepted batch (version 5: forward_store.record_target
     notes the target first, as configured and accepted); later points stay in the backlog;
   - version 3+: the simulated members' bookings (the workshop's ground-truth sessions, as
     `wattelier simulate --out` writes sessions.csv) imported with the version's
     `wattelier sessions import`, then `wattelier analyze --config SITE --journal J --from START
     --to END --json`, which stores machine_state, job, session and usage results;
   - the file checkpointed, VACUUMed and closed: no -wal or -shm file left beside it;
4. copies the journal to OUT/vN.sqlite and removes the worktree (unless --keep-worktrees).

Then it prints a summary per file (series, points per measurement, time range, schema
version, size) in Markdown. Runs with the machine's Python 3.11 and the packages installed for
the current wattelier; it never imports the current wattelier itself.

Not byte-for-byte reproducible: booking versions (`stored_s`), the forward cursor's
`updated_ns` and the analysis's stored run times take the wall clock. Everything else (the
simulation, seed 1) is the same on every run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

COMMITS = {
    1: "6836e39",  # foundation: journal, workshop physics
    2: "a483097",  # forwarder to InfluxDB: forward_cursor, quarantine
    3: "82e25fe",  # hourly column blocks: blocks, block_cursor
    4: "2e9ed5d",  # hourly power rollups: rollup_frozen, power_rollup points
    5: "62af99e",  # journal defence: forward_target, checked before use
}
START = "2026-11-19T13:00:00Z"  # a Thursday, 14:00-17:00 in Paris: open all the time
END = "2026-11-19T16:00:00Z"
SEED = 1
SITE_METERS = ("router-1", "mill-1", "laser-1", "main")
POLL_S = 10.0
FORWARD_URL = "http://127.0.0.1:8086"


def iso_s(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- the site file ------------------------------------------------------------------------------
_HEADER = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")


def derive_site(text: str, keep=SITE_METERS, poll_s: float = POLL_S) -> str:
    """The example site's text with only the meters `keep`, each polled every poll_s seconds;
    every other line as it is. Used by the generator and by tests/test_journal_upgrade.py."""
    out: list[str] = []
    section = None
    dropping = False
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            section = header.group(1).strip()
            dropping = section.startswith("meters.") and section[len("meters."):] not in keep
            if dropping:
                continue
            out.append(line)
            if section.startswith("meters."):
                out.append(f"poll_interval_s = {poll_s!r}")
            continue
        if dropping and not line.lstrip().startswith("#"):
            continue  # a dropped meter's keys (and the blank lines among them)
        if (section or "").startswith("meters.") and re.match(r"\s*poll_interval_s\s*=", line):
            continue
        out.append(line)
    result = "\n".join(out) + "\n"
    meters = tomllib.loads(result)["meters"]
    assert sorted(meters) == sorted(keep), sorted(meters)
    assert all(m["poll_interval_s"] == poll_s for m in meters.values())
    return result


# -- the parent: worktrees, the child, the copies -------------------------------------------------
def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def schema_version_at(repo: Path, commit: str) -> int:
    found = git(repo, "grep", "-n", "-E", r"^SCHEMA_VERSION\s*=", commit, "--", "*.py")
    versions = {int(line.rsplit("=", 1)[1]) for line in found.splitlines()
                if "journal_schema" in line}
    assert len(versions) == 1, found
    return versions.pop()


def make_worktree(repo: Path, path: Path, commit: str) -> None:
    """A detached worktree of commit at path, replacing a worktree left there (never a folder
    that is not a worktree). --force: also when path is registered but was deleted by hand."""
    if path.exists():
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(path)],
                       capture_output=True)
        if path.exists():
            raise SystemExit(f"{path} exists and is not a worktree of {repo}: move it away first")
    git(repo, "worktree", "add", "--force", "--detach", str(path), commit)


def run_in(worktree: Path, args: list[str], log) -> str:
    """python3 in the worktree with only the worktree's code on the path."""
    env = dict(os.environ, PYTHONPATH=str(worktree), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONSTARTUP", None)
    proc = subprocess.run([sys.executable, "-P", *args], cwd=worktree, env=env, text=True,
                          capture_output=True)
    log.write(f"$ (cd {worktree} && PYTHONPATH={worktree} python3 -P {shlex.join(args)})\n")
    shown = proc.stdout if len(proc.stdout) < 2000 else proc.stdout[:500] + f" [... {len(proc.stdout)} characters]\n"
    log.write(shown + proc.stderr[-4000:] + f"[exit {proc.returncode}]\n")
    if proc.returncode != 0:
        raise SystemExit(f"failed in {worktree}: {' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def make_one(repo: Path, out: Path, n: int, keep_worktree: bool, log) -> Path:
    commit = COMMITS[n]
    found = schema_version_at(repo, commit)
    if found != n:
        raise SystemExit(f"{commit}: SCHEMA_VERSION is {found}, expected {n}")
    worktree = Path(f"/tmp/journal-v{n}")
    make_worktree(repo, worktree, commit)
    try:
        # That version is what gets imported, not the installed wattelier.
        seen = run_in(worktree, ["-c", "import collector.journal as j, devices.journal_schema as s, "
                                 "devices.site as site; print(j.__file__); print(site.__file__); "
                                 "print(s.SCHEMA_VERSION)"], log).split()
        if not all(Path(f).resolve().is_relative_to(worktree) for f in seen[:2]) or seen[2] != str(n):
            raise SystemExit(f"v{n}: imported {seen}, not the worktree's version {n}")
        with tempfile.TemporaryDirectory(prefix=f"journal-v{n}-") as tmp:
            work = Path(tmp)
            site = work / "site.toml"
            site.write_text(derive_site((worktree / "devices/data/sites/example.toml").read_text("utf-8")),
                            "utf-8")
            journal = work / f"v{n}.sqlite"
            me = str(Path(__file__).resolve())
            run_in(worktree, [me, "--child", str(n), "--site", str(site), "--journal", str(journal),
                              "--step", "points"], log)
            if n >= 3:
                run_in(worktree, ["-m", "wattelier.cli", "sessions", "import", str(work / "sessions.csv"),
                                  "--config", str(site), "--journal", str(journal)], log)
                analysis = run_in(worktree, ["-m", "wattelier.cli", "analyze", "--config", str(site),
                                             "--journal", str(journal), "--from", START, "--to", END,
                                             "--json"], log)
                json.loads(analysis)  # one JSON document
            run_in(worktree, [me, "--child", str(n), "--site", str(site), "--journal", str(journal),
                              "--step", "finish"], log)
            leftovers = [p.name for p in work.iterdir() if p.name.startswith(journal.name + "-")]
            if leftovers:
                raise SystemExit(f"v{n}: files left beside the journal: {leftovers}")
            out.mkdir(parents=True, exist_ok=True)
            target = out / f"v{n}.sqlite"
            shutil.copyfile(journal, target)
            return target
    finally:
        if not keep_worktree:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(worktree)],
                           capture_output=True)


# -- what a journal holds -------------------------------------------------------------------------
def _utc(ns: int | None) -> str:
    if ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def describe(path: Path) -> dict:
    """Schema version, tables, points per measurement and per series, time ranges."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        tables = sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'"))
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if "meta" in tables else None
        info = {"file": path.name, "bytes": path.stat().st_size, "schema_version": row and row[0],
                "tables": tables, "journal_mode": {1: "delete", 2: "wal"}.get(path.read_bytes()[18], "?")}
        info["measurements"] = [
            {"measurement": m, "series": s, "points": c, "first": _utc(a), "last": _utc(b)}
            for m, s, c, a, b in db.execute(
                "SELECT s.measurement, count(DISTINCT s.id), count(p.id), min(p.time_ns), max(p.time_ns) "
                "FROM series s LEFT JOIN points p ON p.series_id = s.id GROUP BY s.measurement "
                "ORDER BY s.measurement")]
        info["series"] = [
            {"id": sid, "measurement": m, "tags": json.loads(t), "points": c}
            for sid, m, t, c in db.execute(
                "SELECT s.id, s.measurement, s.tags, count(p.id) FROM series s LEFT JOIN points p "
                "ON p.series_id = s.id GROUP BY s.id ORDER BY s.id")]
        info["points"] = db.execute("SELECT count(*) FROM points").fetchone()[0]
        info["counters"] = dict(db.execute("SELECT name, value FROM counters ORDER BY name"))
        if "forward_cursor" in tables:
            info["forward_cursor"] = [list(r) for r in db.execute("SELECT target, last_id FROM forward_cursor")]
            info["backlog"] = {t: db.execute("SELECT count(*) FROM points WHERE id > ?", (i,)).fetchone()[0]
                               for t, i in info["forward_cursor"]}
        if "forward_target" in tables:
            info["forward_target"] = [r[0] for r in db.execute("SELECT url FROM forward_target")]
        if "blocks" in tables:
            info["blocks"] = db.execute("SELECT count(*), coalesce(sum(count), 0) FROM blocks").fetchone()
        return info
    finally:
        db.close()


def markdown(info: dict) -> str:
    lines = [f"### {info['file']}", "",
             f"schema_version {info['schema_version']}, {info['bytes']:,} bytes, journal_mode "
             f"{info['journal_mode']}, {info['points']} points; tables: {', '.join(info['tables'])}", "",
             "| measurement | series | points | first (UTC) | last (UTC) |", "|---|---|---|---|---|"]
    for m in info["measurements"]:
        lines.append(f"| {m['measurement']} | {m['series']} | {m['points']} | {m['first']} | {m['last']} |")
    lines.append("")
    for s in info["series"]:
        tags = ",".join(f"{k}={v}" for k, v in sorted(s["tags"].items()))
        lines.append(f"- series {s['id']}: {s['measurement']} {{{tags}}}: {s['points']} points")
    if "blocks" in info:
        lines.append(f"- column blocks: {info['blocks'][0]} holding {info['blocks'][1]} points")
    if "forward_cursor" in info:
        for target, last_id in info["forward_cursor"]:
            lines.append(f"- forward_cursor: {target!r} last_id {last_id} (backlog {info['backlog'][target]})")
    if info.get("forward_target"):
        lines.append(f"- forward_target: {', '.join(info['forward_target'])}")
    lines.append(f"- counters: {json.dumps(info['counters'])}")
    return "\n".join(lines) + "\n"


# -- the child: runs inside a worktree, imports only that version ---------------------------------
def child_points(n: int, site_path: Path, journal_path: Path) -> None:
    import csv

    import collector.journal
    from collector.journal import Journal
    from collector.points import Point

    worktree = Path.cwd().resolve()
    for module in (collector.journal, sys.modules["collector.points"]):
        assert Path(module.__file__).resolve().is_relative_to(worktree), module.__file__
    start_s, end_s = iso_s(START), iso_s(END)
    if n == 1:
        # Version 1's load_site cross-checks import devices.node_maps, which came with version 2:
        # its own pydantic model, without those checks.
        from devices.site import Site
        site = Site.model_validate(tomllib.loads(site_path.read_text("utf-8")))
    else:
        from devices.site import load_site
        site = load_site(site_path)

    if n == 1:
        workshop, rows = _v1_backfill(site, start_s, end_s)
        chunks = [(end_s, rows)]
    else:
        from devices.calendar import opening_windows
        from devices.sim.backfill import backfill_rows, backfill_workshop
        # The window lies in Thursday's opening hours (13:30-21:00 Paris): one window, the same
        # that version 1 is given by hand.
        assert opening_windows(site, start_s, end_s) == [(start_s, end_s)]
        workshop = backfill_workshop(site, start_s, end_s, seed=SEED)
        chunks = backfill_rows(site, workshop, start_s, end_s)
    # As `wattelier simulate --backfill` (wattelier/commands/simulate.py, _backfill) does.
    journal = Journal(journal_path, max_points=site.journal.max_points, overflow=site.journal.overflow)
    written = 0
    for _chunk_end, rows in chunks:
        journal.put([Point(r.measurement, r.tags, r.fields, r.time_ns) for r in rows])
        written += journal.commit()
    packed = journal.compact() if n >= 3 else 0
    journal.close()
    print(f"v{n}: {written} points written, {packed} packed into column blocks")

    if n >= 2:
        from collector.forward_store import ForwardStore
        from collector.influx_adapter import InfluxSettings

        target = InfluxSettings(url=FORWARD_URL, api="v1").target_key("v1")
        if n >= 5:
            from collector.forward_store import record_target
            record_target(journal_path, FORWARD_URL)
        store = ForwardStore(journal_path, target)
        try:
            after, forwarded = store.cursor(), 0
            while True:
                batch = store.read_batch(after, 10_000)
                if batch.last_id == after:
                    break
                store.record(batch, [])
                forwarded += len(batch)
                after = batch.last_id
        finally:
            store.close()
        if n >= 5:
            record_target(journal_path, FORWARD_URL, accepted=True)
        print(f"v{n}: forwarded {forwarded} points to {target!r} (cursor {after})")

    if n >= 3:  # the bookings, as `wattelier simulate --out` writes sessions.csv
        with open(journal_path.parent / "sessions.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["machine", "member", "start", "end"])
            for s in workshop.sessions(end_s):
                writer.writerow([s.machine, s.member, _iso(s.start_s), _iso(s.end_s)])


def _iso(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _v1_backfill(site, start_s: float, end_s: float):
    """devices/sim/backfill.py's rows (version 2), made with version 1's physics."""
    from dataclasses import fields as dc_fields

    import numpy as np

    from collector.points import Point
    from devices import vocabulary as v
    from devices.sim.physics import Workshop
    from devices.sim.schedule import OpenWindows

    workshop = Workshop(site, seed=SEED, t0_s=start_s, pace=1.0, dt_s=1.0,
                        windows=OpenWindows([(start_s, end_s)]))
    site_name = site.site.name
    rows = []
    for name, meter in sorted(site.meters.items()):
        # Version 1 ships no meter model files (devices/data/meters came with version 2):
        # every canonical quantity the physics gives (devices.vocabulary.METER_QUANTITIES).
        mapped = list(v.METER_QUANTITIES)
        times = np.arange(start_s, end_s, meter.poll_interval_s)
        values = workshop.meter_values_series(name, times)
        columns = {q: values[q] for q in mapped if q in values}
        tags = {v.TAG_SITE: site_name, v.TAG_METER: name, v.TAG_MACHINE: meter.feeds}
        keys = list(columns)
        matrix = np.column_stack([columns[k] for k in keys]).tolist()
        times_ns = (times * 1e9).astype(np.int64).tolist()
        rows.extend(Point(v.METER, tags, dict(zip(keys, vals)), tn) for tn, vals in zip(times_ns, matrix))
    for ctl_name, ctl in sorted(site.controllers.items()):
        schedule = workshop.entities[ctl.machine].schedule
        schedule.extend_to(end_s)
        tags = {v.TAG_SITE: site_name, v.TAG_MACHINE: ctl.machine, v.TAG_CONTROLLER: ctl_name}
        for seg in schedule.segments:
            if start_s <= seg.start_s < end_s:
                _, signals = workshop.controller_signals(ctl.machine, seg.start_s)
                row_fields = {f.name: getattr(signals, f.name) for f in dc_fields(signals)}
                rows.append(Point(v.CNC, tags, row_fields, int(round(seg.start_s * 1e9))))
    return workshop, rows


def child_finish(journal_path: Path) -> None:
    """Checkpoint, VACUUM and close: the whole journal in its one file."""
    db = sqlite3.connect(journal_path, isolation_level=None)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{journal_path}{suffix}").exists(), suffix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", nargs="?", type=Path)
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--versions", default="1,2,3,4,5")
    parser.add_argument("--keep-worktrees", action="store_true")
    parser.add_argument("--describe", nargs="*", type=Path, help="only print what these journals hold")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--site", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--journal", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        if args.step == "points":
            child_points(args.child, args.site, args.journal)
        else:
            child_finish(args.journal)
        return
    if args.describe is not None:
        for path in args.describe:
            print(markdown(describe(path)))
        return
    if args.repo is None or args.out is None:
        parser.error("give REPO and OUT")
    repo, out = args.repo.resolve(), args.out.resolve()
    versions = [int(x) for x in args.versions.split(",")]
    made = []
    log = sys.stderr
    for n in versions:
        print(f"v{n}: commit {COMMITS[n]}", file=sys.stderr)
        made.append(make_one(repo, out, n, args.keep_worktrees, log))
    for path in made:
        print(markdown(describe(path)))


if __name__ == "__main__":
    main()
