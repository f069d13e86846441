"""Our own codec for Modbus register words: 16/32/64-bit integers and IEEE 754 floats.

Word orders name where the four bytes A (most significant) .. D (least) of a 32-bit value land
on the wire, register by register, and extend to 64-bit values the same way:
ABCD high word first, big-endian bytes (Modbus "big endian"); CDAB low word first ("word swap");
BADC high word first with bytes swapped in each word; DCBA fully little-endian.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Sequence

WORD_ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")

# data type -> (struct code, number of 16-bit registers)
DATA_TYPES: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
    "float64": ("d", 4),
}


def register_count(data_type: str) -> int:
    """Number of 16-bit registers a value of `data_type` occupies."""
    return DATA_TYPES[data_type][1]


def _check(data_type: str, order: str) -> tuple[str, int]:
    if data_type not in DATA_TYPES:
        raise ValueError(f"unknown data type {data_type!r}; known: {', '.join(DATA_TYPES)}")
    if order not in WORD_ORDERS:
        raise ValueError(f"unknown word order {order!r}; known: {', '.join(WORD_ORDERS)}")
    return DATA_TYPES[data_type]


def _reorder(words: list[int], order: str) -> list[int]:
    """Map wire words to big-endian words (and back: the mapping is its own inverse)."""
    if order in ("CDAB", "DCBA"):
        words = words[::-1]
    if order in ("BADC", "DCBA"):
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return words


def decode(words: Sequence[int], data_type: str, order: str = "ABCD") -> int | float:
    """Decode the registers of one value as sent on the wire.

    words: 16-bit register values in wire order, exactly `register_count(data_type)` of them.
    """
    code, count = _check(data_type, order)
    if len(words) != count:
        raise ValueError(f"{data_type} needs {count} registers, got {len(words)}")
    try:
        ints = [operator.index(w) for w in words]
    except TypeError:
        raise ValueError(f"register words must be integers 0..65535, got {list(words)}") from None
    if any(not 0 <= w <= 0xFFFF for w in ints):
        raise ValueError(f"register words must be 0..65535, got {list(words)}")
    big_endian_words = _reorder(ints, order)
    raw = struct.pack(f">{count}H", *big_endian_words)
    return struct.unpack(f">{code}", raw)[0]


def encode(value: int | float, data_type: str, order: str = "ABCD") -> list[int]:
    """Encode one value into register words in wire order (inverse of `decode`)."""
    code, count = _check(data_type, order)
    try:
        if code in "fd":
            raw = struct.pack(f">{code}", float(value))
        else:
            raw = struct.pack(f">{code}", int(value))
    except (struct.error, OverflowError) as exc:
        # out of the type's range (or inf/NaN for an integer type): one error type for callers
        raise ValueError(f"{value!r} does not fit in {data_type}: {exc}") from None
    words = list(struct.unpack(f">{count}H", raw))
    return _reorder(words, order)
