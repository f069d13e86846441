"""Dashboards, statically (issue 17, acceptance 2 and 3): every dashboard validates against
Grafana's JSON Schemas (tests/data/grafana-jsonschema: the dashboard, and each panel kind's
options and field config), and passes our lints; a broken dashboard is caught by each check."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

import jsonschema
import pytest

from dashboards.catalog import all_dashboards
from dashboards.lint import lint_dashboard, lint_query, panels_of
from dashboards.panels import SCHEMA_VERSION
from devices.site import example_site_path, load_site

SCHEMAS = Path(__file__).parent / "data" / "grafana-jsonschema"


@cache
def _schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.jsonschema.json").read_text(encoding="utf-8"))


def schema_errors(dashboard: dict) -> list[str]:
    """Every way a dashboard breaks the schemas: the dashboard's, then each panel kind's
    `Options` and `FieldConfig` (its fieldConfig.defaults.custom)."""
    errors = [f"dashboard {list(e.absolute_path)}: {e.message}"
              for top in jsonschema.Draft7Validator(_schema("dashboard")).iter_errors(dashboard)
              for e in [top, *top.context]]  # a panel is one of Panel or RowPanel: say why neither
    for panel in panels_of(dashboard):
        kind = panel.get("type", "")
        if not (SCHEMAS / f"{kind.replace('-', '')}.jsonschema.json").exists():
            errors.append(f"{panel.get('title')}: no schema for panel kind {kind!r}")
            continue
        definitions = _schema(kind.replace("-", ""))["definitions"]
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
        for part, definition, value in (("options", "Options", panel.get("options", {})),
                                        ("custom", "FieldConfig", custom)):
            if value is None:
                continue
            if definition not in definitions:
                errors.append(f"{panel.get('title')}: {kind} has no {definition}, yet {part} is set")
                continue
            validator = jsonschema.Draft7Validator({"$ref": f"#/definitions/{definition}", "definitions": definitions})
            errors += [f"{panel.get('title')} {part} {list(e.absolute_path)}: {e.message}"
                       for e in validator.iter_errors(value)]
    return errors


@pytest.fixture(scope="module")
def dashboards() -> list[dict]:
    return all_dashboards(load_site(example_site_path()))


def test_every_dashboard_validates_against_grafanas_schemas(dashboards):
    assert len(dashboards) == 5
    for dashboard in dashboards:
        assert schema_errors(dashboard) == [], dashboard["title"]
        assert dashboard["schemaVersion"] == SCHEMA_VERSION >= 41


def test_every_dashboard_passes_our_lints(dashboards):
    for dashboard in dashboards:
        assert lint_dashboard(dashboard) == [], dashboard["title"]


def test_every_panel_kind_used_has_its_schema(dashboards):
    kinds = {p["type"] for d in dashboards for p in panels_of(d)}
    assert kinds >= {"timeseries", "state-timeline", "stat", "table", "bargauge", "piechart"}
    for kind in kinds:
        assert (SCHEMAS / f"{kind.replace('-', '')}.jsonschema.json").exists()


def test_schema_copy_keeps_its_licence_and_readme():
    assert "Apache License" in (SCHEMAS / "LICENSE").read_text()
    assert "grafana-foundation-sdk" in (SCHEMAS / "README.md").read_text()


# ---- a broken dashboard is caught --------------------------------------------------------------

def _broken(dashboards, change) -> dict:
    broken = copy.deepcopy(dashboards[0])
    change(broken)
    return broken


@pytest.mark.parametrize("change, expected", [
    (lambda d: d.update(schemaVersion="41"), "is not of type 'integer'"),
    (lambda d: d.update(rows=[]), "Additional properties are not allowed ('rows'"),
    (lambda d: d["panels"][0].update(span=12), "Additional properties are not allowed ('span'"),
    (lambda d: d["panels"][0]["gridPos"].update(w="12"), "is not of type 'integer'"),
    (lambda d: d["panels"][0]["options"].update(legendStyle="table"), "'legendStyle' was unexpected"),
    (lambda d: d["panels"][0]["options"].update(rowHeight="tall"), "is not of type 'number'"),
    (lambda d: d["panels"][0]["fieldConfig"]["defaults"]["custom"].update(lineWidth=1.5), "is not of type 'integer'"),
])
def test_schema_catches_a_wrong_type_or_an_unknown_key(dashboards, change, expected):
    errors = schema_errors(_broken(dashboards, change))
    assert any(expected in e for e in errors), errors


def _first(dashboard: dict, kind: str) -> dict:
    return next(p for p in dashboard["panels"] if p["type"] == kind)


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["panels"][2]["targets"][0].update(
        query=d["panels"][2]["targets"][0]["query"].replace(" AND $timeFilter", "")), "no $timeFilter"),
    (lambda d: d["panels"][0].update(type="graph"), "deprecated panel type 'graph'"),
    (lambda d: d["panels"][0].update(type="singlestat"), "deprecated panel type 'singlestat'"),
    (lambda d: d["panels"][0].update(type="table-old"), "deprecated panel type 'table-old'"),
    (lambda d: d["panels"][1].update(description=""), "no description"),
    (lambda d: d["panels"][1]["fieldConfig"]["defaults"].pop("unit"), "no unit"),
    (lambda d: d["panels"][1]["fieldConfig"]["defaults"].update(unit="none"), "unit 'none'"),
    (lambda d: _first(d, "table").update(transformations=[]), "table without a unit"),
    (lambda d: d["panels"][1].update(datasource={"type": "influxdb", "uid": "P951FEA4DE68E13C5"}),
     "data source is not ${ds}"),
    (lambda d: d["panels"][1]["targets"][0].update(datasource={"type": "influxdb", "uid": "influx"}),
     "target A: data source is not ${ds}"),
    (lambda d: d["panels"][1].update(id=d["panels"][0]["id"]), "already used"),
    (lambda d: d["panels"][1]["gridPos"].update(x=0, y=0), "overlaps"),
    (lambda d: d["panels"][1]["gridPos"].update(x=20, w=8), "wider than"),
    (lambda d: d["panels"][2].pop("timeFrom"), "reads the 1 Hz 'meter' samples"),
    (lambda d: d["panels"][2].update(timeFrom="7d"), "reads the 1 Hz 'meter' samples"),
    (lambda d: d["links"][0].update(includeVars=False), "does not keep the variables"),
])
def test_lint_catches_each_violation(dashboards, change, expected):
    floor_now = dashboards[0]
    assert "meter" in floor_now["panels"][2]["targets"][0]["query"]  # the live power panel
    problems = lint_dashboard(_broken(dashboards, change))
    assert any(expected in p for p in problems), problems


def test_lint_catches_a_day_bucket_without_tz():
    good = ('SELECT sum("energy_kwh") FROM "usage" WHERE $timeFilter GROUP BY time(1d) '
            "fill(none) tz('Europe/Paris')")
    assert lint_query(good) == []
    assert any("tz(" in p for p in lint_query(good.replace(" tz('Europe/Paris')", "")))
    assert any("tz(" in p for p in lint_query(good.replace("time(1d)", "time(1w)").replace(" tz('Europe/Paris')", "")))
    assert lint_query(good.replace("time(1d)", "time(1h)").replace(" tz('Europe/Paris')", "")) == []


def test_every_day_bucket_of_the_dashboards_is_cut_in_the_sites_zone(dashboards):
    day_buckets = [t["query"] for d in dashboards for p in panels_of(d) for t in p["targets"]
                   if "time(1d)" in t["query"] or "time(7d" in t["query"]]
    assert len(day_buckets) >= 6
    assert all("tz('Europe/Paris')" in q for q in day_buckets)


def test_variables_and_links(dashboards):
    for dashboard in dashboards:
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["ds"]["type"] == "datasource" and variables["ds"]["query"] == "influxdb"
        assert "site" in variables
        for name in ("machine", "member"):
            if name in variables:
                assert "WHERE \"site\" =~ /^$site$/" in variables[name]["query"]
        assert dashboard["links"][0]["includeVars"] and dashboard["links"][0]["keepTime"]
        for panel in panels_of(dashboard):
            assert panel["datasource"]["uid"] == "${ds}"
