"""Build and push (issue 17, acceptance 4): the provisioning files parse as YAML with the keys
Grafana documents; push, against a local stand-in for Grafana's dashboard API
(tests/grafana_fake.py), sends each dashboard once with the token and reports a refused one
in one line; the command line does the same without a traceback."""

from __future__ import annotations

import datetime as dt
import json
import ssl

import pytest
import yaml
from typer.testing import CliRunner

from dashboards.build import build, built_dashboards
from dashboards.catalog import all_dashboards
from dashboards.push import GrafanaUnreachable, push
from devices.site import example_site_path, load_site, parse_site
from tests.grafana_fake import FakeGrafana
from wattelier.commands.dashboards import app

TOKEN = "glsa_test-token-0123456789"


@pytest.fixture
def site():
    return load_site(example_site_path())


def _site_with_influx(api: str) -> object:
    text = example_site_path().read_text(encoding="utf-8")
    text += f'\n[influxdb]\nurl = "https://influx.example.org:8086"\napi = "{api}"\ndatabase = "atelier"\n' \
            'bucket = "atelier-bucket"\n'
    return parse_site(text, str(example_site_path()))


def test_build_writes_grafanas_provisioning_layout(tmp_path, site, monkeypatch):
    monkeypatch.setenv("WATTELIER_INFLUX_TOKEN", "secret-influx-token")
    written = build(tmp_path, site)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert names == {"provisioning/datasources/wattelier.yaml", "provisioning/dashboards/wattelier.yaml",
                     "provisioning/alerting/wattelier.yaml"} | {
        f"provisioning/dashboards/wattelier/{n}.json"
        for n in ("floor-now", "machine", "members", "energy-carbon", "collector-health")}
    for path in written:
        assert "secret-influx-token" not in path.read_text(encoding="utf-8")

    provider = yaml.safe_load((tmp_path / "provisioning/dashboards/wattelier.yaml").read_text())
    assert provider["apiVersion"] == 1
    (entry,) = provider["providers"]
    assert entry["type"] == "file" and entry["name"] == "wattelier" and entry["folder"] == "wattelier"
    assert entry["options"]["path"] == "/etc/grafana/provisioning/dashboards/wattelier"


def _datasource(tmp_path, site, version=None) -> dict:
    build(tmp_path, site, influx_version=version)
    document = yaml.safe_load((tmp_path / "provisioning/datasources/wattelier.yaml").read_text())
    assert document["apiVersion"] == 1
    (entry,) = document["datasources"]
    assert entry["type"] == "influxdb" and entry["access"] == "proxy" and entry["uid"] == "wattelier-influxdb"
    assert entry["jsonData"]["version"] == "InfluxQL"
    return entry


def test_datasource_for_influxdb_1_2_and_3(tmp_path):
    v1 = _datasource(tmp_path / "1", _site_with_influx("v1"))
    assert v1["url"] == "https://influx.example.org:8086" and v1["jsonData"]["dbName"] == "atelier"
    assert "secureJsonData" not in v1  # no user: no authentication
    v2 = _datasource(tmp_path / "2", _site_with_influx("v2"))
    assert v2["jsonData"]["dbName"] == "atelier-bucket"  # the DBRP-mapped database
    assert v2["jsonData"]["httpHeaderName1"] == "Authorization"
    assert v2["secureJsonData"]["httpHeaderValue1"] == "Token $WATTELIER_INFLUX_TOKEN"
    v3 = _datasource(tmp_path / "3", _site_with_influx("v1"), version="3")
    assert v3["secureJsonData"] == {"password": "$WATTELIER_INFLUX_TOKEN"} and v3["user"]
    with pytest.raises(ValueError, match="InfluxDB version"):
        _datasource(tmp_path / "4", _site_with_influx("v1"), version="4")


def test_alert_rules_file(tmp_path, site):
    build(tmp_path, site, receiver="atelier-team")
    document = yaml.safe_load((tmp_path / "provisioning/alerting/wattelier.yaml").read_text())
    assert document["apiVersion"] == 1
    (group,) = document["groups"]
    assert group["folder"] == "wattelier" and group["interval"] == "1m"
    rules = group["rules"]
    assert len({r["uid"] for r in rules}) == len(rules) == len(site.machines) + 3
    for rule in rules:
        assert len(rule["uid"]) <= 40
        assert set(rule) >= {"uid", "title", "condition", "data", "for", "annotations", "noDataState",
                             "execErrState", "labels"}
        assert rule["annotations"]["summary"]
        assert rule["notification_settings"]["receiver"] == "atelier-team"
        assert rule["data"][0]["datasourceUid"] == "wattelier-influxdb"
        assert "$timeFilter" in rule["data"][0]["model"]["query"]
        assert rule["condition"] in {d["refId"] for d in rule["data"]}
    left_on = [r for r in rules if "left on" in r["title"]]
    (mute,) = document["muteTimes"]
    assert all(r["notification_settings"]["mute_time_intervals"] == [mute["name"]] for r in left_on)
    monday = [i for i in mute["time_intervals"] if i["weekdays"] == ["monday"]]
    assert [i["times"] for i in monday] == [[{"start_time": "08:30", "end_time": "12:30"}],
                                            [{"start_time": "13:30", "end_time": "19:00"}]]
    assert all(i["location"] == "Europe/Paris" for i in mute["time_intervals"])
    assert not [i for i in mute["time_intervals"] if i["weekdays"] == ["sunday"]]  # closed all day
    silent = next(r for r in rules if "stopped reporting" in r["title"])
    assert silent["noDataState"] == "Alerting"


