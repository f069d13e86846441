"""The hour codec (storage/hour_codec.py): any hour comes back exactly (values and types), the
numeric fast path agrees with it, meter hours are compact, and a damaged blob is refused with
HourCodecError only."""

from __future__ import annotations

import math
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.hour_codec import (FORMAT_VERSION, HourCodecError, decode_columns, decode_hour,
                                encode_hour, field_names, point_count)

T0_NS = 1_794_182_400 * 10**9  # an hour boundary (2026-11-09 00:00 UTC)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_BYTES_PER_POINT = 60  # target for a 15-field meter series at 1 Hz

# ---------------------------------------------------------------------------------------------
# helpers


def _typed(value: object) -> tuple:
    """A value with its type, floats by their bits (-0.0 is not 0.0)."""
    if type(value) is float:
        return float, struct.pack("<d", value)
    return type(value), value


def assert_same_hour(expected_ns, expected_points, actual_ns, actual_points) -> None:
    """Same times (int64) and same points, value for value and type for type."""
    assert actual_ns.dtype == np.int64
    assert actual_ns.tolist() == list(expected_ns)
    assert len(actual_points) == len(expected_points)
    for index, (expected, actual) in enumerate(zip(expected_points, actual_points)):
        assert {k: _typed(v) for k, v in actual.items()} == {k: _typed(v) for k, v in expected.items()}, index


def numeric_view(points: list[dict[str, object]], name: str) -> np.ndarray:
    """What the journal calls numeric: a float or an int (not a bool), else NaN."""
    def number(point: dict) -> float:
        value = point.get(name)
        if type(value) not in (int, float):
            return math.nan
        try:
            return float(value)
        except OverflowError:  # an int beyond float64
            return math.nan
    return np.array([number(point) for point in points], dtype=np.float64)


def assert_same_floats(actual: np.ndarray, expected: np.ndarray) -> None:
    """Bit for bit (NaN equals NaN, -0.0 differs from 0.0)."""
    assert actual.dtype == np.float64 and actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()


# ---------------------------------------------------------------------------------------------
# arbitrary hours

_scaled_decimals = st.builds(
    lambda raw, decimals, multiply: raw * float(f"1e-{decimals}") if multiply else raw / 10**decimals,
    st.integers(-(10**12), 10**12), st.integers(0, 6), st.booleans())
_float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)
_VALUE_KINDS = {
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "float32": _float32s,
    "float32_scaled": st.builds(lambda f, scale: f * scale, _float32s, st.sampled_from([1e-3, 1e3, 0.1])),
    "scaled_decimal": _scaled_decimals,
    "int64": st.integers(INT64_MIN, INT64_MAX),
    "small_int": st.integers(-300, 300),
    "big_int": st.integers(min_value=2**63, max_value=2**200) | st.integers(max_value=-(2**63) - 1),
    "bool": st.booleans(),
    "text": st.text(max_size=8),
    "state": st.sampled_from(["EXECUTING", "IDLE", "STOPPED", "ALARM"]),
}
_any_value = st.one_of(*_VALUE_KINDS.values())


def _times(count: int) -> st.SearchStrategy[list[int]]:
    regular = st.builds(
        lambda start, step, jitter: [start + i * step + j for i, j in enumerate(jitter)],
        st.integers(-(2**62), 2**62), st.sampled_from([0, 1, 10**6, 10**9, 2 * 10**9]),
        st.lists(st.integers(0, 5_000_000), min_size=count, max_size=count))
    anywhere = st.lists(st.integers(INT64_MIN, INT64_MAX), min_size=count, max_size=count)
    few = st.lists(st.sampled_from([T0_NS, T0_NS + 1, T0_NS + 10**9, INT64_MAX]), min_size=count,
                   max_size=count)
    return st.one_of(regular.map(sorted), anywhere.map(sorted), few.map(sorted), anywhere)


