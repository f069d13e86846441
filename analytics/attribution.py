"""Who used what: jobs to sessions, energy to members, shared services to machines.

Rules (docs/design.md, "Attribution"):

- a job belongs to the session of its machine that covers it: the one it overlaps most (ties
  to the earlier session); a job overlapping no session has no member and its energy is
  unattributed;
- a session's energy and times are those of its machine during the session; where sessions of
  one machine overlap (a double booking), each gets an equal share of the overlap, so the
  sessions' sum never exceeds the machine's total;
- energy and time of a machine outside all its sessions are **unattributed** (standby waste,
  unbooked use), reported as such and never spread over members;
- shared services (dust extraction, compressed air), when allocated, are split at each instant
  equally between the machines they serve that are processing then: over a period this
  allocates the service's energy by processing time. Service energy while none of its machines
  processes stays the service's own (its standby), unallocated.

References
----------
.. [1] ISO 50001:2018 / ISO 50006:2014, energy uses and their allocation to significant energy
   users.
.. [2] GHG Protocol Corporate Standard (2004), chapter 3 (allocation of shared emissions by a
   physical driver, here processing time).
"""

from __future__ import annotations

import numpy as np

from analytics.energy import Cumulative, WeightedCumulative
from analytics.intervals import best_overlap, contains, shared_totals, sorted_unique, union


def assign_jobs(job_start_s, job_end_s, session_start_s, session_end_s) -> np.ndarray:
    """Index of the covering session for each job (most overlap), -1 for none.

    Parameters
    ----------
    job_start_s, job_end_s : array [s]
        Jobs of one machine.
    session_start_s, session_end_s : array [s]
        Sessions of the same machine.
    """
    return best_overlap(job_start_s, job_end_s, session_start_s, session_end_s)


def session_totals(session_start_s, session_end_s, cumulative: Cumulative) -> np.ndarray:
    """A machine's quantity (energy [kWh], time [s], CO2e [kg], cost) during each session,
    overlaps shared equally."""
    return shared_totals(session_start_s, session_end_s, cumulative)


def unattributed(total, attributed) -> float:
    """What no session accounts for: total minus the sessions' sum (never below zero by more
    than rounding)."""
    return float(total) - float(np.sum(attributed))


def allocate_service(service_energy: Cumulative, processing: dict[str, tuple[np.ndarray, np.ndarray]],
                     ) -> dict[str, WeightedCumulative]:
    """Split a shared service's energy between the machines it serves, by processing time.

    At each instant the service's energy goes in equal shares to the served machines that are
    processing; while none is, it is not allocated.

    Parameters
    ----------
    service_energy : Cumulative
        The service's cumulative energy [kWh].
    processing : dict machine -> (starts_s, ends_s)
        Processing intervals of each served machine.

    Returns
    -------
    dict machine -> WeightedCumulative
        Cumulative allocated service energy [kWh] of each machine (``.between(a, b)`` gives the
        share in an interval).
    """
    names = sorted(processing)
    sets = {name: union(*processing[name]) for name in names}
    cuts = sorted_unique(np.concatenate([np.zeros(0)] + [np.concatenate(s) for s in sets.values()]))
    if len(cuts) < 2:
        return {name: WeightedCumulative(service_energy, [], [], outside_rate=0.0) for name in names}
    mid = (cuts[:-1] + cuts[1:]) / 2
    on = {name: contains(*sets[name], mid) for name in names}
    depth = np.sum([on[name] for name in names], axis=0)
    out = {}
    for name in names:
        share = np.where(on[name], 1.0 / np.maximum(depth, 1), 0.0)
        out[name] = WeightedCumulative(service_energy, cuts, share, outside_rate=0.0)
    return out


def double_bookings(machines: list[str], start_s: list[float], end_s: list[float]) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of sessions of one machine whose windows overlap (a double
    booking): attribution shares such an overlap equally, which a workshop usually wants to
    know about. Sessions that only touch (one ends when the next starts) do not overlap."""
    by_machine: dict[str, list[int]] = {}
    for k, machine in enumerate(machines):
        by_machine.setdefault(machine, []).append(k)
    pairs = []
    for indices in by_machine.values():
        indices.sort(key=lambda k: (start_s[k], end_s[k]))
        open_ends: list[int] = []
        for k in indices:
            open_ends = [i for i in open_ends if end_s[i] > start_s[k]]
            pairs.extend((min(i, k), max(i, k)) for i in open_ends)
            open_ends.append(k)
    return sorted(pairs)
