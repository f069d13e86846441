"""Benchmark of the journal's storage: the compact journal (schema version 6: a series' readings
packed per hour into one compressed blob) against the journal before it (schema version 5: one
JSON row per point, plus column blocks), both built in the same run.

What is measured, for each format, each step in a process of its own (so its wall time and
peak memory are its own):

- backfill: ``wattelier.history.backfill_history(site, start_s, end_s, journal, seed=1)`` into a
  new journal, for the example site (devices/data/sites/example.toml) with every meter polled
  at 1 Hz (``poll_interval_s = 1.0`` in every [meters.*] table; the site's journal bound
  ``max_points`` raised so nothing is dropped) over a fixed window ending 2026-11-16T00:00Z
  (``--end``; a Monday: a window of a day or less is a Sunday, the workshop closed):
  points written, seconds, points per second, and peak memory: the process's peak resident
  set (ru_maxrss of the child as the parent reaps it, ``os.wait4``; the interpreter and its
  imports included). Seconds are those of the call (the modules it uses imported before the
  clock starts); the process's whole wall time, start-up included, is shown beside them.
- bytes on disk: the journal file plus its ``-wal``, after the journal is closed, divided by
  the meter points in it (``JournalReader.count_by_series`` over the ``meter`` series); the
  total of points (controller rows, bookings, hourly rollups) is shown beside.
- packing, as ``wattelier analyze`` does before it reads (``Journal.compact``; horizon: the
  window's end, which is what analyze's default, now less 2 minutes, packs for a past window):
  seconds, points packed, and the bytes per meter point after it. In version 5 this is where
  the column blocks are made (the collector makes them every 10 minutes), so its bytes after
  packing are what a version-5 journal holds in service; in version 6 the backfill already
  wrote packed hours, only the controller rows are left to pack.
- reading one machine's window for analysis: ``analytics.inputs.JournalInputs(path)
  .power_and_counter(machine, start_s, end_s)`` (opening the reader included), median of
  ``--repeat`` runs in one process after one untimed warm-up run (modules imported, file in
  the page cache), and the samples it returns.

The current code runs from this checkout; the previous format's code runs from a git worktree
of ``--baseline-commit`` (default 6b46488, the last commit before the storage work of issue 18:
collector/journal.py, analytics/journal_reader.py, analytics/inputs.py), made in the scratch
folder and removed at the end, also on failure. Each child process runs with its working
folder and PYTHONPATH set to its checkout and fails unless every module of the project it
loaded comes from there (the files are printed). The previous format is slow and big (some
440 bytes a meter point: a month would be about 9 GB and take many minutes), so it runs over
``--baseline-days`` (default 2) ending at the same instant: its figures are per point (bytes
per meter point, points per second), its peak memory is over its own days, and its backfill,
packing and read times are also shown scaled linearly to ``--days``, labelled as scaled. (Its
backfill makes one day's rows at a time, so its peak memory grows with ``--baseline-days`` up
to one day and stays flat after.)
Caveat: the previous commit's backfill journals the model's float64 values; the current one
journals them as the meter's registers carry them (float32 or scaled integers).

Targets (for the default month; printed with PASS/FAIL beside the current format's figures):
at most 60 bytes per meter point (after the backfill), backfill under 180 s (the process's
wall time), peak memory under 500 MB, a machine-month read under 1 s. Ratios new vs old are
printed for each figure, and a final line of JSON holds every figure.

Run: python3 benchmarks/journal.py [--days 30] [--baseline-days 2] [--machine router-1]
     [--repeat 5] [--end 2026-11-16T00:00Z] [--baseline-commit 6b46488] [--workdir DIR] [--keep]
(a full run needs under 1.5 GB of scratch space, two days in version 5 being some 0.65 GB of it;
--workdir puts the scratch folder inside DIR, --keep keeps it there; the worktree of the previous
code is removed either way.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devices.site import example_site_path, parse_site  # noqa: E402

END = "2026-11-16T00:00Z"  # a fixed window (ending on a Monday), so runs are comparable
BASELINE_COMMIT = "6b46488"
PROJECT_PACKAGES = ("analytics", "collector", "dashboards", "devices", "reports", "storage", "wattelier")
MAX_POINTS = 10**10  # the largest bound a site file accepts: nothing dropped

TARGET_BYTES_PER_POINT = 60.0
TARGET_BACKFILL_S = 180.0
TARGET_PEAK_MB = 500.0
TARGET_READ_S = 1.0

# Where each format's code lives (module names, imported in the child process).
MODULES = {
    "current": {"journal": "storage.journal", "reader": "storage.journal_reader",
                "schema": "storage.journal_schema", "inputs": "analytics.inputs",
                "history": "wattelier.history"},
    "previous": {"journal": "collector.journal", "reader": "analytics.journal_reader",
                 "schema": "devices.journal_schema", "inputs": "analytics.inputs",
                 "history": "wattelier.history"},
}

# The child process: one step (backfill, pack or read) of one format, with the code of its own
# checkout; prints one line of JSON.
CHILD = r'''
import importlib, json, statistics, sys, time
from pathlib import Path

job = json.loads(sys.argv[1])
root = Path(job["root"]).resolve()
mods = {k: importlib.import_module(v) for k, v in job["modules"].items()}
from devices.site import parse_site
site = parse_site(Path(job["site_file"]).read_text(encoding="utf-8"), job["site_file"])
path = Path(job["journal"])
out = {"schema_version": mods["schema"].SCHEMA_VERSION}

if job["step"] == "backfill":
    import devices.sim.backfill  # imported before the clock, as backfill_history's own imports
    import analytics.records
    t = time.perf_counter()
    history = mods["history"].backfill_history(site, job["start_s"], job["end_s"], path, seed=1)
    out["call_s"] = time.perf_counter() - t
    out["written"] = history.points
    out["jobs"] = history.jobs
    out["sessions"] = history.sessions_added
elif job["step"] == "pack":
    journal = mods["journal"].Journal(path, max_points=site.journal.max_points, overflow=site.journal.overflow)
    try:
        t = time.perf_counter()
        out["packed"] = journal.compact(horizon_ns=int(job["end_s"] * 1e9))
        out["call_s"] = time.perf_counter() - t
    finally:
        journal.close()
elif job["step"] == "read":
    reader = mods["reader"].JournalReader(path)
    try:
        counts = reader.count_by_series()
        meter_ids = {s.series_id for s in reader.series("meter")}
        by_measurement = {}
        for s in reader.series():
            by_measurement[s.measurement] = by_measurement.get(s.measurement, 0) + counts.get(s.series_id, 0)
    finally:
        reader.close()
    out["meter_points"] = sum(counts.get(sid, 0) for sid in meter_ids)
    out["total_points"] = sum(counts.values())
    out["points_by_measurement"] = by_measurement
    JournalInputs = mods["inputs"].JournalInputs

    def read():
        inputs = JournalInputs(path)
        try:
            return inputs.power_and_counter(job["machine"], job["start_s"], job["end_s"])
        finally:
            inputs.close()

    power_t, power_w, counter_t, counter = read()  # warm-up, untimed
    times = []
    for _ in range(job["repeat"]):
        t = time.perf_counter()
        read()
        times.append(time.perf_counter() - t)
    out["read_s"] = statistics.median(times)
    out["read_times_s"] = times
    out["power_samples"] = int(len(power_w))
    out["counter_samples"] = int(len(counter))

out["module_files"] = {k: m.__file__ for k, m in mods.items()}
foreign = sorted(f"{name}: {m.__file__}" for name, m in list(sys.modules.items())
                 if name.split(".")[0] in job["packages"] and getattr(m, "__file__", None)
                 and not Path(m.__file__).resolve().is_relative_to(root))
if foreign:
    sys.exit("modules loaded from outside " + str(root) + ": " + "; ".join(foreign[:5]))
print(json.dumps(out))
'''

_running: subprocess.Popen | None = None  # the child of the moment, killed if we are stopped


def _terminate(signum, frame):  # SIGTERM: unwind, so the worktree and scratch files are removed
    raise SystemExit(f"stopped by signal {signum}")


def site_text_1hz() -> str:
    """The example site's text with poll_interval_s = 1.0 in every [meters.*] table (set where
    it is given, added where it is not) and the journal bound raised to MAX_POINTS."""
    lines = example_site_path().read_text(encoding="utf-8").splitlines()
    out: list[str] = []
    table = ""
    pending_meter = False  # in a [meters.*] table that has not said poll_interval_s yet
    last_line = 0  # index in out after the table's header or its last key

    def close_table():
        if pending_meter:  # after the table's last key, before its trailing blanks and comments
            out.insert(last_line, "poll_interval_s = 1.0")

    for line in lines:
        header = re.match(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$", line)
        if header:
            close_table()
            table = header.group(1).strip()
            pending_meter = table.startswith("meters.")
            out.append(line)
            last_line = len(out)
            continue
        key = re.match(r"^\s*([A-Za-z0-9_]+)\s*=", line)
        if key:
            last_line = len(out) + 1
        if key and table.startswith("meters.") and key.group(1) == "poll_interval_s":
            out.append("poll_interval_s = 1.0")
            pending_meter = False
            continue
        if key and table == "journal" and key.group(1) == "max_points":
            out.append(f"max_points = {MAX_POINTS}")
            continue
        out.append(line)
    close_table()
    text = "\n".join(out) + "\n"
    data = tomllib.loads(text)
    assert data["meters"] and all(m.get("poll_interval_s") == 1.0 for m in data["meters"].values()), data["meters"]
    assert data["journal"]["max_points"] == MAX_POINTS
    site = parse_site(text, "example.toml, every meter at 1 Hz")
    assert all(m.poll_interval_s == 1.0 for m in site.meters.values())
    return text


def disk_bytes(journal: Path) -> tuple[int, int]:
    """(bytes of the journal file, bytes of its write-ahead log: 0 where there is none)."""
    wal = journal.with_name(journal.name + "-wal")
    return journal.stat().st_size, wal.stat().st_size if wal.exists() else 0


def run_child(step: str, code_root: Path, modules: dict, job: dict, log_dir: Path) -> dict:
    """Run one step in a new process with cwd and PYTHONPATH set to code_root; returns its
    JSON, with its wall time and peak resident set (ru_maxrss from os.wait4)."""
    global _running
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(code_root)
    full = {**job, "step": step, "root": str(code_root), "modules": modules, "packages": PROJECT_PACKAGES}
    tag = f"{Path(job['journal']).stem}-{step}"
    with open(log_dir / f"{tag}.out", "wb") as out, open(log_dir / f"{tag}.err", "wb") as err:
        start = time.perf_counter()
        _running = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(full)], cwd=code_root, env=env,
                                    stdout=out, stderr=err)
        _, status, usage = os.wait4(_running.pid, 0)
        wall = time.perf_counter() - start
        _running.returncode = os.waitstatus_to_exitcode(status)
        code, _running = _running.returncode, None
    if code != 0:
        raise RuntimeError(f"{step} in {code_root} failed (exit {code}):\n"
                           + (log_dir / f"{tag}.err").read_text(errors="replace")[-3000:])
    result = json.loads((log_dir / f"{tag}.out").read_text().strip().splitlines()[-1])
    for name, file in result["module_files"].items():
        if not Path(file).resolve().is_relative_to(code_root.resolve()):
            raise RuntimeError(f"{step}: {name} came from {file}, not from {code_root}")
    result["process_wall_s"] = wall
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    return result


def measure(label: str, code_root: Path, modules: dict, site_file: Path, journal: Path, end_s: float,
            days: float, machine: str, repeat: int, log_dir: Path) -> dict:
    start_s = end_s - days * 86400
    job = {"site_file": str(site_file), "journal": str(journal), "start_s": start_s, "end_s": end_s,
           "machine": machine, "repeat": repeat}
    print(f"{label}: {days:g} days from {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime(start_s))}, code in "
          f"{code_root}", flush=True)
    fig: dict = {"days": days, "start_s": start_s, "end_s": end_s, "code": str(code_root)}
    b = run_child("backfill", code_root, modules, job, log_dir)
    print(f"  code: {', '.join(f'{k} {v}' for k, v in b['module_files'].items())}", flush=True)
    fig.update(schema_version=b["schema_version"], points_written=b["written"], backfill_call_s=b["call_s"],
               backfill_process_s=b["process_wall_s"], backfill_points_per_s=b["written"] / b["call_s"],
               backfill_peak_rss_mb=b["peak_rss_mb"])
    fig["bytes_after_backfill"] = sum(disk_bytes(journal))
    fig["wal_bytes_after_backfill"] = disk_bytes(journal)[1]
    print(f"  backfill: {b['written']:,} points written in {b['call_s']:.2f} s ({fig['backfill_points_per_s']:,.0f} "
          f"points/s; process {b['process_wall_s']:.2f} s with start-up), peak memory {b['peak_rss_mb']:.0f} MB",
          flush=True)
    p = run_child("pack", code_root, modules, job, log_dir)
    fig.update(pack_s=p["call_s"], pack_process_s=p["process_wall_s"], packed_points=p["packed"],
               pack_peak_rss_mb=p["peak_rss_mb"])
    fig["bytes_after_pack"] = sum(disk_bytes(journal))
    fig["wal_bytes_after_pack"] = disk_bytes(journal)[1]
    print(f"  packing (as analyze does before reading): {p['packed']:,} points in {p['call_s']:.2f} s, "
          f"peak memory {p['peak_rss_mb']:.0f} MB", flush=True)
    r = run_child("read", code_root, modules, job, log_dir)
    meter = r["meter_points"]
    fig.update(meter_points=meter, total_points=r["total_points"], points_by_measurement=r["points_by_measurement"],
               bytes_per_meter_point_after_backfill=fig["bytes_after_backfill"] / meter,
               bytes_per_meter_point_after_pack=fig["bytes_after_pack"] / meter,
               read_s=r["read_s"], read_times_s=r["read_times_s"], read_power_samples=r["power_samples"],
               read_counter_samples=r["counter_samples"])
    print(f"  on disk (journal + -wal; -wal {fig['wal_bytes_after_backfill']:,} and {fig['wal_bytes_after_pack']:,} "
          f"bytes): {fig['bytes_after_backfill'] / 1e6:,.1f} MB after the backfill = "
          f"{fig['bytes_per_meter_point_after_backfill']:.1f} B a meter point; {fig['bytes_after_pack'] / 1e6:,.1f} MB "
          f"after packing = {fig['bytes_per_meter_point_after_pack']:.1f} B ({meter:,} meter points; "
          f"{r['total_points']:,} points in all: {r['points_by_measurement']})", flush=True)
    print(f"  read {machine} over the window: {r['read_s'] * 1e3:.1f} ms (median of {repeat} after a warm-up, "
          f"one process), {r['power_samples']:,} power and {r['counter_samples']:,} counter samples", flush=True)
    return fig


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(new: dict, old: dict | None, days: float, machine: str) -> dict:
    month = "month" if days == 30 else f"{days:g} days"
    print()
    print(f"current format (schema {new['schema_version']}), {days:g} days of the example site, every meter at 1 Hz:")
    rows = [
        ("points written", f"{new['points_written']:,}", ""),
        ("backfill (process, start-up included)", f"{new['backfill_process_s']:.1f} s",
         f"target < {TARGET_BACKFILL_S:g} s  {verdict(new['backfill_process_s'] < TARGET_BACKFILL_S)}"),
        ("backfill (the call)", f"{new['backfill_call_s']:.1f} s", ""),
        ("points per second", f"{new['backfill_points_per_s']:,.0f}", ""),
        ("peak memory of the backfill", f"{new['backfill_peak_rss_mb']:.0f} MB",
         f"target < {TARGET_PEAK_MB:g} MB  {verdict(new['backfill_peak_rss_mb'] < TARGET_PEAK_MB)}"),
        ("bytes per meter point", f"{new['bytes_per_meter_point_after_backfill']:.1f} B",
         f"target <= {TARGET_BYTES_PER_POINT:g} B  "
         f"{verdict(new['bytes_per_meter_point_after_backfill'] <= TARGET_BYTES_PER_POINT)}"),
        ("  meter points / points in all", f"{new['meter_points']:,} / {new['total_points']:,}", ""),
        ("packing left for analyze", f"{new['pack_s']:.2f} s", f"{new['packed_points']:,} points"),
        ("  bytes per meter point after it", f"{new['bytes_per_meter_point_after_pack']:.1f} B", ""),
        (f"read one machine, {month} ({machine})", f"{new['read_s'] * 1e3:.1f} ms",
         f"target < {TARGET_READ_S * 1e3:g} ms  {verdict(new['read_s'] < TARGET_READ_S)}"),
        ("  samples read", f"{new['read_power_samples']:,}", ""),
    ]
    for name, value, note in rows:
        print(f"  {name:<42} {value:>22}   {note}")
    if days != 30:
        print(f"  (the targets are set for a month; this run covers {days:g} days)")
    figures = {"days": days, "machine": machine, "current": new}
    if old is None:
        print(json.dumps(figures))
        return figures
    scale = days / old["days"]
    old_scaled = {"backfill_call_s": old["backfill_call_s"] * scale, "pack_s": old["pack_s"] * scale,
                  "read_s": old["read_s"] * scale}
    figures.update(previous=old, previous_scaled_to_days=old_scaled, scale=scale)
    print()
    print(f"previous format (schema {old['schema_version']}), {old['days']:g} days, same site and end; "
          f"times also SCALED x{scale:g} to {days:g} days (linear):")
    rows = [
        ("points written", f"{old['points_written']:,}", ""),
        ("backfill (the call)", f"{old['backfill_call_s']:.1f} s",
         f"scaled to {days:g} days: {old_scaled['backfill_call_s']:.0f} s"),
        ("points per second", f"{old['backfill_points_per_s']:,.0f}", ""),
        ("peak memory of the backfill", f"{old['backfill_peak_rss_mb']:.0f} MB", f"over {old['days']:g} days"),
        ("bytes per meter point, rows only", f"{old['bytes_per_meter_point_after_backfill']:.1f} B", "as backfilled"),
        ("bytes per meter point, rows + blocks", f"{old['bytes_per_meter_point_after_pack']:.1f} B",
         "after packing: as in service"),
        ("  meter points / points in all", f"{old['meter_points']:,} / {old['total_points']:,}", ""),
        ("packing (column blocks)", f"{old['pack_s']:.2f} s",
         f"{old['packed_points']:,} points; scaled: {old_scaled['pack_s']:.1f} s"),
        (f"read {machine} over {old['days']:g} days", f"{old['read_s'] * 1e3:.1f} ms",
         f"SCALED to {days:g} days: {old_scaled['read_s'] * 1e3:.0f} ms"),
        ("  samples read", f"{old['read_power_samples']:,}", ""),
    ]
    for name, value, note in rows:
        print(f"  {name:<42} {value:>22}   {note}")

    def ratio(name: str, new_v: float, old_v: float, word: str, unit: str, fmt: str = ".1f") -> float:
        """new / old; word says what a gain is ("faster" for a rate: higher is better, else
        lower is better)."""
        r = new_v / old_v
        gain = r if unit == "/s" else 1 / r
        said = f"{gain:.1f}x {word}" if gain >= 1 else f"{1 / gain:.1f}x {'slower' if word == 'faster' else 'more'}"
        print(f"  {name:<48} new {format(new_v, fmt):>9} {unit:<3} old {format(old_v, fmt):>9} {unit:<3}"
              f" new/old {r:7.3f}  ({said})")
        return r

    print()
    print("new vs old:")
    ratios = {
        "bytes_per_meter_point": ratio("bytes per meter point (old with its blocks)",
                                       new["bytes_per_meter_point_after_backfill"],
                                       old["bytes_per_meter_point_after_pack"], "smaller", "B"),
        "bytes_per_meter_point_rows_only": ratio("bytes per meter point (old rows only)",
                                                 new["bytes_per_meter_point_after_backfill"],
                                                 old["bytes_per_meter_point_after_backfill"], "smaller", "B"),
        "backfill_points_per_s": ratio("backfill points per second", new["backfill_points_per_s"],
                                       old["backfill_points_per_s"], "faster", "/s", ",.0f"),
        "backfill_s": ratio(f"backfill time, {days:g} days (old SCALED)", new["backfill_call_s"],
                            old_scaled["backfill_call_s"], "faster", "s"),
        "backfill_peak_rss_mb": ratio(f"backfill peak memory ({days:g} vs {old['days']:g} days)",
                                      new["backfill_peak_rss_mb"], old["backfill_peak_rss_mb"], "less", "MB", ".0f"),
        "pack_s": ratio("packing before analyze (old SCALED)", new["pack_s"], old_scaled["pack_s"], "faster", "s",
                        ".2f"),
        "read_s": ratio(f"read one machine, {days:g} days (old SCALED)", new["read_s"], old_scaled["read_s"],
                        "faster", "s", ".3f"),
    }
    figures["ratios_new_over_old"] = ratios
    print(json.dumps(figures))
    return figures


def add_worktree(commit: str, where: Path) -> None:
    done = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), commit],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git worktree add {commit} failed: {done.stderr.strip()}")


def remove_worktree(where: Path) -> None:
    if not where.exists():
        return
    done = subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:  # removed by hand, then forgotten by git
        shutil.rmtree(where, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=30.0, help="days of history in the current format (default 30)")
    parser.add_argument("--baseline-days", type=float, default=2.0,
                        help="days of history in the previous format (default 2; 0: skip it)")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT,
                        help=f"the commit of the previous format's code (default {BASELINE_COMMIT})")
    parser.add_argument("--end", default=END, help=f"the window's end, ISO 8601 (default {END})")
    parser.add_argument("--machine", default="router-1", help="the machine whose window is read (default router-1)")
    parser.add_argument("--repeat", type=int, default=5, help="timed reads, after a warm-up (the median is shown)")
    parser.add_argument("--workdir", type=Path, help="make the scratch folder inside this folder (default: the "
                        "system's temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (journals, site, logs)")
    args = parser.parse_args(argv)
    if args.days <= 0:
        parser.error("--days must be positive")
    try:
        end = datetime.fromisoformat(args.end)
    except ValueError:
        parser.error(f"--end: not an ISO 8601 time: {args.end!r}")
    end_s = (end if end.tzinfo else end.replace(tzinfo=timezone.utc)).timestamp()
    signal.signal(signal.SIGTERM, _terminate)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="wattelier-journal-bench-", dir=args.workdir))
    worktree = scratch / "previous-code"
    try:
        site_file = scratch / "site-1hz.toml"
        site_file.write_text(site_text_1hz(), encoding="utf-8")
        logs = scratch / "logs"
        logs.mkdir()
        new = measure("current format", ROOT, MODULES["current"], site_file, scratch / "journal-current.sqlite",
                      end_s, args.days, args.machine, args.repeat, logs)
        old = None
        if args.baseline_days > 0:
            add_worktree(args.baseline_commit, worktree)
            old = measure(f"previous format (commit {args.baseline_commit})", worktree, MODULES["previous"],
                          site_file, scratch / "journal-previous.sqlite", end_s, args.baseline_days,
                          args.machine, args.repeat, logs)
            if old["schema_version"] != 5 or new["schema_version"] != 6:
                print(f"note: schema versions {new['schema_version']} (current) and {old['schema_version']} "
                      "(previous), not 6 and 5", flush=True)
        report(new, old, args.days, args.machine)
    finally:
        if _running is not None and _running.returncode is None:
            _running.kill()
            _running.wait()
        remove_worktree(worktree)
        if args.keep:
            print(f"scratch kept in {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
