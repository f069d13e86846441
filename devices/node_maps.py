"""CNC node maps, one TOML data file per controller family in `devices/data/nodemaps/`.

A node map says where each canonical quantity of `devices.vocabulary.CNC_QUANTITIES` lives in a
controller's OPC UA address space and how its value turns into wattelier's vocabulary. Adding a
controller family needs no Python: write a file; `tests/test_node_maps.py` loads every file.

File layout (see `umati-machinetool.toml` for a complete example)::

    name = "umati-machinetool"            # must equal the file name
    title = "..."
    source = "OPC 40501-1 ..."            # the standard or document the map follows
    kind = "browse_paths"                 # or "site_nodes" (the generic map)
    root = ["machinery:Machines", "{machine}"]   # from the Objects folder to the machine
    [namespaces]                          # alias = namespace URI (never an index)
    mt = "http://opcfoundation.org/UA/MachineTool/"
    [quantities.mode]
    path = ["mt:Monitoring", "mt:MachineTool", "mt:OperationMode"]   # from the root
    value = "Enumeration"                 # the OPC UA value kind
    data_type = "mt:MachineOperationMode" # the node's DataType (documentation, checked by tests)
    enum = [{ value = 0, name = "Manual", vocabulary = "manual" }, ...]

Path steps:

- ``"alias:BrowseName"``: the child with that browse name; the alias names a namespace URI of
  the `namespaces` table (``ua`` is always http://opcfoundation.org/UA/).
- ``"<alias:TypeName>"``: the first child (by browse name) whose type definition is that
  ObjectType or a subtype of it, for instances a vendor names freely (channels, spindles),
  written like the standards' placeholders ``<Channel>``.
- ``"{machine}"``: the controller's ``machine_browse_name`` from the site file, in any
  namespace; when the site file gives none, the only child there.

Value kinds: ``Enumeration`` (an Int32 on the wire, mapped by `value`), ``LocalizedText`` and
``String`` (text, mapped by `name` when there is an `enum` table, else used as it is), numbers
(``Double``, ``Float``, ``Int16/32/64``, ``UInt16/32/64``, ``Byte``), ``Boolean``, and ``Any``
(generic map: used as it is, converted to the quantity's kind).

The generic map (``kind = "site_nodes"``) has no quantities of its own: they come from the
controller's `nodes` table in the site file (quantity = node id, ``nsu=<URI>;s=...`` preferred
over ``ns=<index>;s=...``), see `NodeMap.for_nodes`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from devices.data_files import read_data_file, validation_text
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from devices.vocabulary import CNC_QUANTITIES, EXECUTION_STATES, OPERATION_MODES

DATA_DIR = Path(__file__).parent / "data" / "nodemaps"
UA_NAMESPACE = "http://opcfoundation.org/UA/"
UA_ALIAS = "ua"

ValueKind = Literal[
    "Enumeration", "LocalizedText", "String", "Boolean", "Double", "Float", "Byte", "Int16",
    "Int32", "Int64", "UInt16", "UInt32", "UInt64", "Any",
]
NUMERIC_KINDS = {"Double", "Float", "Byte", "Int16", "Int32", "Int64", "UInt16", "UInt32", "UInt64"}
TEXT_KINDS = {"LocalizedText", "String"}

# The vocabulary a mapped enumeration must land in, per quantity.
ENUM_VOCABULARY: dict[str, tuple[str, ...]] = {
    "execution": EXECUTION_STATES,
    "mode": OPERATION_MODES,
}

_ALIAS_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STEP_RE = re.compile(r"^(?P<open><)?(?P<alias>[A-Za-z_][A-Za-z0-9_]*):(?P<name>[^<>]+?)(?P<close>>)?$")
MACHINE_STEP = "{machine}"
# NodeId string forms (OPC 10000-6): [ns=<index>;|nsu=<uri>;](i=<uint>|s=<text>|g=<guid>|b=<base64>)
_NODE_ID_RE = re.compile(
    r"^(?:ns=\d+;|nsu=[^;]+;)?(?:i=\d+|s=.+|g=[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}"
    r"|b=[A-Za-z0-9+/=]+)$", re.DOTALL)


class NodeMapError(Exception):
    """A node map file is missing or invalid, or a site's nodes table does not fit it."""


