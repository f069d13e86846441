"""Fuzz tests of the site file (issue 14): `parse_site` / `load_site` return a Site or raise
SiteError, nothing else, and never hang.

Inputs: mutations of the shipped example (a key deleted, a value replaced by a TOML value of
another type, huge, empty or a very long string, a key added, random bytes inserted, the file
truncated), documents built from the site's own vocabulary of sections and keys (so that they
get through TOML and the field checks to the checks between sections and to the lenient
site those run on when a field is wrong), and random TOML documents and text.

Every problem of a SiteError is one line naming the file and stays short (a huge value is
not echoed whole). A Site that is returned keeps its promises to the code that uses it: its
time zone opens, its opening ranges make ordered windows, every meter's line key and every
warning can be computed.

The default run is short, for CI; `WATTELIER_FUZZ_EXAMPLES=5000` runs each test that many
times. `--hypothesis-show-statistics` shows how the cases ended (events "outcome: ...").
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import time
import tomllib
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from devices.calendar import opening_windows
from devices.site import (SECRET_KEYS, Controller, EmissionFactor, InfluxDB, JournalSettings,
                          Machine, Member, Meter, OpeningHours, Service, Site, SiteError,
                          SiteInfo, Tariff, example_site_path, load_site, parse_site,
                          site_warnings)

EXAMPLES = int(os.environ.get("WATTELIER_FUZZ_EXAMPLES", 200))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
EXAMPLE_TEXT = example_site_path().read_text(encoding="utf-8")
EXAMPLE_DATA = tomllib.loads(EXAMPLE_TEXT)
SOURCE = "fuzz.toml"
MAX_SECONDS = 10.0  # far above any real parse (milliseconds): a case this slow is a hang
MAX_PROBLEM_CHARS = 1000
WEEK_S = 7 * 86400.0
T0 = 1_773_133_200.0  # 2026-03-10T09:00:00Z


# ---------------------------------------------------------------------------------------------
# TOML text from Python values (every value inline, so any nesting can be written)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def toml_document(data: dict) -> str:
    return "".join(f"{toml_value(str(k))} = {toml_value(v)}\n" for k, v in data.items())


# ---------------------------------------------------------------------------------------------
# Strategies

keys = st.one_of(st.sampled_from(["site", "name", "model", "feeds", "machine", "kind", "x", "", "a.b",
                                  "password", "thresholds", "monday"]),
                 st.text(max_size=12))
scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "Europe/Paris", "08:30-12:30", "12:30-08:30", "24:00-08:00", "tcp", "rtu",
                     "None", "opc.tcp://h:4840", "http://u:p@h:8086", "site", "router-1", "generic"]),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, dt.timezone.utc])),
    st.times(),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(keys, inner, max_size=4), max_leaves=12)
odd_values = st.one_of(
    values,
    st.sampled_from(["", 0, -1, 10**19, 10**400, 1e308, -1e308, float("inf"), float("nan"), -0.0,
                     [], {}, [[]], {"": {}}]),
    st.integers(min_value=1_000, max_value=200_000).map(lambda n: "é" * n),  # a very long string
    st.integers(min_value=1_000, max_value=20_000).map(lambda n: list(range(n))),
    st.integers(min_value=100, max_value=3_000).map(lambda n: {f"k{i}": i for i in range(n)}),
)


def _paths(data: Any, loc: tuple = ()) -> list[tuple]:
    """Every key path in parsed TOML (dict keys and list indices)."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            found.append(loc + (key,))
            found.extend(_paths(value, loc + (key,)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.append(loc + (i,))
            found.extend(_paths(value, loc + (i,)))
    return found


def _get(data: Any, loc: tuple) -> Any:
    for part in loc:
        data = data[part]
    return data


EXAMPLE_PATHS = _paths(EXAMPLE_DATA)
TABLE_PATHS = [()] + [p for p in EXAMPLE_PATHS if isinstance(_get(EXAMPLE_DATA, p), dict)]


@st.composite
def mutated_examples(draw) -> dict:
    """The example's data with one to four mutations."""
    data = copy.deepcopy(EXAMPLE_DATA)
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["delete", "replace", "add"]))
        if operation == "add":
            table = draw(st.sampled_from(TABLE_PATHS))
            parent = _get(data, table) if _exists(data, table) else None
            if isinstance(parent, dict):
                parent[draw(keys)] = draw(odd_values)
            continue
        loc = draw(st.sampled_from(EXAMPLE_PATHS))
        if not _exists(data, loc):
            continue
        parent = _get(data, loc[:-1])
        if operation == "delete":
            del parent[loc[-1]]
        else:
            parent[loc[-1]] = draw(odd_values)
    return data


