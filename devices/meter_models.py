"""Meter register maps, one TOML data file per model family in `devices/data/meters/`.

Adding a meter model needs no Python: write a file with the model's points (function code,
0-based address, data type, word order, scale, canonical quantity, the datasheet's own name)
and at least one known frame; `tests/test_meter_models.py` validates every file.
"""

from __future__ import annotations

import functools
import math
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
        return self

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
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MeterModelError(f"{path}: cannot read meter model file: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MeterModelError(f"{path}: not valid TOML: {exc}") from exc
    try:
        model = MeterModel.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise MeterModelError(f"{path}: {details}") from exc
    if model.model != path.stem:
        raise MeterModelError(f"{path}: model = {model.model!r} must equal the file name")
    return model
