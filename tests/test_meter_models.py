"""Meta-test of the meter register maps in devices/data/meters: every shipped file loads, its
known frames decode to their values, its points round-trip and do not overlap; broken files give
a MeterModelError that names the file and the problem."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.meter_models import (
    ACCURACY_CLASSES,
    DATA_DIR,
    AccuracyClass,
    MeterModel,
    MeterModelError,
    MeterPoint,
    available_models,
    load_model,
    load_model_file,
)
from devices.registers import DATA_TYPES
from devices.vocabulary import METER_QUANTITIES

EXPECTED_MODELS = [
    "eastron-sdm630",
    "eastron-sdm120",
    "eastron-sdm72d-m",
    "schneider-iem3155",
    "carlo-gavazzi-em24-din",
    "carlo-gavazzi-em24-ethernet",
    "abb-b23",
    "janitza-umg604",
]
MODELS = available_models()
POINTS = [(name, p.quantity) for name in MODELS for p in load_model(name).points]

# Physical ranges a workshop meter can show, per quantity (canonical units).
RANGES = {
    "voltage": (0.0, 1000.0),
    "current": (0.0, 5000.0),
    "power": (-1.0e6, 1.0e6),
    "energy": (0.0, 1.0e7),
    "power_factor": (-1.0, 1.0),
    "frequency_hz": (40.0, 70.0),
}
INT_LIMITS = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}


def value_range(point: MeterPoint) -> tuple[float, float]:
    """The physical range of the quantity, cut to what the register type can hold."""
    key = next(k for k in RANGES if point.quantity.startswith(k))
    lo, hi = RANGES[key]
    if point.type in INT_LIMITS:
        raw_lo, raw_hi = INT_LIMITS[point.type]
        ends = sorted((raw_lo * point.scale, raw_hi * point.scale))
        lo, hi = max(lo, ends[0]), min(hi, ends[1])
    return lo, hi


def within_resolution(point: MeterPoint, value: float) -> bool:
    decoded = point.decode(point.encode(value))
    return abs(decoded - value) <= point.resolution(value) * (1 + 1e-9) + abs(value) * 1e-15


def test_the_eight_models_are_shipped():
    assert set(EXPECTED_MODELS) <= set(MODELS)
    assert MODELS == sorted(MODELS)
    assert all((DATA_DIR / f"{name}.toml").is_file() for name in EXPECTED_MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_model_loads_and_names_itself(name):
    model = load_model(name)
    assert isinstance(model, MeterModel)
    assert model.model == name
    assert model.sources and all(s.strip() for s in model.sources)
    assert model.manufacturer.strip() and model.name.strip()
    assert load_model_file(DATA_DIR / f"{name}.toml") == model


@pytest.mark.parametrize("name", MODELS)
def test_frames_decode_to_their_values(name):
    model = load_model(name)
    assert len(model.frames) >= 1
    for frame in model.frames:
        point = model.point(frame.quantity)
        assert len(frame.words) == point.count, frame
        assert all(0 <= w <= 0xFFFF for w in frame.words), frame
        decoded = point.decode(list(frame.words))
        assert math.isclose(decoded, frame.value, rel_tol=1e-6, abs_tol=1e-9), (frame, decoded)
        # and the value, encoded again, gives the frame back (the frames are exact meter words)
        assert math.isclose(point.decode(point.encode(frame.value)), decoded, rel_tol=1e-9)


@pytest.mark.parametrize("name", MODELS)
def test_points_are_well_formed(name):
    model = load_model(name)
    for point in model.points:
        assert point.quantity in METER_QUANTITIES
        assert point.unit == METER_QUANTITIES[point.quantity].unit
        assert point.type in DATA_TYPES
        assert point.function in (3, 4)
        assert point.address + point.count - 1 <= 0xFFFF
        assert point.count <= model.max_registers_per_read
        assert point.name.strip()
    quantities = {p.quantity for p in model.points}
    assert {"power_w", "energy_import_kwh"} <= quantities
    if model.phases == 3:
        # three-phase maps carry all three phases of a per-phase quantity, or none
        for stem in ("voltage_l{}_v", "current_l{}_a", "power_l{}_w"):
            present = {stem.format(n) in quantities for n in (1, 2, 3)}
            assert len(present) == 1, (name, stem)
    else:
        assert not any(q.endswith(("l2_v", "l3_v", "l2_a", "l3_a", "l2_w", "l3_w"))
                       for q in quantities)


@pytest.mark.parametrize("name", MODELS)
def test_points_do_not_overlap(name):
    model = load_model(name)
    by_function = defaultdict(list)
    for point in model.points:
        by_function[point.function].append((point.address, point.address + point.count, point))
    for spans in by_function.values():
        spans.sort(key=lambda s: s[0])
        for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
            assert start >= end, f"{name}: {first.quantity} and {second.quantity} overlap"


@pytest.mark.parametrize("name", MODELS)
def test_frame_values_round_trip_within_resolution(name):
    model = load_model(name)
    for frame in model.frames:
        assert within_resolution(model.point(frame.quantity), frame.value), frame


@pytest.mark.parametrize("name, quantity", POINTS)
@given(data=st.data())
def test_every_point_round_trips_within_resolution(name, quantity, data):
    point = load_model(name).point(quantity)
    lo, hi = value_range(point)
    value = data.draw(st.floats(min_value=lo, max_value=hi, allow_nan=False,
                                allow_infinity=False))
    assert within_resolution(point, value)
    if point.is_counter and point.type in INT_LIMITS:
        # a counter shows whole steps: never more than was counted
        assert point.decode(point.encode(value)) <= value + abs(value) * 1e-12 + 1e-12


@pytest.mark.parametrize("name, quantity", POINTS)
def test_every_point_round_trips_zero_and_range_ends(name, quantity):
    point = load_model(name).point(quantity)
    lo, hi = value_range(point)
    for value in (lo, hi, 0.0 if lo <= 0.0 <= hi else lo):
        assert within_resolution(point, value), value


def test_counter_truncates_and_measurement_rounds():
    em24 = load_model("carlo-gavazzi-em24-din")
    energy, power = em24.point("energy_import_kwh"), em24.point("power_w")
    assert energy.decode(energy.encode(12345.67)) == pytest.approx(12345.6)
    assert energy.decode(energy.encode(12345.6)) == pytest.approx(12345.6)
    assert power.decode(power.encode(1234.56)) == pytest.approx(1234.6)
    assert power.decode(power.encode(-1234.56)) == pytest.approx(-1234.6)


# --- facts the maps must keep (docs/reference.md, "Modbus meters") ------------------------

REFERENCE_FACTS = [
    # model, quantity, function, address, type, order, scale
    ("eastron-sdm630", "power_w", 4, 0x0034, "float32", "ABCD", 1),
    ("eastron-sdm630", "energy_import_kwh", 4, 0x0048, "float32", "ABCD", 1),
    ("eastron-sdm630", "energy_export_kwh", 4, 0x004A, "float32", "ABCD", 1),
    ("eastron-sdm630", "voltage_l3_v", 4, 0x0004, "float32", "ABCD", 1),
    ("eastron-sdm630", "current_l3_a", 4, 0x000A, "float32", "ABCD", 1),
    ("eastron-sdm630", "power_l3_w", 4, 0x0010, "float32", "ABCD", 1),
    ("eastron-sdm72d-m", "power_w", 4, 0x0034, "float32", "ABCD", 1),
    ("eastron-sdm72d-m", "energy_import_kwh", 4, 0x0048, "float32", "ABCD", 1),
    ("eastron-sdm120", "power_w", 4, 0x000C, "float32", "ABCD", 1),
    ("eastron-sdm120", "energy_import_kwh", 4, 0x0048, "float32", "ABCD", 1),
    ("eastron-sdm120", "voltage_l1_v", 4, 0x0000, "float32", "ABCD", 1),
    ("eastron-sdm120", "current_l1_a", 4, 0x0006, "float32", "ABCD", 1),
    ("schneider-iem3155", "power_w", 3, 0x0BF3, "float32", "ABCD", 1000),
    ("schneider-iem3155", "energy_import_kwh", 3, 0x0C83, "int64", "ABCD", 0.001),
    ("schneider-iem3155", "energy_export_kwh", 3, 0x0C87, "int64", "ABCD", 0.001),
    ("schneider-iem3155", "voltage_l1_v", 3, 0x0BD3, "float32", "ABCD", 1),
    ("schneider-iem3155", "current_l3_a", 3, 0x0BBB, "float32", "ABCD", 1),
    ("carlo-gavazzi-em24-din", "power_w", 4, 0x0028, "int32", "CDAB", 0.1),
    ("carlo-gavazzi-em24-din", "energy_import_kwh", 4, 0x003E, "int32", "CDAB", 0.1),
    ("carlo-gavazzi-em24-din", "voltage_l2_v", 4, 0x0002, "int32", "CDAB", 0.1),
    ("carlo-gavazzi-em24-din", "current_l3_a", 4, 0x0010, "int32", "CDAB", 0.001),
    ("carlo-gavazzi-em24-ethernet", "energy_import_kwh", 4, 0x0034, "int32", "CDAB", 0.1),
    ("abb-b23", "energy_import_kwh", 3, 0x5000, "uint64", "ABCD", 0.01),
    ("abb-b23", "power_w", 3, 0x5B14, "int32", "ABCD", 0.01),
    ("abb-b23", "voltage_l1_v", 3, 0x5B00, "uint32", "ABCD", 0.1),
    ("abb-b23", "current_l1_a", 3, 0x5B0C, "uint32", "ABCD", 0.01),
]


@pytest.mark.parametrize("name, quantity, function, address, data_type, order, scale",
                         REFERENCE_FACTS)
def test_reference_facts(name, quantity, function, address, data_type, order, scale):
    point = load_model(name).point(quantity)
    assert (point.function, point.address, point.type, point.order) == (
        function, address, data_type, order)
    assert point.scale == pytest.approx(scale)


def test_em24_din_does_not_read_the_partial_counter():
    model = load_model("carlo-gavazzi-em24-din")
    assert all(p.address != 0x0042 for p in model.points)


def test_read_limits():
    for name in ("eastron-sdm630", "eastron-sdm120", "eastron-sdm72d-m"):
        assert load_model(name).max_registers_per_read == 60
    assert load_model("carlo-gavazzi-em24-din").max_registers_per_read == 11
    assert all(load_model(name).max_registers_per_read <= 125 for name in MODELS)


# --- broken files ------------------------------------------------------------------------

VALID = """\
model = "{stem}"
manufacturer = "Test"
name = "Test meter"
phases = 1
max_registers_per_read = 60
sources = ["a datasheet"]
accuracy = {{ standard = "IEC 62053-21", class = "1", source = "a datasheet" }}