def _exists(data: Any, loc: tuple) -> bool:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return False
    return True


MODELS = {"site": SiteInfo, "opening_hours": OpeningHours, "journal": JournalSettings, "influxdb": InfluxDB}
SECTIONS = {"machines": Machine, "services": Service, "meters": Meter, "controllers": Controller,
            "members": Member, "tariffs": Tariff, "emission_factors": EmissionFactor}
FIELD_VALUES = {  # plausible values per key, mixed with odd ones
    "model": ["eastron-sdm630", "abb-b23", "nope"], "feeds": ["site", "m1", "s1", "nope"],
    "machine": ["m1", "nope"], "node_map": ["generic", "umati-machinetool", "nope"],
    "endpoint": ["opc.tcp://127.0.0.1:4840", "http://x", "opc.tcp://u:p@h:1"],
    "transport": ["tcp", "rtu", "rtu_over_tcp", "udp"], "host": ["127.0.0.1", ""],
    "serial_port": ["/dev/ttyUSB0"], "serves": [["m1"], ["nope"], []],
    "thresholds": [{"standby_w": 1.0, "idle_w": 2.0, "processing_w": 3.0}, {"standby_w": 1.0},
                   {"standby_w": 5.0, "idle_w": 2.0, "processing_w": 1e9},
                   {"standby_w": 1.0, "idle_w": 2.0, "processing_w": 1e9}],
    "security_policy": ["None", "Basic256Sha256"], "security_mode": ["None", "Sign"],
    "timezone": ["Europe/Paris", "UTC", "Mars/Olympus", "x" * 300],
    "monday": [["08:00-12:00"], ["12:00-08:00"], ["08:00-12:00", "11:00-13:00"], ["00:00-24:00"],
               ["13:00-14:00", "08:00-12:00", "12:00-13:00"], []],
    "closed_dates": [[dt.date(2026, 3, 10)], []],
    "url": ["http://127.0.0.1:8086", "http://u:p@h", "https://h/?p=1", "ftp://h"],
    "kg_co2e_per_kwh": [0.05, 52.0, 1.5, -1.0], "rated_power_w": [100.0, 0.0, -5.0],
    "overflow": ["drop_oldest", "reject_new", "keep_all"], "unit_id": [1, 2, 0, 300],
    "port": [502, 15022], "username": ["u"], "password_env": ["P"], "user_certificate": ["c.pem"],
}
TEMPLATES = {  # a valid table of each kind, which the documents below then spoil a little
    "site": {"name": "W", "timezone": "Europe/Paris"}, "opening_hours": {"monday": ["08:00-12:00"]},
    "journal": {"max_points": 1_000_000}, "influxdb": {"url": "http://127.0.0.1:8086"},
    "machines": {"kind": "k", "rated_power_w": 1000.0}, "services": {"serves": ["m1"]},
    "meters": {"model": "abb-b23", "feeds": "m1", "host": "127.0.0.1"},
    "controllers": {"machine": "m1", "endpoint": "opc.tcp://127.0.0.1:4840", "node_map": "umati-machinetool",
                    "security_policy": "None", "allow_insecure": True},
    "members": {"name": "A"}, "tariffs": {"price_per_kwh": 0.2},
    "emission_factors": {"kg_co2e_per_kwh": 0.05, "source": "s", "vintage": "2024",
                         "zone": "France continentale"},
}
ODD_NAMES = st.sampled_from(["Bad Name", "x" * 70, "site", "", "a\nb", "m1", "s1"]) | keys
NAMES = {"machines": ["m2"], "services": ["s1"]}  # the others: any of m1, m2, s1
RARELY = st.integers(1, 10).map(lambda n: n == 5)  # about one draw in ten


@st.composite
def spoiled_table(draw, kind: str, model) -> dict:
    """The template of `kind` with none to three keys dropped, set or added."""
    table = copy.deepcopy(TEMPLATES[kind])
    for _ in range(draw(st.integers(1, 3)) if draw(RARELY) else 0):
        operation = draw(st.sampled_from(["drop", "set", "add"]))
        if operation == "drop" and table:
            del table[draw(st.sampled_from(sorted(table)))]
        elif operation == "set":
            key = draw(st.sampled_from(sorted(model.model_fields)))
            table[key] = draw(st.sampled_from(FIELD_VALUES[key]) if key in FIELD_VALUES and draw(st.booleans())
                              else odd_values)
        elif operation == "add":
            table[draw(keys)] = draw(values)
    return table


