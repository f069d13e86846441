"""Write a Site back to TOML (for tests that start `wattelier collect` in a subprocess)."""

from __future__ import annotations

import json
from typing import Any

from devices.site import Site


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def _table(name: str, data: dict, out: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if v is not None}
    out.append(f"[{name}]")
    out.extend(f"{json.dumps(k)} = {_value(v)}" for k, v in scalars.items())
    out.append("")


def dump_site_toml(site: Site) -> str:
    """TOML text that loads back into the same site (defaults left out)."""
    data = site.model_dump(mode="json", exclude_none=True)
    out: list[str] = []
    for section, value in data.items():
        if section in ("machines", "services", "meters", "controllers", "members", "tariffs",
                       "emission_factors"):
            for name, entry in value.items():
                _table(f"{section}.{json.dumps(name)}", entry, out)
        elif isinstance(value, dict):
            _table(section, value, out)
        else:
            out.insert(0, f"{json.dumps(section)} = {_value(value)}")
    return "\n".join(out) + "\n"


def with_own_factor(site_text: str, kg_co2e_per_kwh: str = "0.052") -> str:
    """The example site's text with its location factor given by value (kg_co2e_per_kwh =
    VALUE, a source, a vintage and the zone) instead of the ADEME table, for tests of the
    factor's own checks."""
    own = (f"kg_co2e_per_kwh = {kg_co2e_per_kwh}\n"
           'source = "ADEME Base Empreinte, Electricité - 2022 - mix moyen - consommation"\n'
           'vintage = "2022"')
    assert 'table = "ademe-base-empreinte"' in site_text
    return site_text.replace('table = "ademe-base-empreinte"', own, 1)
