"""The uncertainty of an energy figure [kWh], and of the CO2e and cost made from it.

The model follows the GUM (JCGM 100:2008, "Evaluation of measurement data — Guide to the
expression of uncertainty in measurement"): each source of error is known only by a limit
±L (a class index, a register step, where energy may lie in a gap), so each is taken as a
rectangular distribution of half-width L, standard uncertainty L/√3 (GUM 4.3.7); independent
sources combine as the root sum of squares (GUM 5.1.2, all sensitivity coefficients 1); the
reported figure is the expanded uncertainty U = k·u_c with k = 2 (about 95 %, GUM 6.2).

Sources, for an interval whose reported energy is E:

1. the meter's accuracy class: L = a·E, with a the class's maximum percentage error at
   reference conditions (IEC 62053-21/-22 class 1 = 1 %, 0.5S = 0.5 %; EN 50470-3 class B =
   1 %, C = 0.5 %: devices/data/meters, each with its datasheet); where a meter model's
   datasheet states no class, UNKNOWN_CLASS_SHARE is assumed and the record says "unknown";
2. the counter's resolution at the interval's two edges, where the energy is tied to the
   counter (reconciled or counter-backed): a register that truncates to a step r holds the
   true count within [C, C + r) at each reading, so each edge contributes L = r/2 (two
   independent edges);
3. where the counter's energy of a power gap is placed: spread uniformly over the gap, exact
   for an interval holding the whole gap, but for an interval holding a part of it the true
   part lies anywhere between none and all of the gap's energy: L = max(part, gap - part);
4. the missing share (no power, no counter): nothing is reported for it, and the machine may
   have drawn up to its rated power (the highest power seen where no rating is known) all
   that time: L = missing time x that power (one-sided in truth; taken symmetric here,
   so U bounds it conservatively).

CO2e and cost carry the energy's relative uncertainty (U_CO2e = U_E x factor, U_cost = U_E x
the interval's mean price); the emission factor's own uncertainty is not included (the table
does not give one: devices/data/emission_factors). A sum over intervals of different meters
(a member's sessions) adds the uncertainties, an upper bound whatever their correlation.
"""

from __future__ import annotations

import numpy as np

COVERAGE_FACTOR = 2.0
"""k of the expanded uncertainty (GUM 6.2.2: k = 2 gives about 95 % for a near-normal sum)."""

UNKNOWN_CLASS_SHARE = 0.02
"""Relative accuracy assumed for a meter whose datasheet states no class [1]: class 2 of IEC
62053-21, the widest class of static active-energy meters in that standard."""

_RECTANGULAR = 1.0 / np.sqrt(3.0)  # standard uncertainty of a rectangular limit of 1


def expanded_uncertainty_kwh(energy_kwh, relative_accuracy: float | None,
                             resolution_kwh: float | None, counter_tied, placement_kwh,
                             missing_kwh) -> np.ndarray:
    """Expanded uncertainty U (k = 2) of each interval's energy [kWh].

    Parameters
    ----------
    energy_kwh : array [kWh]
        Reported energy per interval.
    relative_accuracy : float [1] or None
        The meter's class as a share (0.01 for class 1); None: UNKNOWN_CLASS_SHARE.
    resolution_kwh : float [kWh] or None
        The counter's step; None or 0 when there is no counter.
    counter_tied : bool array
        Whether each interval's energy is tied to the counter at its edges.
    placement_kwh : array [kWh]
        Limit of where counter-backed gap energy lies (source 3), 0 where no gap is cut.
    missing_kwh : array [kWh]
        Limit of the energy of the missing share (source 4).
    """
    e = np.abs(np.asarray(energy_kwh, dtype=np.float64))
    a = UNKNOWN_CLASS_SHARE if relative_accuracy is None else float(relative_accuracy)
    r = float(resolution_kwh or 0.0)
    edges = np.where(np.asarray(counter_tied, dtype=bool), r / 2.0, 0.0)
    limits_sq = ((a * e) ** 2 + 2.0 * edges ** 2 + np.asarray(placement_kwh, dtype=np.float64) ** 2
                 + np.asarray(missing_kwh, dtype=np.float64) ** 2)
    return COVERAGE_FACTOR * _RECTANGULAR * np.sqrt(limits_sq)


def carried(uncertainty_kwh, value, energy_kwh, fallback_rate: float = 0.0) -> np.ndarray:
    """The uncertainty of a quantity made from energy (CO2e, cost), value [kg or currency]
    = energy x a rate that may vary over the interval: U_E x value / energy (the interval's
    mean rate); where there is no energy, U_E x fallback_rate (e.g. the tariff's base price)."""
    u = np.asarray(uncertainty_kwh, dtype=np.float64)
    v = np.asarray(value, dtype=np.float64)
    e = np.asarray(energy_kwh, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(e != 0, v / np.where(e != 0, e, 1.0), fallback_rate)
    return np.abs(u * rate)