class UnmappedValueError(ValueError):
    """A value read from a controller that the node map cannot turn into the vocabulary."""


@dataclass(frozen=True)
class PathStep:
    """One step of a browse path.

    kind: "name" (a fixed browse name), "type" (first child of that type) or "machine".
    namespace: namespace URI of the browse name or type name ("" for "machine").
    name: browse name or type name ("" for "machine").
    """

    kind: Literal["name", "type", "machine"]
    namespace: str = ""
    name: str = ""

    def __str__(self) -> str:
        if self.kind == "machine":
            return MACHINE_STEP
        text = f"{{{self.namespace}}}{self.name}"
        return f"<{text}>" if self.kind == "type" else text


def _parse_step(text: str, namespaces: Mapping[str, str]) -> PathStep:
    if text == MACHINE_STEP:
        return PathStep("machine")
    match = _STEP_RE.match(text)
    if not match or bool(match["open"]) != bool(match["close"]):
        raise ValueError(f"step {text!r} must look like 'alias:BrowseName', '<alias:TypeName>' "
                         f"or '{MACHINE_STEP}'")
    alias = match["alias"]
    if alias not in namespaces:
        raise ValueError(f"step {text!r}: unknown namespace alias {alias!r}; declared: "
                         + ", ".join(sorted(namespaces)))
    return PathStep("type" if match["open"] else "name", namespaces[alias], match["name"].strip())


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnumEntry(_Model):
    """One value of the standard's enumeration or state machine and its vocabulary word."""

    name: str = Field(min_length=1, description="the standard's own name for the value")
    value: int | None = Field(None, description="the enumeration's integer (Enumeration only)")
    vocabulary: str = Field(min_length=1)


class QuantityMap(_Model):
    """Where one canonical quantity lives and how its value is read."""

    path: list[str] = []
    node_id: str | None = None
    value: ValueKind
    data_type: str | None = None
    enum: list[EnumEntry] = []
    scale: float = 1.0
    source: str = ""
    note: str = ""


