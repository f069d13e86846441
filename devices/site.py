"""The site inventory: one TOML file describes a workshop.

`load_site(path)` parses and validates the file and returns a `Site`, or raises `SiteError`
whose `problems` each name the file, the key path and what is wrong, e.g.
``site.toml: meters.router-1.unit_id: must be 1..247, got 0``.

Secrets never live in the file: a password or token is named by an environment variable
(`password_env`, `token_env`) or read from a secrets file given by path (`secrets_file`); a URL
holding credentials (`http://user:pass@host`) is refused (`url_credentials_problem`).

`site_warnings(site, source)` lists what is possible but implausible (an emission factor of
52 kg CO2e/kWh, a threshold above the rated power): `wattelier check` prints them and still
passes.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
import urllib.parse
import tomllib
import zoneinfo
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from devices.data_files import shown  # noqa: F401  (site's messages cut long values; others import it from here)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
HOURS_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
SECRET_KEYS = {"password", "token", "secret", "api_key", "apikey", "passwd"}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
TIME_ZONE_RE = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+){0,3}$")
MAX_TIME_ZONE_CHARS = 64  # the longest IANA name has 32 characters
URL_SECRET_PARAMETERS = {"u", "p"} | SECRET_KEYS  # InfluxDB 1.x reads u= and p= from the query
USERINFO_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://)?[^/?#]*@")  # user[:password]@ before the host
# Above this an electricity emission factor is implausible: the most carbon-intensive grids
# (coal-fired) emit about 1 kg CO2e/kWh over their life cycle.
MAX_PLAUSIBLE_KG_CO2E_PER_KWH = 1.2
INFLUX_SECRET_HINT = ("set the user in [influxdb] username and the password or token in the "
                      "environment variable named by token_env (default WATTELIER_INFLUX_TOKEN) "
                      "or as influx_token in the secrets file")
FABMANAGER_SECRET_HINT = ("put the Open API token in the environment variable named by token_env "
                          "(default WATTELIER_FABMANAGER_TOKEN) or as fabmanager_token in the "
                          "secrets file")


class SiteError(Exception):
    """The site file cannot be used; `problems` lists every mistake found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _between(low: float, high: float):
    def check(value: float) -> float:
        if not low <= value <= high:
            lo = int(low) if float(low).is_integer() else low
            hi = int(high) if float(high).is_integer() else high
            raise ValueError(f"must be {lo}..{hi}, got {shown(value)}")
        return value

    return AfterValidator(check)


def _positive(value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"must be a finite number greater than 0, got {value}")
    return value


def _non_negative(value: float) -> float:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"must be a finite number, 0 or more, got {value}")
    return value


def _time_zone(value: str) -> str:
    """An IANA time zone name that zoneinfo can load. Checked for shape and length first:
    zoneinfo turns the name into a file path, and a long one raises OSError (name too long)."""
    unknown = f"unknown time zone {shown(value)} (use an IANA name such as 'Europe/Paris')"
    if len(value) > MAX_TIME_ZONE_CHARS or not TIME_ZONE_RE.match(value):
        raise ValueError(unknown)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(unknown) from None
    return value


