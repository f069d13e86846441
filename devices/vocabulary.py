"""The one vocabulary of wattelier: measurement names, tag keys and field names with units.

InfluxDB fields, journal rows, analytics arguments and dashboard queries all use these names
(docs/design.md, "One vocabulary with units in the names"). Physical quantities are always
floats; counters are marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass

# Measurements (docs/design.md, "Storage schema").
METER = "meter"
CNC = "cnc"
MACHINE_STATE = "machine_state"
JOB = "job"
SESSION = "session"
USAGE = "usage"
BALANCE = "balance"  # the site's main meter against its metered machines, per local day
COLLECTOR = "collector"
BOOKING = "booking"  # a member's session as booked or entered (input of analytics)
ROLLUP = "power_rollup"  # a meter's hourly rollup, made by the journal (storage/rollup.py)

# Tag keys.
TAG_SITE = "site"
TAG_MACHINE = "machine"
TAG_METER = "meter"
TAG_MEMBER = "member"
TAG_CONTROLLER = "controller"
TAG_DEVICE = "device"


@dataclass(frozen=True)
class Quantity:
    """A field of the storage schema.

    name: field name, unit suffix included.
    unit: SI or customary unit symbol.
    kind: "float" for physical quantities, "int" for counts, "str" for labels.
    counter: True when the value only grows (cumulative energy, part count).
    """

    name: str
    unit: str
    kind: str = "float"
    counter: bool = False
    description: str = ""


_METER_QUANTITIES = [
    Quantity("power_w", "W", description="total active power"),
    Quantity("energy_import_kwh", "kWh", counter=True, description="total imported active energy"),
    Quantity("energy_export_kwh", "kWh", counter=True, description="total exported active energy"),
    Quantity("power_factor", "1", description="total power factor"),
    Quantity("frequency_hz", "Hz", description="line frequency"),
]
for _phase in (1, 2, 3):
    _METER_QUANTITIES += [
        Quantity(f"voltage_l{_phase}_v", "V", description=f"voltage L{_phase}-N"),
        Quantity(f"current_l{_phase}_a", "A", description=f"current L{_phase}"),
        Quantity(f"power_l{_phase}_w", "W", description=f"active power L{_phase}"),
    ]

_CNC_QUANTITIES = [
    Quantity("execution", "", kind="str", description="program execution: running, stopped, "
             "interrupted, waiting, ended, aborted, canceled"),
    Quantity("mode", "", kind="str", description="operation mode: automatic, manual, setup, mda, "
             "service, other"),
    Quantity("program", "", kind="str", description="active program name"),
    Quantity("spindle_speed_rpm", "1/min"),
    Quantity("feed_override_pct", "%"),
    Quantity("part_count", "1", kind="int", counter=True),
    Quantity("alarm", "", kind="str", description="active alarm text, empty when none"),
    Quantity("power_w", "W", description="active power published by the machine (OPC 34100)"),
    Quantity("energy_import_kwh", "kWh", counter=True,
             description="imported energy published by the machine (OPC 34100)"),
]

METER_QUANTITIES: dict[str, Quantity] = {q.name: q for q in _METER_QUANTITIES}
CNC_QUANTITIES: dict[str, Quantity] = {q.name: q for q in _CNC_QUANTITIES}

EXECUTION_STATES = ("running", "stopped", "interrupted", "waiting", "ended", "aborted", "canceled")
OPERATION_MODES = ("automatic", "manual", "setup", "mda", "service", "other")

# Machine states (ISO 14955 energy states plus controller states), docs/design.md, "States".
MACHINE_STATES = ("off", "standby", "idle", "processing", "setup", "fault")
