"""A point of the storage schema and its InfluxDB line protocol form.

Line protocol escaping follows the InfluxDB reference ("Line protocol", special characters):
measurement escapes comma and space; tag keys, tag values and field keys escape comma, equals
sign and space; string field values escape double quote and backslash. Newlines cannot be
escaped in names, so they are replaced by a space there; in string field values they are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


def _escape_name(text: str, specials: str) -> str:
    text = text.replace("\\", "\\\\").replace("\n", " ").replace("\r", " ")
    for ch in specials:
        text = text.replace(ch, "\\" + ch)
    return text


def escape_measurement(name: str) -> str:
    return _escape_name(name, ", ")


def escape_key(name: str) -> str:
    """Escape a tag key, tag value or field key."""
    return _escape_name(name, ",= ")


def escape_string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _series_key(measurement: str, tags: dict[str, str]) -> str:
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue  # InfluxDB rejects empty tag values
        parts.append(f"{escape_key(key)}={escape_key(value)}")
    return ",".join(parts)


def format_field_value(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"line protocol cannot carry {value!r}")
        return repr(value)
    return escape_string_field(value)


def to_line(point: Point) -> str:
    """The point as one line of InfluxDB line protocol (nanosecond precision)."""
    fields = ",".join(
        f"{escape_key(k)}={format_field_value(v)}" for k, v in sorted(point.fields.items())
    )
    return f"{point.series_key()} {fields} {point.time_ns}"
