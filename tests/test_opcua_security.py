"""OPC UA security end to end over real sockets on 127.0.0.1 (acceptance 8): Basic256Sha256
Sign and SignAndEncrypt against the CNC simulator, user names and user certificates, refusals
(wrong password, untrusted server, policy None), certificate files, reconnection. No mocks: the
simulator is a real asyncua server, the collector the real adapter and CncSource."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
import pytest_asyncio
import typer
from asyncua import Client, ua
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from collector import certs
from collector.cnc_source import CncSource
from collector.errors import ConfigError, OpcUaSecurityError, UntrustedCertificateError
from collector.opcua_adapter import OpcUaConnection
from collector.sink import ListSink
from devices.node_maps import load_node_map
from devices.site import Controller, SecurityMode, SiteError, example_site_path, parse_site
from devices.sim.opcua_server import CncServer, SimMachine, SimSecurity
from devices.sim.signals import ControllerSignals
from wattelier.commands.certs import certs as certs_command

# Async tests share the module's event loop (the simulator fixture lives there).
module_loop = pytest.mark.asyncio(loop_scope="module")

PASSWORD = "correct horse battery staple"
PASSWORD_ENV = "WATTELIER_TEST_MILL_PASSWORD"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
FAST = dict(backoff_initial_s=0.1, backoff_max_s=0.8, watchdog_interval_s=0.5, timeout_s=2.0)
LOGGER = "wattelier.collector.opcua"
CNC = "opc40502-cnc"


def flatten(points, since_ns: int = 0) -> dict:
    return {(p.time_ns, q): v for p in points if p.time_ns >= since_ns for q, v in p.fields.items()}


async def wait_for(predicate, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def make_user_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A user certificate and key (X509IdentityToken), made with the collector's generator."""
    folder.mkdir(parents=True, exist_ok=True)
    key = certs.generate_private_key()
    certificate = certs.generate_certificate(key, f"urn:wattelier:test:user:{name}", name)
    cert_path, key_path = folder / f"{name}-cert.der", folder / f"{name}-key.pem"
    certs.write_certificate(cert_path, certificate)
    certs.write_private_key(key_path, key)
    return cert_path, key_path


def trusting(folder: Path, server: CncServer) -> Path:
    """A client certificate folder whose trust folder holds the server's certificate."""
    pki = certs.client_pki(folder)
    pki.trust_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(server.certificate_path, pki.trust_dir / "simulator.der")
    return folder


def secure_controller(server: CncServer, certificate_dir: Path, mode: str = "SignAndEncrypt",
                      **extra) -> Controller:
    return Controller(machine="mill-1", endpoint=server.endpoint, node_map=CNC,
                      security_policy="Basic256Sha256", security_mode=mode,
                      certificate_dir=str(certificate_dir), publishing_interval_s=0.1, **extra)


def down_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and " is down" in r.getMessage()]


@pytest.fixture(scope="module")
def pki_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def user_certificate(pki_root) -> tuple[Path, Path]:
    return make_user_certificate(pki_root / "users", "operator")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(pki_root, user_certificate):
    """A controller that offers Basic256Sha256 Sign and SignAndEncrypt only, with one user name
    and one accepted user certificate (no anonymous access)."""
    server = CncServer([SimMachine("mill-1", CNC)],
                       security=SimSecurity(pki_root / "server", users={"collector": PASSWORD},
                                            user_certificates=(user_certificate[0],)))
    await server.update("mill-1", ControllerSignals(program="P0", part_count=3), time_ns=T0)
    await server.start()
    yield server
    await server.stop()
    assert server.write_attempts == 0, server.write_attempts_by_service
    assert server.max_sessions_seen == 1  # the tests never had two sessions open at once


@pytest.fixture(autouse=True)
def password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.fixture
def no_writes(sim):
    before = sim.write_attempts
    yield sim
    assert sim.write_attempts == before == 0, sim.write_attempts_by_service


async def run_until(source: CncSource, sink: ListSink, predicate, what: str,
                    timeout_s: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(sink, stop))
    try:
        await wait_for(predicate, timeout_s, what)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


