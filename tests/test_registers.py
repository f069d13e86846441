"""devices.registers: our Modbus register codec (decode, encode, register_count)."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.registers import DATA_TYPES, WORD_ORDERS, decode, encode, register_count

INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
FLOAT_TYPES = ("float32", "float64")
ALL_TYPES = tuple(INT_RANGES) + FLOAT_TYPES
word = st.integers(min_value=0, max_value=0xFFFF)


def same_float(a: float, b: float) -> bool:
    """Equal bit for bit in value terms: NaN equals NaN, +0.0 differs from -0.0."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def test_the_codec_knows_eight_types_and_four_orders():
    assert set(DATA_TYPES) == set(ALL_TYPES)
    assert WORD_ORDERS == ("ABCD", "CDAB", "BADC", "DCBA")
    assert {t: register_count(t) for t in ALL_TYPES} == {
        "int16": 1, "uint16": 1, "int32": 2, "uint32": 2,
        "int64": 4, "uint64": 4, "float32": 2, "float64": 4,
    }


# --- docs/reference.md, "Modbus meters": test vectors (register words as sent) --------------

REFERENCE_VECTORS = [
    ("float32", "ABCD", [0x4366, 0x199A], 230.1),
    ("float32", "ABCD", [0x449A, 0x5000], 1234.5),
    ("int32", "CDAB", [0x3039, 0x0000], 12345),
    ("int32", "CDAB", [0xEC78, 0xFFFF], -5000),
    ("int32", "CDAB", [0xE240, 0x0001], 123456),
    ("int64", "ABCD", [0x0000, 0x0000, 0x075B, 0xCD15], 123456789),
]


@pytest.mark.parametrize("data_type, order, words, value", REFERENCE_VECTORS)
def test_reference_vectors_decode(data_type, order, words, value):
    decoded = decode(words, data_type, order)
    if data_type.startswith("float"):
        # float32 holds the nearest representable number: within half a unit in the last place
        assert math.isclose(decoded, value, rel_tol=2**-24)
    else:
        assert decoded == value
        assert isinstance(decoded, int)


@pytest.mark.parametrize("data_type, order, words, value", REFERENCE_VECTORS)
def test_reference_vectors_encode(data_type, order, words, value):
    assert encode(value, data_type, order) == words


def test_default_order_is_abcd():
    assert decode([0x4366, 0x199A], "float32") == decode([0x4366, 0x199A], "float32", "ABCD")
    assert encode(1234.5, "float32") == [0x449A, 0x5000]


# --- BADC and DCBA, worked out by hand -------------------------------------------------------
# float32 230.1 is bytes 43 66 19 9A (A B C D);
# int32 12345 is 00 00 30 39; int64 123456789 is 00 00 00 00 07 5B CD 15;
# int16 0x0102 (258) is 01 02; int16 -2 is FF FE.

HAND_VECTORS = [
    ("float32", "ABCD", [0x4366, 0x199A], 230.1),
    ("float32", "CDAB", [0x199A, 0x4366], 230.1),
    ("float32", "BADC", [0x6643, 0x9A19], 230.1),
    ("float32", "DCBA", [0x9A19, 0x6643], 230.1),
    ("int32", "ABCD", [0x0000, 0x3039], 12345),
    ("int32", "BADC", [0x0000, 0x3930], 12345),
    ("int32", "DCBA", [0x3930, 0x0000], 12345),
    ("int32", "BADC", [0xFFFF, 0x78EC], -5000),   # -5000 = FF FF EC 78
    ("int32", "DCBA", [0x78EC, 0xFFFF], -5000),
    ("int64", "CDAB", [0xCD15, 0x075B, 0x0000, 0x0000], 123456789),
    ("int64", "BADC", [0x0000, 0x0000, 0x5B07, 0x15CD], 123456789),
    ("int64", "DCBA", [0x15CD, 0x5B07, 0x0000, 0x0000], 123456789),
    ("uint32", "BADC", [0x3412, 0x7856], 0x12345678),
    ("uint32", "DCBA", [0x7856, 0x3412], 0x12345678),
    ("int16", "ABCD", [0x0102], 258),
    ("int16", "CDAB", [0x0102], 258),             # one register: no words to swap
    ("int16", "BADC", [0x0201], 258),
    ("int16", "DCBA", [0x0201], 258),
    ("int16", "BADC", [0xFEFF], -2),
    ("uint16", "DCBA", [0x3412], 0x1234),
    ("float64", "ABCD", [0x3FF0, 0x0000, 0x0000, 0x0000], 1.0),
    ("float64", "CDAB", [0x0000, 0x0000, 0x0000, 0x3FF0], 1.0),
    ("float64", "BADC", [0xF03F, 0x0000, 0x0000, 0x0000], 1.0),
    ("float64", "DCBA", [0x0000, 0x0000, 0x0000, 0xF03F], 1.0),
]


