"""`wattelier dashboards push`: upload dashboards through Grafana's HTTP API
(`POST /api/dashboards/db`, documented in Grafana's "Dashboard HTTP API"), with a service
account token (`Authorization: Bearer <token>`), TLS verified.

Each dashboard is sent once, with `overwrite: true` (the files are the truth) into the
"wattelier" folder; a dashboard Grafana refuses is reported in one line (its title, the HTTP
status, Grafana's message) and the others are still sent. A Grafana that cannot be reached is
one line too, never a traceback.
"""

from __future__ import annotations

import json
import ssl
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from dashboards.provisioning import FOLDER
from storage.http_client import HttpUnreachable, request

API_PATH = "/api/dashboards/db"


class GrafanaUnreachable(Exception):
    """Grafana did not answer (address, network, TLS): nothing more can be sent."""


@dataclass
class PushReport:
    """What push did: titles accepted, and one line per dashboard refused."""

    pushed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused


def _message(body: bytes) -> str:
    """Grafana's error message from its JSON answer, else the start of the body."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
    except ValueError:
        pass
    return body[:200].decode("utf-8", "replace").strip() or "no message"


def push(grafana_url: str, token: str, dashboards: list[dict[str, Any]], *, folder_uid: str | None = FOLDER,
         timeout_s: float = 30.0, context: ssl.SSLContext | None = None) -> PushReport:
    """Send each dashboard once; raise GrafanaUnreachable when Grafana cannot be reached.

    folder_uid: the Grafana folder (it must exist; None: General); context: TLS settings (the
    default verifies the certificate against the system's authorities)."""
    parsed = urllib.parse.urlparse(grafana_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise GrafanaUnreachable(f"{grafana_url}: not an http(s) URL")
    url = grafana_url.rstrip("/") + API_PATH
    context = context or ssl.create_default_context()
    report = PushReport()
    for dashboard in dashboards:
        title = dashboard.get("title", dashboard.get("uid", "?"))
        payload: dict[str, Any] = {"dashboard": {**dashboard, "id": None}, "overwrite": True,
                                   "message": "wattelier dashboards push"}
        if folder_uid:
            payload["folderUid"] = folder_uid
        try:
            # redirects followed, as urllib.request.urlopen did before storage.http_client
            answer = request("POST", url, body=json.dumps(payload).encode("utf-8"), headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                "Accept": "application/json"}, timeout_s=timeout_s, follow_redirects=True,
                tls_context=context if url.startswith("https") else None)
        except HttpUnreachable as exc:
            raise GrafanaUnreachable(f"{grafana_url}: cannot reach Grafana: {exc.reason}") from exc
        if answer.ok:
            report.pushed.append(title)
        else:
            report.refused.append(f"{title}: refused by Grafana (HTTP {answer.status}): {_message(answer.body)}")
    return report
