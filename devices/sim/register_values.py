"""Model values as a collector journals them: through a meter point's registers and back.

A live reading goes: model value -> the simulated meter's registers (devices.sim.modbus_server
encodes it with `MeterPoint.encode`: raw = value / scale, as float32/float64, or as an integer
floored for counters (after a few ulps of slack) and rounded half to even otherwise; zeros when the
type cannot carry the value) -> the collector's decode (collector.coalesce.decode_block, that is
`MeterPoint.decode`: float(decoded raw) x scale). `register_values` does the same to a whole
array at once with numpy, bit for bit: tests/test_backfill_registers.py checks it against that
scalar path for every shipped meter model.
"""

from __future__ import annotations

import struct

import numpy as np

from devices.meter_models import MeterPoint
from devices.registers import DATA_TYPES

_INTEGER_CODES = "hHiIqQ"


def _integer_bounds(code: str) -> tuple[float, float]:
    """[low, high) of a struct integer code (h, H, i, I, q, Q); powers of two, exact in float64."""
    bits = 8 * struct.calcsize(f">{code}")
    if code.islower():  # signed
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1)
    return 0.0, 2.0**bits


def register_values(point: MeterPoint, values: np.ndarray) -> np.ndarray:
    """What the collector decodes from `point`'s registers for each model value [unit].

    float32: raw = value / scale rounded to IEEE 754 binary32 (round half to even, as
        struct's "f" does), decoded back x scale; a finite raw beyond binary32's range is sent
        as zeros (struct refuses it), so it decodes as 0 x scale.
    float64: value / scale x scale (the double itself travels).
    integers: raw = value / scale, floor(raw + slack) for counters (slack as in
        `MeterPoint.encode`: max(1e-9, 8 ulp)) or rounded half to even otherwise (Python's
        round), decoded as that integer x scale; NaN, infinities and integers outside the type's
        range are sent as zeros.
    NaN and infinities in a float register travel as they are (the collector drops them).
    Returns a new float64 array; `values` is left alone.
    """
    values = np.asarray(values, dtype=np.float64)
    code, _ = DATA_TYPES[point.type]
    scale = point.scale
    with np.errstate(all="ignore"):  # overflow to inf and NaN are handled explicitly below
        raw = values / scale
        if code == "d":
            return raw * scale
        if code == "f":
            single = raw.astype(np.float32)
            out = single.astype(np.float64)
            out *= scale
            unsendable = np.isinf(single) & np.isfinite(raw)
        elif code in _INTEGER_CODES:
            if point.is_counter:
                slack = np.spacing(np.abs(raw))  # math.ulp(raw) for finite raw
                slack *= 8
                np.maximum(slack, 1e-9, out=slack)
                whole = np.floor(raw + slack, out=slack)
            else:
                whole = np.rint(raw)
            whole += 0.0  # -0.0 -> +0.0: Python's round and floor give the integer 0 (+0 decoded)
            low, high = _integer_bounds(code)
            unsendable = ~((whole >= low) & (whole < high))  # NaN compares false: unsendable too
            out = whole
            out *= scale
        else:
            raise ValueError(f"{point.quantity}: no vectorised codec for type {point.type!r}")
        if unsendable.any():
            out[unsendable] = 0.0 * scale  # zero registers, decoded: float(0) x scale
    return out
