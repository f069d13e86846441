"""Meter register maps, one TOML data file per model family in `devices/data/meters/`.

Adding a meter model needs no Python: write a file with the model's points (function code,
0-based address, data type, word order, scale, canonical quantity, the datasheet's own name),
at least one known frame and the active-energy accuracy class its datasheet states (or
"unknown", and why); `tests/test_meter_models.py` validates every file.

Accuracy classes (`ACCURACY_CLASSES`) and the relative accuracy each stands for: the limit of
the percentage error of active energy at reference conditions, unity power factor and currents
from the transitional current up to the maximum (lower currents and other conditions allow
more; the standards give the tables).

- IEC 62053-21 (static meters for AC active energy, classes 0.5, 1 and 2 in edition 2.0,
  2020): class 1 = +/-1 %, class 2 = +/-2 %, class 0.5 = +/-0.5 %.
- IEC 62053-22 (classes 0.1S, 0.2S and 0.5S in edition 2.0, 2020): the number without the S,
  0.5S = +/-0.5 %.
- EN 50470-3 (static meters for active energy, class indexes A, B and C; the MID's harmonised
  standard): A = +/-2 %, B = +/-1 %, C = +/-0.5 %.

References
----------
IEC 62053-21:2020 and IEC 62053-22:2020, titles and scope (the classes each covers).
Fuji Electric FAQ 6792 (faq-fa.fujielectric.co.jp/print/faq/6792): "Class N" means about
+/-N % of reading; for an "S" class, the number without the S (0.1S: +/-0.1 %).
Carlo Gavazzi EM24 DIN datasheet (EM24 DIN DS 260315, p. 9, manualshelf.com): "percentage
error limits for class index B", PF = 1: +/-1 % from I_tr to I_max, +/-1.5 % below I_tr.
ABB EQ meters B23/B24 product leaflet (paperzz.com/doc/8305992): "accuracy class B (Cl. 1)
or class C (Cl. 0.5 S)": B stands beside class 1 and C beside class 0.5S.
Directive 2014/32/EU, Annex V (MI-003), point 1 and Table 2: class indices A, B and C and their
maximum permissible errors (legislation.gov.uk/eudr/2014/32/annex/V).
Class A = +/-2 % is not read in a source here (the copy of Table 2 found is garbled); it is
the value the project's issue 15 states, in line with A < B < C above.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Literal

from devices.data_files import read_data_file
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from devices.registers import DATA_TYPES, WORD_ORDERS, decode, encode, register_count
from devices.vocabulary import METER_QUANTITIES

DATA_DIR = Path(__file__).parent / "data" / "meters"
READ_FUNCTIONS = (3, 4)  # read holding registers, read input registers


class MeterModelError(Exception):
    """A meter model file is missing or invalid."""


class MeterPoint(BaseModel):
    """One quantity in a register map. value [unit] = decoded raw value x scale."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantity: str
    name: str = Field(min_length=1, description="the datasheet's name for this register")
    function: Literal[3, 4]
    address: int = Field(ge=0, le=0xFFFF, description="0-based address sent on the wire")
    type: str
    order: str = "ABCD"
    scale: float = 1.0
    unit: str

    @model_validator(mode="after")
    def _check(self) -> "MeterPoint":
        if self.quantity not in METER_QUANTITIES:
            raise ValueError(f"unknown quantity {self.quantity!r}; known: "
                             + ", ".join(METER_QUANTITIES))
        if self.type not in DATA_TYPES:
            raise ValueError(f"unknown type {self.type!r}; known: {', '.join(DATA_TYPES)}")
        if self.order not in WORD_ORDERS:
            raise ValueError(f"unknown order {self.order!r}; known: {', '.join(WORD_ORDERS)}")
        expected = METER_QUANTITIES[self.quantity].unit
        if self.unit != expected:
            raise ValueError(f"{self.quantity} is in {expected}, the file says {self.unit!r} "
                             "(unit is the unit after scale)")
        if self.scale == 0 or not math.isfinite(self.scale):
            raise ValueError("scale must be a finite non-zero number")
        return self

    @property
    def count(self) -> int:
        return register_count(self.type)

    @property
    def is_counter(self) -> bool:
        return METER_QUANTITIES[self.quantity].counter

    def decode(self, words: list[int]) -> float:
        """Value in the canonical unit from the point's registers (wire order)."""
        return float(decode(words, self.type, self.order)) * self.scale

    def encode(self, value: float) -> list[int]:
        """Registers a meter would send for `value` [unit]: integers are truncated toward
        zero for counters (a meter's counter shows whole steps) and rounded otherwise."""
        raw = value / self.scale
        if self.type.startswith(("float",)):
            return encode(raw, self.type, self.order)
        # value / scale carries a few ulps of float error (1234567.89 / 0.01 = 123456788.99999999):
        # a value the meter can show exactly must not lose a step to it
        slack = max(1e-9, 8 * math.ulp(raw))
        raw_int = math.floor(raw + slack) if self.is_counter else round(raw)
        return encode(raw_int, self.type, self.order)

    def resolution(self, value: float) -> float:
        """Smallest step [unit] the register can show near `value`."""
        if self.type == "float32":
            raw = abs(value / self.scale)
            # 24 significant bits; below float32's normal range the step stays at 2**-149
            step = 2.0 ** max(math.frexp(raw)[1] - 24, -149) if raw else 2.0**-149
            return step * abs(self.scale)
        if self.type == "float64":
            return math.ulp(value / self.scale) * abs(self.scale)
        return abs(self.scale)