@st.composite
def hours(draw) -> tuple[list[int], list[dict[str, object]]]:
    """(times, points): sorted or unsorted int64 times with duplicates, and fields that each
    have one kind of value (or any kind), in every point or only in some."""
    count = draw(st.integers(0, 40))
    times = draw(_times(count))
    names = draw(st.lists(st.text(max_size=6), max_size=5, unique=True))
    kinds = {name: draw(st.sampled_from([*_VALUE_KINDS.values(), _any_value])) for name in names}
    always = {name: draw(st.booleans()) for name in names}
    points = [{name: draw(kind) for name, kind in kinds.items() if always[name] or draw(st.booleans())}
              for _ in range(count)]
    return times, points


# ---------------------------------------------------------------------------------------------
# round trips


@given(hours())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_hour_comes_back_exactly(hour):
    times, points = hour
    blob = encode_hour(times, points)
    assert blob[0] == FORMAT_VERSION
    assert_same_hour(times, points, *decode_hour(blob))
    assert point_count(blob) == len(points)
    assert set(field_names(blob)) == {name for point in points for name in point}


@given(hours())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_decode_columns_is_the_numeric_view_of_decode_hour(hour):
    times, points = hour
    blob = encode_hour(times, points)
    decoded_ns, decoded_points = decode_hour(blob)
    names = [*field_names(blob), "not in the blob"]
    column_ns, columns = decode_columns(blob, names)
    np.testing.assert_array_equal(column_ns, decoded_ns)
    assert list(columns) == names
    for name in names:
        assert_same_floats(columns[name], numeric_view(decoded_points, name))


HAND_MADE_NS = [T0_NS, T0_NS + 10**9, T0_NS + 10**9, T0_NS + 2 * 10**9]  # a duplicate time
HAND_MADE_POINTS = [  # voltage_v constant, energy_import_kwh missing in one point
    {"power_w": 1520.5, "energy_import_kwh": 12.01, "voltage_v": 230.0, "state": "EXECUTING",
     "door_open": False, "parts": 3},
    {"power_w": 1498.25, "energy_import_kwh": 12.01, "voltage_v": 230.0, "state": "EXECUTING",
     "door_open": False, "parts": 3},
    {"power_w": 1502.0, "voltage_v": 230.0, "state": "IDLE", "door_open": True, "parts": 4},
    {"power_w": 1510.75, "energy_import_kwh": 12.02, "voltage_v": 230.0, "state": "IDLE",
     "door_open": False, "parts": 4},
]


def test_hand_made_hour_with_a_constant_column_a_missing_field_and_a_duplicate_time():
    blob = encode_hour(HAND_MADE_NS, HAND_MADE_POINTS)
    assert_same_hour(HAND_MADE_NS, HAND_MADE_POINTS, *decode_hour(blob))
    assert field_names(blob) == ["power_w", "energy_import_kwh", "voltage_v", "state", "door_open", "parts"]
    assert point_count(blob) == 4
    column_ns, columns = decode_columns(blob, ["energy_import_kwh", "voltage_v", "state", "door_open", "parts"])
    assert column_ns.tolist() == HAND_MADE_NS
    np.testing.assert_array_equal(columns["energy_import_kwh"], [12.01, 12.01, np.nan, 12.02])
    np.testing.assert_array_equal(columns["voltage_v"], [230.0] * 4)
    np.testing.assert_array_equal(columns["state"], [np.nan] * 4)  # a string is not a number
    np.testing.assert_array_equal(columns["door_open"], [np.nan] * 4)  # nor is a bool
    np.testing.assert_array_equal(columns["parts"], [3.0, 3.0, 4.0, 4.0])
    without_constant = encode_hour(HAND_MADE_NS, [{k: v for k, v in p.items() if k != "voltage_v"}
                                                  for p in HAND_MADE_POINTS])
    assert len(blob) - len(without_constant) <= 24  # a constant column is its name and a few bytes


# A blob of the hand-made hour as format version 1 wrote it: later versions must still read it.
GOLDEN_V1 = bytes.fromhex(
    "01c401a601789c6361616c6898f0e4c18dd9cf0c1ba6bcbec3ccc8c0ccc65e905f9e5a145fce2cc9c8c0c8c8c8c400"
    "06910e2c4c4f8e0b3d544a616460124ccd4b2d4aaf8ccfcc2dc82f2a89cf2ecf60164355ccccf8488811a892b32c3f"
    "a724313d35be8c510459c5077b16c63340eb588b4b124b5285f941722c4c0cfc2c20060333674a7e7e517c7e416a1e"
    "2b374884990524ccc25a90585452ccc20312626261640329050073cb274f020002f0340ad00002f0f009455845435554"
    "494e470449444c45000200f000000200f0000200")


