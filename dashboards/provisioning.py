"""Grafana provisioning files (as dicts, written as YAML by dashboards.build): the InfluxDB data
source and the dashboard provider, ready to drop into /etc/grafana/provisioning.

The data source speaks InfluxQL to any of the three InfluxDB generations (Grafana's
documentation, "Configure the InfluxDB data source"):

- 1.x: InfluxQL on the database; user and password when authentication is on.
- 2.x: InfluxQL through the v1 compatibility API, on a database mapped to the bucket by a DBRP
  mapping (`influx v1 dbrp create --db wattelier --rp autogen --bucket-id ... --default`); the
  token goes in an `Authorization: Token ...` header.
- 3.x (Core, Enterprise, Cloud): InfluxQL on the database; the token is the password (any user
  name).

Secrets are never written: the files name the environment variable Grafana expands
(`$WATTELIER_INFLUX_TOKEN`) when it reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devices.site import Site

DATASOURCE_UID = "wattelier-influxdb"
DATASOURCE_NAME = "wattelier InfluxDB"
FOLDER = "wattelier"
INFLUX_VERSIONS = ("1", "2", "3")
TOKEN_VARIABLE = "WATTELIER_INFLUX_TOKEN"
DASHBOARDS_PATH = "/etc/grafana/provisioning/dashboards/wattelier"


@dataclass(frozen=True)
class InfluxSource:
    """Where Grafana reads: url, database (2.x: the DBRP-mapped database), InfluxDB generation
    ("1", "2" or "3"), user (1.x with authentication), token variable, TLS verified or not."""

    url: str = "http://localhost:8086"
    database: str = "wattelier"
    version: str = "1"
    user: str | None = None
    token_variable: str = TOKEN_VARIABLE
    verify_tls: bool = True

    def __post_init__(self) -> None:
        if self.version not in INFLUX_VERSIONS:
            raise ValueError(f"InfluxDB version must be one of {', '.join(INFLUX_VERSIONS)}, got {self.version!r}")

    @classmethod
    def from_site(cls, site: Site, version: str | None = None) -> "InfluxSource":
        """From the site's [influxdb] section (the defaults without one); version: as given, else
        "2" for api = "v2", else "1"."""
        section = site.influxdb
        if section is None:
            return cls(version=version or "1")
        chosen = version or ("2" if section.api == "v2" else "1")
        database = section.bucket if chosen == "2" and section.api == "v2" else section.database
        return cls(section.url, database, chosen, section.username, section.token_env, section.verify_tls)


def datasource_file(source: InfluxSource) -> dict[str, Any]:
    """Grafana's data source provisioning file (apiVersion 1) for one InfluxQL data source."""
    json_data: dict[str, Any] = {"version": "InfluxQL", "dbName": source.database, "httpMode": "POST",
                                 "tlsSkipVerify": not source.verify_tls, "timeInterval": "10s"}
    secure: dict[str, str] = {}
    entry: dict[str, Any] = {"name": DATASOURCE_NAME, "uid": DATASOURCE_UID, "type": "influxdb",
                             "access": "proxy", "url": source.url, "isDefault": True, "editable": False}
    token = "$" + source.token_variable
    if source.version == "1":
        if source.user:
            entry["user"] = source.user
            secure["password"] = token
    elif source.version == "2":
        json_data["httpHeaderName1"] = "Authorization"
        secure["httpHeaderValue1"] = f"Token {token}"
    else:
        entry["user"] = source.user or "wattelier"
        secure["password"] = token
    entry["jsonData"] = json_data
    if secure:
        entry["secureJsonData"] = secure
    return {"apiVersion": 1, "datasources": [entry]}


def dashboard_provider_file(path: str = DASHBOARDS_PATH) -> dict[str, Any]:
    """Grafana's dashboard provider file (apiVersion 1): the dashboards' JSON files in `path`,
    in the folder "wattelier", not editable in the UI (the files are the truth)."""
    return {"apiVersion": 1, "providers": [{
        "name": "wattelier", "orgId": 1, "folder": FOLDER, "folderUid": FOLDER, "type": "file",
        "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 60,
        "options": {"path": path, "foldersFromFilesStructure": False},
    }]}