@pytest.mark.parametrize("data_type, order, words, value", HAND_VECTORS)
def test_hand_computed_vectors(data_type, order, words, value):
    decoded = decode(words, data_type, order)
    if data_type == "float32":
        assert decoded == struct.unpack(">f", struct.pack(">f", value))[0]
    else:
        assert decoded == value
    assert encode(value, data_type, order) == words


def test_the_four_orders_of_one_value_are_distinct_and_consistent():
    a, b, c, d = 0x12, 0x34, 0x56, 0x78
    assert encode(0x12345678, "uint32", "ABCD") == [a << 8 | b, c << 8 | d]
    assert encode(0x12345678, "uint32", "CDAB") == [c << 8 | d, a << 8 | b]
    assert encode(0x12345678, "uint32", "BADC") == [b << 8 | a, d << 8 | c]
    assert encode(0x12345678, "uint32", "DCBA") == [d << 8 | c, b << 8 | a]


# --- round trips: every type x every order --------------------------------------------------

@pytest.mark.parametrize("order", WORD_ORDERS)
@pytest.mark.parametrize("data_type", tuple(INT_RANGES))
def test_integer_limits_round_trip(data_type, order):
    lo, hi = INT_RANGES[data_type]
    for value in {lo, lo + 1, -1 if lo < 0 else 1, 0, 1, hi - 1, hi}:
        words = encode(value, data_type, order)
        assert len(words) == register_count(data_type)
        assert all(0 <= w <= 0xFFFF for w in words)
        assert decode(words, data_type, order) == value


@pytest.mark.parametrize("order", WORD_ORDERS)
@pytest.mark.parametrize("data_type", FLOAT_TYPES)
@pytest.mark.parametrize("value", [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan,
                                   2.0**-149, 3.4028234663852886e38, -123.25])
def test_float_specials_round_trip(data_type, order, value):
    words = encode(value, data_type, order)
    assert same_float(decode(words, data_type, order), value)


@pytest.mark.parametrize("order", WORD_ORDERS)
def test_float32_nan_stays_nan_and_inf_keeps_its_sign(order):
    assert math.isnan(decode(encode(math.nan, "float32", order), "float32", order))
    assert decode(encode(-math.inf, "float32", order), "float32", order) == -math.inf


def test_float32_specials_by_hand():
    # quiet NaN 7F C0 00 00, +inf 7F 80 00 00, -0.0 80 00 00 00
    assert math.isnan(decode([0x7FC0, 0x0000], "float32", "ABCD"))
    assert math.isnan(decode([0xC07F, 0x0000], "float32", "BADC"))
    assert math.isnan(decode([0x0000, 0xC07F], "float32", "DCBA"))
    assert decode([0x0000, 0x7F80], "float32", "CDAB") == math.inf
    assert decode([0x8000, 0x0000], "float32", "ABCD") == 0.0
    assert math.copysign(1.0, decode([0x8000, 0x0000], "float32", "ABCD")) == -1.0
    assert encode(math.inf, "float32", "DCBA") == [0x0000, 0x807F]


