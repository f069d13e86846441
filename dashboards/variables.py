"""The template variables every dashboard has: the data source `ds`, then `site`, `machine`
and `member`, each listed from what is stored (and filtered by the site chosen)."""

from __future__ import annotations

from dashboards import panels, queries
from dashboards.panels import Json
from devices import vocabulary as v

# name -> (label, query): in order, each may use those before it
QUERIES: dict[str, tuple[str, str]] = {
    "site": ("Site (edge box)", queries.tag_values(None, v.TAG_SITE)),
    "machine": ("Machine", queries.tag_values(v.USAGE, v.TAG_MACHINE, queries.SITE)),
    "member": ("Member", queries.tag_values(v.SESSION, v.TAG_MEMBER, queries.SITE)),
}


def template_variables(names: tuple[str, ...] = ("site", "machine", "member")) -> list[Json]:
    """The data source variable, then the named query variables."""
    return [panels.variable_datasource()] + [panels.variable_query(name, *QUERIES[name]) for name in names]
