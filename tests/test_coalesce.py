"""Modbus request coalescing: minimal plans, checked against an independent brute force."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.coalesce import ReadBlock, decode_block, plan_reads
from devices.meter_models import MeterPoint, available_models, load_model

TYPES = {"int16": 1, "uint16": 1, "int32": 2, "float32": 2, "int64": 4, "float64": 4}


def point(address: int, type_: str = "float32", function: int = 4,
          quantity: str = "power_w", **extra) -> MeterPoint:
    unit = {"power_w": "W", "energy_import_kwh": "kWh", "voltage_l1_v": "V"}[quantity]
    return MeterPoint(quantity=quantity, name=f"reg {address}", function=function,
                      address=address, type=type_, unit=unit, **extra)


def brute_force_minimum(points: list[MeterPoint], max_registers: int, allow_gaps: bool) -> int:
    """Fewest reads covering every point, by trying every set of candidate reads.

    Without loss of generality a useful read starts at the address of a point it covers and
    is as long as allowed (max_registers, and without gaps only over mapped registers).
    """
    total = 0
    for function in {p.function for p in points}:
        group = [p for p in points if p.function == function]
        mapped = {a for p in group for a in range(p.address, p.address + p.count)}
        candidates = []
        for start in sorted({p.address for p in group}):
            end = start
            while end < start + max_registers and (allow_gaps or end in mapped):
                end += 1
            candidates.append((start, end))
        for k in range(1, len(group) + 1):
            if any(all(any(s <= p.address and p.address + p.count <= e for s, e in combo)
                       for p in group)
                   for combo in itertools.combinations(candidates, k)):
                total += k
                break
    return total


def check_plan(blocks: list[ReadBlock], points: list[MeterPoint], max_registers: int,
               allow_gaps: bool) -> None:
    covered = [p for b in blocks for p in b.points]
    assert sorted(map(id, covered)) == sorted(map(id, points)), "each point in exactly one block"
    for b in blocks:
        assert 1 <= b.count <= max_registers
        mapped = {a for p in points if p.function == b.function
                  for a in range(p.address, p.address + p.count)}
        for p in b.points:
            assert p.function == b.function
            assert b.address <= p.address and p.address + p.count <= b.end
        assert b.address == min(p.address for p in b.points)
        assert b.end == max(p.address + p.count for p in b.points)
        if not allow_gaps:
            assert all(a in mapped for a in range(b.address, b.end)), "no unmapped register"


# The Eastron SDM630 map of docs/reference.md, "Modbus meters" (function 4, float32 ABCD).
SDM630_ADDRESSES = [0x00, 0x02, 0x04, 0x06, 0x08, 0x0A, 0x0C, 0x0E, 0x10, 0x34, 0x48, 0x4A]


@pytest.mark.parametrize(("max_registers", "allow_gaps", "expected"), [
    (80, True, 1),    # 0x00..0x4B is 76 registers: one read
    (40, True, 2),    # 0x00..0x11 (18), then 0x34..0x4B (24)
    (24, True, 2),
    (23, True, 3),    # 0x34..0x4B no longer fits: 0x34 alone, then 0x48..0x4B
    (2, True, 12),    # one read per float
    (80, False, 3),   # contiguous runs only: phases, total power, energies
])
def test_sdm630_known_plans(max_registers, allow_gaps, expected):
    points = [point(a) for a in SDM630_ADDRESSES]
    blocks = plan_reads(points, max_registers, allow_gaps)
    assert len(blocks) == expected
    assert len(blocks) == brute_force_minimum(points, max_registers, allow_gaps)
    check_plan(blocks, points, max_registers, allow_gaps)


def test_schneider_like_plan_splits_at_the_125_register_limit():
    # iEM3xxx (docs/reference.md, "Modbus meters"): currents 0x0BB7.., voltages 0x0BD3..,
    # power 0x0BF3, int64 energies.
    points = [point(a, function=3) for a in (0x0BB7, 0x0BB9, 0x0BBB, 0x0BD3, 0x0BD5, 0x0BD7,
                                              0x0BF3)]
    points += [point(0x0C83, "int64", 3), point(0x0C87, "int64", 3)]
    blocks = plan_reads(points, 125, True)
    assert [(b.function, b.address, b.count) for b in blocks] == [(3, 0x0BB7, 0x0BF5 - 0x0BB7),
                                                                 (3, 0x0C83, 8)]


def test_function_codes_never_share_a_block_and_come_out_sorted():
    points = [point(10, function=4), point(0, function=3), point(2, function=4),
              point(2, function=3)]
    blocks = plan_reads(points, 125, True)
    assert [(b.function, b.address, b.count) for b in blocks] == [(3, 0, 4), (4, 2, 10)]


def test_overlapping_points_count_as_contiguous():
    points = [point(0, "int32"), point(1, "int16"), point(2, "int32")]
    blocks = plan_reads(points, 4, False)
    assert [(b.address, b.count) for b in blocks] == [(0, 4)]


def test_a_point_longer_than_a_read_is_refused():
    with pytest.raises(ValueError, match="more than one read allows"):
        plan_reads([point(0, "int64")], 2, True)
    with pytest.raises(ValueError, match="1..125"):
        plan_reads([point(0)], 126, True)


def test_decode_block_takes_each_point_at_its_offset():
    p_power = point(0x34)
    p_volt = point(0x38, "int32", quantity="voltage_l1_v", order="CDAB", scale=0.1)
    (block,) = plan_reads([p_volt, p_power], 10, True)
    words = [0x449A, 0x5000, 0, 0, 0x08FD, 0x0000]  # 1234.5 W, gap, 2301 x 0.1 V (CDAB)
    values = decode_block(block, words)
    assert values["power_w"] == 1234.5
    assert values["voltage_l1_v"] == pytest.approx(230.1)
    with pytest.raises(ValueError, match="needs 6 registers"):
        decode_block(block, words[:4])


@st.composite
def point_sets(draw):
    n = draw(st.integers(1, 7))
    pts = []
    for _ in range(n):
        type_ = draw(st.sampled_from(sorted(TYPES)))
        pts.append(point(draw(st.integers(0, 60)), type_, draw(st.sampled_from([3, 4]))))
    max_registers = draw(st.integers(4, 30))
    return pts, max_registers, draw(st.booleans())


@settings(max_examples=300, deadline=None)
@given(point_sets())
def test_greedy_plan_is_minimal_and_valid(case):
    points, max_registers, allow_gaps = case
    blocks = plan_reads(points, max_registers, allow_gaps)
    check_plan(blocks, points, max_registers, allow_gaps)
    assert len(blocks) == brute_force_minimum(points, max_registers, allow_gaps)


@pytest.mark.parametrize("name", available_models())
def test_shipped_models_plan_minimally(name):
    model = load_model(name)
    blocks = plan_reads(model.points, model.max_registers_per_read, model.allow_gaps)
    check_plan(blocks, list(model.points), model.max_registers_per_read, model.allow_gaps)
    assert len(blocks) == brute_force_minimum(list(model.points), model.max_registers_per_read,
                                              model.allow_gaps)