def test_a_version_1_blob_still_decodes():
    assert_same_hour(HAND_MADE_NS, HAND_MADE_POINTS, *decode_hour(GOLDEN_V1))


def test_values_made_either_way_from_a_register_come_back_exactly():
    """raw * 0.1 and raw / 10 differ in the last bit for some raw values; a column mixing them,
    and -0.0 among them, is still exact (the codec verifies by decoding, else stores float64)."""
    raws = list(range(-5000, 5000, 7))
    multiplied = [raw * 0.1 for raw in raws]
    divided = [raw / 10 for raw in raws]
    assert multiplied != divided  # the premise
    mixed = [m if i % 3 else d for i, (m, d) in enumerate(zip(multiplied, divided))]
    for values in (multiplied, divided, mixed, [*multiplied[:-1], -0.0]):
        points = [{"v": value} for value in values]
        times = [T0_NS + i * 10**9 for i in range(len(points))]
        assert_same_hour(times, points, *decode_hour(encode_hour(times, points)))
    compact = encode_hour(times, [{"v": value} for value in multiplied])
    assert len(compact) < 3 * len(raws)  # found as tenths: about a byte a value, not 8


def test_a_float32_register_times_its_scale_is_found():
    """kW registers times 1000 and Wh registers times 0.001 are not float32 but store as such."""
    rng = np.random.default_rng(7)
    registers = (5 + rng.normal(0, 0.5, 3600)).astype(np.float32)
    for scale in (1e3, 1e-3):
        points = [{"v": float(f) * scale} for f in registers]
        times = list(range(3600))
        blob = encode_hour(times, points)
        assert_same_hour(times, points, *decode_hour(blob))
        assert len(blob) < 4 * 3600  # a float64 column would need about 7 bytes a value


def test_big_ints_bools_and_odd_strings_keep_their_types():
    points = [{"n": 2**64, "b": True, "s": "\ud800 lone surrogate", "i": 1},
              {"n": -(2**100), "b": 1, "s": "", "i": 1.0},
              {"n": 5, "b": False, "s": "ß∑😀", "i": INT64_MIN}]
    times = [0, 0, 0]
    blob = encode_hour(times, points)
    assert_same_hour(times, points, *decode_hour(blob))
    _, columns = decode_columns(blob, ["n", "b", "i"])
    np.testing.assert_array_equal(columns["n"], [2.0**64, -(2.0**100), 5.0])
    np.testing.assert_array_equal(columns["b"], [np.nan, 1.0, np.nan])
    np.testing.assert_array_equal(columns["i"], [1.0, 1.0, float(INT64_MIN)])


def test_long_random_columns_come_back_exactly():
    """Thousands of points of noise: unsorted int64 times, any int64, any float64 bit pattern
    (NaN and inf too, though the journal refuses them earlier), fields present at random."""
    rng = np.random.default_rng(11)
    count = 5000
    times = rng.integers(INT64_MIN, INT64_MAX, count, endpoint=True).tolist()
    ints = rng.integers(INT64_MIN, INT64_MAX, count, endpoint=True).tolist()
    floats = rng.integers(0, 2**64 - 1, count, dtype=np.uint64, endpoint=True).view(np.float64).tolist()
    present = rng.random((2, count)) < 0.7
    points = [{**({"i": i} if has_int else {}), **({"f": f} if has_float else {}), "k": k % 3}
              for i, f, k, has_int, has_float in zip(ints, floats, range(count), *present)]
    assert_same_hour(times, points, *decode_hour(encode_hour(times, points)))


def test_input_outside_the_contract_is_refused():
    with pytest.raises(TypeError, match="None"):
        encode_hour([0], [{"x": None}])
    with pytest.raises(TypeError, match="integers"):
        encode_hour([0.5], [{"x": 1.0}])
    with pytest.raises(ValueError, match="2 times but 1"):
        encode_hour([0, 1], [{"x": 1.0}])
    with pytest.raises(TypeError, match="not a str"):
        encode_hour([0], [{1: 1.0}])


