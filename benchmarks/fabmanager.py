"""Benchmark of the Fab-manager import: a full read against an incremental one, for a big lab.

A fake Fab-manager (tests/fabmanager_fake.py: the Open API's order, `after` filter and
pagination, on loopback; Fab-manager itself cannot run here) serves N reservations (20 000 by
default) made over Y years (5) up to the benchmark's "now": about 11 a day, each booked a few
days ahead (exponential, mean 7 days, at most 60), of 1 to 4 contiguous one-hour slots, some
cancelled, some by deleted members, some of a machine or a user the site does not map.

Timed, medians of R repetitions (5), per_page P (100: what `wattelier sessions fabmanager`
asks; Fab-manager sets no maximum):

- full read: `fetch_fabmanager_incremental` with no state (every page);
- incremental read: the same with the state the full read left, an hour later, nothing new;
- incremental read a day later, with that day's new reservations;
- each also with storing as the command does (`store_sessions`, `cancel_sessions`, the
  state), into a journal that holds the full read's sessions (a fresh one for the full read).

The fake answers in well under a millisecond a page; a real Fab-manager takes longer per
page (a database query and a view rendered for each), so the page counts printed beside
the times say what a real server would multiply. `--page-ms` adds that much to each answer
of the fake to see it.

Run: python benchmarks/fabmanager.py [--reservations N] [--years Y] [--per-page P] [--repeat R] [--page-ms MS]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics.bookings.fabmanager import (FabmanagerReport, FabmanagerState,  # noqa: E402
                                           fetch_fabmanager_incremental)
from storage.journal import Journal  # noqa: E402
from tests.fabmanager_fake import TOKEN, FakeFabmanager  # noqa: E402
from storage.bookings_store import cancel_sessions, store_sessions  # noqa: E402
from wattelier.fabmanager_state import save_fabmanager_state  # noqa: E402

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
NOW_S = dt.datetime(2026, 3, 2, 12, tzinfo=dt.timezone.utc).timestamp()
DAY_S = 86400.0
MACHINES = {1: "router-1", 2: "laser-1", 3: "mill-1", 4: "printers-1", 5: "kiln-1"}  # 6: not mapped
MEMBERS = {100 + i: f"member-{i}" for i in range(60)}  # users 160..179: not mapped


def _iso(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, PARIS).isoformat(timespec="milliseconds")


def reservation(rid: int, created_s: float, rng: random.Random) -> dict:
    """One machine reservation in the Open API's documented format."""
    lead_s = min(rng.expovariate(1 / (7 * DAY_S)), 60 * DAY_S)
    start_s = (created_s + lead_s) // 3600 * 3600 + 3600
    slots = []
    for k in range(rng.randint(1, 4)):
        canceled = _iso(created_s + 60) if rng.random() < 0.05 else None
        slots.append({"canceled_at": canceled, "availability_id": rid * 10 + k,
                      "start_at": _iso(start_s + 3600 * k), "end_at": _iso(start_s + 3600 * (k + 1))})
    machine = rng.randint(1, 6)
    item = {"id": rid, "reservable_id": machine, "reservable_type": "Machine",
            "created_at": _iso(created_s), "updated_at": _iso(created_s),
            "reservable": {"id": machine, "name": f"machine {machine}", "slug": f"machine-{machine}"},
            "reserved_slots": slots}
    if rng.random() < 0.02:  # a member deleted since: anonymised, user_id null, no user
        item["user_id"] = None
    else:
        user = rng.randint(100, 179)
        item["user_id"] = user
        item["user"] = {"id": user, "email": f"m{user}@example.org", "full_name": f"Member {user}",
                        "created_at": _iso(created_s - 400 * DAY_S)}
    return item


def history(n: int, years: float, rng: random.Random, start_id: int = 1) -> list[dict]:
    """n reservations created over `years` up to NOW_S, newest first."""
    span_s = years * 365.25 * DAY_S
    created = sorted((NOW_S - rng.random() * span_s for _ in range(n)), reverse=True)
    return [reservation(start_id + n - 1 - i, c, rng) for i, c in enumerate(created)]


