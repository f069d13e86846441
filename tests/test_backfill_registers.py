"""Backfill readings hold what the collector would have journaled from the simulated meter's
registers: the vectorised path (devices.sim.register_values) against the live one, model value
-> SimulatedMeter.registers (the Modbus server's register image) -> the collector's read plan and
decode_block, bit for bit, for every point of every shipped meter model."""

from __future__ import annotations

import numpy as np
import pytest

from collector.coalesce import decode_block, plan_reads
from devices.meter_models import MeterModel, MeterPoint, available_models, load_model
from devices.registers import DATA_TYPES
from devices.sim.backfill import backfill_rows, backfill_workshop
from devices.sim.modbus_server import SimulatedMeter
from devices.sim.register_values import register_values
from devices.site import example_site_path, load_site

MODELS = available_models()


def _bits(values) -> np.ndarray:
    """float64 bit patterns, every NaN as one pattern (the collector drops NaN either way)."""
    a = np.array(values, dtype=np.float64)
    a[np.isnan(a)] = np.nan
    return a.view(np.uint64)


def _live_values(model: MeterModel, samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each sample through the live path: the simulated meter's registers, read with the
    collector's plan and decoded with its decode_block."""
    n = len(next(iter(samples.values())))
    meter = SimulatedMeter(1, model,
                           lambda t: {q: float(col[int(t)]) for q, col in samples.items()})
    plan = plan_reads(model.points, model.max_registers_per_read, model.allow_gaps)
    out = {q: np.empty(n) for q in samples}
    for i in range(n):
        for block in plan:
            words = meter.registers(block.function, block.address, block.count, now=float(i))
            for q, value in decode_block(block, words).items():
                out[q][i] = value
    return out


def _edge_values(point: MeterPoint) -> list[float]:
    """Values where a codec can go wrong: signed zeros, halfway steps, steps a division puts a few
    ulps off, the type's range limits, binary32's limits, non-finite values."""
    s = point.scale
    values = [0.0, -0.0, 1e-300, -1e-300, 1e-9, -1e-9, 1e300, -1e300,
              float("nan"), float("inf"), float("-inf"), 1234567.89, 12345.6, 0.1, 0.3, 230.0]
    for k in (1, 2, 3, 7, 12345, 123456789, 2**24 + 1, 2**53 + 1):
        for step in (k, k + 0.5, k - 0.5, -k, -k - 0.5, k + 1e-7, k - 1e-7):
            values.append(step * s)
    code, _ = DATA_TYPES[point.type]
    if code in "fd":
        f32_max = float(np.finfo(np.float32).max)
        values += [f32_max * s, np.nextafter(f32_max, np.inf) * s, 2.0**128 * s, -2.0**128 * s,
                   1e-40 * s, -1e-45 * s, 1.4e-45 * s, 7e-46 * s]
    else:
        info = np.iinfo(point.type)  # the register types are named as numpy's integers
        for limit in (float(info.min), float(info.max) + 1.0):
            for d in (-1.0, -0.5, 0.0, 0.5, 1.0):
                values.append((limit + d) * s)
            values += [np.nextafter(limit, -np.inf) * s, np.nextafter(limit, np.inf) * s]
    return values


def _samples(model: MeterModel, seed: int) -> dict[str, np.ndarray]:
    """Per point: edge values, then random values over 20 decades of both signs, padded alike."""
    rng = np.random.default_rng(seed)
    edges = {p.quantity: _edge_values(p) for p in model.points}
    n = max(len(e) for e in edges.values()) + 400
    samples = {}
    for p in model.points:
        e = edges[p.quantity]
        spread = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-8, 12, n)
        samples[p.quantity] = np.concatenate([e, spread[len(e):]])
    return samples


def _model_readings(n: int = 300) -> dict[str, np.ndarray]:
    """What the physical model gives a meter of the example site at random times of a day."""
    site = load_site(example_site_path())
    start = 1_780_000_000.0
    workshop = backfill_workshop(site, start, start + 86400.0, seed=3)
    times = np.sort(np.random.default_rng(5).uniform(start, start + 86400.0, n))
    return workshop.meter_values_series("main", times)


@pytest.mark.parametrize("name", MODELS)
def test_vectorised_quantisation_equals_the_registers_round_trip_bit_for_bit(name):
    model = load_model(name)
    samples = _samples(model, seed=len(name))
    live = _live_values(model, samples)
    for p in model.points:
        vector = register_values(p, samples[p.quantity])
        mismatch = np.flatnonzero(_bits(vector) != _bits(live[p.quantity]))
        assert not mismatch.size, (
            f"{name} {p.quantity} ({p.type} x {p.scale}): "
            + ", ".join(f"{samples[p.quantity][i]!r} -> {vector[i]!r}, live {live[p.quantity][i]!r}"
                        for i in mismatch[:5]))


@pytest.mark.parametrize("name", MODELS)
def test_model_readings_through_every_meter_model_are_what_the_registers_carry(name):
    model = load_model(name)
    readings = _model_readings()
    samples = {p.quantity: readings[p.quantity] for p in model.points if p.quantity in readings}
    live = _live_values(model, samples)
    for p in model.points:
        if p.quantity not in samples:
            continue
        vector = register_values(p, samples[p.quantity])
        assert np.array_equal(_bits(vector), _bits(live[p.quantity])), f"{name} {p.quantity}"
        if p.type == "float32" and p.scale == 1.0:  # plain binary32 rounding
            assert np.array_equal(vector, samples[p.quantity].astype(np.float32).astype(np.float64))
        elif not p.type.startswith("float"):
            steps = vector / p.scale
            assert np.allclose(steps, np.round(steps), rtol=0, atol=1e-6), f"{name} {p.quantity}"


def test_register_values_leaves_its_input_alone():
    point = load_model("abb-b23").point("energy_import_kwh")
    values = np.array([1.234, 5.678, -1.0, np.nan])
    before = values.copy()
    out = register_values(point, values)
    assert np.array_equal(values, before, equal_nan=True)
    assert out.tolist() == [1.23, 5.67, 0.0, 0.0]  # counter floor steps; unsendable -> zeros


def test_backfill_rows_hold_what_the_collector_would_have_journaled():
    """Ten minutes of the example site: every meter field equals the live path's value for the
    model's reading at that time."""
    site = load_site(example_site_path())
    start = 1_780_030_800.0
    end = start + 600.0
    rows = [r for _, chunk in backfill_rows(site, backfill_workshop(site, start, end, seed=2),
                                            start, end) for r in chunk if r.measurement == "meter"]
    model_side = backfill_workshop(site, start, end, seed=2)  # same seed, same readings
    checked = 0
    for name, meter in sorted(site.meters.items()):
        mine = [r for r in rows if r.tags["meter"] == name]
        polls = np.arange(start, end, meter.poll_interval_s)
        np.testing.assert_allclose([r.time_ns / 1e9 for r in mine], polls, rtol=0, atol=1e-6)
        model = load_model(meter.model)
        readings = model_side.meter_values_series(name, polls)
        samples = {p.quantity: readings[p.quantity] for p in model.points if p.quantity in readings}
        live = _live_values(model, samples)
        for q in samples:
            journaled = [r.fields[q] for r in mine]
            assert np.array_equal(_bits(journaled), _bits(live[q])), f"{name} {q}"
            checked += len(journaled)
        assert list(mine[0].fields) == [p.quantity for p in model.points if p.quantity in readings]
    assert checked > 10_000