class NodeMap(_Model):
    """A validated node map. Use `load_node_map` to get one."""

    name: str = Field(min_length=1)
    title: str = Field(min_length=1)
    source: str = Field(min_length=1)
    kind: Literal["browse_paths", "site_nodes"] = "browse_paths"
    namespaces: dict[str, str] = {}
    root: list[str] = []
    quantities: dict[str, QuantityMap] = {}
    notes: str = ""

    @model_validator(mode="after")
    def _check(self) -> "NodeMap":
        problems: list[str] = []
        for alias, uri in self.namespaces.items():
            if not _ALIAS_RE.match(alias):
                problems.append(f"namespaces.{alias}: an alias is a plain identifier")
            if not uri:
                problems.append(f"namespaces.{alias}: empty namespace URI")
            if alias == UA_ALIAS and uri != UA_NAMESPACE:
                problems.append(f"namespaces.{alias}: '{UA_ALIAS}' is reserved for {UA_NAMESPACE}")
        aliases = self.aliases
        for i, step in enumerate(self.root):
            try:
                _parse_step(step, aliases)
            except ValueError as exc:
                problems.append(f"root[{i}]: {exc}")
        if self.kind == "site_nodes":
            if self.root:
                problems.append("root: a 'site_nodes' map uses node ids, it has no root")
            for quantity, entry in self.quantities.items():
                if entry.node_id is None:
                    problems.append(f"quantities.{quantity}: a 'site_nodes' map takes node ids "
                                    "(node_id), not browse paths")
        else:
            if not self.quantities:
                problems.append("quantities: a 'browse_paths' map needs at least one quantity")
            for quantity, entry in self.quantities.items():
                if entry.node_id is not None:
                    problems.append(f"quantities.{quantity}.node_id: a 'browse_paths' map uses "
                                    "browse paths; node ids belong to the generic map")
        for quantity, entry in self.quantities.items():
            problems += _check_quantity(quantity, entry, aliases, self.kind)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def aliases(self) -> dict[str, str]:
        """Namespace aliases of the file, plus ``ua``."""
        return {UA_ALIAS: UA_NAMESPACE, **self.namespaces}

    def root_steps(self) -> list[PathStep]:
        aliases = self.aliases
        return [_parse_step(s, aliases) for s in self.root]

    def steps(self, quantity: str) -> list[PathStep]:
        """Browse path of a quantity from the machine root."""
        aliases = self.aliases
        return [_parse_step(s, aliases) for s in self.quantities[quantity].path]

    def for_nodes(self, nodes: Mapping[str, str]) -> "NodeMap":
        """The generic map filled with a site's nodes table (quantity -> node id string).

        A browse-path map is returned unchanged when `nodes` is empty.
        """
        if self.kind != "site_nodes":
            if nodes:
                raise NodeMapError(f"node map {self.name!r} takes no nodes table; only "
                                   "'site_nodes' maps (generic) do")
            return self
        if not nodes:
            raise NodeMapError(f"node map {self.name!r} needs the controller's nodes table "
                               "(quantity = node id)")
        quantities = {q: e.model_dump() for q, e in self.quantities.items()}
        quantities.update({q: {"node_id": node_id, "value": "Any"} for q, node_id in nodes.items()})
        try:
            return NodeMap.model_validate({**self.model_dump(), "quantities": quantities})
        except ValidationError as exc:
            raise NodeMapError(f"nodes table for node map {self.name!r}: "
                               + validation_text(exc)) from exc

    def convert(self, quantity: str, raw: object) -> str | float | int:
        """The vocabulary value of a raw OPC UA value (text already taken out of a
        LocalizedText, an enumeration as its integer).

        Raises UnmappedValueError when the value does not fit.
        """
        entry = self.quantities[quantity]
        kind = CNC_QUANTITIES[quantity].kind
        if raw is None:
            raise UnmappedValueError(f"{quantity}: no value")
        if entry.enum:
            if entry.value == "Enumeration":
                if isinstance(raw, bool) or not isinstance(raw, int):
                    raise UnmappedValueError(f"{quantity}: expected an enumeration integer, "
                                             f"got {raw!r}")
                for e in entry.enum:
                    if e.value == raw:
                        return e.vocabulary
            else:
                text = str(raw).strip()
                for e in entry.enum:
                    if e.name.casefold() == text.casefold():
                        return e.vocabulary
            raise UnmappedValueError(f"{quantity}: {raw!r} is not in the node map's table")
        if kind == "str":
            return raw if isinstance(raw, str) else str(raw)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise UnmappedValueError(f"{quantity}: expected a number, got {raw!r}")
        if kind == "int":
            if isinstance(raw, float) and not raw.is_integer():
                raise UnmappedValueError(f"{quantity}: expected a whole number, got {raw!r}")
            return int(raw)
        value = float(raw) * entry.scale
        if not math.isfinite(value):
            raise UnmappedValueError(f"{quantity}: not a finite number: {raw!r}")
        return value

    def standard_entry(self, quantity: str, vocabulary: str) -> EnumEntry | None:
        """The first table entry that maps to `vocabulary` (None when none does)."""
        for e in self.quantities[quantity].enum:
            if e.vocabulary == vocabulary:
                return e
        return None


