"""Lower layers never import higher ones (README, "Architecture"; docs/design.md, "The flow").

    devices  <-  storage  <-  collector, analytics  <-  dashboards, reports  <-  wattelier

`analytics` never imports `collector`: they meet only through stored data (`storage`: the
journal, InfluxDB, line protocol, rollups, results and bookings as stored) and the vocabulary
in `devices`. Every import statement of every module is read (at any depth: a function's
late import counts as much as one at the top)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "devices": {"devices"},
    "storage": {"devices", "storage"},
    "collector": {"devices", "storage", "collector"},
    "analytics": {"devices", "storage", "analytics"},
    "dashboards": {"devices", "storage", "analytics", "dashboards"},
    "reports": {"devices", "storage", "analytics", "reports"},
    "wattelier": {"devices", "storage", "collector", "analytics", "dashboards", "reports", "wattelier"},
}


def project_imports(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every import of a project package in a module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.extend((node.lineno, name.split(".")[0]) for name in names
                     if name.split(".")[0] in ALLOWED or name.split(".")[0] == "tests")
    return found


def violations(package: str, source: str, where: str) -> list[str]:
    return [f"{where}:{line} imports {imported} (a {package} module may import "
            f"{', '.join(sorted(ALLOWED[package]))})"
            for line, imported in project_imports(source) if imported not in ALLOWED[package]]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_module_imports_a_higher_layer(package):
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, package
    found = []
    for path in modules:
        found += violations(package, path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)


def test_an_upward_import_is_caught():
    late = "def f():\n    from wattelier.demo import run_demo\n"
    assert violations("analytics", late, "analytics/x.py") == [
        "analytics/x.py:2 imports wattelier (a analytics module may import analytics, devices, storage)"]
    assert violations("analytics", "import collector.forwarder\n", "a.py")
    assert violations("storage", "from analytics.records import Session\n", "s.py")
    assert not violations("analytics", "from storage.journal_reader import JournalReader\n", "a.py")
    assert violations("reports", "from tests.report_samples import sample_report\n", "r.py")
    assert not violations("reports", "from storage.stored_results import journal_reader\n", "r.py")


# Where SQLite and HTTP are spoken: storage alone (issue 18). A module of these packages that
# needs either goes through storage (storage.journal*, storage.influxdb, storage.http_client).
NO_STORAGE_CODE = ("collector", "analytics", "dashboards")
STORAGE_LIBRARIES = {"sqlite3", "urllib.request", "http.client", "influxdb_client", "requests",
                     "httpx", "aiohttp", "urllib3"}


def storage_library_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of an SQLite or HTTP client library in a module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.extend((node.lineno, name) for name in names if name in STORAGE_LIBRARIES)
    return found


@pytest.mark.parametrize("package", NO_STORAGE_CODE)
def test_no_sqlite_or_http_client_outside_storage(package):
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for line, name in storage_library_imports(path.read_text(encoding="utf-8"))]
    assert not found, "\n".join(found)


def test_a_storage_library_import_is_caught():
    assert storage_library_imports("def f():\n    import sqlite3\n") == [(2, "sqlite3")]
    assert storage_library_imports("from urllib import request\n") == [(1, "urllib.request")]
    assert not storage_library_imports("import urllib.parse\n")
