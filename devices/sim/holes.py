"""Power holes: a meter's readings lost for a stretch while its machine and counter run on.

A meter behind a dead gateway or a cut RS-485 line stops answering; the machine it measures
keeps running and the meter keeps integrating, so the first reading after the hole shows the
energy counter advanced by what was used during it. The simulator makes such a hole with a
`PowerHole`: the meter's Modbus server gives no answer to its unit (the client times out) and
the offline backfill leaves out the meter's rows (power and counter alike) inside it. The
physical model is not touched: the ground truth holds the hole's energy.

Written on the command line as ``METER@OFFSET_S+DURATION_S`` (seconds from the simulation's
start), e.g. ``router-1@600+300``: the meter router-1 silent from 600 s to 900 s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from devices.site import Site

SYNTAX = "METER@OFFSET_S+DURATION_S"
_PATTERN = re.compile(r"^\s*(?P<meter>[^@\s]+)\s*@\s*(?P<offset>[^+\s]+)\s*\+\s*(?P<duration>\S+)\s*$")


class PowerHoleError(ValueError):
    """A power hole that cannot be made (bad syntax, unknown meter, negative time)."""


@dataclass(frozen=True)
class PowerHole:
    """A meter silent from offset_s to offset_s + duration_s after the simulation's start [s]."""

    meter: str
    offset_s: float
    duration_s: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.offset_s) and self.offset_s >= 0):
            raise PowerHoleError(f"power hole {self}: the offset must be 0 s or more, got {self.offset_s:g}")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise PowerHoleError(f"power hole {self}: the duration must be more than 0 s, "
                                 f"got {self.duration_s:g}")

    def __str__(self) -> str:
        return f"{self.meter}@{self.offset_s:g}+{self.duration_s:g}"

    def window(self, start_s: float) -> tuple[float, float]:
        """(first, end) of the hole in Unix seconds, for a simulation started at start_s [s]."""
        return start_s + self.offset_s, start_s + self.offset_s + self.duration_s


def parse_power_hole(text: str) -> PowerHole:
    """``METER@OFFSET_S+DURATION_S`` as a PowerHole; PowerHoleError (one line) when it is not."""
    match = _PATTERN.match(text)
    if match is None:
        raise PowerHoleError(f"power hole {text!r}: write it as {SYNTAX} (seconds), e.g. router-1@600+300")
    try:
        offset, duration = float(match["offset"]), float(match["duration"])
    except ValueError:
        raise PowerHoleError(f"power hole {text!r}: the offset and the duration must be numbers of "
                             f"seconds ({SYNTAX}), e.g. router-1@600+300") from None
    return PowerHole(match["meter"], offset, duration)


def check_power_holes(holes: Iterable[PowerHole], site: Site) -> tuple[PowerHole, ...]:
    """The holes, each naming a meter of the site; PowerHoleError naming the first that does not."""
    holes = tuple(holes)
    for hole in holes:
        if hole.meter not in site.meters:
            known = ", ".join(sorted(site.meters))
            raise PowerHoleError(f"power hole {hole}: the site has no meter {hole.meter!r} "
                                 f"(its meters: {known})")
    return holes


def hole_windows(holes: Iterable[PowerHole], start_s: float) -> dict[str, list[tuple[float, float]]]:
    """Each meter's holes as (first, end) Unix seconds [s], in time order."""
    out: dict[str, list[tuple[float, float]]] = {}
    for hole in holes:
        out.setdefault(hole.meter, []).append(hole.window(start_s))
    return {meter: sorted(windows) for meter, windows in out.items()}


def in_windows(windows: Sequence[tuple[float, float]], times_s) -> np.ndarray:
    """Whether each time falls inside one of the windows, first included, end excluded."""
    t = np.asarray(times_s, dtype=np.float64)
    inside = np.zeros(t.shape, dtype=bool)
    for first, end in windows:
        inside |= (t >= first) & (t < end)
    return inside
