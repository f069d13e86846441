"""A point of the storage schema and its InfluxDB line protocol form.

Line protocol escaping follows the InfluxDB reference ("Line protocol", special characters) as
InfluxDB's own parser reads it (measured against InfluxDB 1.6.7, whose parser 1.8 and 2.x share):

- measurement: comma and space are escaped with a backslash; a measurement never starts with
  '#', which makes the line a comment that InfluxDB skips (devices.vocabulary's names do not,
  and escaping one is refused);
- tag keys, tag values and field keys: comma, equals sign and space are escaped; a backslash
  is written as it is (the parser only un-escapes the three specials);
- string field values: double quote and backslash are escaped; newlines are kept.

What line protocol cannot carry is normalised, the same way in the journal and in InfluxDB:
a newline, carriage return or tab in a name or tag value becomes a space, and backslashes at
the end of a name or tag value are removed (the parser would read them as escaping the
separator). Empty tag values are left out (InfluxDB refuses them).
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass

import numpy as np

FieldValue = float | int | str | bool


@dataclass(frozen=True, slots=True)
class Point:
    """One reading or result.

    measurement: a name from devices.vocabulary (meter, cnc, ...).
    tags: tag key -> value (site, machine, meter, member...).
    fields: field name -> value; physical quantities are floats.
    time_ns: edge timestamp, nanoseconds since the Unix epoch (UTC).
    """

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time_ns: int

    def series_key(self) -> str:
        """The series identity: measurement and sorted tags, in line protocol form."""
        return _series_key(self.measurement, self.tags)


_NAME_WHITESPACE = str.maketrans({"\n": " ", "\r": " ", "\t": " "})


def clean_name(text: str) -> str:
    """A name or tag value as line protocol can carry it (see the module docstring)."""
    return text.translate(_NAME_WHITESPACE).rstrip("\\")


def _escape(text: str, specials: str) -> str:
    text = clean_name(text)
    for ch in specials:
        if ch in text:
            text = text.replace(ch, "\\" + ch)
    return text


@functools.lru_cache(maxsize=4096)
def escape_measurement(name: str) -> str:
    """Escape a measurement (cached); ValueError for one line protocol would read as a comment."""
    if clean_name(name).startswith("#"):
        raise ValueError(f"measurement {name!r}: a line starting with '#' is a comment to InfluxDB")
    return _escape(name, ", ")


@functools.lru_cache(maxsize=4096)
def escape_key(name: str) -> str:
    """Escape a tag key, tag value or field key (cached: the same few names recur)."""
    return _escape(name, ",= ")


def escape_string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _series_key(measurement: str, tags: dict[str, str]) -> str:
    return _series_key_of(measurement, tuple(sorted(tags.items())))


@functools.lru_cache(maxsize=4096)
def _series_key_of(measurement: str, sorted_tags: tuple[tuple[str, str], ...]) -> str:
    """Cached: a site has few series, and every point of one carries the same key."""
    parts = [escape_measurement(measurement)]
    for key, value in sorted_tags:
        if clean_name(value) == "":
            continue  # InfluxDB refuses empty tag values
        parts.append(f"{escape_key(key)}={escape_key(value)}")
    return ",".join(parts)


def format_field_value(value: FieldValue) -> str:
    if type(value) is float and math.isfinite(value):  # the common case first
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"line protocol cannot carry {value!r}")
        return repr(value)
    return escape_string_field(value)


_FIELD_ORDERS: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}


def _field_order(keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(key, 'escaped key=') in sorted order for a field set with these keys: found once per
    set of keys (a store writes few distinct ones), kept for up to 10 000 sets."""
    order = _FIELD_ORDERS.get(keys)
    if order is None:
        listed = []
        for key in sorted(keys):
            escaped = escape_key(key)
            if not escaped:
                raise ValueError(f"field key {key!r} is empty in line protocol")
            listed.append((key, escaped + "="))
        order = tuple(listed)
        if len(_FIELD_ORDERS) < 10_000:
            _FIELD_ORDERS[keys] = order
    return order


def fields_to_line(fields: dict[str, FieldValue]) -> str:
    """The field set of a line (keys sorted); raises ValueError when line protocol cannot
    carry it (no field, an empty key, a NaN or infinite value)."""
    if not fields:
        raise ValueError("a point needs at least one field")
    parts = []
    for key, prefix in _field_order(tuple(fields)):
        value = fields[key]
        if type(value) is float and value - value == 0.0:  # the common case: a finite float
            parts.append(prefix + repr(value))
        else:
            parts.append(prefix + format_field_value(value))
    return ",".join(parts)


_FLOAT = r"-?(?:\d+\.\d+(?:e[-+]?\d+)?|\d+e[-+]?\d+)"
_PLAIN_FLOAT_FIELDS = re.compile(r'\{"[A-Za-z0-9_]+":' + _FLOAT + r'(?:,"[A-Za-z0-9_]+":' + _FLOAT + r")*\}")


def json_fields_to_line(text: str) -> str:
    """The field set of a line from the journal's JSON text of the fields.

    Fast path for the common case, fields that are all floats with plain names: `json.dumps`
    writes a float as `repr` does, which is also its line protocol form, so the JSON text only
    loses its braces and quotes. Anything else goes through `fields_to_line`.
    """
    if _PLAIN_FLOAT_FIELDS.fullmatch(text):
        return text[1:-1].replace('"', "").replace(":", "=")
    return fields_to_line(json.loads(text))


def float_lines(prefix: str, time_ns: np.ndarray, columns: dict[str, np.ndarray]) -> list[str]:
    """The lines of points whose every field is a finite float, from columns (a packed meter
    hour): `prefix` (the series key), the field set as fields_to_line writes it (keys in
    order, values as repr), the time [ns]. One pass per column, no dict per point."""
    if not columns:
        raise ValueError("a point needs at least one field")
    texts = []
    for k, (key, head) in enumerate(_field_order(tuple(columns))):
        head = ("," if k else " ") + head
        texts.append([head + text for text in map(repr, columns[key].tolist())])
    times = [f" {t}" for t in np.asarray(time_ns, dtype=np.int64).tolist()]
    return ["".join(parts) for parts in zip([prefix] * len(times), *texts, times)]


def to_line(point: Point) -> str:
    """The point as one line of InfluxDB line protocol (nanosecond precision)."""
    return f"{point.series_key()} {fields_to_line(point.fields)} {point.time_ns}"
