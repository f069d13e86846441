"""Electricity emission factor tables, one TOML data file per table in
`devices/data/emission_factors/`.

A table holds one factor [kg CO2e/kWh] per zone and vintage (the year it describes), each with
the publisher's item name and what was verified about it; `tests/test_emission_factors.py`
validates every file (schema, sources, vintages increasing). The shipped table is ADEME Base
Empreinte, "Electricité – <année> – mix moyen – consommation", France continentale: the factor
ADEME says a Bilan GES must use (not the per-usage ones).

Which vintage a report uses: for a reporting year, the latest vintage not after it
(`FactorTable.for_year`); a year before the table's first vintage is refused (an auditor must
not get a factor of a later year without saying so): give the site's own factor for it.

A site names a table, or gives its own factor, in ``[emission_factors.NAME]``;
`site_factor_problems` holds the rules `wattelier check` applies to such an entry (the model is
`devices.site.EmissionFactor`):

- ``table = "ademe-base-empreinte"``, optional ``vintage`` (one of the table's) and ``zone``
  (one of the table's; default its first, "France continentale"). The site's time zone must be
  one of the zone's (a site in La Réunion cannot take the continental factor). The table gives
  the value and the source: ``kg_co2e_per_kwh``, ``source`` and ``evidence`` are refused.
- without table: ``kg_co2e_per_kwh``, ``source``, ``vintage`` and ``zone`` (Corsica and the
  overseas zones have factors of their own, e.g. ``zone = "Corse"``).
- ``basis = "market"`` (a supplier's factor, GHG Protocol Scope 2 market-based method) needs
  ``evidence``: the contract, guarantees of origin or supplier disclosure it comes from.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from devices.data_files import read_data_file, shown
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, field_validator,
                      model_validator)

DATA_DIR = Path(__file__).parent / "data" / "emission_factors"
DEFAULT_TABLE = "ademe-base-empreinte"
BASES = ("location", "market")
# Above this an electricity factor is no grid's: the most carbon-intensive (coal) emit about 1.
MAX_TABLE_KG_CO2E_PER_KWH = 1.2


class EmissionFactorError(ValueError):
    """A factor table is missing or invalid, or has no factor for what is asked."""


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    return value


Text = Annotated[str, AfterValidator(_text)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableZone(_Model):
    """A zone of a table and the IANA time zones its sites have."""

    zone: Text
    timezones: list[str] = Field(min_length=1)


class TableFactor(_Model):
    """One factor of a table: zone, vintage [year], value [kg CO2e/kWh], the publisher's
    item name, and whether (and where) the value was verified."""

    zone: Text
    vintage: int = Field(ge=1990, le=2100)
    kg_co2e_per_kwh: float
    item: Text
    verified: bool
    verification: Text

    @field_validator("kg_co2e_per_kwh")
    @classmethod
    def _plausible(cls, value: float) -> float:
        if not (math.isfinite(value) and 0 <= value <= MAX_TABLE_KG_CO2E_PER_KWH):
            raise ValueError(f"must be 0 to {MAX_TABLE_KG_CO2E_PER_KWH} kg CO2e/kWh, got {value}")
        return value


class FactorTable(_Model):
    """A versioned table of electricity emission factors (one data file)."""

    table: Text
    publisher: Text
    title: Text
    basis: Literal["location"]
    unit: Literal["kg CO2e/kWh"]
    sources: list[Text] = Field(min_length=1)
    notes: str = ""
    zones: list[TableZone] = Field(min_length=1)
    factors: list[TableFactor] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "FactorTable":
        names = [z.zone for z in self.zones]
        if len(set(names)) != len(names):
            raise ValueError("a zone is listed twice in zones")
        last: dict[str, int] = {}
        for i, factor in enumerate(self.factors):
            if factor.zone not in names:
                raise ValueError(f"factors.{i}: zone {factor.zone!r} is not in zones ({', '.join(names)})")
            if factor.zone in last and not factor.vintage > last[factor.zone]:
                raise ValueError(f"factors.{i}: vintage {factor.vintage} of {factor.zone!r} must come "
                                 f"after {last[factor.zone]} (vintages increase, each once)")
            last[factor.zone] = factor.vintage
        for zone in names:
            if zone not in last:
                raise ValueError(f"zone {zone!r} has no factor")
        return self

    @property
    def default_zone(self) -> str:
        """The zone a site gets when it names none: the first listed."""
        return self.zones[0].zone

    def zone(self, name: str) -> TableZone | None:
        return next((z for z in self.zones if z.zone == name), None)

    def of_zone(self, zone: str) -> list[TableFactor]:
        """The zone's factors, oldest vintage first."""
        return [f for f in self.factors if f.zone == zone]

    def vintage(self, zone: str, vintage: int | str) -> TableFactor:
        """The zone's factor of one vintage."""
        for factor in self.of_zone(zone):
            if str(factor.vintage) == str(vintage):
                return factor
        known = ", ".join(str(f.vintage) for f in self.of_zone(zone))
        raise EmissionFactorError(f"table {self.table!r} has no vintage {shown(vintage)} for {shown(zone)}; "
                                  f"it has: {known}")

    def for_year(self, zone: str, year: int | None) -> TableFactor:
        """The zone's factor for a reporting year: the latest vintage not after it (the latest
        of all when year is None); a year before the first vintage is refused."""
        factors = self.of_zone(zone)
        if not factors:
            raise EmissionFactorError(f"table {self.table!r} has no factor for zone {shown(zone)}")
        if year is None:
            return factors[-1]
        before = [f for f in factors if f.vintage <= year]
        if not before:
            raise EmissionFactorError(
                f"table {self.table!r} has no vintage for {year} or before (its first is "
                f"{factors[0].vintage}, for {zone}): give the site's own factor for {year} in "
                "[emission_factors.NAME] (kg_co2e_per_kwh, source, vintage, zone), or "
                "--emission-factor")
        return before[-1]

    def source_of(self, factor: TableFactor) -> str:
        """The factor's source as a report names it: publisher, table, item and zone."""
        note = "" if factor.verified else "; value not verified against the publisher's data"
        return f"{self.publisher} {self.title.split(',')[0]}, {factor.item}, {factor.zone}{note}"


