"""Codec of one packed hour of one series: every point of the hour in ONE compressed blob, stored
column by column so that a reader decompresses only the columns it asks for.

A point is (time_ns, fields) with fields {name: float | int | bool | str}. The codec is lossless:
`decode_hour(encode_hour(t, f))` gives back the same times and the same values with the same
Python types (bool stays bool, int stays int, -0.0 stays -0.0), whatever the times (any int64,
sorted or not, duplicates kept in order) and whatever field sets the points have. This module
imports only the standard library and numpy.

Layout ("uint" is an LEB128 varint, "sint" a zigzag varint, fixed-width numbers little-endian):

    byte 0       FORMAT_VERSION
    uint, uint   header size raw, header size stored [bytes]
    header       zlib: point count; the time column; then per field: its name, the stored size of
                 its sections, and its descriptor: layout (every point has one value type /
                 presence bitmap / one type tag per point), then one sub-column per value type,
                 each naming its encoding and its sections (codec, sizes)
    sections     the payloads, in the order the header names them: time column, then field by
                 field; each zlib-compressed, or raw when zlib would save under 3 %

Every integer column (times, ints, bools, dictionary indices, and float columns once made
integers) is an "int stream": plain, delta or delta-of-delta (whichever leaves the fewest
significant bits), divided by the common divisor of its values, zigzagged, cut to the fewest
bytes holding the largest, and split into byte planes (all lowest bytes, then all next bytes...),
one section per plane: the low planes of noisy values are stored raw, the high planes compress
to almost nothing. A float column becomes an int stream through the smallest exact
representation found for it: a scaled integer (m / 10^k or m * 1e-k, as registers are decoded),
a float32 times a power of ten, else the float64 bits; an encoding is kept only if decoding it
gives every value back bit for bit. Strings, and ints beyond int64, are dictionary-encoded.
"""

from __future__ import annotations

import contextlib
import operator
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = 1
MAX_POINTS = 1 << 24  # points in one blob (an hour at 4.6 kHz): bounds what a damaged blob may ask

_ZLIB_LEVEL = 6
# Sections are byte planes: runs and skewed byte frequencies, few long matches. Measured on meter
# hours, zlib's run-length strategy is 2-3x faster than its default and 1-7 % smaller.
_ZLIB_STRATEGY = zlib.Z_RLE
_ZLIB_WORTH = 0.97  # compressed kept if below this fraction of raw: noise inflates slowly, for nothing
_RANDOM_BITS = 7.8  # [bits/byte] above this a byte plane is stored raw without trying zlib
_RANDOM_MIN_SIZE = 1024  # [bytes] planes shorter than this are always tried
_RUN, _RUNS = 256, 4  # a transform is chosen on _RUNS runs of _RUN consecutive values

# section codecs
_RAW, _ZLIB = 0, 1
# field layouts
_DENSE, _BITMAP, _TAGS = 0, 1, 2
# value types (a per-point tag; 0 = the point lacks the field)
_ABSENT, _FLOAT, _INT, _BOOL, _STR, _BIGINT = 0, 1, 2, 3, 4, 5
_NUMERIC_TYPES = (_FLOAT, _INT, _BIGINT)
# float encodings
_FLOAT64, _FLOAT32, _DIVIDED, _MULTIPLIED = 0, 1, 2, 3
# an int stream's transform is how many times it is differenced: 0 plain, 1 delta, 2 delta of delta
_MAX_TRANSFORM = 2

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_EXACT_INT = float(1 << 53)  # |m| below this converts to float64 exactly
_DECIMALS = np.arange(10)  # k in m / 10^k
_POW10 = 10.0 ** _DECIMALS  # exact
_NEG_POW10 = np.array([float(f"1e-{k}") for k in _DECIMALS])  # the literals 1, 0.1, 0.01, ...
# float32 register x scale, as meters are decoded (Wh -> kWh is 0.001, kW -> W is 1000)
_FLOAT32_SCALES = np.array([1.0, 1e3, 1e-3, 1e-1, 1e-2, 1e1, 1e2, 1e-4, 1e-5, 1e-6, 1e4, 1e5, 1e6])
_SAMPLE = 64  # values a float encoding is tried on before the whole column
_F64 = struct.Struct("<d")


class HourCodecError(ValueError):
    """A blob that is damaged, truncated or of an unknown format version."""


# ---------------------------------------------------------------------------------------------
# public API


def encode_hour(time_ns: Sequence[int] | np.ndarray, fields: Sequence[dict[str, object]]) -> bytes:
    """One blob holding every point of an hour.

    time_ns: point times [ns since the epoch], int64 (usually sorted; any order is kept).
    fields: one {name: float | int | bool | str} per point, in the order of time_ns.
    Raises TypeError/ValueError for input outside that (a value of another type, a time that is
    not an int64, lengths that differ).
    """
    times = _as_times(time_ns)
    if len(fields) != len(times):
        raise ValueError(f"{len(times)} times but {len(fields)} field sets")
    columns = _gather_columns(fields)
    return _blob(times, {name: (lambda descriptor, sections, column=column:
                                _write_field(descriptor, sections, column, len(times)))
                         for name, column in columns.items()})


