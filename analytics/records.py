"""Plain records that cross module boundaries in analytics: inputs per machine, sessions
(Session, a booking as stored, is storage.bookings.Session).

Times are float seconds since the Unix epoch (UTC); power in W, energy in kWh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from storage.bookings import Session  # noqa: F401 (re-exported: analytics' sessions)

if TYPE_CHECKING:
    from analytics.states import PowerHistogram


@dataclass
class ControllerData:
    """Controller signals of one machine, in time order (one entry per change).

    execution, mode, program: object arrays of str (or None where a change did not carry it).
    """

    time_s: np.ndarray
    execution: np.ndarray
    mode: np.ndarray
    program: np.ndarray


@dataclass
class MachineData:
    """Everything measured on one machine over the analysed window.

    power_time_s, power_w: power samples (W), time order; NaN where no reading.
    counter_time_s, energy_import_kwh: the meter's cumulative energy counter (kWh), may be empty.
    counter_resolution_kwh: smallest counter step (for reconciliation), None when unknown.
    rated_power_w: nameplate power (for threshold calibration).
    thresholds_w: (standby_w, idle_w, processing_w) from the site file, or None (calibrate).
    controller: controller signals when a controller is linked, else None.
    is_service: a shared service (dust extraction, compressor), not a machine.
    counter_rollover_kwh: the counter register's range (it wraps round to zero there), e.g.
        2**32 * 0.001 for an unsigned 32-bit Wh register; None when unknown (a step backwards
        is then a reset).
    power_histogram: the histogram of the power samples when power_w does not hold them all
        (rebuilt from rollups, analytics.rollup_plan): calibration counts it instead.
    relative_accuracy: the meter's active-energy class as a share (0.01 for class 1), None
        when its datasheet states none; accuracy: the class as text ("IEC 62053-21 class 1",
        "unknown").
    is_main: the site's main meter (feeds = "site"): read for the site's balance only.
    """

    name: str
    power_time_s: np.ndarray
    power_w: np.ndarray
    counter_time_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    energy_import_kwh: np.ndarray = field(default_factory=lambda: np.empty(0))
    counter_resolution_kwh: float | None = None
    rated_power_w: float | None = None
    thresholds_w: tuple[float, float, float] | None = None
    controller: ControllerData | None = None
    is_service: bool = False
    counter_rollover_kwh: float | None = None
    power_histogram: PowerHistogram | None = None
    relative_accuracy: float | None = None
    accuracy: str = "unknown"
    is_main: bool = False
