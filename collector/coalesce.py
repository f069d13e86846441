"""Modbus request coalescing: read every point of a meter in as few requests as possible.

A meter answers one request at a time and a shared RS-485 line carries one frame at a time, so
the number of requests per poll is what limits how many meters a line can poll each second.
`plan_reads` packs the points of a register map into read blocks once, at start-up; each poll
then sends exactly those blocks and `decode_block` turns the answers back into quantities.

Why greedy packing is minimal: within one function code, sort the points by address. A read
covers a contiguous address range, so the points it covers form a run of consecutive points in
that order, and every sub-run of a readable run is readable too (its span is no longer and,
without gaps allowed, it is still contiguous). For such hereditary interval covering, the greedy
plan (keep adding the next point while the block stays readable) "stays ahead": by induction its
k-th block ends at or after the k-th block of any plan, so no plan needs fewer blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from devices.meter_models import READ_FUNCTIONS, MeterPoint


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request and the points it carries.

    function: 3 (holding registers) or 4 (input registers).
    address: 0-based address of the first register read.
    count: number of registers read (at most the model's max_registers_per_read).
    points: the points inside [address, address + count), by address.
    """

    function: int
    address: int
    count: int
    points: tuple[MeterPoint, ...]

    @property
    def end(self) -> int:
        """First address after the block."""
        return self.address + self.count


def plan_reads(points: Iterable[MeterPoint], max_registers: int,
               allow_gaps: bool = True) -> list[ReadBlock]:
    """Minimal list of read requests covering every point.

    points: the register map's points (any order).
    max_registers: most registers one request may read (the meter's limit, at most 125).
    allow_gaps: True when a read may span registers the map does not use (the meter answers
        them); False when only contiguous (or overlapping) points may share a request.

    Blocks come out by function code, then address. Raises ValueError when a single point is
    longer than `max_registers` or has a function code that is not a read.
    """
    if not 1 <= max_registers <= 125:
        raise ValueError(f"max_registers must be 1..125 (Modbus limit), got {max_registers}")
    by_function: dict[int, list[MeterPoint]] = {}
    for point in points:
        if point.function not in READ_FUNCTIONS:
            raise ValueError(f"{point.quantity}: function {point.function} is not a read")
        if point.count > max_registers:
            raise ValueError(f"{point.quantity} needs {point.count} registers, more than one "
                             f"read allows ({max_registers})")
        by_function.setdefault(point.function, []).append(point)

    blocks: list[ReadBlock] = []
    for function in sorted(by_function):
        ordered = sorted(by_function[function], key=lambda p: (p.address, p.count))
        current: list[MeterPoint] = []
        start = end = 0
        for point in ordered:
            point_end = point.address + point.count
            fits = bool(current) and max(end, point_end) - start <= max_registers
            if fits and not allow_gaps:
                fits = point.address <= end  # contiguous or overlapping
            if fits:
                current.append(point)
                end = max(end, point_end)
                continue
            if current:
                blocks.append(ReadBlock(function, start, end - start, tuple(current)))
            current, start, end = [point], point.address, point_end
        if current:
            blocks.append(ReadBlock(function, start, end - start, tuple(current)))
    return blocks


def decode_block(block: ReadBlock, words: Sequence[int]) -> dict[str, float]:
    """Quantities carried by one block's answer, in their canonical units.

    words: the registers the meter returned for `block`, exactly `block.count` of them.
    Values are returned as decoded, NaN and infinities included: judging them is the caller's job.
    """
    if len(words) != block.count:
        raise ValueError(f"block at {block.address} needs {block.count} registers, "
                         f"got {len(words)}")
    values: dict[str, float] = {}
    for point in block.points:
        offset = point.address - block.address
        values[point.quantity] = point.decode(list(words[offset:offset + point.count]))
    return values
