"""The simulated CNC controllers over real OPC UA (the only devices/sim module importing asyncua).

One `CncServer` is one asyncua server on (host, port, path) serving one or more machines:

- ``umati-machinetool``: a real ``MachineToolType`` instance (OPC 40501-1 v1.01) built from the
  nodesets shipped in `devices/data/nodesets/` (DI, IA, Machinery, MachineTool, imported in that
  order), under ``Objects/Machines/<browse name>``, with the optional pieces a monitoring client
  reads: a ``ChannelMonitoringType`` channel and a ``SpindleMonitoringType`` spindle under
  ``Monitoring``, ``Production/ActiveProgram`` (Name, State/CurrentState with Id and Number) and
  ``Production/Statistics/PartsProducedInLifetime``.
- ``opc40502-cnc``: the OPC 40502 CNC Systems v1.00 interface, built by hand because asyncua's
  importer stops on that nodeset (``BadParentNodeIdInvalid``): namespace
  ``http://opcfoundation.org/UA/CNC`` with the standard's type and enumeration NodeIds and
  browse names, ``Objects/CncInterface/CncChannelList/<Channel>`` and
  ``CncSpindleList/<Spindle>``. The spec allows one CncInterface per server, so one such
  machine per server.

`update(machine, signals, time_ns)` writes the values server-side with the model's time as
SourceTimestamp (only the values that changed, as a controller would). The simulator maps
wattelier's vocabulary onto each standard with its own tables (below), written from the
standards and independent of the node map files, so that tests of the node maps are a real
cross-check. Enumeration integers come from the imported nodeset (umati) or from the
standard's order (CNC). `signals.alarm` is not shown: both standards carry alarms as events
(umati Notification/Messages, CncAlarmType), not as variables.

Read-only towards clients (docs/design.md, "Read-only towards machines"), and every attempt counted in
`write_attempts` (tests assert the collector leaves it at 0):

- Write: every value node has AccessLevel CurrentRead and clients are asyncua "User"s, so the
  server refuses it (BadUserAccessDenied); a PreWrite server callback counts each node written.
- AddNodes, DeleteNodes, AddReferences, DeleteReferences, HistoryUpdate: refused by asyncua's
  role rules; a permission ruleset counts each request before the refusal.

Sessions are counted from asyncua's session registry (CreateSession registers, CloseSession or
the session timeout unregisters): `sessions_active`, `max_sessions_seen`, `sessions_created`.

Security (`SimSecurity`; without it: policy None only, anonymous users). A secured server
offers Basic256Sha256 endpoints with Sign and/or SignAndEncrypt (OPC 10000-7), and policy None
only when asked. Its certificate and key are made in the folder it is given at the first start
and kept for later starts (clients trust that certificate). Users are user names with
passwords and/or user certificates (X509IdentityToken); anonymous only when there are neither.
A session on a channel whose policy and mode the server does not offer is refused at
CreateSession with BadSecurityPolicyRejected: asyncua opens a channel with policy None on any
server (GetEndpoints must work without security, OPC 10000-4 5.5.1) and would then also serve
sessions on it. Client application certificates are accepted from a trust list, or all of them
(as many machines are set up). Refusals are counted: `sessions_refused`, `users_refused`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import ipaddress
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import Node, Server, ua
from asyncua.common.callback import CallbackType
from asyncua.common.instantiate_util import instantiate
from asyncua.common.structures104 import new_enum
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import SimpleRoleRuleset, User, UserRole
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256, SecurityPolicyNone
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.internal_session import InternalSession
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from devices.site import SecurityMode
from devices.sim.signals import ControllerSignals
from devices.vocabulary import EXECUTION_STATES, OPERATION_MODES

logger = logging.getLogger("wattelier.sim.opcua")

NODESET_DIR = Path(__file__).resolve().parent.parent / "data" / "nodesets"
# Import order matters: each model requires the ones before it.
NODESET_FILES = (
    "Opc.Ua.Di.NodeSet2.xml",
    "Opc.Ua.IA.NodeSet2.xml",
    "Opc.Ua.Machinery.NodeSet2.xml",
    "Opc.Ua.MachineTool.NodeSet2.xml",
)
MACHINERY_URI = "http://opcfoundation.org/UA/Machinery/"
MACHINETOOL_URI = "http://opcfoundation.org/UA/MachineTool/"
CNC_URI = "http://opcfoundation.org/UA/CNC"
SIM_URI = "urn:wattelier:sim:cnc"

UMATI = "umati-machinetool"
CNC = "opc40502-cnc"
NODE_MAPS = (UMATI, CNC)

# NodeId identifiers inside their namespaces, from the nodesets (the namespace *index* is always
# looked up from the URI).
_MACHINES_FOLDER = 1001  # Machinery: Objects/Machines
_MT_MACHINE_TOOL_TYPE = 13
_MT_PROGRAM_STATE_MACHINE_TYPE = 15
_MT_CHANNEL_MONITORING_TYPE = 16
_MT_STATISTICS_TYPE = 20
_MT_SPINDLE_MONITORING_TYPE = 22
_MT_CHANNEL_STATE = 64
_MT_MACHINE_OPERATION_MODE = 65
_MT_CHANNEL_MODE = 67

# OPC 40502 v1.00 types and enumerations (Opc.Ua.CNC.NodeSet.xml): (identifier, name[, values]).
_CNC_OBJECT_TYPES = (  # (identifier, browse name, supertype identifier or None for BaseObjectType)
    (1001, "CncComponentType", None),
    (1002, "CncChannelType", 1001),
    (1003, "CncDriveType", 1001),
    (1004, "CncAxisType", 1003),
    (1005, "CncSpindleType", 1003),
    (1007, "CncInterfaceType", None),
    (1008, "CncAxisListType", None),
    (1009, "CncSpindleListType", None),
    (1010, "CncChannelListType", None),
)
_CNC_ENUMS = {  # values are 0, 1, 2... in the standard's order
    3001: ("CncSpindleTurnDirection", ("None", "CW", "CCW")),
    3002: ("CncChannelProgramStatus", ("Stopped", "Running", "Waiting", "Interrupted", "Canceled")),
    3003: ("CncChannelStatus", ("Active", "Interrupted", "Reset")),
    3005: ("CncSpindleStatus", ("Stopped", "InTargetArea", "Accelerating", "Decelerating", "Parked")),
    3006: ("CncOperationMode", ("Manual", "MDA", "Automatic")),
}
_DATA_ITEM_TYPE = ua.NodeId(ua.ObjectIds.DataItemType)
_ANALOG_ITEM_TYPE = ua.NodeId(ua.ObjectIds.AnalogItemType)

# wattelier vocabulary -> the standards' names. Where a standard has no word for ours, the
# nearest one is used (noted); the node maps read these back.
UMATI_OPERATION_MODE = {  # OPC 40501-1 12.5 MachineOperationMode
    "manual": "Manual", "automatic": "Automatic", "setup": "Setup", "service": "Service",
    "other": "Other", "mda": "Other",  # MDA is a channel mode (ChannelMode MdaMdi) in umati
}
UMATI_PROGRAM_STATE = {  # OPC 40501-1 8.4.10 ProductionProgramStateMachineType
    "stopped": "Initializing", "running": "Running", "ended": "Ended",
    "interrupted": "Interrupted", "aborted": "Aborted",
    "waiting": "Interrupted", "canceled": "Aborted",  # no Waiting/Canceled states
}
UMATI_CHANNEL_MODE = {  # OPC 40501-1 ChannelMode
    "automatic": "Automatic", "mda": "MdaMdi", "manual": "JogManual", "setup": "JogManual",
    "service": "Other", "other": "Other",
}
CNC_PROGRAM_STATUS = {  # OPC 40502 7.2.5 CncChannelProgramStatus
    "stopped": "Stopped", "running": "Running", "waiting": "Waiting",
    "interrupted": "Interrupted", "canceled": "Canceled",
    "ended": "Stopped", "aborted": "Canceled",  # no Ended/Aborted status
}
CNC_OPERATION_MODE = {  # OPC 40502 7.2.6 CncOperationMode
    "manual": "Manual", "mda": "MDA", "automatic": "Automatic",
    "setup": "Manual", "service": "Manual", "other": "Manual",  # only three modes
}


def _channel_state(execution: str) -> str:
    """ChannelState (umati) / CncChannelStatus (CNC): Active, Interrupted, Reset."""
    if execution == "running":
        return "Active"
    if execution in ("interrupted", "waiting"):
        return "Interrupted"
    return "Reset"


SERVER_CERTIFICATE_FILE = "server-cert.der"
SERVER_KEY_FILE = "server-key.pem"
_MODE_NAMES = {ua.MessageSecurityMode.None_: "None", ua.MessageSecurityMode.Sign: "Sign",
               ua.MessageSecurityMode.SignAndEncrypt: "SignAndEncrypt"}
_SECURE_MODES = {SecurityMode.SIGN: (ua.SecurityPolicyType.Basic256Sha256_Sign,
                                     ua.MessageSecurityMode.Sign),
                 SecurityMode.SIGN_AND_ENCRYPT: (ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                                                 ua.MessageSecurityMode.SignAndEncrypt)}


@dataclass
class SimSecurity:
    """How a CncServer is secured.

    pki_dir: the server's certificate (server-cert.der) and key (server-key.pem, mode 0600)
        are made here at the first start and kept.
    modes: the Basic256Sha256 endpoints offered: Sign and/or SignAndEncrypt.
    allow_none: also offer an endpoint with policy None.
    users: user name -> password (UserNameIdentityToken).
    user_certificates: certificates accepted as users (X509IdentityToken): DER bytes or files.
    client_certificates: application certificates accepted on secure channels (DER bytes or
        files); None accepts any.
    """

    pki_dir: Path
    modes: tuple[SecurityMode, ...] = (SecurityMode.SIGN, SecurityMode.SIGN_AND_ENCRYPT)
    allow_none: bool = False
    users: Mapping[str, str] = field(default_factory=dict)
    user_certificates: tuple[bytes | Path | str, ...] = ()
    client_certificates: tuple[bytes | Path | str, ...] | None = None

    def __post_init__(self) -> None:
        self.pki_dir = Path(self.pki_dir)
        self.modes = tuple(SecurityMode(m) for m in self.modes)
        unknown = [m.value for m in self.modes if m not in _SECURE_MODES]
        if unknown or not (self.modes or self.allow_none):
            raise ValueError(f"modes must be Sign and/or SignAndEncrypt (got {unknown or 'none'})")

    @property
    def anonymous(self) -> bool:
        """Anonymous users are accepted only when no user is configured."""
        return not self.users and not self.user_certificates


def _der_bytes(item: bytes | Path | str) -> bytes:
    """DER bytes of a certificate given as bytes (DER or PEM) or as a file."""
    data = item if isinstance(item, bytes) else Path(item).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        data = x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return data


class _SimUsers(UserManager):
    """Users of a secured simulator: passwords compared in constant time; user certificates
    compared as DER bytes. Every refusal is counted."""

    def __init__(self, security: SimSecurity, on_accepted: Any, on_refused: Any) -> None:
        self.passwords = dict(security.users)
        self.certificates = {_der_bytes(c) for c in security.user_certificates}
        self.anonymous = security.anonymous
        self.on_accepted = on_accepted
        self.on_refused = on_refused

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is not None:
            expected = self.passwords.get(username)
            if expected is not None and password is not None and hmac.compare_digest(
                    expected.encode("utf-8"), password.encode("utf-8")):
                return self.on_accepted(username)
            self.on_refused(f"user {username!r}: wrong user name or password")
            return None
        # asyncua passes the X509IdentityToken's certificate here (checked against its
        # signature before); anonymous tokens are refused earlier when not supported.
        if certificate is not None and certificate in self.certificates:
            return self.on_accepted("certificate")
        if self.anonymous:
            return self.on_accepted("anonymous")
        self.on_refused("user certificate not accepted")
        return None


@dataclass
class SimMachine:
    """One simulated machine of a CncServer.

    name: the machine's name in wattelier (the key of `update`).
    node_map: "umati-machinetool" or "opc40502-cnc".
    browse_name: umati: the machine's browse name under Objects/Machines (default: name).
    channel, spindle: browse names of the channel and spindle instances.
    """

    name: str
    node_map: str
    browse_name: str | None = None
    channel: str = "Channel1"
    spindle: str = "Spindle1"
    signals: ControllerSignals = field(default_factory=ControllerSignals)
    time_ns: int | None = None  # model time of `signals`; None: never updated
    _nodes: dict[str, ua.NodeId] = field(default_factory=dict, init=False, repr=False)
    _written: dict[str, Any] = field(default_factory=dict, init=False, repr=False)


class CncServer:
    """An OPC UA server of simulated CNC machines.

    machines: SimMachine objects, or a mapping machine name -> node map name.
    host, port, path: where to listen; port 0 picks a free port at the first start and keeps
        it for later restarts (see `port`, `endpoint`).
    extra_namespaces: URIs registered before anything else, so that the standard namespaces get
        other indexes than usual (clients must resolve them by URI). May be changed between
        stop() and start() to move the indexes at a restart.
    security: Basic256Sha256 endpoints, users and certificates (SimSecurity); None: policy
        None only, anonymous users.
    """

    def __init__(
        self,
        machines: Iterable[SimMachine] | Mapping[str, str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/wattelier/cnc",
        *,
        extra_namespaces: Iterable[str] = (),
        security: SimSecurity | None = None,
        server_name: str = "wattelier CNC simulator",
    ) -> None:
        if isinstance(machines, Mapping):
            machines = [SimMachine(name, node_map) for name, node_map in machines.items()]
        self._machines: dict[str, SimMachine] = {}
        for m in machines:
            self._add(m)
        self.security = security
        self.host = host
        self.port = port
        self.path = path if path.startswith("/") or not path else "/" + path
        self.extra_namespaces = list(extra_namespaces)
        self.server_name = server_name
        self.write_attempts = 0
        self.write_attempts_by_service: dict[str, int] = {}
        self.max_sessions_seen = 0
        self.sessions_created = 0
        self.sessions_refused = 0  # CreateSession on a channel this server does not offer
        self.sessions_by_security: dict[str, int] = {}  # "Basic256Sha256/SignAndEncrypt" -> n
        self.users_refused = 0  # ActivateSession with a user that is not accepted
        self.users_accepted: dict[str, int] = {}  # user name ("certificate", "anonymous") -> n
        self._sessions: set[int] = set()
        self._offered: set[tuple[str, ua.MessageSecurityMode]] = set()  # (policy URI, mode)
        self._trusted_clients: set[bytes] | None = None
        self._server: Server | None = None
        self._ns: dict[str, int] = {}
        self._umati_tables: dict[str, Any] | None = None  # read from the nodeset at each start
        self._lock = asyncio.Lock()

    def _add(self, m: SimMachine) -> None:
        if m.node_map not in NODE_MAPS:
            raise ValueError(f"machine {m.name!r}: node map {m.node_map!r} cannot be "
                             f"simulated; use one of {', '.join(NODE_MAPS)}")
        if m.name in self._machines:
            raise ValueError(f"machine {m.name!r} appears twice")
        if m.node_map == CNC and any(o.node_map == CNC for o in self._machines.values()):
            raise ValueError("OPC 40502 has one Objects/CncInterface per server: serve one "
                             f"{CNC} machine per CncServer")
        self._machines[m.name] = m

    # -- public API -------------------------------------------------------------------------

    def add_machine(self, name: str, node_map: str, browse_name: str | None = None) -> SimMachine:
        """Serve one more machine (before start(), or from the next start on)."""
        machine = SimMachine(name, node_map, browse_name=browse_name)
        self._add(machine)
        return machine

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{self.path}"

    @property
    def certificate_path(self) -> Path | None:
        """The server's certificate (DER): what a client puts in its trust folder."""
        return self.security.pki_dir / SERVER_CERTIFICATE_FILE if self.security else None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def sessions_active(self) -> int:
        """Sessions the server holds now (created, not yet closed or timed out)."""
        return len(self._sessions)

    @property
    def machines(self) -> dict[str, SimMachine]:
        return dict(self._machines)

    def namespace_index(self, uri: str) -> int:
        """Index of a namespace URI in the running server (for tests)."""
        return self._ns[uri]

    async def start(self) -> None:
        """Build the address space and listen.

        Loading the standard address space and the four nodesets is CPU work of one to a few
        seconds, during which this event loop does nothing else."""
        async with self._lock:
            if self._server is not None:
                return
            users = (_SimUsers(self.security, self._user_accepted, self._count_user_refused)
                     if self.security else None)
            server = Server(user_manager=users)
            await server.init()
            server.set_endpoint(f"opc.tcp://{self.host}:{self.port}{self.path}")
            server.set_server_name(self.server_name)
            await server.set_application_uri(SIM_URI)
            await self._setup_security(server)
            self._ns = {}
            self._umati_tables = None
            for uri in self.extra_namespaces:
                self._ns[uri] = await server.register_namespace(uri)
            self._ns[SIM_URI] = await server.register_namespace(SIM_URI)
            node_maps = {m.node_map for m in self._machines.values()}
            if UMATI in node_maps:
                for name in NODESET_FILES:
                    await server.import_xml(NODESET_DIR / name)
                for uri in (MACHINERY_URI, MACHINETOOL_URI):
                    self._ns[uri] = await server.get_namespace_index(uri)
            if CNC in node_maps:
                self._ns[CNC_URI] = await server.register_namespace(CNC_URI)
                await self._build_cnc_types(server)
            for m in self._machines.values():
                m._nodes.clear()
                m._written.clear()
                if m.node_map == UMATI:
                    await self._build_umati_machine(server, m)
                else:
                    await self._build_cnc_machine(server, m)
                await self._apply(server, m)
            self._hook_counters(server)
            await server.start()
            if self.security is not None:
                self._hook_channel_check(server)
            self.port = server.bserver.port
            self._server = server
            logger.info("CNC simulator listening on %s (%s)", self.endpoint,
                        ", ".join(f"{m.name}: {m.node_map}" for m in self._machines.values()))

    async def stop(self) -> None:
        """Stop listening; clients lose their connection. `start()` serves again, same port."""
        async with self._lock:
            server, self._server = self._server, None
            if server is None:
                return
            await server.stop()
            # Sessions die with the server process; close them so that their timeout tasks end.
            for session in list(server.iserver._external_sessions.values()):
                try:
                    await session.close_session(True)
                except Exception:  # pragma: no cover - best effort cleanup
                    logger.debug("closing a session at stop failed", exc_info=True)
            self._sessions.clear()
            logger.info("CNC simulator on %s stopped", self.endpoint)

    def freeze_connections(self) -> int:
        """Stop answering on the connections open now, keeping them open: a hung server stack
        or a broken network path, as a client sees it (no socket error, no answer). New
        connections are served normally. Returns how many connections froze."""
        if self._server is None:
            return 0
        transports = list(self._server.iserver.asyncio_transports)
        for transport in transports:
            transport.pause_reading()
        return len(transports)

    async def update(self, machine_name: str, signals: ControllerSignals,
                     time_ns: int | None = None, *, source_time_s: float | None = None) -> None:
        """Show `signals` on the machine's nodes, with the model's time as SourceTimestamp:
        `time_ns` [ns since the Unix epoch] or `source_time_s` [s], default now.

        OPC UA timestamps carry 100 ns and asyncua's datetimes 1 µs: use whole microseconds
        for exact round trips (`source_time_s` is rounded to the microsecond).
        """
        if time_ns is None and source_time_s is not None:
            time_ns = round(source_time_s * 1_000_000) * 1000
        machine = self._machines[machine_name]
        if signals.execution not in EXECUTION_STATES:
            raise ValueError(f"execution {signals.execution!r} is not one of {EXECUTION_STATES}")
        if signals.mode not in OPERATION_MODES:
            raise ValueError(f"mode {signals.mode!r} is not one of {OPERATION_MODES}")
        machine.signals = signals
        machine.time_ns = time.time_ns() if time_ns is None else int(time_ns)
        async with self._lock:
            if self._server is not None:
                await self._apply(self._server, machine)

    async def __aenter__(self) -> "CncServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- security -------------------------------------------------------------------------

    async def _setup_security(self, server: Server) -> None:
        ruleset = _CountingRuleset(self._count_write)
        sec = self.security
        if sec is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity], permission_ruleset=ruleset)
            return
        cert_path, key_path = self._ensure_certificate()
        await server.load_certificate(str(cert_path))
        await server.load_private_key(str(key_path))
        policies = [_SECURE_MODES[m][0] for m in sec.modes]
        if sec.allow_none:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        server.set_security_policy(policies, permission_ruleset=ruleset)
        tokens: list[type] = []
        if sec.users:
            tokens.append(ua.UserNameIdentityToken)
        if sec.user_certificates:
            tokens.append(ua.X509IdentityToken)
        if sec.anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        # The client's certificate must be valid now, carry the ApplicationUri it sends in
        # CreateSession, and allow what Basic256Sha256 and a client do with it (OPC 10000-4
        # 6.1.3); asyncua checks it at CreateSession.
        server.set_certificate_validator(CertificateValidator(
            CertificateValidatorOptions.EXT_VALIDATION | CertificateValidatorOptions.PEER_CLIENT))
        self._offered = {(SecurityPolicyBasic256Sha256.URI, _SECURE_MODES[m][1]) for m in sec.modes}
        if sec.allow_none:
            self._offered.add((SecurityPolicyNone.URI, ua.MessageSecurityMode.None_))
        self._trusted_clients = (None if sec.client_certificates is None
                                 else {_der_bytes(c) for c in sec.client_certificates})

    def _ensure_certificate(self) -> tuple[Path, Path]:
        """The server's certificate and key in pki_dir, made at the first start (OPC 10000-6
        6.2.2: the ApplicationUri and the host names in subjectAltName)."""
        assert self.security is not None
        folder = self.security.pki_dir
        cert_path, key_path = folder / SERVER_CERTIFICATE_FILE, folder / SERVER_KEY_FILE
        if cert_path.exists() and key_path.exists():
            certificate = x509.load_der_x509_certificate(cert_path.read_bytes())
            if certificate.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1):
                return cert_path, key_path
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        key = cert_gen.generate_private_key()
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(SIM_URI)]
        for host in dict.fromkeys((socket.gethostname(), "localhost", self.host)):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        certificate = cert_gen.generate_self_signed_app_certificate(
            key, self.server_name, {"organizationName": "wattelier"}, names,
            extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            days=3650)
        _write_private(key_path, cert_gen.dump_private_key_as_pem(key), 0o600)
        _write_private(cert_path, certificate.public_bytes(serialization.Encoding.DER), 0o644)
        logger.info("CNC simulator certificate made: %s", cert_path)
        return cert_path, key_path

    def _hook_channel_check(self, server: Server) -> None:
        """Refuse CreateSession on a channel whose policy and mode no endpoint offers, or from
        an application certificate not trusted (OPC 10000-4 5.7.2: BadSecurityPolicyRejected,
        BadCertificateUntrusted). asyncua has no hook for it: its InternalServer creates the
        session object first thing at CreateSession, named after the peer address, which
        finds the connection and its channel's security policy."""
        iserver = server.iserver
        create = iserver.create_session

        def create_session(name: Any, *args: Any, **kwargs: Any) -> InternalSession:
            if kwargs.get("external"):
                self._check_channel(server, name)
            return create(name, *args, **kwargs)

        iserver.create_session = create_session

    def _check_channel(self, server: Server, peer: Any) -> None:
        protocol = next((c for c in server.bserver.clients if c.peer_name == peer), None)
        processor = getattr(protocol, "processor", None)
        policy = processor._connection.security_policy if processor is not None else None
        if policy is None:
            self._refuse_session(f"session from {peer}: channel not found",
                                 ua.StatusCodes.BadSecurityChecksFailed)
        if (policy.URI, policy.Mode) not in self._offered:
            self._refuse_session(
                f"session from {peer} on a channel with {policy.URI.rsplit('#', 1)[-1]}/"
                f"{_MODE_NAMES.get(policy.Mode, policy.Mode)}, which this server does not offer",
                ua.StatusCodes.BadSecurityPolicyRejected)
        if (self._trusted_clients is not None and policy.URI != SecurityPolicyNone.URI
                and policy.peer_certificate not in self._trusted_clients):
            self._refuse_session(f"session from {peer}: client certificate not trusted",
                                 ua.StatusCodes.BadCertificateUntrusted)
        key = (f"{policy.URI.rsplit('#', 1)[-1]}/"
               f"{_MODE_NAMES.get(policy.Mode, str(policy.Mode))}")
        self.sessions_by_security[key] = self.sessions_by_security.get(key, 0) + 1

    def _refuse_session(self, why: str, code: int) -> None:
        self.sessions_refused += 1
        logger.warning("CNC simulator %s refused a %s", self.endpoint, why)
        raise ServiceError(code)

    def _user_accepted(self, name: str) -> User:
        self.users_accepted[name] = self.users_accepted.get(name, 0) + 1
        return User(role=UserRole.User, name=None if name == "anonymous" else name)

    def _count_user_refused(self, why: str) -> None:
        self.users_refused += 1
        logger.warning("CNC simulator %s refused %s", self.endpoint, why)

    # -- counting writes and sessions -------------------------------------------------------

    def _count_write(self, service: str, count: int) -> None:
        self.write_attempts += count
        self.write_attempts_by_service[service] = (
            self.write_attempts_by_service.get(service, 0) + count)
        logger.warning("a client attempted %d %s operation(s) on the read-only simulator",
                       count, service)

    def _hook_counters(self, server: Server) -> None:
        async def pre_write(event: Any, _dispatcher: Any) -> None:
            if event.is_external:
                self._count_write("Write", len(event.request_params.NodesToWrite or []))

        server.subscribe_server_callback(CallbackType.PreWrite, pre_write)

        iserver = server.iserver
        register = iserver.register_external_session
        unregister = iserver.unregister_external_session

        def on_register(session: InternalSession) -> None:
            register(session)
            self._sessions.add(id(session))
            self.sessions_created += 1
            self.max_sessions_seen = max(self.max_sessions_seen, len(self._sessions))

        def on_unregister(session: InternalSession) -> None:
            unregister(session)
            self._sessions.discard(id(session))

        # asyncua has no session callbacks; its InternalServer registers every external session
        # (CreateSession) and unregisters it when closed or timed out.
        iserver.register_external_session = on_register
        iserver.unregister_external_session = on_unregister

    # -- address space ----------------------------------------------------------------------

    async def _build_umati_machine(self, server: Server, m: SimMachine) -> None:
        mt, sim = self._ns[MACHINETOOL_URI], self._ns[SIM_URI]
        browse_name = m.browse_name or m.name
        machines = server.get_node(ua.NodeId(_MACHINES_FOLDER, self._ns[MACHINERY_URI]))
        machine_type = server.get_node(ua.NodeId(_MT_MACHINE_TOOL_TYPE, mt))
        # Mandatory children only: asyncua instantiates optional ones from the instance
        # declarations, which lack the optional children of their own types; those we need
        # are added below from their types.
        added = await instantiate(machines, machine_type, bname=ua.QualifiedName(browse_name, sim),
                                  dname=ua.LocalizedText(browse_name), idx=sim,
                                  instantiate_optional=False)
        machine = added[0]

        identification = await _child(machine, "Identification")
        for bname, value in (("Manufacturer", ua.LocalizedText("wattelier")),
                             ("SerialNumber", f"SIM-{browse_name}"),
                             ("ProductInstanceUri", f"{SIM_URI}:{browse_name}")):
            child = await _child(identification, bname)
            if child is not None:
                await _set_value(server, child.nodeid, ua.Variant(value))

        monitoring = await machine.get_child(f"{mt}:Monitoring")
        channel = (await instantiate(monitoring, server.get_node(ua.NodeId(_MT_CHANNEL_MONITORING_TYPE, mt)),
                                     bname=ua.QualifiedName(m.channel, sim), idx=sim,
                                     instantiate_optional=False))[0]
        spindle = (await instantiate(monitoring, server.get_node(ua.NodeId(_MT_SPINDLE_MONITORING_TYPE, mt)),
                                     bname=ua.QualifiedName(m.spindle, sim), idx=sim,
                                     instantiate_optional=False))[0]
        production = await machine.get_child(f"{mt}:Production")
        statistics = (await instantiate(production, server.get_node(ua.NodeId(_MT_STATISTICS_TYPE, mt)),
                                        bname=ua.QualifiedName("Statistics", mt), idx=sim,
                                        instantiate_optional=True))[0]
        program = await production.get_child(f"{mt}:ActiveProgram")
        state = await program.get_child(f"{mt}:State")
        current = await state.get_child("0:CurrentState")

        await _set_value(server, (await channel.get_child(f"{mt}:Name")).nodeid, ua.Variant(m.channel))
        await _set_value(server, (await spindle.get_child(f"{mt}:Name")).nodeid, ua.Variant(m.spindle))
        await _set_value(server, (await program.get_child("0:NumberInList")).nodeid,
                         ua.Variant(0, ua.VariantType.UInt16))
        eu_range = await channel.get_child([f"{mt}:FeedOverride", "0:EURange"])
        await _set_value(server, eu_range.nodeid, ua.Variant(ua.Range(0.0, 200.0)))

        nodes = {
            "mode": await monitoring.get_child([f"{mt}:MachineTool", f"{mt}:OperationMode"]),
            "program": await program.get_child(f"{mt}:Name"),
            "state": current,
            "state_id": await current.get_child("0:Id"),
            "state_number": await _child(current, "Number"),
            "channel_state": await channel.get_child(f"{mt}:ChannelState"),
            "channel_mode": await channel.get_child(f"{mt}:ChannelMode"),
            "feed_override": await channel.get_child(f"{mt}:FeedOverride"),
            "is_rotating": await spindle.get_child(f"{mt}:IsRotating"),
            "part_count": await statistics.get_child(f"{mt}:PartsProducedInLifetime"),
        }
        m._nodes = {key: node.nodeid for key, node in nodes.items() if node is not None}
        for nodeid in m._nodes.values():
            await _read_only(server, nodeid)
        if self._umati_tables is None:
            self._umati_tables = await self._read_umati_tables(server)

    async def _read_umati_tables(self, server: Server) -> dict[str, Any]:
        """Enumeration values and program states, read from the imported nodeset."""
        mt = self._ns[MACHINETOOL_URI]
        tables: dict[str, Any] = {}
        for key, identifier in (("mode", _MT_MACHINE_OPERATION_MODE),
                                ("channel_state", _MT_CHANNEL_STATE),
                                ("channel_mode", _MT_CHANNEL_MODE)):
            definition = await server.get_node(ua.NodeId(identifier, mt)).read_data_type_definition()
            tables[key] = {f.Name: f.Value for f in definition.Fields}
        states = {}
        machine_type = server.get_node(ua.NodeId(_MT_PROGRAM_STATE_MACHINE_TYPE, mt))
        for name in set(UMATI_PROGRAM_STATE.values()):
            state = await machine_type.get_child(f"{mt}:{name}")
            number = await (await state.get_child("0:StateNumber")).read_value()
            states[name] = (state.nodeid, int(number))
        tables["state"] = states
        return tables

    async def _build_cnc_types(self, server: Server) -> None:
        cnc = self._ns[CNC_URI]
        for identifier, name, parent in _CNC_OBJECT_TYPES:
            base = (server.nodes.base_object_type if parent is None
                    else server.get_node(ua.NodeId(parent, cnc)))
            await base.add_object_type(ua.NodeId(identifier, cnc), ua.QualifiedName(name, cnc))
        for identifier, (name, values) in _CNC_ENUMS.items():
            await new_enum(server, ua.NodeId(identifier, cnc), ua.QualifiedName(name, cnc), list(values))

    async def _build_cnc_machine(self, server: Server, m: SimMachine) -> None:
        cnc, sim = self._ns[CNC_URI], self._ns[SIM_URI]

        def t(identifier: int) -> ua.NodeId:
            return ua.NodeId(identifier, cnc)

        iface = await server.nodes.objects.add_object(
            ua.NodeId("CncInterface", sim), ua.QualifiedName("CncInterface", cnc), t(1007))
        for name, value in (("VendorName", "wattelier"), ("VendorRevision", "sim"), ("Version", "1.00")):
            await iface.add_property(ua.NodeId(f"CncInterface.{name}", sim),
                                     ua.QualifiedName(name, cnc), value)
        lists = {}
        for name, type_id in (("CncAxisList", 1008), ("CncChannelList", 1010),
                              ("CncSpindleList", 1009)):
            lists[name] = await iface.add_object(ua.NodeId(f"CncInterface.{name}", sim),
                                                 ua.QualifiedName(name, cnc), t(type_id))
        ch_id = f"CncInterface.CncChannelList.{m.channel}"
        channel = await lists["CncChannelList"].add_object(
            ua.NodeId(ch_id, sim), ua.QualifiedName(m.channel, sim), t(1002))
        await channel.add_property(ua.NodeId(f"{ch_id}.Id", sim), ua.QualifiedName("Id", cnc),
                                   ua.Variant(1, ua.VariantType.UInt32))
        sp_id = f"CncInterface.CncSpindleList.{m.spindle}"
        spindle = await lists["CncSpindleList"].add_object(
            ua.NodeId(sp_id, sim), ua.QualifiedName(m.spindle, sim), t(1005))

        V, T = ua.Variant, ua.VariantType
        text_t, double_t = ua.NodeId(ua.ObjectIds.String), ua.NodeId(ua.ObjectIds.Double)
        percent, rpm = (0.0, 200.0), (0.0, 60000.0)
        # key, parent, NodeId prefix, browse name (CNC namespace), initial value, DataType, EURange
        variables = (
            ("program_status", channel, ch_id, "ActProgramStatus", V(0, T.Int32), t(3002), None),
            ("program", channel, ch_id, "ActProgramName", V("", T.String), text_t, None),
            ("main_program", channel, ch_id, "ActMainProgramName", V("", T.String), text_t, None),
            ("mode", channel, ch_id, "ActOperationMode", V(0, T.Int32), t(3006), None),
            ("channel_status", channel, ch_id, "ActStatus", V(2, T.Int32), t(3003), None),
            ("feed_override", channel, ch_id, "ActOverride", V(100.0, T.Double), double_t, percent),
            ("spindle_speed", spindle, sp_id, "ActSpeed", V(0.0, T.Double), double_t, rpm),
            ("spindle_command", spindle, sp_id, "CmdSpeed", V(0.0, T.Double), double_t, rpm),
            ("spindle_override", spindle, sp_id, "ActOverride", V(100.0, T.Double), double_t, percent),
            ("spindle_status", spindle, sp_id, "ActStatus", V(0, T.Int32), t(3005), None),
            ("spindle_direction", spindle, sp_id, "ActTurnDirection", V(0, T.Int32), t(3001), None),
        )
        m._nodes = {}
        for key, parent, prefix, name, variant, data_type, eu_range in variables:
            m._nodes[key] = await _add_variable(
                server, parent, ua.NodeId(f"{prefix}.{name}", sim), ua.QualifiedName(name, cnc),
                variant, data_type, _ANALOG_ITEM_TYPE if eu_range else _DATA_ITEM_TYPE, eu_range)

    # -- values -----------------------------------------------------------------------------

    def _values(self, m: SimMachine) -> dict[str, ua.Variant]:
        s = m.signals
        V, T = ua.Variant, ua.VariantType
        if m.node_map == UMATI:
            tables = self._umati_tables
            state_name = UMATI_PROGRAM_STATE[s.execution]
            state_id, state_number = tables["state"][state_name]
            return {
                "mode": V(tables["mode"][UMATI_OPERATION_MODE[s.mode]], T.Int32),
                "program": V(s.program, T.String),
                "state": V(ua.LocalizedText(state_name, "en"), T.LocalizedText),
                "state_id": V(state_id, T.NodeId),
                "state_number": V(state_number, T.UInt32),
                "channel_state": V(tables["channel_state"][_channel_state(s.execution)], T.Int32),
                "channel_mode": V(tables["channel_mode"][UMATI_CHANNEL_MODE[s.mode]], T.Int32),
                "feed_override": V(float(s.feed_override_pct), T.Double),
                "is_rotating": V(s.spindle_speed_rpm != 0, T.Boolean),
                "part_count": V(int(s.part_count), T.UInt32),
            }
        enum = {name: {v: i for i, v in enumerate(values)} for name, values in _CNC_ENUMS.values()}
        speed = float(s.spindle_speed_rpm)
        return {
            "program_status": V(enum["CncChannelProgramStatus"][CNC_PROGRAM_STATUS[s.execution]], T.Int32),
            "program": V(s.program, T.String),
            "main_program": V(s.program, T.String),
            "mode": V(enum["CncOperationMode"][CNC_OPERATION_MODE[s.mode]], T.Int32),
            "channel_status": V(enum["CncChannelStatus"][_channel_state(s.execution)], T.Int32),
            "feed_override": V(float(s.feed_override_pct), T.Double),
            "spindle_speed": V(abs(speed), T.Double),
            "spindle_command": V(abs(speed), T.Double),
            "spindle_override": V(100.0, T.Double),
            "spindle_status": V(enum["CncSpindleStatus"]["InTargetArea" if speed else "Stopped"], T.Int32),
            "spindle_direction": V(0 if not speed else (1 if speed > 0 else 2), T.Int32),
        }

    async def _apply(self, server: Server, m: SimMachine) -> None:
        """Write the values that changed since the last write, stamped with the model time."""
        if m.time_ns is None:
            m.time_ns = time.time_ns()
        source_ts = _datetime(m.time_ns)
        server_ts = dt.datetime.now(dt.timezone.utc)
        for key, variant in self._values(m).items():
            nodeid = m._nodes.get(key)
            if nodeid is None or m._written.get(key) == variant.Value:
                continue
            status = await server.write_attribute_value(
                nodeid, ua.DataValue(variant, SourceTimestamp=source_ts, ServerTimestamp=server_ts))
            if status is not None:
                status.check()
            m._written[key] = variant.Value