def encode_float_columns(time_ns: Sequence[int] | np.ndarray, columns: dict[str, np.ndarray]) -> bytes:
    """One blob, as encode_hour makes it, of points that all hold every field as a finite
    float: columns {name: float64 values, one per time}. The same bytes as encode_hour of the
    same points as dicts, without making a dict per point (a backfilled meter hour)."""
    times = _as_times(time_ns)
    writers = {}
    for name, values in columns.items():
        values = np.asarray(values, dtype=np.float64)
        if len(values) != len(times):
            raise ValueError(f"field {name!r}: {len(values)} values for {len(times)} times")
        if not np.isfinite(values).all():
            raise ValueError(f"field {name!r}: a value that is not finite (use encode_hour)")
        writers[name] = lambda descriptor, sections, values=values: _write_dense_floats(descriptor, sections, values)
    return _blob(times, writers)


def _write_dense_floats(descriptor: _Writer, sections: list[bytes], values: np.ndarray) -> None:
    """The descriptor and sections of a field every point holds as a float (as _write_field
    writes such a field)."""
    descriptor.byte(_DENSE)
    descriptor.uint(1)
    descriptor.byte(_FLOAT)
    _write_floats(descriptor, sections, values)


def _blob(times: np.ndarray, writers: dict) -> bytes:
    """The blob of times and fields: writers {name: write(descriptor, sections)}, each writing
    one field's descriptor and sections, in the order given."""
    if len(times) > MAX_POINTS:
        raise ValueError(f"{len(times)} points: a blob holds at most {MAX_POINTS}")
    header = _Writer()
    sections: list[bytes] = []
    header.uint(len(times))
    _write_ints(header, sections, times)
    header.uint(len(writers))
    for name, write in writers.items():
        if not isinstance(name, str):
            raise TypeError(f"field name {name!r} is not a str")
        descriptor = _Writer()
        field_sections: list[bytes] = []
        write(descriptor, field_sections)
        header.text(name.encode("utf-8", "surrogatepass"))
        header.uint(sum(map(len, field_sections)))
        header.text(bytes(descriptor.data))
        sections += field_sections
    raw_header = bytes(header.data)
    stored_header = zlib.compress(raw_header, _ZLIB_LEVEL)
    return b"".join([bytes([FORMAT_VERSION]), _uint_bytes(len(raw_header)),
                     _uint_bytes(len(stored_header)), stored_header, *sections])


def decode_hour(blob: bytes) -> tuple[np.ndarray, list[dict[str, object]]]:
    """(time_ns int64 [ns], one fields dict per point) exactly as encoded (key order aside)."""
    with _as_codec_error():
        layout = _parse(blob)
        return _int_values(layout.times, layout), _points(layout)


