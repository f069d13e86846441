"""`wattelier dashboards build`: the dashboards' JSON, the alert rules and Grafana's
provisioning files for a site, laid out as /etc/grafana/provisioning expects them:

    OUT/provisioning/datasources/wattelier.yaml     the InfluxDB data source (InfluxQL)
    OUT/provisioning/dashboards/wattelier.yaml      the dashboard provider
    OUT/provisioning/dashboards/wattelier/*.json    the dashboards
    OUT/provisioning/alerting/wattelier.yaml        the alert rules and their mute timing

Every dashboard is linted (dashboards.lint) before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from dashboards.alerts import DEFAULT_RECEIVER, alert_rules
from dashboards.catalog import BUILDERS
from dashboards.context import SiteContext
from dashboards.lint import lint_dashboard
from dashboards.provisioning import DASHBOARDS_PATH, InfluxSource, dashboard_provider_file, datasource_file
from devices.site import Site


class DashboardLintError(ValueError):
    """A dashboard breaks one of our rules (the message lists each problem)."""


def dashboard_files(site: Site) -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON of each dashboard of the site, linted."""
    context = SiteContext.from_site(site)
    out = {f"{name}.json": build(context) for name, build in BUILDERS.items()}
    problems = [p for dashboard in out.values() for p in lint_dashboard(dashboard)]
    if problems:
        raise DashboardLintError("dashboards break our rules:\n" + "\n".join(problems))
    return out


def _yaml(data: dict[str, Any]) -> str:
    return "# Written by `wattelier dashboards build`; edit the site file or dashboards/, not this file.\n" + \
        yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def build(out_dir: Path, site: Site, *, influx_version: str | None = None, receiver: str = DEFAULT_RECEIVER,
          dashboards_path: str = DASHBOARDS_PATH) -> list[Path]:
    """Write everything under out_dir/provisioning; return the files written.

    influx_version: "1", "2" or "3" (default from the site's [influxdb] api: v2 -> "2", else
    "1"); receiver: the Grafana contact point the alerts go to; dashboards_path: where Grafana
    finds the dashboards' JSON (the provider's path)."""
    root = Path(out_dir) / "provisioning"
    files: dict[Path, str] = {
        root / "datasources" / "wattelier.yaml": _yaml(datasource_file(InfluxSource.from_site(site, influx_version))),
        root / "dashboards" / "wattelier.yaml": _yaml(dashboard_provider_file(dashboards_path)),
        root / "alerting" / "wattelier.yaml": _yaml(alert_rules(site, receiver=receiver)),
    }
    for name, dashboard in dashboard_files(site).items():
        files[root / "dashboards" / "wattelier" / name] = json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)


def built_dashboards(out_dir: Path) -> list[dict[str, Any]]:
    """The dashboards a build wrote under out_dir (for push)."""
    folder = Path(out_dir) / "provisioning" / "dashboards" / "wattelier"
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))]