def available_tables() -> list[str]:
    """Names of the shipped tables (file stems)."""
    return sorted(p.stem for p in DATA_DIR.glob("*.toml"))


@functools.cache
def load_table(name: str) -> FactorTable:
    """Load and validate one shipped table by name."""
    path = DATA_DIR / f"{name}.toml"
    if name not in available_tables():
        raise EmissionFactorError(f"unknown emission factor table {shown(name)}; known: {', '.join(available_tables())}")
    return load_table_file(path)


def load_table_file(path: Path) -> FactorTable:
    """Read and validate a table file; the table's name must be the file's."""
    table = read_data_file(path, FactorTable, EmissionFactorError, "emission factor table")
    if table.table != path.stem:
        raise EmissionFactorError(f"{path}: table = {table.table!r} must equal the file name")
    return table


OWN_FACTOR_KEYS = ("kg_co2e_per_kwh", "source", "vintage", "zone")


def site_factor_problems(name: str, factor: Any, timezone: str | None) -> list[tuple[str, str]]:
    """(key path, message) of what is wrong with a site's [emission_factors.NAME] entry, whose
    other checks (types, blanks) its model made. `factor` has the keys of
    devices.site.EmissionFactor, a missing one None; `timezone` is the site's (None: unknown)."""
    path = f"emission_factors.{name}"
    problems: list[tuple[str, str]] = []
    for key in ("table", "source", "vintage", "zone", "evidence"):
        value = getattr(factor, key)
        if value is not None and not value.strip():
            what = {"source": "say who publishes the factor and which item (e.g. 'ADEME Base Empreinte, "
                              "Electricité - 2025 - mix moyen - consommation')",
                    "evidence": "name the contract or the guarantees of origin"}.get(key, "give its value")
            problems.append((f"{path}.{key}", f"must not be empty or blank: {what}"))
    value = factor.kg_co2e_per_kwh
    if value is not None and not (math.isfinite(value) and value >= 0):
        problems.append((f"{path}.kg_co2e_per_kwh", f"must be a finite number, 0 or more, got {value}"))
    if problems:
        return problems
    own = ("without table, give the site's own factor: kg_co2e_per_kwh, source, vintage and "
           "zone (e.g. zone = \"Corse\" with ADEME's factor for Corsica)")
    if factor.table is not None:
        if factor.table not in available_tables():
            return [(f"{path}.table", f"unknown emission factor table {shown(factor.table)}; known: "
                     + ", ".join(available_tables()))]
        table = load_table(factor.table)
        for key in ("kg_co2e_per_kwh", "source", "evidence"):
            if getattr(factor, key) is not None:
                problems.append((f"{path}.{key}", f"table {table.table!r} gives the value and its source: "
                                 f"remove {key}, or remove table to give the site's own factor"))
        if factor.basis != table.basis:
            problems.append((f"{path}.basis", f"table {table.table!r} is {table.basis}-based (the grid's "
                             "average mix); a market-based factor is the supplier's: give kg_co2e_per_kwh, "
                             "source, vintage, zone and evidence without table"))
        zone_name = factor.zone if factor.zone is not None else table.default_zone
        zone = table.zone(zone_name)
        if zone is None:
            problems.append((f"{path}.zone", f"table {table.table!r} has no factor for zone {shown(zone_name)} "
                             f"(it has: {', '.join(z.zone for z in table.zones)}); {own}"))
            return problems
        if timezone is not None and timezone not in zone.timezones:
            problems.append((f"{path}.zone", f"the site's time zone {timezone!r} is not in {zone.zone} "
                             f"(time zone {', '.join(zone.timezones)}), where table {table.table!r} "
                             f"applies; {own}"))
        if factor.vintage is not None:
            vintages = [str(f.vintage) for f in table.of_zone(zone.zone)]
            if factor.vintage not in vintages:
                problems.append((f"{path}.vintage", f"table {table.table!r} has no vintage "
                                 f"{shown(factor.vintage)} for {zone.zone} (it has: {', '.join(vintages)}); "
                                 "leave vintage out to take the latest not after the reporting year"))
        return problems
    for key in OWN_FACTOR_KEYS:
        if getattr(factor, key) is None:
            problems.append((f"{path}.{key}", f"missing: {own}, or set table = {DEFAULT_TABLE!r}"))
    if factor.basis == "market" and factor.evidence is None:
        problems.append((f"{path}.evidence", "missing: a market-based factor needs its evidence, the "
                         "supplier contract, guarantees of origin or supplier disclosure it comes from "
                         "(e.g. evidence = \"contract 2026-014, guarantees of origin cancelled for 2026\")"))
    if factor.basis == "location" and factor.evidence is not None:
        problems.append((f"{path}.evidence", "evidence is for a supplier's (market-based) factor: set "
                         "basis = \"market\", or remove evidence"))
    return problems


def default_zone_problem(timezone: str) -> str | None:
    """Why the default table cannot serve a site of this time zone that gives no location-based
    factor of its own (None: it can)."""
    table = load_table(DEFAULT_TABLE)
    zone = table.zone(table.default_zone)
    if timezone in zone.timezones:
        return None
    return (f"the site's time zone {timezone!r} is outside {zone.zone}, where the default factors "
            f"({table.publisher} {table.title.split(',')[0]}) apply: add [emission_factors.location] with "
            "the factor of the site's grid (kg_co2e_per_kwh, source, vintage, zone)")