def read(server: FakeFabmanager, state: FabmanagerState | None, now_s: float, per_page: int):
    report = FabmanagerReport()
    t0 = time.perf_counter()
    sessions, new_state = fetch_fabmanager_incremental(server.url, TOKEN, MACHINES, MEMBERS, state,
                                                       per_page=per_page, report=report, now_s=now_s)
    return time.perf_counter() - t0, sessions, new_state, report


def store(path: Path, sessions, report, state) -> float:
    t0 = time.perf_counter()
    journal = Journal(path)
    try:
        store_sessions(journal, "bench", sessions)
        cancel_sessions(journal, "bench", report.canceled)
        save_fabmanager_state(journal, state)
    finally:
        journal.close()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reservations", type=int, default=20_000)
    parser.add_argument("--years", type=float, default=5.0)
    parser.add_argument("--per-page", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--page-ms", type=float, default=0.0, help="added to each answer of the fake [ms]")
    args = parser.parse_args()
    rng = random.Random(15)
    old = history(args.reservations, args.years, rng)
    per_day = args.reservations / (args.years * 365.25)
    new_day = [reservation(args.reservations + 1 + i, NOW_S + DAY_S * (i + 0.5) / (per_day + 1), rng)
               for i in range(round(per_day))]
    server = FakeFabmanager(recorded=False, reservations=old)
    if args.page_ms:
        answer = server._answer

        def slow(handler) -> None:
            time.sleep(args.page_ms / 1000)
            answer(handler)

        server._answer = slow
    times: dict[str, list[float]] = {k: [] for k in ("full", "full+store", "inc", "inc+store", "day", "day+store")}
    pages: dict[str, tuple[int, int, int]] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for r in range(args.repeat):
                server.extra = list(old)
                server.listed()  # the fake sorts its list once (a database has an index): not timed
                path = Path(folder) / f"journal-{r}.sqlite"
                took, sessions, state, report = read(server, None, NOW_S, args.per_page)
                times["full"].append(took)
                times["full+store"].append(took + store(path, sessions, report, state))
                pages["full"] = (report.pages, report.reservations, len(sessions))
                took, sessions, state1, report = read(server, state, NOW_S + 3600, args.per_page)
                times["inc"].append(took)
                times["inc+store"].append(took + store(path, sessions, report, state1))
                pages["inc"] = (report.pages, report.reservations, len(sessions))
                server.add(*new_day)
                server.listed()
                took, sessions, state2, report = read(server, state1, NOW_S + DAY_S, args.per_page)
                times["day"].append(took)
                times["day+store"].append(took + store(path, sessions, report, state2))
                pages["day"] = (report.pages, report.reservations, len(sessions))
    finally:
        server.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.reservations} reservations over {args.years:g} years ({per_day:.1f} a day), per_page "
          f"{args.per_page}, medians of {args.repeat}" + (f", {args.page_ms:g} ms added per page" if args.page_ms else ""))
    rows = (("full read (no state)", "full"), ("incremental, an hour later, nothing new", "inc"),
            (f"incremental, a day later, {len(new_day)} new", "day"))
    for label, key in rows:
        n_pages, n_resa, n_sessions = pages[key]
        print(f"  {label:45s} {n_pages:4d} page(s) {n_resa:6d} reservation(s) {n_sessions:6d} session(s): "
              f"read {med[key]:7.3f} s, with storing {med[key + '+store']:7.3f} s")
    print(f"  full / incremental: read {med['full'] / med['inc']:.0f}x, with storing "
          f"{med['full+store'] / med['inc+store']:.1f}x; a day later: read {med['full'] / med['day']:.0f}x, "
          f"with storing {med['full+store'] / med['day+store']:.1f}x")


if __name__ == "__main__":
    main()