# standard -> class -> relative accuracy [share] of active energy at reference conditions
# (module docstring: what it means and where it comes from)
ACCURACY_CLASSES: dict[str, dict[str, float]] = {
    "IEC 62053-21": {"0.5": 0.005, "1": 0.01, "2": 0.02},
    "IEC 62053-22": {"0.1S": 0.001, "0.2S": 0.002, "0.5S": 0.005},
    "EN 50470-3": {"A": 0.02, "B": 0.01, "C": 0.005},
}
UNKNOWN_CLASS = "unknown"


class AccuracyClass(BaseModel):
    """The active-energy accuracy class a datasheet states: `standard` and `class`, with the
    document that says so (`source`); or class = "unknown" with `why` (no standard)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    standard: str | None = None
    class_: str = Field(alias="class", min_length=1)
    source: str = Field(min_length=1, description="document (name, URL) stating the class")
    why: str = ""

    @model_validator(mode="after")
    def _check(self) -> "AccuracyClass":
        if self.class_ == UNKNOWN_CLASS:
            if self.standard is not None:
                raise ValueError('class = "unknown" takes no standard; say why in why = "..."')
            if not self.why.strip():
                raise ValueError('class = "unknown" needs why = "..." (what the datasheet says or '
                                 "what could not be found)")
            return self
        if self.standard is None:
            raise ValueError(f"class {self.class_!r} needs standard = one of: " + ", ".join(ACCURACY_CLASSES))
        if self.standard not in ACCURACY_CLASSES:
            raise ValueError(f"unknown accuracy standard {self.standard!r}; known: "
                             + ", ".join(ACCURACY_CLASSES))
        allowed = ACCURACY_CLASSES[self.standard]
        if self.class_ not in allowed:
            raise ValueError(f"{self.standard} has no class {self.class_!r}; its classes: "
                             + ", ".join(allowed))
        return self

    @property
    def known(self) -> bool:
        return self.class_ != UNKNOWN_CLASS

    def relative_accuracy(self) -> float | None:
        """Limit of the relative error of active energy [share] at reference conditions the class
        stands for (0.01 = +/-1 %), or None when the class is unknown."""
        return ACCURACY_CLASSES[self.standard][self.class_] if self.known else None


class KnownFrame(BaseModel):
    """Registers as sent on the wire and the value they stand for (from the datasheet or a
    capture), checked by the meta-test."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantity: str
    words: list[int]
    value: float
    source: str = ""


class MeterModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    manufacturer: str
    name: str
    phases: Literal[1, 3]
    max_registers_per_read: int = Field(ge=1, le=125)
    allow_gaps: bool = Field(
        True, description="a read may span registers the map does not use")
    sources: list[str] = Field(min_length=1)
    notes: str = ""
    points: list[MeterPoint] = Field(min_length=1)
    frames: list[KnownFrame] = Field(min_length=1)
    # every class the datasheet states for every variant the file covers (a table, or a list
    # when it gives both an IEC and an EN class); a data file must have it (load_model_file)
    accuracy: list[AccuracyClass] = Field(default_factory=list)

    @field_validator("accuracy", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _check(self) -> "MeterModel":
        seen = set()
        for p in self.points:
            if p.quantity in seen:
                raise ValueError(f"quantity {p.quantity!r} appears twice")
            seen.add(p.quantity)
            if p.count > self.max_registers_per_read:
                raise ValueError(f"{p.quantity} needs more registers than one read allows")
        for required in ("power_w", "energy_import_kwh"):
            if required not in seen:
                raise ValueError(f"a meter model must map {required}")
        for f in self.frames:
            if f.quantity not in seen:
                raise ValueError(f"frame for {f.quantity!r} which the map does not have")
        if len(self.accuracy) > 1 and not all(a.known for a in self.accuracy):
            raise ValueError('accuracy: class = "unknown" cannot stand beside a stated class')
        standards = [a.standard for a in self.accuracy]
        if len(set(standards)) != len(standards):
            raise ValueError("accuracy: a standard appears twice")
        return self

    def relative_accuracy(self) -> float | None:
        """Limit of the relative error of the model's active energy [share] at reference
        conditions (0.01 = +/-1 %), from its stated classes; None when unknown or not stated.
        A meter meets every class its datasheet states, so the tightest one bounds it."""
        shares = [a.relative_accuracy() for a in self.accuracy if a.known]
        return min(shares) if shares else None

    def point(self, quantity: str) -> MeterPoint:
        for p in self.points:
            if p.quantity == quantity:
                return p
        raise KeyError(quantity)


def available_models() -> list[str]:
    """Names of the shipped meter models (file stems)."""
    return sorted(p.stem for p in DATA_DIR.glob("*.toml"))


@functools.cache
def load_model(name: str) -> MeterModel:
    """Load and validate one shipped meter model by name."""
    path = DATA_DIR / f"{name}.toml"
    if not path.exists():
        raise MeterModelError(f"unknown meter model {name!r}; known: {', '.join(available_models())}")
    return load_model_file(path)


def load_model_file(path: Path) -> MeterModel:
    model = read_data_file(path, MeterModel, MeterModelError, "meter model file")
    if model.model != path.stem:
        raise MeterModelError(f"{path}: model = {model.model!r} must equal the file name")
    if not model.accuracy:
        raise MeterModelError(f'{path}: accuracy: missing; add accuracy = {{ standard = "IEC 62053-21", '
                              'class = "1", source = "datasheet, URL" }, or class = "unknown" with why')
    return model