def test_push_sends_each_dashboard_once_with_the_token_and_reports_a_refused_one(site):
    dashboards = all_dashboards(site)
    with FakeGrafana(TOKEN, refuse={"wattelier-members"}) as grafana:
        report = push(grafana.url, TOKEN, dashboards)
    assert [b["dashboard"]["uid"] for b in grafana.received] == [d["uid"] for d in dashboards]
    assert set(grafana.authorizations) == {f"Bearer {TOKEN}"}
    assert all(b["overwrite"] is True and b["folderUid"] == "wattelier" and b["dashboard"]["id"] is None
               for b in grafana.received)
    assert len(report.pushed) == 4 and not report.ok
    assert report.refused == ["Members · Manufacture du Canal: refused by Grafana (HTTP 412): "
                              "The dashboard has been changed by someone else"]


def test_push_with_a_wrong_token_reports_each_refusal(site):
    with FakeGrafana(TOKEN) as grafana:
        report = push(grafana.url, "wrong", all_dashboards(site))
    assert report.pushed == [] and len(report.refused) == 5
    assert all("(HTTP 401): Unauthorized" in line for line in report.refused)


def test_push_to_nothing_is_one_error(site):
    from devices.sim.ports import free_port

    with pytest.raises(GrafanaUnreachable, match="cannot reach Grafana"):
        push(f"http://127.0.0.1:{free_port()}", TOKEN, all_dashboards(site))
    with pytest.raises(GrafanaUnreachable, match="not an http"):
        push("grafana.example.org", TOKEN, all_dashboards(site))


@pytest.fixture
def self_signed(tmp_path):
    """A certificate for 127.0.0.1 that no authority signed (cert, key paths)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_push_verifies_tls(site, self_signed):
    dashboards = all_dashboards(site)[:1]
    with FakeGrafana(TOKEN, certificate=self_signed) as grafana:
        assert grafana.url.startswith("https://")
        with pytest.raises(GrafanaUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
            push(grafana.url, TOKEN, dashboards)
        assert grafana.received == []
        trusting = ssl.create_default_context(cafile=str(self_signed[0]))
        report = push(grafana.url, TOKEN, dashboards, context=trusting)
    assert report.ok and len(grafana.received) == 1


# ---- the command line ---------------------------------------------------------------------------

def test_cli_build_then_push(tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "floor-now.json" in result.output
    monkeypatch.setenv("WATTELIER_GRAFANA_TOKEN", TOKEN)
    with FakeGrafana(TOKEN, refuse={"wattelier-machine"}) as grafana:
        result = runner.invoke(app, ["push", "--grafana-url", grafana.url, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.count("pushed: ") == 4
    assert "Machine · Manufacture du Canal: refused by Grafana (HTTP 412)" in result.output
    assert "Traceback" not in result.output
    assert len(grafana.received) == 5


def test_cli_push_builds_when_no_folder_is_given(monkeypatch):
    monkeypatch.setenv("WATTELIER_GRAFANA_TOKEN", TOKEN)
    with FakeGrafana(TOKEN) as grafana:
        result = CliRunner().invoke(app, ["push", "--grafana-url", grafana.url])
    assert result.exit_code == 0, result.output
    assert result.output.count("pushed: ") == 5


def test_cli_push_without_a_token_or_a_grafana(tmp_path, monkeypatch):
    monkeypatch.delenv("WATTELIER_GRAFANA_TOKEN", raising=False)
    site_file = tmp_path / "site.toml"
    site_file.write_text(example_site_path().read_text(encoding="utf-8").replace(
        'secrets_file = "secrets.toml"', 'secrets_file = "nowhere.toml"'), encoding="utf-8")
    result = CliRunner().invoke(app, ["push", "--grafana-url", "http://127.0.0.1:9", "--config", str(site_file)])
    assert result.exit_code == 2 and "no Grafana token: set WATTELIER_GRAFANA_TOKEN" in result.output
    # the token from the secrets file (owner-only), and a Grafana that is not there: one line
    (tmp_path / "nowhere.toml").write_text(f'grafana_token = "{TOKEN}"\n', encoding="utf-8")
    (tmp_path / "nowhere.toml").chmod(0o600)
    from devices.sim.ports import free_port

    result = CliRunner().invoke(app, ["push", "--grafana-url", f"http://127.0.0.1:{free_port()}",
                                      "--config", str(site_file)])
    assert result.exit_code == 1 and "cannot reach Grafana" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_built_dashboards_are_the_catalogs(tmp_path, site):
    build(tmp_path, site)
    assert sorted(json.dumps(d, sort_keys=True) for d in built_dashboards(tmp_path)) == \
        sorted(json.dumps(d, sort_keys=True) for d in all_dashboards(site))