def decode_columns(blob: bytes, names: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(time_ns int64 [ns], {name: float64 values}) for the requested fields, NaN where a point
    lacks the field or holds a bool or a string there. Decompresses only those columns."""
    with _as_codec_error():
        layout = _parse(blob)
        return _int_values(layout.times, layout), {
            name: _numeric_column(_field(layout, name), layout) for name in names}


def dense_float_columns(blob: bytes) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """(time_ns, {name: float64 values}) when every point of the hour holds every field as a
    float (a meter hour), else None: the fast path of readers that need every value, such as
    the forwarder formatting lines (no dict per point)."""
    with _as_codec_error():
        layout = _parse(blob)
        columns: dict[str, np.ndarray] = {}
        for name in layout.fields:
            field = _field(layout, name)
            if field is None or field.layout != _DENSE or field.subs[0].value_type != _FLOAT:
                return None
            columns[name] = _numeric_values(field.subs[0], layout)
        return _int_values(layout.times, layout), columns


def field_names(blob: bytes) -> list[str]:
    """Names of the fields any point of the blob has, in stored order."""
    with _as_codec_error():
        return list(_parse(blob).fields)


def point_count(blob: bytes) -> int:
    """Number of points in the blob."""
    with _as_codec_error():
        return _parse(blob).count


# ---------------------------------------------------------------------------------------------
# byte-level writing and reading


def _uint_bytes(value: int) -> bytes:
    """LEB128 of a non-negative int."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class _Writer:
    """The header being written."""

    def __init__(self) -> None:
        self.data = bytearray()

    def byte(self, value: int) -> None:
        self.data.append(value)

    def uint(self, value: int) -> None:
        self.data += _uint_bytes(value)

    def sint(self, value: int) -> None:
        self.uint(value << 1 if value >= 0 else ((-value) << 1) - 1)

    def f64(self, value: float) -> None:
        self.data += _F64.pack(value)

    def text(self, value: bytes) -> None:
        self.uint(len(value))
        self.data += value


class _Reader:
    """Reads a header (or a dictionary section); any overrun is a damaged blob."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise HourCodecError("hour blob header ends early")
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self) -> int:
        pos = self.pos
        if pos < len(self.data) and self.data[pos] < 0x80:  # most header numbers are < 128
            self.pos = pos + 1
            return self.data[pos]
        result = shift = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
            if shift > 63:
                raise HourCodecError("hour blob holds a varint longer than 64 bits")

    def bounded(self, limit: int, what: str) -> int:
        value = self.uint()
        if value > limit:
            raise HourCodecError(f"hour blob: {what} {value} exceeds {limit}")
        return value

    def sint(self) -> int:
        value = self.uint()
        return -((value + 1) >> 1) if value & 1 else value >> 1

    def int64(self) -> int:
        value = self.sint()
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise HourCodecError("hour blob holds an integer outside int64")
        return value

    def f64(self) -> float:
        return _F64.unpack(self.raw(8))[0]

    def raw(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise HourCodecError("hour blob header ends early")
        self.pos += size
        return self.data[self.pos - size:self.pos]

    def text(self) -> bytes:
        return self.raw(self.uint())


@contextlib.contextmanager
def _as_codec_error() -> Iterator[None]:
    """Whatever a damaged blob makes fail below is reported as one HourCodecError."""
    try:
        with np.errstate(all="ignore"):
            yield
    except HourCodecError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, MemoryError, zlib.error,
            struct.error) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise HourCodecError(f"damaged hour blob: {message}") from exc


# ---------------------------------------------------------------------------------------------
# sections


def _looks_random(plane: np.ndarray) -> bool:
    """A byte plane whose byte frequencies leave zlib nothing to gain (noise in low bytes)."""
    if len(plane) < _RANDOM_MIN_SIZE:
        return False
    counts = np.bincount(plane, minlength=256)
    frequencies = counts[counts > 0] / len(plane)
    return float(-(frequencies * np.log2(frequencies)).sum()) > _RANDOM_BITS


def _deflate(raw: bytes) -> bytes:
    """zlib stream (with its adler32 check) of a section."""
    compressor = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS, 9, _ZLIB_STRATEGY)
    return compressor.compress(raw) + compressor.flush()


def _write_section(header: _Writer, sections: list[bytes], raw: bytes, worth_trying: bool = True) -> None:
    """Append a payload, zlib-compressed if that is worth it; the header says how it is stored
    and how long it is."""
    packed = _deflate(raw) if worth_trying else raw
    if len(packed) < len(raw) * _ZLIB_WORTH:
        header.byte(_ZLIB)
        header.uint(len(raw))
        header.uint(len(packed))
        sections.append(packed)
    else:
        header.byte(_RAW)
        header.uint(len(raw))
        sections.append(raw)


@dataclass(slots=True)
class _Section:
    """Where a payload lies in the blob and how to get it back."""

    codec: int
    offset: int  # [bytes] from the start of the section area
    stored_size: int  # [bytes]
    raw_size: int  # [bytes]


class _HeaderReader(_Reader):
    """A header reader that also places the sections it meets."""

    def __init__(self, data: bytes, section_start: int = 0) -> None:
        super().__init__(data)
        self.section_end = section_start  # [bytes] from the section area: sections placed so far

    def section(self, expected_size: int | None) -> _Section:
        """expected_size: [bytes] once decompressed, when the header implies it."""
        codec = self.byte()
        if codec not in (_RAW, _ZLIB):
            raise HourCodecError(f"hour blob: unknown section codec {codec}")
        raw_size = self.bounded(1 << 31, "section size")
        if expected_size is not None and raw_size != expected_size:
            raise HourCodecError(f"hour blob: a section of {raw_size} bytes where {expected_size} belong")
        stored_size = self.uint() if codec == _ZLIB else raw_size
        section = _Section(codec, self.section_end, stored_size, raw_size)
        self.section_end += stored_size
        return section


def _section_bytes(section: _Section, layout: _Layout) -> bytes:
    """The payload of a section, decompressed and checked for its length."""
    start = layout.body_start + section.offset
    stored = layout.blob[start:start + section.stored_size]
    if section.codec == _RAW:
        return stored
    inflater = zlib.decompressobj()
    raw = inflater.decompress(stored, section.raw_size)
    if len(raw) != section.raw_size or not inflater.eof or inflater.unused_data:
        raise HourCodecError("hour blob: a column does not decompress to its stated size")
    return raw


# ---------------------------------------------------------------------------------------------
# int streams


@dataclass(slots=True)
class _IntPlan:
    """How an int64 column is written: the first `transform` values before differencing
    (seeds), then the differenced rest (body)."""

    transform: int
    seeds: list[int]
    body: np.ndarray  # int64
    bits: float  # estimated size of the body [bits]


def _zigzag(values: np.ndarray) -> np.ndarray:
    """int64 -> uint64 with small magnitudes small: 0, -1, 1, -2 -> 0, 1, 2, 3."""
    return (values.view(np.uint64) << np.uint64(1)) ^ (values >> 63).view(np.uint64)


def _unzigzag(values: np.ndarray) -> np.ndarray:
    """uint64 -> int64, the inverse of _zigzag."""
    return (values >> np.uint64(1)).view(np.int64) ^ -(values & np.uint64(1)).view(np.int64)


def _significant_bits(values: np.ndarray) -> float:
    """Sum of the bit lengths of the zigzagged values: a cheap proxy for compressed size."""
    if not values.size:
        return 0.0
    return float(np.frexp(_zigzag(values).astype(np.float64))[1].sum())


def _transform_bits(values: np.ndarray) -> list[float]:
    """Estimated body size [bits] after each transform (plain, delta, delta of delta), judged
    on a few runs of consecutive values spread over the column."""
    if len(values) > _RUN * _RUNS:
        runs = values[:len(values) // _RUN * _RUN].reshape(-1, _RUN)
        runs = runs[np.linspace(0, len(runs) - 1, _RUNS).astype(np.intp)]
    else:
        runs = values.reshape(1, -1)
    return [_significant_bits(np.diff(runs, n=transform, axis=1))
            for transform in range(min(_MAX_TRANSFORM, len(values)) + 1)]


def _plan_ints(values: np.ndarray) -> _IntPlan:
    """The transform leaving the fewest significant bits, applied."""
    bits = _transform_bits(values)
    transform = int(np.argmin(bits))
    seeds: list[int] = []
    body = values
    for _ in range(transform):
        seeds.append(int(body[0]))
        body = np.diff(body)  # wraps around in int64, as the inverse cumsum does
    return _IntPlan(transform, seeds, body, bits[transform])


def _common_divisor(body: np.ndarray) -> int:
    """The largest d > 0 dividing every value (1 if none or all zero)."""
    if len(body) == 0:
        return 1
    divisor = int(np.gcd.reduce(body))
    if divisor <= 1 or not np.array_equal(body // divisor * divisor, body):
        return 1  # numpy's gcd of the int64 minimum comes out negative
    return divisor


def _byte_width(zigzagged: np.ndarray) -> int:
    """Fewest bytes (0..8) holding the largest value."""
    return (int(zigzagged.max()).bit_length() + 7) // 8 if len(zigzagged) else 0


def _write_ints(header: _Writer, sections: list[bytes], values: np.ndarray,
                plan: _IntPlan | None = None) -> None:
    """Write an int64 column: count, transform, seeds, divisor, byte width, shuffled body."""
    plan = plan or _plan_ints(values)
    divisor = _common_divisor(plan.body)
    zigzagged = _zigzag(plan.body // divisor if divisor > 1 else plan.body)
    width = _byte_width(zigzagged)
    header.uint(len(values))
    header.byte(plan.transform)
    for seed in plan.seeds:
        header.sint(seed)
    header.uint(divisor)
    header.byte(width)
    planes = zigzagged.astype("<u8", copy=False).view(np.uint8).reshape(-1, 8)[:, :width].T
    for plane in planes:  # low bytes (often noise, kept raw) apart from high bytes (compressible)
        _write_section(header, sections, plane.tobytes(), worth_trying=not _looks_random(plane))


@dataclass(slots=True)
class _IntStream:
    """An int64 column as the header describes it."""

    count: int
    transform: int
    seeds: list[int]
    divisor: int
    width: int  # [bytes per value]
    planes: list[_Section]  # byte planes, lowest first


def _read_ints(reader: _HeaderReader, count_limit: int) -> _IntStream:
    count = reader.bounded(count_limit, "value count")
    transform = reader.byte()
    if transform > _MAX_TRANSFORM or transform > count:
        raise HourCodecError(f"hour blob: int transform {transform} for {count} values")
    seeds = [reader.int64() for _ in range(transform)]
    divisor = reader.bounded(_INT64_MAX, "divisor")
    width = reader.byte()
    if divisor == 0 or width > 8:
        raise HourCodecError(f"hour blob: divisor {divisor}, width {width}")
    planes = [reader.section(count - transform) for _ in range(width)]
    return _IntStream(count, transform, seeds, divisor, width, planes)


def _int_values(stream: _IntStream, layout: _Layout) -> np.ndarray:
    """The int64 values of a stream."""
    body_count = stream.count - stream.transform
    if not stream.planes:
        body = np.zeros(body_count, dtype=np.int64)
    else:
        unshuffled = np.zeros((body_count, 8), dtype=np.uint8)
        for index, plane in enumerate(stream.planes):
            unshuffled[:, index] = np.frombuffer(_section_bytes(plane, layout), dtype=np.uint8)
        body = _unzigzag(unshuffled.view("<u8").ravel().astype(np.uint64, copy=False))
    if stream.divisor != 1:
        body = body * np.int64(stream.divisor)  # wraps as the encoder's division undid
    for seed in reversed(stream.seeds):
        summed = np.empty(len(body) + 1, dtype=np.int64)
        summed[0] = seed
        summed[1:] = body
        body = np.cumsum(summed, out=summed)  # wraps around in int64, as np.diff did
    return body


# ---------------------------------------------------------------------------------------------
# floats


def _ordered_bits64(values: np.ndarray) -> np.ndarray:
    """float64 -> int64 keys in the order of the floats (-0.0 just below +0.0)."""
    bits = values.view(np.int64)
    return np.where(bits < 0, ~(bits & np.int64(_INT64_MAX)), bits)


def _float64_from_keys(keys: np.ndarray) -> np.ndarray:
    return np.where(keys < 0, ~keys | np.int64(_INT64_MIN), keys).view(np.float64)


def _ordered_bits32(values: np.ndarray) -> np.ndarray:
    """float32 -> int64 keys in the order of the floats."""
    bits = values.view(np.int32).astype(np.int64)
    return np.where(bits < 0, ~(bits & 0x7FFFFFFF), bits)


def _float32_from_keys(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys < 0, ~keys | 0x80000000, keys)
    return bits.astype(np.uint32).view(np.float32)


def _float_values(encoding: int, parameter: float, keys: np.ndarray) -> np.ndarray:
    """float64 values from their int stream; the encoder checks candidates with this same code."""
    if encoding == _FLOAT64:
        return _float64_from_keys(keys)
    if encoding == _FLOAT32:
        return _float32_from_keys(keys).astype(np.float64) * parameter
    if encoding == _DIVIDED:
        return keys.astype(np.float64) / parameter
    if encoding == _MULTIPLIED:
        return keys.astype(np.float64) * parameter
    raise HourCodecError(f"hour blob: unknown float encoding {encoding}")


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a.view(np.uint64), b.view(np.uint64)))


def _sample(values: np.ndarray) -> np.ndarray:
    return values[::max(1, len(values) // _SAMPLE)][:_SAMPLE]


def _decimal_candidates(values: np.ndarray) -> Iterator[tuple[int, float, np.ndarray]]:
    """(encoding, parameter, integers) of the scaled-integer encodings that hold every value,
    fewest decimals first: m / 10^k (a decimal text or round(x, k)) and m * 1e-k (a register
    times its scale)."""
    sample = _sample(values)
    scaled = np.rint(sample * _POW10[:, None])
    in_range = (np.abs(scaled) < _EXACT_INT).all(axis=1)
    bits = sample.view(np.uint64)
    divided_ok = in_range & ((scaled / _POW10[:, None]).view(np.uint64) == bits).all(axis=1)
    multiplied_ok = in_range & ((scaled * _NEG_POW10[:, None]).view(np.uint64) == bits).all(axis=1)
    for k in _DECIMALS:
        for encoding, parameter, ok in ((_DIVIDED, _POW10[k], divided_ok[k]),
                                        (_MULTIPLIED, _NEG_POW10[k], multiplied_ok[k])):
            if not ok:
                continue
            scaled_all = np.rint(values * _POW10[k])
            if not (np.abs(scaled_all) < _EXACT_INT).all():
                continue
            integers = scaled_all.astype(np.int64)
            if _same_bits(_float_values(encoding, parameter, integers), values):
                yield encoding, float(parameter), integers


def _float32_candidates(values: np.ndarray) -> Iterator[tuple[int, float, np.ndarray]]:
    """(FLOAT32, scale, keys) for the scales s with every value a float32 times s."""
    sample = _sample(values)
    as32 = (sample / _FLOAT32_SCALES[:, None]).astype(np.float32)
    rebuilt = as32.astype(np.float64) * _FLOAT32_SCALES[:, None]
    ok = (rebuilt.view(np.uint64) == sample.view(np.uint64)).all(axis=1)
    for scale in _FLOAT32_SCALES[ok]:
        keys = _ordered_bits32((values / scale).astype(np.float32))
        if _same_bits(_float_values(_FLOAT32, float(scale), keys), values):
            yield _FLOAT32, float(scale), keys


def _write_floats(header: _Writer, sections: list[bytes], values: np.ndarray) -> None:
    """Write a float64 column in its smallest exact representation (float64 bits if none)."""
    best: tuple[int, float, np.ndarray, _IntPlan] | None = None
    with np.errstate(all="ignore"):  # NaN, inf or huge values just fail the candidates
        for candidates in (_decimal_candidates(values), _float32_candidates(values)):
            found = next(candidates, None)  # the first (fewest decimals, scale 1) is kept
            if found is not None:
                plan = _plan_ints(found[2])
                if best is None or plan.bits < best[3].bits:
                    best = (*found, plan)
    if best is None:
        keys = _ordered_bits64(values)
        best = (_FLOAT64, 1.0, keys, _plan_ints(keys))
    encoding, parameter, keys, plan = best
    header.byte(encoding)
    if encoding != _FLOAT64:
        header.f64(parameter)
    _write_ints(header, sections, keys, plan)


# ---------------------------------------------------------------------------------------------
# dictionaries (strings, and ints beyond int64)


def _entry_bytes(value: object, value_type: int) -> bytes:
    if value_type == _STR:
        return value.encode("utf-8", "surrogatepass")  # any Python str, lone surrogates too
    return value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True)


def _entry_value(raw: bytes, value_type: int) -> object:
    if value_type == _STR:
        return raw.decode("utf-8", "surrogatepass")
    return int.from_bytes(raw, "little", signed=True)


def _write_dictionary(header: _Writer, sections: list[bytes], values: list, value_type: int) -> None:
    """Distinct values in order of first use, then each value's index."""
    index_of: dict[object, int] = {}
    indices = [index_of.setdefault(value, len(index_of)) for value in values]
    table = _Writer()
    for value in index_of:
        table.text(_entry_bytes(value, value_type))
    header.uint(len(index_of))
    _write_section(header, sections, bytes(table.data))
    _write_ints(header, sections, np.array(indices, dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# gathering the columns of the points


@dataclass(slots=True)
class _RawColumn:
    """The values one field has, and which points have them (None: every point)."""

    points: list[int] | None
    values: list


_TYPE_OF = {float: _FLOAT, int: _INT, bool: _BOOL, str: _STR}


def _value_type(value: object) -> int:
    """The type tag of a value (subclasses by their base: bool before int)."""
    exact = _TYPE_OF.get(type(value))
    if exact is not None:
        return exact
    for base, tag in ((bool, _BOOL), (int, _INT), (float, _FLOAT), (str, _STR)):
        if isinstance(value, base):
            return tag
    raise TypeError(f"field value {value!r} is a {type(value).__name__}, not float, int, bool or str")


def _as_times(time_ns: Sequence[int] | np.ndarray) -> np.ndarray:
    """The times as an int64 array; refuses floats and values outside int64."""
    array = np.asarray(time_ns)
    if array.ndim != 1:
        raise ValueError(f"time_ns must be one-dimensional, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise TypeError(f"time_ns must be int64 integers [ns], got {array.dtype}")
    if array.dtype.kind == "u" and array.size and int(array.max()) > _INT64_MAX:
        raise ValueError("time_ns beyond int64")
    return array.astype(np.int64)


def _gather_columns(fields: Sequence[dict[str, object]]) -> dict[str, _RawColumn]:
    """{name: column} from the points' dicts: one transposition when every point has the same
    fields (a meter), else a walk over every value."""
    if not fields:
        return {}
    names = list(fields[0])
    if names and set(map(len, fields)) == {len(names)}:
        try:
            rows = list(map(operator.itemgetter(*names), fields))
        except KeyError:
            pass
        else:
            values = zip(*rows) if len(names) > 1 else [rows]
            return {name: _RawColumn(None, list(column)) for name, column in zip(names, values)}
    columns: dict[str, _RawColumn] = {}
    for index, point in enumerate(fields):
        for name, value in point.items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = _RawColumn([], [])
            column.points.append(index)
            column.values.append(value)
    return columns


def _split_by_type(values: list) -> tuple[np.ndarray | None, dict[int, list]]:
    """(per-value type tags or None when one type, {type: values of that type})."""
    types = set(map(type, values))
    if len(types) == 1 and next(iter(types)) in _TYPE_OF:
        value_type = _TYPE_OF[next(iter(types))]
        if value_type != _INT or _fits_int64(values):
            return None, {value_type: values}
    tags = [_value_type(value) for value in values]
    if _INT in tags:
        tags = [_BIGINT if tag == _INT and not _INT64_MIN <= value <= _INT64_MAX else tag
                for tag, value in zip(tags, values)]
    tag_array = np.array(tags, dtype=np.uint8)
    groups: dict[int, list] = {}
    for tag, value in zip(tags, values):
        groups.setdefault(tag, []).append(value)
    if len(groups) == 1:
        return None, groups
    return tag_array, dict(sorted(groups.items()))


def _fits_int64(values: list) -> bool:
    return _INT64_MIN <= min(values) and max(values) <= _INT64_MAX


def _write_field(header: _Writer, sections: list[bytes], column: _RawColumn, count: int) -> None:
    """Layout (dense / presence bitmap / per-point tags), then one sub-column per type."""
    value_tags, groups = _split_by_type(column.values)
    if column.points is None and value_tags is None:
        header.byte(_DENSE)
    elif value_tags is None:
        present = np.zeros(count, dtype=bool)
        present[column.points] = True
        header.byte(_BITMAP)
        _write_section(header, sections, np.packbits(present).tobytes())
    else:
        tags = np.full(count, _ABSENT, dtype=np.uint8)
        tags[column.points if column.points is not None else slice(None)] = value_tags
        header.byte(_TAGS)
        _write_section(header, sections, tags.tobytes())
    header.uint(len(groups))
    for value_type, values in groups.items():
        header.byte(value_type)
        _write_values(header, sections, value_type, values)


def _write_values(header: _Writer, sections: list[bytes], value_type: int, values: list) -> None:
    if value_type == _FLOAT:
        _write_floats(header, sections, np.array(values, dtype=np.float64))
    elif value_type in (_INT, _BOOL):
        _write_ints(header, sections, np.array(values, dtype=np.int64))
    else:
        _write_dictionary(header, sections, values, value_type)


# ---------------------------------------------------------------------------------------------
# parsing


@dataclass(slots=True)
class _SubColumn:
    """The values of one type in one field."""

    value_type: int
    ints: _IntStream
    float_encoding: int = _FLOAT64
    float_parameter: float = 1.0
    dictionary: _Section | None = None
    dictionary_size: int = 0  # [entries]


@dataclass(slots=True)
class _Field:
    """A field's descriptor, parsed."""

    layout: int
    presence: _Section | None  # bitmap or tags
    subs: list[_SubColumn]


@dataclass(slots=True)
class _FieldEntry:
    """A field as the header lists it: its descriptor is parsed only when the field is read."""

    descriptor: bytes
    section_start: int  # [bytes] from the section area
    section_size: int  # [bytes] of all its sections


@dataclass(slots=True)
class _Layout:
    """A blob with its header parsed (field descriptors left for when they are read)."""

    count: int
    times: _IntStream
    fields: dict[str, _FieldEntry]
    blob: bytes
    body_start: int  # [bytes] offset of the first section in the blob


def _parse(blob: bytes) -> _Layout:
    """The header of a blob, checked for consistency; no column is decompressed."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise TypeError(f"an hour blob is bytes, not {type(blob).__name__}")
    blob = bytes(blob)
    if not blob:
        raise HourCodecError("empty hour blob")
    if blob[0] != FORMAT_VERSION:
        raise HourCodecError(f"hour blob format version {blob[0]} is unknown (this code reads {FORMAT_VERSION})")
    prefix = _Reader(blob)
    prefix.pos = 1
    raw_size = prefix.bounded(1 << 30, "header size")
    stored_size = prefix.bounded(len(blob), "stored header size")
    stored = prefix.raw(stored_size)
    inflater = zlib.decompressobj()
    data = inflater.decompress(stored, raw_size)
    if len(data) != raw_size or not inflater.eof or inflater.unused_data:
        raise HourCodecError("hour blob header does not decompress to its stated size")
    reader = _HeaderReader(data)
    count = reader.bounded(MAX_POINTS, "point count")
    times = _read_ints(reader, count)
    if times.count != count:
        raise HourCodecError(f"hour blob: {times.count} times for {count} points")
    fields: dict[str, _FieldEntry] = {}
    for _ in range(reader.bounded(len(data), "field count")):
        name = reader.text().decode("utf-8", "surrogatepass")
        if name in fields:
            raise HourCodecError(f"hour blob: field {name!r} twice")
        section_size = reader.uint()
        fields[name] = _FieldEntry(reader.text(), reader.section_end, section_size)
        reader.section_end += section_size
    if reader.pos != len(data):
        raise HourCodecError("hour blob header has trailing bytes")
    if prefix.pos + reader.section_end != len(blob):
        raise HourCodecError(f"hour blob is {len(blob)} bytes, its header describes "
                             f"{prefix.pos + reader.section_end}")
    return _Layout(count, times, fields, blob, prefix.pos)


def _field(layout: _Layout, name: str) -> _Field | None:
    """The parsed descriptor of a field (None if no point has it)."""
    entry = layout.fields.get(name)
    if entry is None:
        return None
    reader = _HeaderReader(entry.descriptor, entry.section_start)
    field = _read_field(reader, layout.count)
    if reader.pos != len(entry.descriptor) or reader.section_end != entry.section_start + entry.section_size:
        raise HourCodecError(f"hour blob: the descriptor of field {name!r} does not match its size")
    return field


def _read_field(reader: _HeaderReader, count: int) -> _Field:
    layout = reader.byte()
    if layout == _DENSE:
        presence = None
    elif layout == _BITMAP:
        presence = reader.section((count + 7) // 8)
    elif layout == _TAGS:
        presence = reader.section(count)
    else:
        raise HourCodecError(f"hour blob: unknown field layout {layout}")
    sub_count = reader.bounded(_BIGINT, "type count")
    if sub_count == 0 or (layout != _TAGS and sub_count != 1):
        raise HourCodecError(f"hour blob: {sub_count} value types in layout {layout}")
    subs = [_read_sub(reader, count) for _ in range(sub_count)]
    if len({sub.value_type for sub in subs}) != sub_count:
        raise HourCodecError("hour blob: a value type twice in one field")
    if layout == _DENSE and subs[0].ints.count != count:
        raise HourCodecError(f"hour blob: {subs[0].ints.count} values for {count} points")
    return _Field(layout, presence, subs)


def _read_sub(reader: _HeaderReader, count: int) -> _SubColumn:
    value_type = reader.byte()
    if value_type == _FLOAT:
        encoding = reader.byte()
        parameter = 1.0 if encoding == _FLOAT64 else reader.f64()
        if encoding > _MULTIPLIED:
            raise HourCodecError(f"hour blob: unknown float encoding {encoding}")
        return _SubColumn(value_type, _read_ints(reader, count), encoding, parameter)
    if value_type in (_INT, _BOOL):
        return _SubColumn(value_type, _read_ints(reader, count))
    if value_type in (_STR, _BIGINT):
        entries = reader.bounded(count, "dictionary size")
        dictionary = reader.section(None)
        ints = _read_ints(reader, count)
        return _SubColumn(value_type, ints, dictionary=dictionary, dictionary_size=entries)
    raise HourCodecError(f"hour blob: unknown value type {value_type}")


# ---------------------------------------------------------------------------------------------
# decoding values


def _where_types(field: _Field, layout: _Layout) -> dict[int, np.ndarray | None]:
    """{value type: indices of the points holding it (None: all)}, checked against the counts."""
    if field.layout == _DENSE:
        return {field.subs[0].value_type: None}
    raw = _section_bytes(field.presence, layout)
    if field.layout == _BITMAP:
        present = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=layout.count).astype(bool)
        where = {field.subs[0].value_type: np.flatnonzero(present)}
    else:
        tags = np.frombuffer(raw, dtype=np.uint8)
        where = {sub.value_type: np.flatnonzero(tags == sub.value_type) for sub in field.subs}
        if sum(len(points) for points in where.values()) != np.count_nonzero(tags):
            raise HourCodecError("hour blob: a point tagged with a type its field lacks")
    for sub in field.subs:
        if len(where[sub.value_type]) != sub.ints.count:
            raise HourCodecError("hour blob: a column's value count differs from its presence")
    return where


def _sub_array(sub: _SubColumn, layout: _Layout) -> np.ndarray:
    """float64 of a float column, int64 of an int/bool/dictionary-index column."""
    ints = _int_values(sub.ints, layout)
    if sub.value_type == _FLOAT:
        return _float_values(sub.float_encoding, sub.float_parameter, ints)
    return ints


def _dictionary(sub: _SubColumn, layout: _Layout) -> list:
    reader = _Reader(_section_bytes(sub.dictionary, layout))
    table = [_entry_value(reader.text(), sub.value_type) for _ in range(sub.dictionary_size)]
    if reader.pos != len(reader.data):
        raise HourCodecError("hour blob: dictionary has trailing bytes")
    return table


def _python_values(sub: _SubColumn, layout: _Layout) -> list:
    """The values of a sub-column as Python objects of their type."""
    array = _sub_array(sub, layout)
    if sub.value_type == _BOOL:
        return (array != 0).tolist()
    if sub.value_type in (_FLOAT, _INT):
        return array.tolist()
    table = _dictionary(sub, layout)
    if len(array) and (array.min() < 0 or array.max() >= len(table)):
        raise HourCodecError("hour blob: dictionary index out of range")
    return [table[index] for index in array.tolist()]


def _points(layout: _Layout) -> list[dict[str, object]]:
    """One dict per point: dense fields zipped together, the others set point by point."""
    dense_names: list[str] = []
    dense_values: list[list] = []
    sparse: list[tuple[str, list[int], list]] = []
    for name in layout.fields:
        field = _field(layout, name)
        where = _where_types(field, layout)
        for sub in field.subs:
            values = _python_values(sub, layout)
            points = where[sub.value_type]
            if points is None:
                dense_names.append(name)
                dense_values.append(values)
            else:
                sparse.append((name, points.tolist(), values))
    if dense_names:
        dicts = [dict(zip(dense_names, row)) for row in zip(*dense_values)]
    else:
        dicts = [{} for _ in range(layout.count)]
    for name, points, values in sparse:
        for index, value in zip(points, values):
            dicts[index][name] = value
    return dicts


def _numeric_column(field: _Field | None, layout: _Layout) -> np.ndarray:
    """float64 view of one field: NaN where a point lacks it or holds a bool or a string."""
    out = np.full(layout.count, np.nan)
    if field is None:
        return out
    numeric = [sub for sub in field.subs if sub.value_type in _NUMERIC_TYPES]
    if not numeric:
        return out
    if field.layout == _DENSE:  # every point holds this one numeric type
        return _numeric_values(numeric[0], layout)
    where = _where_types(field, layout)
    for sub in numeric:
        out[where[sub.value_type]] = _numeric_values(sub, layout)
    return out


def _numeric_values(sub: _SubColumn, layout: _Layout) -> np.ndarray:
    """A new float64 array of a float, int or big int sub-column."""
    if sub.value_type == _BIGINT:
        return np.array([_as_float(value) for value in _python_values(sub, layout)], dtype=np.float64)
    return _sub_array(sub, layout).astype(np.float64, copy=False)  # always a fresh array


def _as_float(value: int) -> float:
    """A big int as float64; NaN beyond its range."""
    try:
        return float(value)
    except OverflowError:
        return float("nan")