# Services that change a server, besides Write (counted per node by the PreWrite callback).
_MODIFYING_REQUESTS = {
    ua.NodeId(ua.ObjectIds.AddNodesRequest_Encoding_DefaultBinary): "AddNodes",
    ua.NodeId(ua.ObjectIds.DeleteNodesRequest_Encoding_DefaultBinary): "DeleteNodes",
    ua.NodeId(ua.ObjectIds.AddReferencesRequest_Encoding_DefaultBinary): "AddReferences",
    ua.NodeId(ua.ObjectIds.DeleteReferencesRequest_Encoding_DefaultBinary): "DeleteReferences",
    ua.NodeId(ua.ObjectIds.HistoryUpdateRequest_Encoding_DefaultBinary): "HistoryUpdate",
}


class _CountingRuleset(SimpleRoleRuleset):
    """asyncua's role rules (clients are Users: no node management, no history update), and
    every request of a modifying service counted, before it is refused."""

    def __init__(self, count: Any) -> None:
        super().__init__()
        self._count = count

    def check_validity(self, user: Any, action_type_id: ua.NodeId, body: Any) -> bool:
        service = _MODIFYING_REQUESTS.get(action_type_id)
        if service is not None:
            self._count(service, 1)
        return super().check_validity(user, action_type_id, body)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write a file atomically, created with mode 0600 and then given `mode`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _datetime(time_ns: int) -> dt.datetime:
    """UTC datetime of a nanosecond timestamp (truncated to the microsecond)."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=time_ns // 1000)


async def _child(parent: Node, name: str) -> Node | None:
    """A child by browse name in any namespace, or None."""
    for child in await parent.get_children(refs=ua.ObjectIds.HierarchicalReferences):
        if (await child.read_browse_name()).Name == name:
            return child
    return None


async def _set_value(server: Server, nodeid: ua.NodeId, variant: ua.Variant) -> None:
    status = await server.write_attribute_value(nodeid, ua.DataValue(variant))
    if status is not None:
        status.check()


async def _read_only(server: Server, nodeid: ua.NodeId) -> None:
    read = ua.DataValue(ua.Variant(ua.AccessLevel.CurrentRead.mask, ua.VariantType.Byte))
    for attr in (ua.AttributeIds.AccessLevel, ua.AttributeIds.UserAccessLevel):
        await server.write_attribute_value(nodeid, read, attr)


async def _add_variable(server: Server, parent: Node, nodeid: ua.NodeId, bname: ua.QualifiedName,
                        variant: ua.Variant, data_type: ua.NodeId, type_definition: ua.NodeId,
                        eu_range: tuple[float, float] | None) -> ua.NodeId:
    """A read-only variable with the standard's type definition (DataItemType/AnalogItemType)."""
    attrs = ua.VariableAttributes()
    attrs.DisplayName = ua.LocalizedText(bname.Name)
    attrs.Description = ua.LocalizedText(bname.Name)
    attrs.DataType = data_type
    attrs.Value = variant
    attrs.ValueRank = ua.ValueRank.Scalar
    attrs.AccessLevel = ua.AccessLevel.CurrentRead.mask
    attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
    attrs.WriteMask = 0
    attrs.UserWriteMask = 0
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = nodeid
    item.BrowseName = bname
    item.NodeClass = ua.NodeClass.Variable
    item.ParentNodeId = parent.nodeid
    item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasComponent)
    item.TypeDefinition = type_definition
    item.NodeAttributes = attrs
    result = (await server.iserver.isession.add_nodes([item]))[0]
    result.StatusCode.check()
    if eu_range is not None:
        node = server.get_node(result.AddedNodeId)
        await node.add_property(ua.NodeId(f"{nodeid.Identifier}.EURange", nodeid.NamespaceIndex),
                                ua.QualifiedName("EURange", 0), ua.Variant(ua.Range(*eu_range)))
    return result.AddedNodeId