@st.composite
def vocabulary_documents(draw) -> dict:
    """A document built from the site's sections, entry names and keys, each table valid or
    spoiled a little: most get past TOML and many past the field checks."""
    data: dict[str, Any] = {}
    for section, model in MODELS.items():
        if section == "site" or draw(st.booleans()):
            data[section] = draw(spoiled_table(section, model))
    for section, model in SECTIONS.items():
        names = draw(st.lists(st.sampled_from(NAMES.get(section, ["m1", "m2", "s1"])), max_size=3, unique=True))
        if section == "machines":
            names.insert(0, "m1")  # what the templates refer to
        if draw(RARELY):
            names.append(draw(ODD_NAMES))
        if names:
            data[section] = {name: draw(spoiled_table(section, model)) for name in names}
            if section == "meters":  # one unit id each, on the template's shared line
                for unit_id, entry in enumerate(data[section].values(), start=1):
                    entry.setdefault("unit_id", unit_id)
    if draw(RARELY):
        data[draw(keys)] = draw(values)
    if draw(RARELY):
        data["secrets_file"] = draw(st.sampled_from(["secrets.toml", "", "/nonexistent/s.toml"]))
    return data


# ---------------------------------------------------------------------------------------------
# The property


def _check_outcome(parse, source: str) -> None:
    """`parse()` returns a usable Site or raises SiteError with one-line problems, quickly."""
    started = time.monotonic()
    try:
        site = parse()
    except SiteError as exc:
        took = time.monotonic() - started
        assert exc.problems, "a SiteError lists its problems"
        for problem in exc.problems:
            assert isinstance(problem, str) and problem.startswith(f"{source}: "), problem
            assert "\n" not in problem and len(problem) <= MAX_PROBLEM_CHARS, problem[:2000]
            assert not any(f"{k} = " in problem for k in SECRET_KEYS), problem
        event("outcome: SiteError")
        if any(": missing (this key is required)" in p for p in exc.problems):
            event("outcome: SiteError with a missing key (lenient site)")
        if any(k in p for p in exc.problems for k in ("is not a machine", "unknown meter model",
                                                        "unknown node map", "already used by meter",
                                                        "does not end after it starts", "overlaps")):
            event("outcome: SiteError from the checks between sections")
    else:
        took = time.monotonic() - started
        assert isinstance(site, Site)
        event("outcome: Site")
        _use(site)
    assert took < MAX_SECONDS, f"parsing took {took:.1f} s"


def _use(site: Site) -> None:
    """What the rest of wattelier does with a Site must work on any Site parse_site returns."""
    site.tz  # noqa: B018 (opens the time zone)
    for weekday in range(7):
        for opens, closes in site.opening_hours.ranges(weekday):
            assert closes is None or opens < closes
    for opens_s, closes_s in opening_windows(site, T0, T0 + WEEK_S):
        assert T0 <= opens_s < closes_s <= T0 + WEEK_S
    for meter in site.meters.values():
        meter.line_key()
    for warning in site_warnings(site, SOURCE):
        assert warning.startswith(f"{SOURCE}: ") and "\n" not in warning


# ---------------------------------------------------------------------------------------------
# The tests


@FUZZ
@given(mutated_examples())
def test_mutations_of_the_example(data):
    text = toml_document(data)
    _check_outcome(lambda: parse_site(text, SOURCE), SOURCE)


@FUZZ
@given(vocabulary_documents())
def test_documents_from_the_site_vocabulary(data):
    text = toml_document(data)
    _check_outcome(lambda: parse_site(text, SOURCE), SOURCE)


@FUZZ
@given(st.dictionaries(keys, values, max_size=8))
def test_random_toml_documents(data):
    text = toml_document(data)
    _check_outcome(lambda: parse_site(text, SOURCE), SOURCE)


@FUZZ
@given(st.text(max_size=400))
def test_random_text(text):
    _check_outcome(lambda: parse_site(text, SOURCE), SOURCE)


@FUZZ
@given(position=st.integers(0, len(EXAMPLE_TEXT.encode("utf-8"))), noise=st.binary(min_size=1, max_size=16),
       cut=st.none() | st.integers(0, len(EXAMPLE_TEXT.encode("utf-8"))))
def test_random_bytes_inserted_and_truncated_files(tmp_path_factory, position, noise, cut):
    raw = EXAMPLE_TEXT.encode("utf-8")
    raw = raw[:position] + noise + raw[position:]
    if cut is not None:
        raw = raw[:cut]
    path = tmp_path_factory.mktemp("site") / "site.toml"
    path.write_bytes(raw)
    _check_outcome(lambda: load_site(path), str(path))


def test_the_example_itself_and_its_round_trip_through_the_writer():
    # The writer the fuzz tests use keeps the example valid: a failing mutation is the
    # mutation's doing, not the writer's.
    assert parse_site(toml_document(EXAMPLE_DATA), SOURCE) == parse_site(EXAMPLE_TEXT, SOURCE)
