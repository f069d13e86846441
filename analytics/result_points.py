"""The analysis results as points of the storage schema (docs/design.md, "Storage schema"):
what `wattelier analyze` stores (storage.results_store) and reports read back
(storage.stored_results).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from analytics.pipeline import AnalysisResult
from analytics.results import BalanceRecord, Figures, UsageRecord
from devices import vocabulary
from storage.points import Point

RESULT_MEASUREMENTS = [vocabulary.MACHINE_STATE, vocabulary.JOB, vocabulary.SESSION, vocabulary.USAGE,
                       vocabulary.BALANCE]


def ns(t_s: float) -> int:
    """Unix seconds as integer nanoseconds (rounded), as results are stamped."""
    return int(round(t_s * 1e9))


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as stored: no None, no NaN (line protocol has neither); floats stay floats."""
    out = {}
    for key, value in fields.items():
        if value is None:
            continue
        if type(value) is float and value - value != 0.0:  # NaN and infinities
            continue
        out[key] = value
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _stored_fields(kind: type, leave_out: tuple[str, ...] = ()) -> tuple[tuple[str, bool], ...]:
    """(name, is a number) of a record type's fields as stored, listed once per type: a week's
    results hold some 2 500 records with figures. Numbers (int or float) are stored as floats
    (physical quantities are always floats: docs/design.md, "One vocabulary with units in the
    names")."""
    return tuple((f.name, f.type.startswith(("float", "int"))) for f in dataclasses.fields(kind)
                 if f.name not in leave_out)


_FIGURE_FIELDS = _stored_fields(Figures)
_USAGE_FIELDS = _stored_fields(UsageRecord, ("machine", "day_start_s", "period", "day"))
_BALANCE_FIELDS = _stored_fields(BalanceRecord, ("period",))


def _figures(record: Any, listed: tuple[tuple[str, bool], ...] = _FIGURE_FIELDS) -> dict[str, Any]:
    """A record's `listed` fields as stored: numbers as floats, names as text, None and NaN
    left out (as _clean does)."""
    values = vars(record)
    out: dict[str, Any] = {}
    for name, is_number in listed:
        value = values[name]
        if value is None:
            continue
        if is_number:
            value = float(value)
            if value - value != 0.0:  # NaN and infinities
                continue
        out[name] = value
    return out


def result_points(site_name: str, result: AnalysisResult) -> list[Point]:
    """The analysis results as points of the storage schema (docs/design.md, "Storage schema").

    Every point lies inside the analysed window [start, end): a re-run of the window replaces
    exactly its own results, and the results of adjacent windows (the periodic mode's runs, a
    day analysed in pieces) never fall on one series and instant, where the later would
    overwrite the earlier. A job or session cut by the window's start is stored as its part
    inside the window: at the window's start, its end_s and duration_s those of the part
    (its figures already are), window_cut saying which edge cut it.

    machine_state: one point per state interval at its start (tags site, machine, state).
    job: one point per job at its start (tags site, machine, member when attributed).
    session: one point per session at its start (tags site, machine, member); jobs: how many
    jobs it holds (a count, stored as a float as every number).
    usage: one point per machine and site-local day at the start of the day's part inside the
    window (the day's start for a whole day; tags site, machine, period=day).
    balance: one point per site-local day, likewise (tags site, period=day): the main meter
    against the metered machines and services (the window's own row is not stored: a report
    sums the days it covers).
    """
    first, last = result.start_s, result.end_s
    points: list[Point] = []
    for s in result.state_intervals:
        points.append(Point(vocabulary.MACHINE_STATE, {"site": site_name, "machine": s.machine, "state": s.state},
                            _clean({"end_s": float(s.end_s), "duration_s": float(s.end_s - s.start_s),
                                    "energy_kwh": _float(s.energy_kwh)}), ns(s.start_s)))
    for j in result.jobs:
        tags = {"site": site_name, "machine": j.machine}
        if j.member:
            tags["member"] = j.member
        a, b = max(j.start_s, first), min(j.end_s, last)
        points.append(Point(vocabulary.JOB, tags, _clean({
            "end_s": float(b), "duration_s": float(b - a),
            "energy_power_kwh": _float(j.energy_power_kwh),
            "energy_reconciled_kwh": _float(j.energy_reconciled_kwh),
            "program": j.program or None, "attributed": j.member is not None,
            "outcome": j.outcome, "window_cut": j.window_cut,
        }) | _figures(j), ns(a)))
    for s in result.sessions:
        a, b = max(s.start_s, first), min(s.end_s, last)
        points.append(Point(vocabulary.SESSION, {"site": site_name, "machine": s.machine, "member": s.member},
                            _clean({"end_s": float(b), "duration_s": float(b - a),
                                    "processing_s": _float(s.processing_s), "jobs": float(s.jobs),
                                    "window_cut": s.window_cut})
                            | _figures(s), ns(a)))
    for u in result.usage:
        points.append(Point(vocabulary.USAGE, {"site": site_name, "machine": u.machine, "period": "day"},
                            _figures(u, _USAGE_FIELDS), ns(u.start_s)))
    for b in result.balance:
        if b.period == "window":
            continue
        points.append(Point(vocabulary.BALANCE, {"site": site_name, "period": "day"},
                            _figures(b, _BALANCE_FIELDS) | {"date": b.period}, ns(b.start_s)))
    return points