# -- what works ---------------------------------------------------------------------------------


@module_loop
async def test_sign_and_encrypt_with_username_collects_changes(sim, no_writes, tmp_path):
    ctl = secure_controller(sim, trusting(tmp_path / "pki", sim), username="collector",
                            password_env=PASSWORD_ENV)
    source = CncSource("mill-1-cnc", ctl, load_node_map(CNC), "site", **FAST)
    sink, stop = ListSink(), asyncio.Event()
    before = dict(sim.sessions_by_security)
    task = asyncio.create_task(source.run(sink, stop))
    try:
        await wait_for(lambda: (T0, "program") in flatten(sink.points), what="initial values")
        changed_ns = T0 + 7_000_000_000
        await sim.update("mill-1", ControllerSignals(execution="running", mode="automatic",
                                                     program="P-secure", spindle_speed_rpm=9000.0,
                                                     part_count=4), time_ns=changed_ns)
        await wait_for(lambda: (changed_ns, "spindle_speed_rpm") in flatten(sink.points),
                       what="changed values")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    after = flatten(sink.points, changed_ns)
    assert after[(changed_ns, "execution")] == "running"
    assert after[(changed_ns, "program")] == "P-secure"
    assert after[(changed_ns, "spindle_speed_rpm")] == 9000.0
    assert sim.sessions_by_security["Basic256Sha256/SignAndEncrypt"] == \
        before.get("Basic256Sha256/SignAndEncrypt", 0) + 1
    assert sim.users_accepted["collector"] >= 1
    assert source.connects == 1 and source.errors_by_kind == {}
    assert sim.sessions_active == 0  # closed at stop


@module_loop
async def test_sign_with_username_reads(sim, no_writes, tmp_path):
    before = sim.sessions_by_security.get("Basic256Sha256/Sign", 0)
    connection = OpcUaConnection(sim.endpoint, security_policy="Basic256Sha256",
                                 security_mode="Sign", username="collector", password=PASSWORD,
                                 certificate_dir=trusting(tmp_path / "pki", sim))
    async with connection:
        assert await connection.read_server_state() == "Running"
        resolved = await connection.resolve(load_node_map(CNC))
        program = await connection.read_value(resolved.nodes["program"])
    assert program == sim.machines["mill-1"].signals.program
    assert sim.sessions_by_security["Basic256Sha256/Sign"] == before + 1
    assert connection.trusted_certificate_path == connection.pki.trust_dir / "simulator.der"


@module_loop
async def test_user_certificate_token_works_and_an_unknown_one_is_refused(
        sim, no_writes, tmp_path, user_certificate):
    cert_path, key_path = user_certificate
    ctl = secure_controller(sim, trusting(tmp_path / "pki", sim), user_certificate=str(cert_path),
                            user_private_key=str(key_path))
    accepted = sim.users_accepted.get("certificate", 0)
    source = CncSource("mill-1-cnc", ctl, load_node_map(CNC), "site", **FAST)
    sink = ListSink()
    await run_until(source, sink, lambda: any("program" in p.fields for p in sink.points),
                    "values with a user certificate")
    assert sim.users_accepted["certificate"] == accepted + 1
    stranger_cert, stranger_key = make_user_certificate(tmp_path / "stranger", "stranger")
    refused = sim.users_refused
    connection = OpcUaConnection(sim.endpoint, security_policy="Basic256Sha256",
                                 user_certificate=stranger_cert, user_private_key=stranger_key,
                                 certificate_dir=tmp_path / "pki")
    with pytest.raises(OpcUaSecurityError, match="refused the user certificate") as info:
        await connection.connect()
    assert info.value.status_name == "BadUserAccessDenied"
    assert sim.users_refused == refused + 1
    assert sim.sessions_active == 0


# -- refusals -----------------------------------------------------------------------------------