[[points]]
quantity = "{quantity}"
name = "Total system power"
function = 4
address = 0x0034
type = "float32"
order = "{order}"
scale = 1
unit = "{unit}"

[[points]]
quantity = "energy_import_kwh"
name = "Total import kWh"
function = 4
address = 0x0048
type = "float32"
scale = 1
unit = "kWh"

[[frames]]
quantity = "energy_import_kwh"
words = [0x449A, 0x5000]
value = 1234.5
"""


def write_model(tmp_path: Path, stem: str = "test-meter", model: str | None = None,
                quantity: str = "power_w", order: str = "ABCD", unit: str = "W") -> Path:
    path = tmp_path / f"{stem}.toml"
    path.write_text(VALID.format(stem=model or stem, quantity=quantity, order=order,
                                 unit=unit), encoding="utf-8")
    return path


def test_the_valid_template_loads(tmp_path):
    model = load_model_file(write_model(tmp_path))
    assert model.model == "test-meter"
    assert model.point("energy_import_kwh").decode([0x449A, 0x5000]) == 1234.5


@pytest.mark.parametrize("change, expected", [
    ({"quantity": "power_kw"}, "unknown quantity 'power_kw'"),
    ({"order": "ABDC"}, "unknown order 'ABDC'"),
    ({"unit": "kW"}, "power_w is in W, the file says 'kW'"),
    ({"model": "other-meter"}, "must equal the file name"),
])
def test_broken_file_names_file_and_problem(tmp_path, change, expected):
    path = write_model(tmp_path, **change)
    with pytest.raises(MeterModelError) as info:
        load_model_file(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message


def test_unknown_quantity_error_points_at_the_entry(tmp_path):
    path = write_model(tmp_path, quantity="watts")
    with pytest.raises(MeterModelError, match=r"points\.0"):
        load_model_file(path)


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.replace("model = ", "model == "), "not valid TOML"),
    (lambda t: t.replace('quantity = "power_w"', 'quantity = "power_l1_w"'),
     "must map power_w"),
    (lambda t: t.replace('[[frames]]\nquantity = "energy_import_kwh"',
                         '[[frames]]\nquantity = "frequency_hz"'),
     "frame for 'frequency_hz'"),
    (lambda t: t.replace('quantity = "energy_import_kwh"\nname = "Total import kWh"',
                         'quantity = "power_w"\nname = "Total import kWh"')
     .replace('unit = "kWh"', 'unit = "W"'),
     "appears twice"),
    (lambda t: t.replace("function = 4\naddress = 0x0034", "function = 6\naddress = 0x0034"),
     "points.0.function"),
    (lambda t: t.replace('type = "float32"', 'type = "float16"', 1), "unknown type"),
    (lambda t: t.replace("scale = 1\nunit = \"W\"", "scale = 0\nunit = \"W\""),
     "scale must be a finite non-zero number"),
    (lambda t: t.replace("phases = 1", "phases = 2"), "phases"),
    (lambda t: t.replace("[[frames]]", "wiring = 'star'\n[[frames]]"), "wiring"),
    (lambda t: t.split("[[frames]]")[0], "frames"),
    (lambda t: t.replace('sources = ["a datasheet"]', "sources = []"), "sources"),
    (lambda t: t.replace('class = "1"', 'class = "0.5S"'),
     "IEC 62053-21 has no class '0.5S'; its classes: 0.5, 1, 2"),
    (lambda t: t.replace('"IEC 62053-21", class = "1"', '"EN 50470-3", class = "1"'),
     "EN 50470-3 has no class '1'; its classes: A, B, C"),
    (lambda t: t.replace('"IEC 62053-21"', '"IEC 62053-23"'), "unknown accuracy standard 'IEC 62053-23'"),
    (lambda t: t.replace('standard = "IEC 62053-21", ', ''), "class '1' needs standard = one of: IEC 62053-21"),
    (lambda t: t.replace('class = "1", source = "a datasheet"', 'source = "a datasheet"'), "accuracy.0.class"),
    (lambda t: t.replace(', source = "a datasheet" }', ' }'), "accuracy.0.source"),
    (lambda t: t.replace('standard = "IEC 62053-21", class = "1"', 'class = "unknown"'),
     'class = "unknown" needs why'),
    (lambda t: t.replace('class = "1"', 'class = "unknown", why = "not given"'),
     'class = "unknown" takes no standard'),
    (lambda t: t.replace('accuracy = {', 'accuracy = [{ class = "unknown", why = "none", source = "s" }, {')
     .replace('source = "a datasheet" }', 'source = "a datasheet" }]'),
     'class = "unknown" cannot stand beside a stated class'),
    (lambda t: t.replace('accuracy = {', 'accuracy = [{ standard = "IEC 62053-21", class = "2", source = "s" }, {')
     .replace('source = "a datasheet" }', 'source = "a datasheet" }]'),
     "a standard appears twice"),
    (lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("accuracy")),
     "accuracy: missing; add accuracy = "),
])
def test_other_broken_files(tmp_path, edit, expected):
    path = write_model(tmp_path)
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(MeterModelError) as info:
        load_model_file(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_files(tmp_path):
    with pytest.raises(MeterModelError, match="unknown meter model 'no-such-meter'"):
        load_model("no-such-meter")
    missing = tmp_path / "gone.toml"
    with pytest.raises(MeterModelError, match="gone.toml"):
        load_model_file(missing)


# --- accuracy classes --------------------------------------------------------------------

# What each shipped file states (the datasheet and why are in the file): a change is deliberate.
EXPECTED_ACCURACY = {
    "abb-b23": [("EN 50470-3", "B")],
    "carlo-gavazzi-em24-din": [("IEC 62053-21", "1"), ("EN 50470-3", "B")],
    "carlo-gavazzi-em24-ethernet": [(None, "unknown")],
    "eastron-sdm120": [("IEC 62053-21", "1")],
    "eastron-sdm630": [("IEC 62053-21", "1")],
    "eastron-sdm72d-m": [("IEC 62053-21", "1")],
    "janitza-umg604": [(None, "unknown")],
    "schneider-iem3155": [(None, "unknown")],
}


def test_every_shipped_file_states_its_accuracy():
    assert sorted(EXPECTED_ACCURACY) == sorted(MODELS)
    for name in MODELS:
        accuracy = load_model(name).accuracy
        assert [(a.standard, a.class_) for a in accuracy] == EXPECTED_ACCURACY[name], name
        for a in accuracy:
            # a known class names its document; an unknown one says why, and what was read
            assert len(a.source) > 40, (name, a.source)
            assert (len(a.why) > 40) if not a.known else (a.why == ""), (name, a.why)
    text = (DATA_DIR / "carlo-gavazzi-em24-din.toml").read_text(encoding="utf-8")
    assert "'Class B (kWh) according to EN50470-3'" in text


# relative accuracy [share] at reference conditions, per standard and class (module docstring)
CLASS_FIGURES = [
    ("IEC 62053-21", "0.5", 0.005), ("IEC 62053-21", "1", 0.01), ("IEC 62053-21", "2", 0.02),
    ("IEC 62053-22", "0.1S", 0.001), ("IEC 62053-22", "0.2S", 0.002), ("IEC 62053-22", "0.5S", 0.005),
    ("EN 50470-3", "A", 0.02), ("EN 50470-3", "B", 0.01), ("EN 50470-3", "C", 0.005),
]


@pytest.mark.parametrize("standard, klass, share", CLASS_FIGURES)
def test_class_stands_for_its_relative_accuracy(standard, klass, share):
    entry = AccuracyClass.model_validate({"standard": standard, "class": klass, "source": "s"})
    assert entry.relative_accuracy() == pytest.approx(share, rel=1e-12)


def test_class_table_is_the_one_pinned():
    assert sorted((s, c) for s, classes in ACCURACY_CLASSES.items() for c in classes) == sorted(
        (s, c) for s, c, _ in CLASS_FIGURES)


def test_model_relative_accuracy():
    # the shipped models: class 1 / class B are both +/-1 %; unknown gives None, not a guess
    assert {name: load_model(name).relative_accuracy() for name in MODELS} == {
        "abb-b23": 0.01, "carlo-gavazzi-em24-din": 0.01, "carlo-gavazzi-em24-ethernet": None,
        "eastron-sdm120": 0.01, "eastron-sdm630": 0.01, "eastron-sdm72d-m": 0.01,
        "janitza-umg604": None, "schneider-iem3155": None}
    # a meter stating two classes meets both: the tighter bounds it
    base = load_model("eastron-sdm630").model_dump(by_alias=True)
    base["accuracy"] = [{"standard": "IEC 62053-21", "class": "1", "source": "s"},
                        {"standard": "IEC 62053-22", "class": "0.5S", "source": "s"}]
    assert MeterModel.model_validate(base).relative_accuracy() == pytest.approx(0.005)
    # a model built in code without a class (test fixtures) says nothing, it does not guess
    base["accuracy"] = []
    assert MeterModel.model_validate(base).relative_accuracy() is None