@pytest.mark.parametrize("data_type", tuple(INT_RANGES))
@given(data=st.data(), order=st.sampled_from(WORD_ORDERS))
def test_integers_round_trip(data_type, data, order):
    lo, hi = INT_RANGES[data_type]
    value = data.draw(st.integers(min_value=lo, max_value=hi))
    assert decode(encode(value, data_type, order), data_type, order) == value


@given(value=st.floats(width=32), order=st.sampled_from(WORD_ORDERS))
def test_float32_round_trip(value, order):
    assert same_float(decode(encode(value, "float32", order), "float32", order), value)


@given(value=st.floats(), order=st.sampled_from(WORD_ORDERS))
def test_float64_round_trip(value, order):
    assert same_float(decode(encode(value, "float64", order), "float64", order), value)


@pytest.mark.parametrize("data_type", ALL_TYPES)
@given(data=st.data(), order=st.sampled_from(WORD_ORDERS))
def test_words_round_trip(data_type, data, order):
    """Any register contents decode to a value that encodes back to the same words
    (floats: except NaN payloads, which Python may not keep)."""
    words = data.draw(st.lists(word, min_size=register_count(data_type),
                               max_size=register_count(data_type)))
    value = decode(words, data_type, order)
    if isinstance(value, float) and math.isnan(value):
        return
    assert encode(value, data_type, order) == words


@pytest.mark.parametrize("data_type", ALL_TYPES)
@given(data=st.data())
def test_orders_are_permutations_of_abcd(data_type, data):
    """Each order is ABCD with words reversed and/or bytes swapped in each word."""
    words = data.draw(st.lists(word, min_size=register_count(data_type),
                               max_size=register_count(data_type)))
    value = decode(words, data_type, "ABCD")
    if isinstance(value, float) and math.isnan(value):
        return
    swapped = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    assert encode(value, data_type, "CDAB") == words[::-1]
    assert encode(value, data_type, "BADC") == swapped
    assert encode(value, data_type, "DCBA") == swapped[::-1]


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("data_type", ALL_TYPES)
def test_wrong_word_count(data_type):
    n = register_count(data_type)
    for count in sorted({0, n - 1, n + 1, 2 * n} - {n}):
        with pytest.raises(ValueError, match="registers"):
            decode([0] * count, data_type)


@pytest.mark.parametrize("bad", [-1, 0x10000, 70000])
def test_out_of_range_words(bad):
    with pytest.raises(ValueError, match="0..65535"):
        decode([0, bad], "int32")
    with pytest.raises(ValueError, match="0..65535"):
        decode([bad], "uint16")


@pytest.mark.parametrize("bad", [1.5, "12", None])
def test_non_integer_words(bad):
    with pytest.raises(ValueError):
        decode([0, bad], "uint32")


def test_unknown_type_and_order():
    with pytest.raises(ValueError, match="unknown data type"):
        decode([0], "int8")
    with pytest.raises(ValueError, match="unknown data type"):
        encode(1, "float16")
    with pytest.raises(ValueError, match="unknown word order"):
        decode([0, 0], "int32", "BACD")
    with pytest.raises(ValueError, match="unknown word order"):
        encode(1, "int32", "abcd")


@pytest.mark.parametrize("data_type, value", [
    ("int16", 2**15), ("int16", -(2**15) - 1), ("uint16", -1), ("uint16", 2**16),
    ("int32", 2**31), ("uint32", -1), ("int64", 2**63), ("uint64", 2**64),
    ("int32", math.inf), ("uint64", math.nan), ("float32", 1e39), ("float32", -1e39),
])
def test_encode_rejects_values_the_type_cannot_hold(data_type, value):
    with pytest.raises(ValueError):
        encode(value, data_type)