@module_loop
async def test_wrong_password_is_refused_logged_once_and_retried_with_backoff(
        sim, no_writes, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(PASSWORD_ENV, "not the password")
    ctl = secure_controller(sim, trusting(tmp_path / "pki", sim), username="collector",
                            password_env=PASSWORD_ENV)
    source = CncSource("mill-1-cnc", ctl, load_node_map(CNC), "site", **FAST)
    caplog.set_level(logging.INFO, logger=LOGGER)
    refused, sessions = sim.users_refused, sim.sessions_created
    sink, stop = ListSink(), asyncio.Event()
    task = asyncio.create_task(source.run(sink, stop))
    window_s = 2.5
    await asyncio.sleep(window_s)
    assert not task.done()  # no crash: still trying
    stop.set()
    started = time.monotonic()
    await asyncio.wait_for(task, timeout=5)
    assert time.monotonic() - started < 1.5
    attempts = source.errors_by_kind["opcua_security"]
    # Delays 0.1, 0.2, 0.4, 0.8, 0.8 ... s: about 5 attempts in 2.5 s; without backoff, hundreds.
    assert 3 <= attempts <= 9, attempts
    assert set(source.errors_by_kind) == {"opcua_security"}
    # an attempt in flight when stop is set is abandoned uncounted, though the server may still
    # refuse it: one more refusal (and session) on the server's side at most
    assert attempts <= sim.users_refused - refused <= attempts + 1
    assert sim.sessions_created - sessions == sim.users_refused - refused  # each refused session was closed:
    assert sim.sessions_active == 0
    assert sink.points == [] and source.connects == 0
    [line] = down_lines(caplog)
    assert "refused user 'collector' (BadUserAccessDenied)" in line
    assert f"environment variable {PASSWORD_ENV}" in line and "not the password" not in line
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a refusal"


@module_loop
async def test_untrusted_server_certificate_is_refused_until_copied(sim, no_writes, tmp_path, caplog):
    folder = tmp_path / "pki"  # empty trust folder
    ctl = secure_controller(sim, folder, username="collector", password_env=PASSWORD_ENV)
    source = CncSource("mill-1-cnc", ctl, load_node_map(CNC), "site", **FAST)
    caplog.set_level(logging.INFO, logger=LOGGER)
    sessions = sim.sessions_created
    sink, stop = ListSink(), asyncio.Event()
    task = asyncio.create_task(source.run(sink, stop))
    try:
        await wait_for(lambda: source.errors_by_kind.get("untrusted_certificate", 0) >= 2,
                       what="refusals")
        assert sim.sessions_created == sessions  # refused before any session
        pki = certs.client_pki(folder)
        [rejected] = list(pki.rejected_dir.iterdir())
        assert rejected.read_bytes() == sim.certificate_path.read_bytes()
        [line] = down_lines(caplog)
        assert f"copy {rejected} into {pki.trust_dir}/" in line
        assert certs.thumbprint(rejected.read_bytes()) in line
        assert sink.points == []
        shutil.copy(rejected, pki.trust_dir)  # what the message says to do
        await wait_for(lambda: source.subscribed and sink.points, what="subscription once trusted")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert sum(" is back after" in r.getMessage() for r in caplog.records) == 1


@module_loop
async def test_untrusted_error_is_ours_and_a_lookalike_certificate_is_not_trusted(sim, no_writes, tmp_path):
    folder = tmp_path / "pki"
    pki = certs.client_pki(folder)
    pki.trust_dir.mkdir(parents=True)
    # Same name and URI, another key: not the server's certificate.
    key = certs.generate_private_key()
    lookalike = certs.generate_certificate(key, "urn:wattelier:sim:cnc", "wattelier CNC simulator",
                                           client=False, server=True)
    certs.write_certificate(pki.trust_dir / "lookalike.der", lookalike)
    connection = OpcUaConnection(sim.endpoint, security_policy="Basic256Sha256",
                                 username="collector", password=PASSWORD, certificate_dir=folder)
    with pytest.raises(UntrustedCertificateError) as info:
        await connection.connect()
    assert info.value.trust_dir == str(pki.trust_dir)
    assert Path(info.value.certificate_path).parent == pki.rejected_dir
    assert info.value.thumbprint == certs.thumbprint(sim.certificate_path.read_bytes())


@module_loop
async def test_policy_none_is_refused_unless_allowed(sim, no_writes, tmp_path):
    # The collector asking for None from a server that offers only Basic256Sha256: refused
    # before any session, saying what the server offers.
    sessions, refused = sim.sessions_created, sim.sessions_refused
    ctl = Controller(machine="mill-1", endpoint=sim.endpoint, node_map=CNC,
                     security_policy="None", allow_insecure=True)
    connection = OpcUaConnection.for_controller(ctl)
    with pytest.raises(OpcUaSecurityError, match=r"offers no endpoint with security None \(it "
                       r"offers Basic256Sha256/Sign, Basic256Sha256/SignAndEncrypt\)") as info:
        await connection.connect()
    assert info.value.status_name == "BadSecurityPolicyRejected"
    assert sim.sessions_created == sessions
    # A client that skips that check (plain asyncua, no security): the server refuses the
    # session on its channel without security.
    client = Client(sim.endpoint, timeout=2)
    with pytest.raises(ua.UaStatusCodeError) as raw:
        await client.connect()
    assert ua.StatusCode(raw.value.code).name == "BadSecurityPolicyRejected"
    assert sim.sessions_refused == refused + 1
    assert sim.sessions_created == sessions and sim.sessions_active == 0
    # And the site check refuses None unless the site file says allow_insecure = true.
    example = example_site_path().read_text(encoding="utf-8")
    opt_in = 'security_policy = "None"\nallow_insecure = true'
    assert opt_in in example
    parse_site(example, "example.toml")
    with pytest.raises(SiteError) as bad:
        parse_site(example.replace(opt_in, 'security_policy = "None"'), "site.toml")
    assert any("controllers.router-1-cnc.security_policy: 'None' sends everything in clear" in p
               for p in bad.value.problems), bad.value.problems


@module_loop
async def test_a_server_may_also_offer_none(tmp_path):
    """SimSecurity(allow_none=True): None and Basic256Sha256 side by side (anonymous users)."""
    server = CncServer([SimMachine("mill-1", CNC)],
                       security=SimSecurity(tmp_path / "server", modes=(SecurityMode.SIGN_AND_ENCRYPT,),
                                            allow_none=True))
    await server.start()
    try:
        async with OpcUaConnection(server.endpoint) as insecure:
            assert await insecure.read_server_state() == "Running"
        async with OpcUaConnection(server.endpoint, security_policy="Basic256Sha256",
                                   certificate_dir=trusting(tmp_path / "pki", server)) as secure:
            assert await secure.read_server_state() == "Running"
        with pytest.raises(OpcUaSecurityError, match="it offers Basic256Sha256/SignAndEncrypt, None"):
            await OpcUaConnection(server.endpoint, security_policy="Basic256Sha256",
                                  security_mode="Sign", certificate_dir=tmp_path / "pki").connect()
    finally:
        await server.stop()
    assert server.sessions_by_security == {"None/None": 1, "Basic256Sha256/SignAndEncrypt": 1}
    assert server.users_accepted == {"anonymous": 2}
    assert server.write_attempts == 0


@module_loop
async def test_a_server_that_does_not_trust_the_collector_names_the_file_to_give_it(tmp_path):
    server = CncServer([SimMachine("mill-1", CNC)],
                       security=SimSecurity(tmp_path / "server", users={"collector": PASSWORD},
                                            client_certificates=()))  # trusts no client yet
    await server.start()
    try:
        folder = trusting(tmp_path / "pki", server)
        connection = OpcUaConnection(server.endpoint, security_policy="Basic256Sha256",
                                     username="collector", password=PASSWORD,
                                     certificate_dir=folder)
        with pytest.raises(OpcUaSecurityError) as info:
            await connection.connect()
    finally:
        await server.stop()
    pki = certs.client_pki(folder)
    assert info.value.status_name == "BadCertificateUntrusted"
    assert f"add {pki.certificate_path}" in str(info.value)
    assert certs.thumbprint(pki.certificate_path.read_bytes()) in str(info.value)
    assert server.sessions_refused == 1 and server.sessions_created == 0
    assert server.write_attempts == 0


# -- secrets and certificate files --------------------------------------------------------------


def test_password_comes_from_the_environment_or_the_secrets_file(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV)
    ctl = Controller(machine="mill-1", endpoint="opc.tcp://127.0.0.1:4840", node_map=CNC,
                     username="collector", password_env=PASSWORD_ENV,
                     certificate_dir=str(tmp_path / "pki"))
    secrets = tmp_path / "secrets.toml"
    with pytest.raises(ConfigError, match=f"set the environment variable {PASSWORD_ENV} or "
                       r"password in \[controllers.mill-1-cnc\]"):
        CncSource("mill-1-cnc", ctl, load_node_map(CNC), "site", secrets_file=secrets)
    secrets.write_text('[controllers.mill-1-cnc]\npassword = "from-file"\n', encoding="utf-8")
    os.chmod(secrets, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        CncSource("mill-1-cnc", ctl, load_node_map(CNC), "site", secrets_file=secrets)
    os.chmod(secrets, 0o600)
    source = CncSource("mill-1-cnc", ctl, load_node_map(CNC), "site", secrets_file=secrets)
    assert source._password == "from-file"
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    source = CncSource("mill-1-cnc", ctl, load_node_map(CNC), "site", secrets_file=secrets)
    assert source._password == "from-env"
    # Creating a secured source made the collector's certificate ("on first use").
    assert certs.client_pki(tmp_path / "pki").certificate_path.exists()


def test_certificate_files_have_tight_permissions(tmp_path, caplog):
    folder = tmp_path / "pki"
    folder.mkdir(mode=0o755)
    pki = certs.client_pki(folder)
    identity = certs.ensure_client_certificate(pki)
    assert identity.created == ("key", "certificate")
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(folder) == 0o700  # tightened, though it existed
    assert mode(pki.private_key_path) == 0o600
    assert mode(pki.trust_dir) == 0o700 and mode(pki.rejected_dir) == 0o700
    certificate = certs.load_certificate(pki.certificate_path)
    assert certificate.public_key().key_size == 2048
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)
    assert certs.application_uri_of(certificate) == identity.application_uri
    assert identity.application_uri.endswith(":wattelier:collector")
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages
    # Used again as it is; a key made readable by others is made private again.
    os.chmod(pki.private_key_path, 0o644)
    again = certs.ensure_client_certificate(pki)
    assert again.created == () and certs.der(again.certificate) == certs.der(certificate)
    assert mode(pki.private_key_path) == 0o600
    # A certificate that does not belong to the key is made again.
    other = certs.generate_certificate(certs.generate_private_key(), identity.application_uri)
    certs.write_certificate(pki.certificate_path, other)
    assert certs.ensure_client_certificate(pki).created == ("certificate",)
    # One that expires soon is kept (servers trust that one) and said, once.
    soon = certs.generate_certificate(again.private_key, identity.application_uri, validity_days=10)
    certs.write_certificate(pki.certificate_path, soon)
    with caplog.at_level(logging.WARNING, logger="wattelier.collector.certs"):
        for _ in range(2):
            assert certs.ensure_client_certificate(pki).created == ()
    assert [r.getMessage() for r in caplog.records].count(
        f"OPC UA client certificate {pki.certificate_path} expires on "
        f"{soon.not_valid_after_utc:%Y-%m-%d}: run `wattelier certs --renew` and give the new "
        "certificate to every server") == 1
    assert certs.ensure_client_certificate(pki, renew=True).created == ("key", "certificate")


def test_wattelier_certs_command(tmp_path):
    app = typer.Typer()
    app.command()(certs_command)
    folder = tmp_path / "pki"
    runner = CliRunner()
    first = runner.invoke(app, ["--config", str(example_site_path()), "--dir", str(folder)])
    assert first.exit_code == 0, first.output
    pki = certs.client_pki(folder)
    assert f"OPC UA client certificate: {pki.certificate_path} (made now)" in first.output
    assert "mill-1-cnc (mill-1)" in first.output and "Basic256Sha256/SignAndEncrypt" in first.output
    assert "router-1-cnc" not in first.output  # policy None: nothing to trust
    assert f"Copy each machine's server certificate into {pki.trust_dir}/" in first.output
    assert stat.S_IMODE(pki.private_key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    thumb = certs.thumbprint(pki.certificate_path.read_bytes())
    assert thumb in first.output
    second = runner.invoke(app, ["--config", str(example_site_path()), "--dir", str(folder)])
    assert second.exit_code == 0 and "(already there)" in second.output and thumb in second.output


# -- reconnection with security -----------------------------------------------------------------


@module_loop
async def test_secured_server_restart_resubscribes_within_10_s_with_one_session(tmp_path, caplog):
    server = CncServer([SimMachine("mill-1", CNC)],
                       security=SimSecurity(tmp_path / "server", users={"collector": PASSWORD}))
    await server.update("mill-1", ControllerSignals(program="P1"), time_ns=T0)
    await server.start()
    ctl = secure_controller(server, trusting(tmp_path / "pki", server), username="collector",
                            password_env=PASSWORD_ENV)
    source = CncSource("mill-1-cnc", ctl, load_node_map(CNC), "site", **FAST)
    sink, stop = ListSink(), asyncio.Event()
    caplog.set_level(logging.INFO, logger=LOGGER)
    task = asyncio.create_task(source.run(sink, stop))
    try:
        await wait_for(lambda: source.subscribed and sink.points, what="first subscription")
        await server.stop()
        await wait_for(lambda: not source.subscribed, what="loss detected")
        await asyncio.sleep(1.0)
        await server.start()  # same certificate (kept in its folder): still trusted
        back_at = time.monotonic()
        await wait_for(lambda: source.subscribed, what="resubscription")
        assert time.monotonic() - back_at < 10.0
        count = len(sink.points)
        await server.update("mill-1", ControllerSignals(program="P2"), time_ns=T0 + 5_000_000)
        await wait_for(lambda: (T0 + 5_000_000, "program") in flatten(sink.points[count:]),
                       what="points after restart")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await server.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert sum(" is down" in line for line in lines) == 1, lines
    assert sum(" is back after" in line for line in lines) == 1, lines
    assert source.reconnects == 1
    assert server.max_sessions_seen == 1 and server.sessions_created >= 2
    assert set(server.sessions_by_security) == {"Basic256Sha256/SignAndEncrypt"}
    assert server.write_attempts == 0


@module_loop
async def test_secured_silent_server_session_is_taken_over_and_closed(tmp_path, caplog):
    """A hung connection: the left-over session is re-activated on a new secure channel with
    the same user and closed before the new one (one session at a time)."""
    server = CncServer([SimMachine("mill-1", CNC)],
                       security=SimSecurity(tmp_path / "server", users={"collector": PASSWORD}))
    await server.update("mill-1", ControllerSignals(program="P1"), time_ns=T0)
    await server.start()
    ctl = secure_controller(server, trusting(tmp_path / "pki", server), mode="Sign",
                            username="collector", password_env=PASSWORD_ENV)
    source = CncSource("mill-1-cnc", ctl, load_node_map(CNC), "site",
                       **{**FAST, "timeout_s": 1.0, "session_timeout_s": 5.0})
    sink, stop = ListSink(), asyncio.Event()
    task = asyncio.create_task(source.run(sink, stop))
    try:
        await wait_for(lambda: source.subscribed and sink.points, what="first subscription")
        assert server.freeze_connections() == 1
        await wait_for(lambda: not source.subscribed, what="silence detected")
        await wait_for(lambda: source.subscribed, what="resubscription")
        count = len(sink.points)
        await server.update("mill-1", ControllerSignals(program="P2"), time_ns=T0 + 1_000)
        await wait_for(lambda: (T0 + 1_000, "program") in flatten(sink.points[count:]),
                       what="points after the silence")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await server.stop()
    assert source.orphans_closed == 1
    assert server.max_sessions_seen == 1 and server.sessions_created == 2
    assert server.users_accepted == {"collector": 3}  # two sessions + the take-over
    assert server.write_attempts == 0