def _check_quantity(quantity: str, entry: QuantityMap, aliases: Mapping[str, str],
                    map_kind: str) -> list[str]:
    where = f"quantities.{quantity}"
    if quantity not in CNC_QUANTITIES:
        return [f"{where}: unknown quantity; known: {', '.join(CNC_QUANTITIES)}"]
    problems = []
    kind = CNC_QUANTITIES[quantity].kind
    if entry.node_id is not None:
        if entry.path:
            problems.append(f"{where}: give either path or node_id, not both")
        if not _NODE_ID_RE.match(entry.node_id):
            problems.append(f"{where}.node_id: {entry.node_id!r} is not a node id; write "
                            "'nsu=<namespace URI>;s=<name>' or 'ns=<index>;i=<number>'")
    elif not entry.path:
        problems.append(f"{where}.path: missing (a browse path from the root)")
    for i, step in enumerate(entry.path):
        try:
            parsed = _parse_step(step, aliases)
        except ValueError as exc:
            problems.append(f"{where}.path[{i}]: {exc}")
            continue
        if parsed.kind == "machine":
            problems.append(f"{where}.path[{i}]: '{MACHINE_STEP}' belongs in root")
    if entry.data_type is not None:
        try:
            if _parse_step(entry.data_type, aliases).kind != "name":
                raise ValueError("write it 'alias:DataTypeName'")
        except ValueError as exc:
            problems.append(f"{where}.data_type: {exc}")
    if entry.value == "Enumeration" and not entry.enum:
        problems.append(f"{where}.enum: an Enumeration needs its table (value, name, vocabulary)")
    if entry.enum:
        if kind != "str":
            problems.append(f"{where}.enum: only text quantities take an enum table")
        if entry.value not in ("Enumeration", *TEXT_KINDS):
            problems.append(f"{where}.enum: a table needs value = 'Enumeration', "
                            "'LocalizedText' or 'String'")
        allowed = ENUM_VOCABULARY.get(quantity)
        seen_values: set[int] = set()
        seen_names: set[str] = set()
        for i, e in enumerate(entry.enum):
            at = f"{where}.enum[{i}]"
            if entry.value == "Enumeration":
                if e.value is None:
                    problems.append(f"{at}.value: missing (the enumeration's integer)")
                elif e.value in seen_values:
                    problems.append(f"{at}.value: {e.value} appears twice")
                else:
                    seen_values.add(e.value)
            elif e.value is not None:
                problems.append(f"{at}.value: text values are matched by name; remove value")
            if e.name.casefold() in seen_names:
                problems.append(f"{at}.name: {e.name!r} appears twice")
            seen_names.add(e.name.casefold())
            if allowed is not None and e.vocabulary not in allowed:
                problems.append(f"{at}.vocabulary: {e.vocabulary!r} is not a {quantity} word; "
                                f"known: {', '.join(allowed)}")
    elif quantity in ENUM_VOCABULARY and entry.value in ("Enumeration", *TEXT_KINDS) \
            and map_kind == "browse_paths" and entry.node_id is None:
        problems.append(f"{where}.enum: {quantity} needs a table from the standard's values to "
                        f"{', '.join(ENUM_VOCABULARY[quantity])}")
    if kind in ("float", "int") and entry.value not in NUMERIC_KINDS | {"Any"}:
        problems.append(f"{where}.value: {quantity} is a number; {entry.value!r} is not")
    if kind == "str" and entry.value in NUMERIC_KINDS | {"Boolean"}:
        problems.append(f"{where}.value: {quantity} is text; {entry.value!r} needs an enum "
                        "table or a text kind")
    if kind == "int" and entry.scale != 1.0:
        problems.append(f"{where}.scale: {quantity} is a count; scale must be 1")
    if entry.scale == 0 or not math.isfinite(entry.scale):
        problems.append(f"{where}.scale: must be a finite non-zero number")
    return problems


def available_node_maps() -> list[str]:
    """Names of the shipped node maps (file stems)."""
    return sorted(p.stem for p in DATA_DIR.glob("*.toml"))


@functools.cache
def load_node_map(name: str) -> NodeMap:
    """Load and validate one shipped node map by name."""
    path = DATA_DIR / f"{name}.toml"
    if not path.exists():
        raise NodeMapError(f"unknown node map {name!r}; known: {', '.join(available_node_maps())}")
    return load_node_map_file(path)


def load_node_map_file(path: str | Path) -> NodeMap:
    """Load and validate a node map file; errors name the file and the key."""
    path = Path(path)
    node_map = read_data_file(path, NodeMap, NodeMapError, "node map")
    if node_map.name != path.stem:
        raise NodeMapError(f"{path}: name = {node_map.name!r} must equal the file name")
    return node_map
