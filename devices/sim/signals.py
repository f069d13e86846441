"""What a machine controller shows at one instant, in wattelier's vocabulary.

The physical model produces these; the OPC UA simulator maps them onto a node map's nodes and
enumerations; the collector maps the nodes back to the same vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ControllerSignals:
    """Controller state.

    execution: one of devices.vocabulary.EXECUTION_STATES.
    mode: one of devices.vocabulary.OPERATION_MODES.
    program: active program name ("" when none).
    spindle_speed_rpm: spindle speed [1/min].
    feed_override_pct: feed override [%].
    part_count: parts produced in the machine's lifetime (counter).
    alarm: active alarm text, "" when none.
    """

    execution: str = "stopped"
    mode: str = "manual"
    program: str = ""
    spindle_speed_rpm: float = 0.0
    feed_override_pct: float = 100.0
    part_count: int = 0
    alarm: str = ""
