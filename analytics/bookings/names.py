"""Machines and members found by the names bookings give them: the machine's name or label,
the member's key, full name (with or without the part in brackets) or e-mail address; case,
accents and spacing ignored. A text two entries answer to is ambiguous and finds nothing."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devices.site import Site

Finder = Callable[[str], "str | None"] | Mapping[str, str]


def normalize_name(text: str) -> str:
    """Case, accents and spacing removed: 'Amélie  DURAND' -> 'amelie durand'."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def _finder(table: dict[str, str | None]) -> Callable[[str], str | None]:
    def find(text: str) -> str | None:
        return table.get(normalize_name(text))

    return find


def _add(table: dict[str, str | None], key: str, name: str) -> None:
    key = normalize_name(key)
    if key and table.get(key, name) != name:
        table[key] = None  # two machines or members answer to this text: ambiguous
    elif key:
        table[key] = name


def machine_finder(site: Site) -> Callable[[str], str | None]:
    """Text -> machine name: the machine's name or its label (case and accents ignored)."""
    table: dict[str, str | None] = {}
    for name in site.machines:
        _add(table, name, name)
    for name, machine in site.machines.items():
        if machine.label and normalize_name(machine.label) not in table:
            _add(table, machine.label, name)
    return _finder(table)


def member_finder(site: Site) -> Callable[[str], str | None]:
    """Text -> member name: the member's name (key), full name with or without the part in
    brackets ('Amélie Durand (ébéniste)' or 'Amélie Durand'), or e-mail address."""
    table: dict[str, str | None] = {}
    for name in site.members:
        _add(table, name, name)
    for name, member in site.members.items():
        _add(table, member.name, name)
        short = re.sub(r"\s*\([^)]*\)\s*$", "", member.name)
        if short != member.name:
            _add(table, short, name)
        if member.email:
            _add(table, member.email, name)
    return _finder(table)


def lookup(finder: Finder | None, text: str) -> str | None:
    """The name `finder` gives `text` (None: not found; no finder: the text itself)."""
    text = text.strip()
    if not text:
        return None
    if finder is None:
        return text
    if callable(finder):
        return finder(text)
    if text in finder:
        return finder[text]
    wanted = normalize_name(text)
    for key, value in finder.items():
        if normalize_name(key) == wanted:
            return value
    return None
