"""Key performance indicators of ISO 22400-2, read for a shared workshop.

ISO 22400-2 defines times of a work unit and ratios of them. wattelier reads them so
(docs/design.md, "KPIs"):

- PBT, planned busy time = the workshop's opening hours in the period;
- AUBT, actual unit busy time = the time members held the machine (union of its sessions);
- APT, actual production time = the machine's processing time;
- AUST, actual unit setup time = setup time (from the controller).

Ratios (each NaN where its denominator is zero, e.g. a closed day):

- availability = APT / PBT;
- utilisation efficiency = APT / AUBT;
- allocation efficiency = AUBT / PBT.

The times are all taken over the whole period, so a ratio can exceed 1 when machines work
outside opening hours (a kiln firing overnight) or outside sessions (unbooked use): the excess
is information, not an error, and is not clipped.

Energy indicators in the ISO 50006 style: energy per processing hour [kWh/h] and the share of
energy spent outside processing.

References
----------
.. [1] ISO 22400-2:2014, Automation systems and integration — Key performance indicators (KPIs)
   for manufacturing operations management — Part 2: Definitions and descriptions
   (availability, utilisation efficiency, allocation efficiency; PBT, AUBT, APT, AUST).
.. [2] ISO 50006:2014, energy performance indicators.
"""

from __future__ import annotations

import numpy as np


def _ratio(numerator, denominator) -> np.ndarray:
    n = np.asarray(numerator, dtype=np.float64)
    d = np.asarray(denominator, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, n / np.where(d > 0, d, 1.0), np.nan)


def availability(production_time_s, planned_busy_time_s) -> np.ndarray:
    """Availability = APT / PBT [1] (ISO 22400-2).

    Parameters
    ----------
    production_time_s : array [s]
        APT, processing time in the period.
    planned_busy_time_s : array [s]
        PBT, opening hours in the period.
    """
    return _ratio(production_time_s, planned_busy_time_s)


def utilisation_efficiency(production_time_s, busy_time_s) -> np.ndarray:
    """Utilisation efficiency = APT / AUBT [1] (ISO 22400-2).

    Parameters
    ----------
    production_time_s : array [s]
        APT, processing time in the period.
    busy_time_s : array [s]
        AUBT, session (held) time in the period.
    """
    return _ratio(production_time_s, busy_time_s)


def allocation_efficiency(busy_time_s, planned_busy_time_s) -> np.ndarray:
    """Allocation efficiency = AUBT / PBT [1] (ISO 22400-2).

    Parameters
    ----------
    busy_time_s : array [s]
        AUBT, session (held) time in the period.
    planned_busy_time_s : array [s]
        PBT, opening hours in the period.
    """
    return _ratio(busy_time_s, planned_busy_time_s)


def energy_per_processing_hour(energy_kwh, production_time_s) -> np.ndarray:
    """Energy per hour of processing [kWh/h] (ISO 50006-style indicator)."""
    return _ratio(energy_kwh, np.asarray(production_time_s, dtype=np.float64) / 3600.0)


def non_processing_share(energy_kwh, processing_energy_kwh) -> np.ndarray:
    """Share of energy spent while not processing [1] (standby, idle, setup, off)."""
    e = np.asarray(energy_kwh, dtype=np.float64)
    return _ratio(e - np.asarray(processing_energy_kwh, dtype=np.float64), e)