# ---------------------------------------------------------------------------------------------
# meter hours: size and speed


def _meter_signals(seed: int, count: int = 3600) -> dict[str, np.ndarray]:
    """15 fields of a 3-phase meter read at 1 Hz: a machine's load cycles plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(count)
    load_w = 150 + 4000 * np.clip(3 * np.sin(2 * np.pi * t / 900), 0, 1) + 800 * np.sin(2 * np.pi * t / 97) ** 2
    power_w = load_w + rng.normal(0, 15, count)
    power_factor = 0.9 + 0.05 * np.sin(2 * np.pi * t / 1200) + rng.normal(0, 0.003, count)
    voltages = [230 + 1.5 * np.sin(2 * np.pi * t / 1800 + k) + rng.normal(0, 0.2, count) for k in range(3)]
    phase_powers = [power_w * share + rng.normal(0, 5, count) for share in (0.34, 0.33, 0.33)]
    return {
        "power_w": power_w,
        "energy_import_kwh": 12345.6 + np.cumsum(power_w) / 3.6e6,
        "energy_export_kwh": np.full(count, 12.3),
        "power_factor": power_factor,
        "frequency_hz": 50 + 0.02 * np.sin(2 * np.pi * t / 600) + rng.normal(0, 0.005, count),
        "reactive_power_var": 0.45 * power_w + rng.normal(0, 10, count),
        **{f"voltage_l{k + 1}_v": voltages[k] for k in range(3)},
        **{f"current_l{k + 1}_a": phase_powers[k] / voltages[k] / power_factor for k in range(3)},
        **{f"power_l{k + 1}_w": phase_powers[k] for k in range(3)},
    }


def _meter_times(seed: int, count: int = 3600) -> list[int]:
    """Polls every second, stamped when the request left: a few ms of jitter, in ns."""
    jitter_ns = np.random.default_rng(seed).integers(0, 3_000_000, count)
    return (T0_NS + np.arange(count, dtype=np.int64) * 10**9 + jitter_ns).tolist()


def _as_points(columns: dict[str, list[float]]) -> list[dict[str, object]]:
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def _float32_hour(seed: int) -> list[dict[str, object]]:
    """Every value a float32 register as the device sent it."""
    return _as_points({name: [float(np.float32(x)) for x in values]
                       for name, values in _meter_signals(seed).items()})


# (decimals, how) per field: `raw * 1e-k` (register times scale) or `raw / 10**k`
_REGISTER_SCALES = {"power_w": (1, "*"), "energy_import_kwh": (2, "*"), "energy_export_kwh": (2, "*"),
                    "power_factor": (3, "*"), "frequency_hz": (2, "/"), "reactive_power_var": (1, "*"),
                    **{f"voltage_l{k}_v": (1, "*") for k in (1, 2, 3)},
                    **{f"current_l{k}_a": (2, "/") for k in (1, 2, 3)},
                    **{f"power_l{k}_w": (1, "/") for k in (1, 2, 3)}}


def _scaled_register_hour(seed: int) -> list[dict[str, object]]:
    """Every value a scaled integer register, e.g. round(x*10)*0.1 or round(x*100)/100."""
    columns = {}
    for name, values in _meter_signals(seed).items():
        decimals, how = _REGISTER_SCALES[name]
        raws = [round(x * 10**decimals) for x in values]
        scale = float(f"1e-{decimals}")
        columns[name] = [raw * scale for raw in raws] if how == "*" else [raw / 10**decimals for raw in raws]
    return _as_points(columns)


@pytest.mark.parametrize("make_points", [_float32_hour, _scaled_register_hour])
def test_a_meter_hour_is_compact_and_exact(make_points):
    times, points = _meter_times(1), make_points(1)
    assert len(points) == 3600 and len(points[0]) == 15
    started = time.perf_counter()
    blob = encode_hour(times, points)
    encode_ms = (time.perf_counter() - started) * 1e3
    bytes_per_point = len(blob) / len(points)
    print(f"\n{make_points.__name__}: {bytes_per_point:.1f} bytes/point "
          f"({len(blob)} bytes for 3600 points x 15 fields), encoded in {encode_ms:.1f} ms")
    assert bytes_per_point <= MAX_BYTES_PER_POINT
    assert_same_hour(times, points, *decode_hour(blob))
    _, columns = decode_columns(blob, ["power_w", "energy_import_kwh"])
    for name, column in columns.items():
        assert_same_floats(column, numeric_view(points, name))


def test_reading_two_columns_of_a_machine_month_takes_well_under_a_second():
    """Analytics reads power and energy of ~720 hourly blobs of one machine."""
    blob = encode_hour(_meter_times(2), _float32_hour(2))
    decode_columns(blob, ["power_w", "energy_import_kwh"])
    started = time.perf_counter()
    for _ in range(720):
        decode_columns(blob, ["power_w", "energy_import_kwh"])
    elapsed_s = time.perf_counter() - started
    print(f"\n720 blobs x 2 columns: {elapsed_s * 1e3:.0f} ms")
    assert elapsed_s < 1.0


def test_decode_columns_reads_only_the_columns_it_is_asked_for():
    """A damaged column spoils the reads that need it, not the others."""
    count = 3600
    points = [{"power_w": float(np.float32(1000 + i % 50)), "pattern": i % 7} for i in range(count)]
    blob = bytearray(encode_hour(list(range(count)), points))
    blob[-1] ^= 0xFF  # the last column's zlib check
    _, columns = decode_columns(bytes(blob), ["power_w"])
    assert_same_floats(columns["power_w"], numeric_view(points, "power_w"))
    with pytest.raises(HourCodecError):
        decode_columns(bytes(blob), ["pattern"])
    with pytest.raises(HourCodecError):
        decode_hour(bytes(blob))


# ---------------------------------------------------------------------------------------------
# damaged blobs

_VALID_BLOBS = [
    encode_hour(_meter_times(3, 40), _float32_hour(3)[:40]),
    encode_hour(_meter_times(4, 30), _scaled_register_hour(4)[:30]),
    encode_hour([T0_NS, T0_NS, T0_NS + 5], [{"state": "EXECUTING", "n": 2**70}, {"ok": True},
                                            {"state": "IDLE", "n": 1.5, "ok": 3}]),
    encode_hour([], []),
]
_READERS = [decode_hour, lambda blob: decode_columns(blob, ["power_w", "state", "n", "ok"]),
            field_names, point_count]


def _decodes_or_refuses(blob: bytes) -> None:
    """Each reader either returns or raises HourCodecError with a one-line message."""
    for read in _READERS:
        try:
            read(blob)
        except HourCodecError as exc:
            assert str(exc) and "\n" not in str(exc)


def test_an_empty_blob_or_an_unknown_version_is_refused():
    with pytest.raises(HourCodecError, match="empty"):
        decode_hour(b"")
    with pytest.raises(HourCodecError, match="version 99"):
        point_count(bytes([99]) + _VALID_BLOBS[0][1:])


def test_every_truncation_of_a_blob_is_refused():
    for blob in _VALID_BLOBS:
        for size in range(len(blob)):
            for read in _READERS:
                with pytest.raises(HourCodecError):
                    read(blob[:size])


@given(st.binary(max_size=300) | st.binary(max_size=300).map(lambda b: bytes([FORMAT_VERSION]) + b))
@settings(max_examples=300, deadline=None)
def test_random_bytes_decode_or_raise_hour_codec_error_only(blob):
    _decodes_or_refuses(blob)


@given(st.sampled_from(_VALID_BLOBS), st.data())
@settings(max_examples=300, deadline=None)
def test_damaged_blobs_decode_or_raise_hour_codec_error_only(blob, data):
    damaged = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4), label="damages")):
        position = data.draw(st.integers(0, len(damaged) - 1), label="position")
        if data.draw(st.booleans(), label="flip one bit"):
            damaged[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        else:
            damaged[position] = data.draw(st.integers(0, 255), label="byte")
    _decodes_or_refuses(bytes(damaged))