def _hours_range(value: str) -> str:
    match = HOURS_RE.match(value)
    if not match:
        raise ValueError(f"must look like '08:30-12:30', got {shown(value)}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValueError(f"not a time of day: {shown(value)}")
    return value


Positive = Annotated[float, AfterValidator(_positive)]
NonNegative = Annotated[float, AfterValidator(_non_negative)]
HoursRange = Annotated[str, AfterValidator(_hours_range)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Transport(str, Enum):
    """How a meter is reached (Modbus)."""

    TCP = "tcp"  # Modbus TCP (MBAP framing)
    RTU = "rtu"  # Modbus RTU on a local serial line
    RTU_OVER_TCP = "rtu_over_tcp"  # RTU frames through a transparent TCP gateway


class SecurityPolicy(str, Enum):
    NONE = "None"
    BASIC256SHA256 = "Basic256Sha256"


class SecurityMode(str, Enum):
    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


class SiteInfo(_Model):
    name: str = Field(min_length=1)
    timezone: Annotated[str, AfterValidator(_time_zone)] = "Europe/Paris"
    currency: str = "EUR"


class OpeningHours(_Model):
    """Opening hours per weekday in the site's time zone; a day not listed is closed."""

    monday: list[HoursRange] = []
    tuesday: list[HoursRange] = []
    wednesday: list[HoursRange] = []
    thursday: list[HoursRange] = []
    friday: list[HoursRange] = []
    saturday: list[HoursRange] = []
    sunday: list[HoursRange] = []
    closed_dates: list[dt.date] = []

    def ranges(self, weekday: int) -> list[tuple[dt.time, dt.time | None]]:
        """Ranges of a weekday (0 = Monday); an end of 24:00 is None (end of day)."""
        out = []
        for text in getattr(self, WEEKDAYS[weekday]):
            h1, m1, h2, m2 = (int(g) for g in HOURS_RE.match(text).groups())
            out.append((dt.time(h1, m1), None if h2 == 24 else dt.time(h2, m2)))
        return out


class Thresholds(_Model):
    """Power thresholds between states [W]; above standby_w a machine is at least standby."""

    standby_w: NonNegative
    idle_w: NonNegative
    processing_w: NonNegative


class Machine(_Model):
    kind: str = Field(min_length=1)
    label: str = ""
    rated_power_w: Positive
    thresholds: Thresholds | None = None
    fabmanager_id: int | None = None


class Service(_Model):
    """A shared service (dust extraction, compressor) whose energy may be allocated to machines."""

    label: str = ""
    serves: list[str] = []
    rated_power_w: Positive | None = None


class Meter(_Model):
    model: str = Field(min_length=1)
    feeds: str = Field(min_length=1, description="a machine or service name, or 'site'")
    transport: Transport = Transport.TCP
    host: str | None = None
    port: Annotated[int, _between(1, 65535)] = 502
    serial_port: str | None = None
    baudrate: Annotated[int, _between(300, 921600)] = 9600
    parity: str = "N"
    stopbits: Annotated[int, _between(1, 2)] = 1
    bytesize: Annotated[int, _between(5, 8)] = 8
    unit_id: Annotated[int, _between(1, 247)] = 1
    poll_interval_s: Annotated[float, _between(0.1, 3600)] = 1.0
    timeout_s: Annotated[float, _between(0.05, 60)] = 1.0

    def line_key(self) -> str:
        """Identity of the line or gateway this meter shares with others (one owner per line)."""
        if self.transport is Transport.RTU:
            return f"serial:{self.serial_port}"
        return f"{self.transport.value}:{self.host}:{self.port}"


class Controller(_Model):
    """An OPC UA controller (see collector.certs for the certificate folders).

    security_policy, security_mode: Basic256Sha256 with Sign or SignAndEncrypt (default), or
        None only with allow_insecure = true.
    username + password_env (or the site's secrets_file), or user_certificate +
        user_private_key (files): the user the session runs as; neither: anonymous.
    certificate_dir: the collector's certificate, key, trusted/ and rejected/ folders
        (default `wattelier-pki`); trust_dir: the trusted server certificates (default
        certificate_dir/trusted).
    """

    machine: str = Field(min_length=1)
    endpoint: str = Field(min_length=1)
    node_map: str = Field(min_length=1)
    machine_browse_name: str | None = None
    nodes: dict[str, str] = {}
    security_policy: SecurityPolicy = SecurityPolicy.BASIC256SHA256
    security_mode: SecurityMode = SecurityMode.SIGN_AND_ENCRYPT
    allow_insecure: bool = False
    username: str | None = None
    password_env: str | None = None
    user_certificate: str | None = None
    user_private_key: str | None = None
    certificate_dir: str | None = None
    trust_dir: str | None = None
    publishing_interval_s: Annotated[float, _between(0.05, 60)] = 0.5


class Member(_Model):
    name: str = Field(min_length=1)
    email: str | None = None
    fabmanager_user_id: int | None = None


class Tariff(_Model):
    """Flat, or peak/off-peak (heures pleines / heures creuses) price per kWh."""

    price_per_kwh: NonNegative
    offpeak_price_per_kwh: NonNegative | None = None
    offpeak_hours: list[HoursRange] = []


def _basis(value: str) -> str:
    if value not in ("location", "market"):
        raise ValueError(f"must be 'location' (the grid's average mix) or 'market' (a supplier's "
                         f"factor, with evidence), got {shown(value)}")
    return value


class EmissionFactor(_Model):
    """An electricity emission factor: a table's (``table``, optional ``vintage`` and ``zone``)
    or the site's own (kg_co2e_per_kwh [kg CO2e/kWh], source, vintage, zone; basis "market"
    also needs evidence). devices.emission_factors.site_factor_problems holds the rules
    between these keys and refuses a blank text or a negative or non-finite value (checked
    there, not here, so that a wrong value is reported once, not again as missing)."""

    table: str | None = None
    kg_co2e_per_kwh: float | None = None
    basis: Annotated[str, AfterValidator(_basis)] = "location"
    source: str | None = None
    vintage: str | None = None
    zone: str | None = None
    evidence: str | None = None


class InfluxDB(_Model):
    """Where the forwarder sends the journal (optional: without it the journal is the store).

    The token (v2) or password (v1, with `username`) comes from the environment variable named
    by `token_env` (default WATTELIER_INFLUX_TOKEN) or the secrets file, never from here.
    """

    url: str = Field(min_length=1)
    api: Literal["v1", "v2", "auto"] = "auto"
    database: str = Field("wattelier", min_length=1)
    retention_policy: str | None = None
    bucket: str = Field("wattelier", min_length=1)
    org: str = Field("wattelier", min_length=1)
    username: str | None = None
    token_env: str = "WATTELIER_INFLUX_TOKEN"
    verify_tls: bool = True
    timeout_s: Annotated[float, _between(1, 600)] = 30.0
    batch_points: Annotated[int, _between(1, 100_000)] = 10_000
    backoff_max_s: Annotated[float, _between(1, 3600)] = 60.0
    drain_timeout_s: Annotated[float, _between(0, 600)] = 10.0


def _http_url(value: str) -> str:
    credentials = url_credentials_problem(value, FABMANAGER_SECRET_HINT)
    if credentials:
        raise ValueError(credentials)
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"must look like https://fablab.example.org (the Fab-manager address), got {shown(value)}")
    return value.rstrip("/")


class FabManager(_Model):
    """The workshop's Fab-manager, whose Open API gives the machine bookings
    (`GET /open_api/v1/reservations`, see analytics.sessions).

    url: the Fab-manager address (without /open_api). The Open API token comes from the
    environment variable named by `token_env` (default WATTELIER_FABMANAGER_TOKEN) or the
    secrets file (key `fabmanager_token`), never from here. Machines and members are matched
    through `machines.NAME.fabmanager_id` and `members.NAME.fabmanager_user_id`.
    """

    url: Annotated[str, AfterValidator(_http_url)]
    token_env: str = "WATTELIER_FABMANAGER_TOKEN"
    timeout_s: Annotated[float, _between(1, 600)] = 30.0


# What a reading costs on disk in the journal (storage/journal_schema.py, measured by
# benchmarks/journal.py): packed into its hour, about 11 bytes for the example site's meters and
# at most about 60 for noisy float readings; as a row (the current hour, or waiting for an
# unreachable InfluxDB), about 440 bytes.
PACKED_BYTES_PER_POINT = 60
ROW_BYTES_PER_POINT = 440


class JournalSettings(_Model):
    """The local journal. max_points bounds it: at most about PACKED_BYTES_PER_POINT bytes a
    packed reading, so the default 50 000 000 points is at most about 3 GB (0.6 GB for the
    example site's meters), room for a small edge box and a month of 16 meters at 1 Hz;
    readings waiting as rows for an unreachable InfluxDB cost ROW_BYTES_PER_POINT each."""

    path: str = "wattelier-journal.sqlite"
    max_points: Annotated[int, _between(1000, 10**10)] = 50_000_000
    overflow: str = "drop_oldest"
    commit_interval_s: Annotated[float, _between(0.01, 1.0)] = 0.5


class Site(_Model):
    """A whole workshop, as read from its site file."""

    site: SiteInfo
    opening_hours: OpeningHours = OpeningHours()
    machines: dict[str, Machine] = {}
    services: dict[str, Service] = {}
    meters: dict[str, Meter] = {}
    controllers: dict[str, Controller] = {}
    members: dict[str, Member] = {}
    tariffs: dict[str, Tariff] = {}
    emission_factors: dict[str, EmissionFactor] = {}
    journal: JournalSettings = JournalSettings()
    influxdb: InfluxDB | None = None
    fabmanager: FabManager | None = None
    secrets_file: str | None = None
    _folder: Path | None = PrivateAttr(default=None)  # the site file's folder (relative paths)

    @property
    def folder(self) -> Path:
        """The folder relative paths of the site file start from."""
        return self._folder or Path.cwd()

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.site.timezone)

    def meters_of(self, machine: str) -> dict[str, Meter]:
        return {name: m for name, m in self.meters.items() if m.feeds == machine}

    def controller_of(self, machine: str) -> tuple[str, Controller] | None:
        for name, ctl in self.controllers.items():
            if ctl.machine == machine:
                return name, ctl
        return None


# ---------------------------------------------------------------------------------------------
# Loading and error reporting


MAX_PATH_CHARS = 120


def _short(path: str) -> str:
    """A key path for a message, on one line (a quoted TOML key may hold a newline or any
    other character) and cut when a file gives a key a huge name."""
    if not path.isprintable():
        path = "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)
    return path if len(path) <= MAX_PATH_CHARS else path[:MAX_PATH_CHARS] + "..."


def _dotted(loc: tuple[Any, ...]) -> str:
    return _short(".".join(str(part) for part in loc))


_PYDANTIC_MESSAGES = {
    "missing": "missing (this key is required)",
    "extra_forbidden": "unknown key (check the spelling; see the example site)",
}


def _pydantic_problems(error: ValidationError, source: str) -> list[str]:
    problems = []
    for item in error.errors():
        loc = item["loc"]
        message = _PYDANTIC_MESSAGES.get(item["type"], item["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if item["type"] not in _PYDANTIC_MESSAGES and "input" in item and item["type"] != "value_error":
            message = f"{message}, got {shown(item['input'])}"
        problems.append(f"{source}: {_dotted(loc)}: {message}")
    return problems


def _find_secrets(data: Any, loc: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            if str(key).lower() in SECRET_KEYS:
                found.append(loc + (str(key),))
            else:
                found.extend(_find_secrets(value, loc + (str(key),)))
    return found


def url_credentials_problem(url: str, instead: str = INFLUX_SECRET_HINT) -> str | None:
    """What is wrong with a URL that carries credentials (`http://user:pass@host`, or InfluxDB's
    `?u=...&p=...`), None for a URL without. A URL is logged and stored (the journal keys its
    forwarding cursors by it), so a secret in it would leak; `instead` says where it goes.
    The URL itself is never repeated in the message."""
    if USERINFO_RE.match(url.strip()):
        return f"credentials do not belong in the URL (user:password@host): {instead}"
    try:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    except ValueError:  # not a URL at all: the format checks say so
        return None
    found = sorted(key for key in query if key.lower() in URL_SECRET_PARAMETERS)
    if found:
        return (f"credentials do not belong in the URL (query parameter {', '.join(found)}): "
                f"{instead}")
    return None


def _day_problems(day: str, texts: list[str]) -> list[tuple[str, str]]:
    """(key path, problem) of one weekday's opening ranges: a range must end after it starts
    (no range crosses midnight) and the ranges of a day must not overlap."""
    problems = []
    spans: list[tuple[int, int, int]] = []
    for i, text in enumerate(texts):
        match = HOURS_RE.match(text)
        if not match:  # refused by the field's own validation
            continue
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            problems.append((f"opening_hours.{day}.{i}", f"{text!r} does not end after it starts; "
                             "a range cannot cross midnight: split it, e.g. '22:00-24:00' on this "
                             "day and '00:00-06:00' on the next"))
            continue
        spans.append((start, end, i))
    spans.sort()
    reach, widest = -1, -1  # the latest end so far, and the index of its range
    for start, end, i in spans:
        if start < reach:
            problems.append((f"opening_hours.{day}.{i}", f"{texts[i]!r} overlaps {texts[widest]!r}; "
                             "the ranges of a day must not overlap (merge them)"))
        if end > reach:
            reach, widest = end, i
    return problems


def _cross_checks(site: Site, source: str) -> list[str]:
    """Checks that need the whole file: names, references between sections, device files.

    The site may be the lenient one of `_without_invalid`, in which a required value that was
    missing is None: each check of such a value skips None (the missing key is reported).
    """
    from devices import emission_factors, meter_models, node_maps

    problems: list[str] = []

    def bad(path: str, message: str) -> None:
        problems.append(f"{source}: {_short(path)}: {message}")

    for section in ("machines", "services", "meters", "controllers", "members", "tariffs",
                    "emission_factors"):
        for name in getattr(site, section):
            if not NAME_RE.match(name):
                bad(f"{section}.{name}", "names use lower-case letters, digits, '-' and '_' "
                    "(at most 63 characters)")
    for name in site.services:
        if name in site.machines:
            bad(f"services.{name}", "a service cannot have the name of a machine")
    known_models = set(meter_models.available_models())
    for name, meter in site.meters.items():
        path = f"meters.{name}"
        if meter.model is not None and meter.model not in known_models:
            bad(f"{path}.model", f"unknown meter model {shown(meter.model)}; known models: "
                + ", ".join(sorted(known_models)))
        if (meter.feeds is not None and meter.feeds != "site" and meter.feeds not in site.machines
                and meter.feeds not in site.services):
            bad(f"{path}.feeds", f"{shown(meter.feeds)} is not a machine, a service or 'site'")
        if meter.transport is Transport.RTU:
            if not meter.serial_port:
                bad(f"{path}.serial_port", "required when transport = 'rtu'")
        elif not meter.host:
            bad(f"{path}.host", f"required when transport = '{meter.transport.value}'")
        if meter.parity not in ("N", "E", "O"):
            bad(f"{path}.parity", f"must be 'N', 'E' or 'O', got {shown(meter.parity)}")
    seen_units: dict[tuple[str, int], str] = {}
    for name, meter in site.meters.items():
        key = (meter.line_key(), meter.unit_id)
        if key in seen_units:
            bad(f"meters.{name}.unit_id", f"unit id {meter.unit_id} is already used by meter "
                f"{shown(seen_units[key])} on the same line")
        seen_units[key] = name
    known_maps = set(node_maps.available_node_maps())
    for name, ctl in site.controllers.items():
        path = f"controllers.{name}"
        if ctl.machine is not None and ctl.machine not in site.machines:
            bad(f"{path}.machine", f"{shown(ctl.machine)} is not a machine of this site")
        if ctl.endpoint is not None:
            credentials = url_credentials_problem(
                ctl.endpoint, "set username, and the password in the environment variable named "
                "by password_env or in the secrets file")
            if credentials:
                bad(f"{path}.endpoint", credentials)
            elif not ctl.endpoint.startswith("opc.tcp://"):
                bad(f"{path}.endpoint", f"must start with 'opc.tcp://', got {shown(ctl.endpoint)}")
        if ctl.node_map is not None and ctl.node_map not in known_maps:
            bad(f"{path}.node_map", f"unknown node map {shown(ctl.node_map)}; known: "
                + ", ".join(sorted(known_maps)))
        if ctl.node_map == "generic" and not ctl.nodes:
            bad(f"{path}.nodes", "the generic node map needs a nodes table (quantity = node id)")
        if ctl.security_policy is SecurityPolicy.NONE:
            if not ctl.allow_insecure:
                bad(f"{path}.security_policy", "'None' sends everything in clear; set "
                    "allow_insecure = true for this endpoint to accept it")
        elif ctl.security_mode is SecurityMode.NONE:
            bad(f"{path}.security_mode", "must be 'Sign' or 'SignAndEncrypt' with policy "
                f"{ctl.security_policy.value}")
        if ctl.username and not (ctl.password_env or site.secrets_file):
            bad(f"{path}.password_env", "a username needs password_env (an environment variable) "
                "or the site's secrets_file")
        if bool(ctl.user_certificate) != bool(ctl.user_private_key):
            missing = "user_private_key" if ctl.user_certificate else "user_certificate"
            bad(f"{path}.{missing}", "a user certificate needs both user_certificate and "
                "user_private_key (file paths)")
        if ctl.username and ctl.user_certificate:
            bad(f"{path}.user_certificate", "a session has one user: set either username or "
                "user_certificate, not both")
    for name, service in site.services.items():
        for i, target in enumerate(service.serves):
            if target not in site.machines:
                bad(f"services.{name}.serves[{i}]", f"{shown(target)} is not a machine of this site")
    for section, key in (("machines", "fabmanager_id"), ("members", "fabmanager_user_id")):
        owner: dict[int, str] = {}
        for name, entry in getattr(site, section).items():
            value = getattr(entry, key)
            if value is None:
                continue
            if value in owner:
                bad(f"{section}.{name}.{key}", f"Fab-manager id {shown(value)} is already given to "
                    f"{_short(section + '.' + owner[value])}: each id names one {section[:-1]}, or its bookings "
                    "would count twice")
            else:
                owner[value] = name
    for name, machine in site.machines.items():
        th = machine.thresholds
        if th and not th.standby_w <= th.idle_w <= th.processing_w:
            bad(f"machines.{name}.thresholds", "must satisfy standby_w <= idle_w <= processing_w, "
                f"got {th.standby_w} / {th.idle_w} / {th.processing_w}")
    timezone = site.site.timezone
    for name, factor in site.emission_factors.items():
        for path, message in emission_factors.site_factor_problems(name, factor, timezone):
            bad(path, message)
    if timezone is not None and not any(f.basis == "location" for f in site.emission_factors.values()):
        outside = emission_factors.default_zone_problem(timezone)
        if outside:
            bad("emission_factors", outside)
    for name, tariff in site.tariffs.items():
        if tariff.offpeak_hours and tariff.offpeak_price_per_kwh is None:
            bad(f"tariffs.{name}.offpeak_price_per_kwh", "required when offpeak_hours is set")
    for day in WEEKDAYS:
        for path, message in _day_problems(day, getattr(site.opening_hours, day)):
            bad(path, message)
    if site.influxdb is not None:
        url = site.influxdb.url
        credentials = url_credentials_problem(url)
        if credentials:
            bad("influxdb.url", credentials)
        elif not re.match(r"^https?://[^/\s?#]+", url):
            bad("influxdb.url", f"must look like http://host:8086 or https://host, got {shown(url)}")
        elif "?" in url or "#" in url:
            bad("influxdb.url", "must be the server's base address, without ?query or #fragment "
                "(settings have their own keys: database, bucket, org, username)")
    if site.journal.overflow not in ("drop_oldest", "reject_new"):
        bad("journal.overflow", f"must be 'drop_oldest' or 'reject_new', got {shown(site.journal.overflow)}")
    return problems


# The collector's stop takes up to 5 s + drain_timeout_s + 3 s (collector.runtime) and the
# shipped unit (deploy/wattelier-collector.service) kills at TimeoutStopSec=60 s.
MAX_DRAIN_UNDER_UNIT_S = 40.0


def site_warnings(site: Site, source: str = "site.toml") -> list[str]:
    """What a valid site holds that is possible but implausible, one line each (file, key
    path, what is odd, the plausible range): the site is usable, but a value is likely a
    mistake of unit or of digits."""
    warnings = []
    for name, factor in site.emission_factors.items():
        value = factor.kg_co2e_per_kwh
        if value is not None and value > MAX_PLAUSIBLE_KG_CO2E_PER_KWH:
            grams = f"; if that is g CO2e/kWh, write {value / 1000:g}" if value >= 10 else ""
            warnings.append(
                f"{source}: emission_factors.{name}.kg_co2e_per_kwh: {value:g} kg CO2e/kWh is "
                f"implausible for electricity: plausible is 0 to {MAX_PLAUSIBLE_KG_CO2E_PER_KWH:g} "
                f"(the most carbon-intensive grids emit about 1 kg/kWh, France about 0.05){grams}")
    if site.influxdb is not None and site.influxdb.drain_timeout_s > MAX_DRAIN_UNDER_UNIT_S:
        warnings.append(
            f"{source}: influxdb.drain_timeout_s: {site.influxdb.drain_timeout_s:g} s makes a stop "
            f"take longer than the shipped systemd unit allows (it kills after 60 s; a stop takes "
            f"up to 5 s + drain_timeout_s + 3 s): plausible is 0 to {MAX_DRAIN_UNDER_UNIT_S:g} s, or "
            "raise TimeoutStopSec in the unit")
    for name, machine in site.machines.items():
        th = machine.thresholds
        if th is not None and th.processing_w > machine.rated_power_w:
            warnings.append(
                f"{source}: machines.{name}.thresholds.processing_w: {th.processing_w:g} W is above "
                f"the rated power ({machine.rated_power_w:g} W): the machine would never be seen "
                "processing; plausible is below rated_power_w")
    return warnings


_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "machines": Machine, "services": Service, "meters": Meter, "controllers": Controller,
    "members": Member, "tariffs": Tariff, "emission_factors": EmissionFactor,
}


_PLACEHOLDERS: dict[Any, Any] = {str: "missing", float: 1.0, int: 1}


def _at(data: Any, loc: tuple[Any, ...]) -> Any:
    """The value at `loc` in parsed TOML, or None when the path does not lead anywhere."""
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and -len(data) <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def _drop(data: dict, loc: tuple[Any, ...]) -> None:
    """Remove the value at `loc` (defaults apply); an invalid list item removes its list."""
    parent = _at(data, loc[:-1])
    if isinstance(parent, dict):
        parent.pop(loc[-1], None)
    elif isinstance(parent, list) and len(loc) >= 2:
        _drop(data, loc[:-1])


def _owner_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model of the table holding the key at `loc`, for a key of [site] or of a section
    entry such as [meters.NAME]: the tables whose missing keys get placeholders."""
    if len(loc) == 2 and loc[0] == "site":
        return SiteInfo
    if len(loc) == 3 and loc[0] in _SECTION_MODELS:
        return _SECTION_MODELS[loc[0]]
    return None


def _repair(data: dict, error: ValidationError, filled: list[tuple[Any, ...]]) -> None:
    """Make `data` closer to valid: drop each invalid value; give each missing required key
    of [site] or of a section entry a placeholder (listed in `filled`); drop any other table
    that misses a key (all such tables are optional)."""
    for item in error.errors():
        loc = tuple(item["loc"])
        if item["type"] != "missing":
            if loc:
                _drop(data, loc)
            continue
        if loc == ("site",):
            data["site"] = {}
            continue
        model, table = _owner_model(loc), _at(data, loc[:-1])
        field = model.model_fields.get(str(loc[-1])) if model is not None else None
        if field is not None and field.annotation in _PLACEHOLDERS and isinstance(table, dict):
            table[loc[-1]] = _PLACEHOLDERS[field.annotation]
            filled.append(loc)
        elif len(loc) > 1:
            _drop(data, loc[:-1])


def _unfilled(site: Site, filled: list[tuple[Any, ...]]) -> Site:
    """The site with each placeholder of `_repair` set back to None (a missing value)."""
    for loc in filled:
        if len(loc) == 2:
            site = site.model_copy(update={"site": site.site.model_copy(update={loc[1]: None})})
            continue
        section, name, key = loc
        entries = getattr(site, section)
        if name in entries:
            entries[name] = entries[name].model_copy(update={key: None})
    return site


def _without_invalid(data: dict, error: ValidationError, passes: int = 5) -> Site | None:
    """The site with every invalid value removed (defaults apply), for the cross-section checks.

    An entry that misses a required key is kept, that key set to None, so that a machine with
    one mistake still counts as a machine when meters and controllers refer to it, and every
    value it does have is validated (an enum is an enum, a table a model). None when the file
    is too broken for that.
    """
    data = copy.deepcopy(data)
    filled: list[tuple[Any, ...]] = []
    for _ in range(passes):
        _repair(data, error, filled)
        try:
            site = Site.model_validate(data)
        except ValidationError as exc:
            error = exc
            continue
        return _unfilled(site, filled)
    return None


BOM = "\ufeff"
MAX_DEPTH = 8  # a site file nests 4 levels (controllers.NAME.nodes.KEY); deeper is not a site


def _too_deep(data: Any) -> tuple[Any, ...] | None:
    """The key path of a value nested deeper than MAX_DEPTH, None if there is none (found
    without recursion, so that no nesting depth can exhaust the stack)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            return loc
        if isinstance(value, dict):
            stack.extend((v, loc + (k,)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, loc + (i,)) for i, v in enumerate(value))
    return None


def _key_path(problem: str, source: str) -> str | None:
    """The key path a problem line (``SOURCE: KEY.PATH: message``) names, if any."""
    rest = problem[len(source) + 2:] if problem.startswith(source + ": ") else ""
    return rest.split(": ", 1)[0] if ": " in rest else None


def parse_site(text: str, source: str = "site.toml") -> Site:
    """Parse and validate site TOML text; `source` names the file in messages."""
    if text.startswith(BOM):
        raise SiteError([f"{source}: starts with a UTF-8 byte order mark; save it as UTF-8 "
                         "without BOM"])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SiteError([f"{source}: not valid TOML: {exc}"]) from exc
    except RecursionError as exc:
        raise SiteError([f"{source}: arrays or tables nested too deeply to read (a site file "
                         f"nests at most 4 levels)"]) from exc
    deep = _too_deep(data)
    if deep is not None:
        raise SiteError([f"{source}: {_dotted(deep[:4])}...: nested more than {MAX_DEPTH} levels "
                         "deep; a site file nests at most 4 levels (see the example site)"])
    problems = [
        f"{source}: {_dotted(loc)}: secrets never live in the site file; name an environment "
        f"variable ({loc[-1]}_env) or use secrets_file"
        for loc in _find_secrets(data)
    ]
    try:
        site = Site.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc, source)
        lenient = _without_invalid(data, exc)
        if lenient is not None:  # still report the mistakes between sections
            # a key already named (its value was invalid, so the lenient site lacks it) is not
            # named again, as missing
            named = {_key_path(p, source) for p in problems}
            problems += [p for p in _cross_checks(lenient, source)
                         if p not in problems and _key_path(p, source) not in named]
        raise SiteError(problems) from exc
    problems += _cross_checks(site, source)
    if problems:
        raise SiteError(problems)
    return site


def load_site(path: str | Path) -> Site:
    """Read and validate a site file; raise SiteError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SiteError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise SiteError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    site = parse_site(text, str(path))
    site._folder = path.resolve().parent
    return site


def example_site_path() -> Path:
    """The example site shipped with the package."""
    return Path(__file__).parent / "data" / "sites" / "example.toml"
