"""OPC UA through asyncua: the only collector module that imports asyncua.

`OpcUaConnection` is one client session to one endpoint. It resolves a node map against the
server (namespace indexes from their URIs, browse paths to NodeIds) after every connect,
creates ONE subscription with a data-change monitored item per quantity, and hands every
change to a callback as a `DataChange` in wattelier's vocabulary with its edge timestamp
(SourceTimestamp, else ServerTimestamp, else the local clock). It never writes to the server.

asyncua's own auto-reconnect is not used: after a server restart the namespace indexes and
NodeIds may differ, so the caller (collector.cnc_source) closes this connection and opens a
new one, which resolves everything again. The connection is watched three ways: asyncua's
supervisor reads ServerStatus/State every `watchdog_interval_s` and sees the socket close
(`connection_lost_callback`); the subscription's status-change notifications (BadTimeout,
BadShutdown...); and any failing request. The first of them ends the connection:
`wait_lost()` returns the error.

One session per endpoint, also across a broken network: when a connection dies without its
session being closed (the server may still hold it, with its subscription, until the session
timeout), `close()` keeps its authentication token in `orphan`. The next connection first
re-activates that session on a fresh secure channel and closes it (OPC 10000-4 5.6.3 lets a
client move a session to a new channel), then creates its own. A restarted server answers
BadSessionIdInvalid, and that is fine too.

Security (OPC 10000-2, 10000-4 5.5-5.7, 10000-7 Basic256Sha256). Every connect first asks the
server's discovery endpoint for its endpoints (GetEndpoints over a channel without security and
without a session, OPC 10000-4 5.5.4) and picks the one with the site file's policy and mode;
when there is none (a client asking for None from a server that offers only Basic256Sha256, or
the other way round) it refuses before any session exists. With Basic256Sha256 the server's
certificate must be in the trust folder (collector.certs: refused ones are saved to be copied
there), and the client proves itself with its own certificate, made on first use. The user is
a user name and password (encrypted by the channel with SignAndEncrypt, or by the server's key
with Sign), a user certificate (X509IdentityToken signed with its key), or anonymous.

Errors: asyncua and socket exceptions become collector.errors, never leak::

    asyncua / Python exception                        wattelier error
    ua.UaStatusCodeError (BadNoMatch, BadTooManySessions, ...)
                                                      OpcUaStatusError(status_name=...)
    ... BadUserAccessDenied, BadIdentityToken*, BadCertificate*, BadSecurity*,
    no endpoint with our policy/mode/user token type  OpcUaSecurityError
    a server certificate not in the trust folder      UntrustedCertificateError
    ConnectionError, OSError, TimeoutError, EOFError,
    ua.UaError (protocol), the watchdog's loss         TransportError
    a namespace URI the server does not have,
    a browse path or node id that does not resolve    OpcUaStatusError (per quantity: missing)
    impossible settings, unreadable key files         ConfigError
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import Client, Node, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256, SecurityPolicyNone
from cryptography import x509

from collector import certs
from collector.errors import (ConfigError, DeviceError, OpcUaSecurityError, OpcUaStatusError,
                              TransportError)
from devices.node_maps import NodeMap, PathStep, UnmappedValueError
from devices.site import Controller, SecurityMode, SecurityPolicy

logger = logging.getLogger("wattelier.collector.opcua")


class _ConnectionLossNoise(logging.Filter):
    """asyncua logs each loss of a server several times: "Publish iteration crashed" at ERROR
    with a traceback, then "close_session/close_secure_channel was called but connection is
    closed" when the dead session is closed. Our one "device down" line says it already; these
    records are dropped (a publish failure with another cause is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Publish iteration crashed") and record.exc_info:
            return not isinstance(record.exc_info[1], (ConnectionError, OSError))
        return not message.endswith("was called but connection is closed")


for _name in ("asyncua.client.ua_session.UaSession", "asyncua.client.ua_client.UaClient"):
    logging.getLogger(_name).addFilter(_ConnectionLossNoise())

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
PRODUCT_URI = "urn:wattelier"
_POLICY_URIS = {SecurityPolicy.NONE: SecurityPolicyNone.URI,
                SecurityPolicy.BASIC256SHA256: SecurityPolicyBasic256Sha256.URI}
_POLICY_NAMES = {uri: policy.value for policy, uri in _POLICY_URIS.items()}
_MODES = {SecurityMode.NONE: ua.MessageSecurityMode.None_,
          SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
          SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt}
_MODE_NAMES = {mode: ours.value for ours, mode in _MODES.items()}
# Status codes that say "your security or your user is refused" (OPC 10000-4 7.38).
_USER_REFUSED = frozenset({"BadUserAccessDenied", "BadIdentityTokenInvalid",
                           "BadIdentityTokenRejected", "BadUserSignatureInvalid"})
_CERTIFICATE_REFUSED = frozenset({
    "BadCertificateUntrusted", "BadCertificateInvalid", "BadCertificateTimeInvalid",
    "BadCertificateUriInvalid", "BadCertificateUseNotAllowed", "BadCertificateRevoked",
    "BadCertificateIssuerRevoked", "BadCertificateRevocationUnknown", "BadSecurityChecksFailed",
    "BadApplicationSignatureInvalid", "BadNoValidCertificates"})
_SECURITY_REFUSED = _USER_REFUSED | _CERTIFICATE_REFUSED | frozenset({
    "BadSecurityPolicyRejected", "BadSecurityModeRejected"})
_BASE_OBJECT_TYPE = ua.NodeId(ua.ObjectIds.BaseObjectType)
_MAX_TYPE_DEPTH = 16


@dataclass(frozen=True)
class DataChange:
    """One data-change notification, in wattelier's vocabulary.

    quantity: the canonical quantity (devices.vocabulary.CNC_QUANTITIES).
    value: the vocabulary value; None when it could not be used (see `problem`).
    time_ns: edge timestamp [ns since the Unix epoch, UTC].
    time_source: "source" (SourceTimestamp), "server" (ServerTimestamp) or "local".
    raw: the value as the server sent it (text of a LocalizedText, int of an enumeration).
    problem: why `value` is None: "null", "bad_status:<name>" or "unmapped:<detail>".
    """

    quantity: str
    value: str | float | int | None
    time_ns: int
    time_source: str
    raw: Any = None
    problem: str | None = None


@dataclass
class ResolvedNodes:
    """A node map resolved against one server session.

    nodes: quantity -> NodeId string (as valid in this session only).
    missing: quantity -> why it did not resolve.
    namespaces: namespace URI -> index in this session.
    """

    node_map: NodeMap
    nodes: dict[str, str]
    missing: dict[str, str]
    namespaces: dict[str, int]
    _ids: dict[str, ua.NodeId] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class OrphanSession:
    """A session left on a server by a lost connection, to be closed by the next one."""

    endpoint: str
    token: ua.NodeId
    server_nonce: bytes | None
    user_token_policies: tuple[Any, ...]
    expires_at: float  # time.monotonic() after which the server has dropped it anyway


def translate_error(exc: BaseException, doing: str) -> DeviceError:
    """The collector error for an asyncua or socket exception raised while `doing`."""
    if isinstance(exc, DeviceError):
        return exc
    if isinstance(exc, ua.UaStatusCodeError):
        name = ua.StatusCode(exc.code).name
        kind = OpcUaSecurityError if name in _SECURITY_REFUSED else OpcUaStatusError
        return kind(f"{doing}: {name}", status_name=name)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return TransportError(f"{doing}: timed out")
    if isinstance(exc, (ConnectionError, OSError, EOFError)):
        return TransportError(f"{doing}: {type(exc).__name__}: {exc}".rstrip(": "))
    if isinstance(exc, ua.UaError):
        return TransportError(f"{doing}: OPC UA protocol error: {exc}")
    raise exc  # a bug, not a device problem: let it show


def _first_certificate(chain: bytes) -> bytes:
    """The first DER certificate of a ServerCertificate field, which may hold a chain of
    certificates one after the other (OPC 10000-6 6.2.3): the length of the outer DER
    SEQUENCE says where the first one ends."""
    if len(chain) < 2 or chain[0] != 0x30:
        return chain
    length, header = chain[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, header = int.from_bytes(chain[2:2 + count], "big"), 2 + count
    return chain[:header + length]


def _status_error(status: ua.StatusCode, doing: str) -> OpcUaStatusError:
    return OpcUaStatusError(f"{doing}: {status.name}", status_name=status.name)


def _time_ns(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _plain(value: Any) -> Any:
    """A Python value of an OPC UA value: the text of a LocalizedText, an enumeration's int."""
    if isinstance(value, ua.LocalizedText):
        return value.Text
    if isinstance(value, ua.QualifiedName):
        return value.Name
    if isinstance(value, (ua.NodeId, ua.ExpandedNodeId)):
        return value.to_string()
    if isinstance(value, enum.Enum):
        return value.value  # an enumeration class from loaded data type definitions
    return value


class _Handler:
    """asyncua subscription handler: turns notifications into DataChange callbacks."""

    def __init__(self, connection: "OpcUaConnection", resolved: ResolvedNodes,
                 on_change: Callable[[DataChange], None]) -> None:
        self.connection = connection
        self.node_map = resolved.node_map
        self.quantities: dict[ua.NodeId, list[str]] = {}
        for quantity, nodeid in resolved._ids.items():
            self.quantities.setdefault(nodeid, []).append(quantity)
        self.on_change = on_change

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        quantities = self.quantities.get(node.nodeid)
        if not quantities:
            return
        dv: ua.DataValue = data.monitored_item.Value
        if dv.SourceTimestamp is not None:
            time_ns, source = _time_ns(dv.SourceTimestamp), "source"
        elif dv.ServerTimestamp is not None:
            time_ns, source = _time_ns(dv.ServerTimestamp), "server"
        else:
            time_ns, source = time.time_ns(), "local"
        raw = _plain(val)
        for quantity in quantities:
            value, problem = None, None
            if dv.StatusCode is not None and not dv.StatusCode.is_good():
                problem = f"bad_status:{dv.StatusCode.name}"
            elif raw is None:
                problem = "null"
            else:
                try:
                    value = self.node_map.convert(quantity, raw)
                except UnmappedValueError as exc:
                    problem = f"unmapped:{exc}"
            self.on_change(DataChange(quantity, value, time_ns, source, raw, problem))

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        code = status.Status
        if code is not None and not code.is_good():
            self.connection._mark_lost(_status_error(code, "subscription status change"))


class OpcUaConnection:
    """One OPC UA client session to one endpoint (never more than one at a time).

    endpoint: opc.tcp:// URL.
    timeout_s: answer time allowed to each request [s].
    watchdog_interval_s: how often asyncua reads ServerStatus/State to find a dead server [s].
    session_timeout_s: requested session timeout [s]; a session orphaned by a broken network
        dies on the server after this time.
    security_policy, security_mode: the endpoint to use (None, or Basic256Sha256 with Sign or
        SignAndEncrypt); the mode is ignored with policy None.
    username, password: a UserNameIdentityToken; password_source says where the password came
        from, for messages ("environment variable X").
    user_certificate, user_private_key: files of an X509IdentityToken (instead of a username).
    certificate_dir, trust_dir: the collector's certificate folder and trusted server
        certificates (collector.certs; defaults there).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 4.0,
        watchdog_interval_s: float = 1.0,
        session_timeout_s: float = 30.0,
        security_policy: SecurityPolicy | str = SecurityPolicy.NONE,
        security_mode: SecurityMode | str = SecurityMode.SIGN_AND_ENCRYPT,
        username: str | None = None,
        password: str | None = None,
        password_source: str | None = None,
        user_certificate: str | Path | None = None,
        user_private_key: str | Path | None = None,
        certificate_dir: str | Path | None = None,
        trust_dir: str | Path | None = None,
        application_name: str = certs.APPLICATION_NAME,
    ) -> None:
        if not endpoint.startswith("opc.tcp://"):
            raise ConfigError(f"endpoint must start with 'opc.tcp://', got {endpoint!r}")
        try:
            policy, mode = SecurityPolicy(security_policy), SecurityMode(security_mode)
        except ValueError as exc:
            raise ConfigError(f"{endpoint}: {exc}") from exc
        if policy is SecurityPolicy.NONE:
            mode = SecurityMode.NONE
        elif mode is SecurityMode.NONE:
            raise ConfigError(f"{endpoint}: security mode must be Sign or SignAndEncrypt with "
                              f"policy {policy.value}")
        if username and user_certificate:
            raise ConfigError(f"{endpoint}: set a username or a user certificate, not both")
        if bool(user_certificate) != bool(user_private_key):
            raise ConfigError(f"{endpoint}: a user certificate needs its private key file too")
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.watchdog_interval_s = watchdog_interval_s
        self.session_timeout_s = session_timeout_s
        self.security_policy = policy
        self.security_mode = mode
        self.username = username
        self.password = password
        self.password_source = password_source
        self.user_certificate_path = Path(user_certificate) if user_certificate else None
        self.user_private_key_path = Path(user_private_key) if user_private_key else None
        self.pki = certs.client_pki(certificate_dir, trust_dir)
        self.application_name = application_name
        self._identity: certs.ClientIdentity | None = None  # the collector's certificate
        self._user: tuple[x509.Certificate, Any] | None = None  # user certificate and key
        self._server_certificate: bytes | None = None  # DER, trusted, of this connection
        self.trusted_certificate_path: Path | None = None
        self._client: Client | None = None
        self._subscription: Any = None
        self._lost_error: DeviceError | None = None
        self._lost = asyncio.Event()
        self._type_cache: dict[tuple[ua.NodeId, str, str], bool] = {}
        self.orphan: OrphanSession | None = None  # set by close() after a loss
        self.orphans_closed = 0

    @classmethod
    def for_controller(cls, controller: Controller, password: str | None = None,
                       password_source: str | None = None, **options: Any) -> "OpcUaConnection":
        """A connection with a site file's controller settings."""
        return cls(controller.endpoint, security_policy=controller.security_policy,
                   security_mode=controller.security_mode, username=controller.username,
                   password=password, password_source=password_source,
                   user_certificate=controller.user_certificate,
                   user_private_key=controller.user_private_key,
                   certificate_dir=controller.certificate_dir, trust_dir=controller.trust_dir,
                   **options)

    # -- connection -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None and not self._lost.is_set()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @property
    def secure(self) -> bool:
        return self.security_policy is not SecurityPolicy.NONE

    def _load_credentials(self) -> None:
        """The collector's certificate (made on first use) and the user certificate, read
        again at each connect so that a fixed file is picked up. Raises ConfigError."""
        if self.secure:
            self._identity = certs.ensure_client_certificate(self.pki)
        if self.user_certificate_path is not None and self.user_private_key_path is not None:
            certificate = certs.load_certificate(self.user_certificate_path)
            key = certs.load_private_key(self.user_private_key_path)
            if certificate.public_key().public_numbers() != key.public_key().public_numbers():
                raise ConfigError(f"{self.user_private_key_path} is not the key of "
                                  f"{self.user_certificate_path}")
            self._user = (certificate, key)

    async def _discover(self) -> ua.EndpointDescription:
        """GetEndpoints on the server's discovery endpoint (OPC 10000-4 5.5.4: a channel without
        security, no session), then the endpoint with our policy and mode, our user token type,
        and (with security) a trusted server certificate. Raises OpcUaSecurityError,
        UntrustedCertificateError or TransportError."""
        probe = Client(self.endpoint, timeout=self.timeout_s)
        try:
            endpoints = await asyncio.wait_for(probe.connect_and_get_server_endpoints(),
                                               timeout=self.timeout_s * 2)
        except (Exception, asyncio.CancelledError) as exc:
            try:
                probe.disconnect_socket()
            except Exception:  # pragma: no cover - nothing more to close
                pass
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise translate_error(exc, f"asking {self.endpoint} for its endpoints") from exc
        wanted = (_POLICY_URIS[self.security_policy], _MODES[self.security_mode])
        offered = sorted({"None" if e.SecurityPolicyUri == SecurityPolicyNone.URI else
                          f"{_POLICY_NAMES.get(e.SecurityPolicyUri, e.SecurityPolicyUri)}/"
                          f"{_MODE_NAMES.get(e.SecurityMode, e.SecurityMode)}" for e in endpoints})
        matches = [e for e in endpoints if (e.SecurityPolicyUri, e.SecurityMode) == wanted]
        if not matches:
            ours = (f"{self.security_policy.value}/{self.security_mode.value}" if self.secure
                    else "None")
            if self.secure:
                advice = "set security_mode (or security_policy) to one the server offers"
            else:
                advice = ("set security_policy = \"Basic256Sha256\" for this controller (and "
                          "remove allow_insecure)")
            raise OpcUaSecurityError(
                f"{self.endpoint}: refused: the server offers no endpoint with security {ours} "
                f"(it offers {', '.join(offered) or 'none'}); {advice}",
                status_name="BadSecurityModeRejected" if any(
                    e.SecurityPolicyUri == wanted[0] for e in endpoints)
                else "BadSecurityPolicyRejected")
        endpoint = matches[0]
        if self.username:
            token, what = ua.UserTokenType.UserName, f"a user name ({self.username!r})"
        elif self.user_certificate_path:
            token, what = ua.UserTokenType.Certificate, "a user certificate"
        else:
            token, what = ua.UserTokenType.Anonymous, "anonymous users"
        accepted = {p.TokenType for p in endpoint.UserIdentityTokens or []}
        if token not in accepted:
            names = ", ".join(sorted(ua.UserTokenType(t).name for t in accepted)) or "none"
            raise OpcUaSecurityError(
                f"{self.endpoint}: refused: this endpoint does not accept {what} (it accepts: "
                f"{names}); set username and password_env, or user_certificate and "
                "user_private_key, for this controller", status_name="BadIdentityTokenRejected")
        if self.secure:
            server_certificate = _first_certificate(endpoint.ServerCertificate or b"")
            self.trusted_certificate_path = certs.check_server_trusted(
                server_certificate, self.pki, self.endpoint)
            self._server_certificate = server_certificate
        return endpoint

    async def _new_client(self) -> Client:
        client = Client(self.endpoint, timeout=self.timeout_s,
                        watchdog_intervall=self.watchdog_interval_s, auto_reconnect=False)
        client.name = client.description = self.application_name
        client.product_uri = PRODUCT_URI
        client.session_timeout = int(self.session_timeout_s * 1000)
        if self._identity is not None:
            # The ApplicationUri sent in CreateSession must be the one in our certificate.
            client.application_uri = self._identity.application_uri
            await client.set_security(
                SecurityPolicyBasic256Sha256, certificate=certs.der(self._identity.certificate),
                private_key=certs.private_key_der(self._identity.private_key),
                server_certificate=self._server_certificate, mode=_MODES[self.security_mode])
        else:
            client.application_uri = certs.default_application_uri()
        if self.username:
            client.set_user(self.username)
            if self.password is not None:
                client.set_password(self.password)
        elif self._user is not None:
            client.user_certificate, client.user_private_key = self._user
        return client

    def _refused(self, error: DeviceError) -> DeviceError:
        """A clear message for a refusal at connect time: what was refused and what to do."""
        if not isinstance(error, OpcUaStatusError) or error.status_name not in _SECURITY_REFUSED:
            return error
        status = error.status_name
        if status in _USER_REFUSED:
            if self.username:
                where = f" ({self.password_source})" if self.password_source else ""
                message = (f"the server refused user {self.username!r} ({status}): check the "
                           f"user name and the password{where}")
            elif self.user_certificate_path:
                message = (f"the server refused the user certificate {self.user_certificate_path} "
                           f"({status}): the server must accept it as a user")
            else:
                message = (f"the server refused anonymous access ({status}): set username and "
                           "password_env, or user_certificate, for this controller")
        elif status in _CERTIFICATE_REFUSED and self._identity is not None:
            message = (f"the server refused the collector's certificate ({status}): add "
                       f"{self.pki.certificate_path} ({certs.describe(self._identity.certificate)}) "
                       "to the server's trusted client certificates")
        else:
            message = f"the server refused security {self.security_policy.value}/" \
                      f"{self.security_mode.value} ({status})"
        return OpcUaSecurityError(f"{self.endpoint}: {message}", status_name=status)

    async def connect(self, orphan: OrphanSession | None = None) -> None:
        """Ask for the endpoints, open the socket, secure channel and session. Raises
        TransportError, OpcUaStatusError, OpcUaSecurityError, UntrustedCertificateError, or
        ConfigError (certificate or key files that cannot be read or written).

        orphan: the session a lost connection left on this endpoint; it is closed first. If
        the server cannot be reached for that, the error is raised and `orphan` is kept for
        the next attempt.
        """
        if self._client is not None:
            raise RuntimeError("already connected; close() first (one session per endpoint)")
        self.orphan = orphan
        self._load_credentials()
        await self._discover()
        if orphan is not None:
            await self._close_orphan(orphan)
            self.orphan = None
        client = await self._new_client()
        client.connection_lost_callback = self._on_connection_lost
        self._lost.clear()
        self._lost_error = None
        try:
            # Each request has its own timeout; this bounds the whole handshake too. A stop
            # that cancels us as the handshake fails (a refused password) leaves the handshake's
            # error unread inside wait_for (Python 3.11), which asyncio then logs with a
            # traceback: the callback reads it.
            handshake = asyncio.ensure_future(client.connect())
            handshake.add_done_callback(lambda done: done.cancelled() or done.exception())
            await asyncio.wait_for(handshake, timeout=self.timeout_s * 3)
        except (Exception, asyncio.CancelledError) as exc:
            try:
                client.disconnect_socket()
            except Exception:  # pragma: no cover - nothing more to close
                pass
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._refused(translate_error(exc, f"connecting to {self.endpoint}")) from exc
        self._client = client

    async def _close_orphan(self, orphan: OrphanSession) -> None:
        """Re-activate a session left by a lost connection on a new channel, and close it
        (deleting its subscriptions), so that the server never holds two of ours."""
        if orphan.endpoint != self.endpoint or time.monotonic() > orphan.expires_at:
            return  # another server, or expired there already
        client = await self._new_client()

        async def take_over() -> None:
            await client.connect_socket()
            await client.send_hello()
            await client.open_secure_channel()
            # asyncua's own reconnect does this (Client._reactivate_session); these are the
            # pieces of a session it keeps on the client object.
            client.uaclient.session.restore_authentication_token(orphan.token)
            client._server_nonce = orphan.server_nonce
            client._policy_ids = list(orphan.user_token_policies)
            try:
                await client.activate_session(username=self.username, password=self.password,
                                              certificate=client.user_certificate)
                await client.uaclient.close_session(True)
            finally:
                client.uaclient.session.reset_authentication_token()
                try:
                    await client.close_secure_channel()
                except Exception:
                    pass

        try:
            await asyncio.wait_for(take_over(), timeout=self.timeout_s * 2)
        except ua.UaStatusCodeError as exc:
            # The server answered: the session is not there any more (BadSessionIdInvalid
            # after a restart) or cannot be taken over; either way it is not ours to close.
            logger.debug("%s: left-over session not taken over: %s", self.endpoint,
                         ua.StatusCode(exc.code).name)
        except (Exception, asyncio.TimeoutError) as exc:
            raise translate_error(exc, f"closing the left-over session on {self.endpoint}") from exc
        else:
            self.orphans_closed += 1
            logger.info("%s: closed the session left by the lost connection", self.endpoint)
        finally:
            client.disconnect_socket()

    async def _on_connection_lost(self, exc: Exception) -> None:
        self._mark_lost(translate_error(exc, "connection lost") if not isinstance(
            exc, DeviceError) else exc)

    def _mark_lost(self, error: DeviceError) -> None:
        if not self._lost.is_set():
            self._lost_error = error
            self._lost.set()
            logger.debug("%s: connection lost: %s", self.endpoint, error)

    async def wait_lost(self) -> DeviceError:
        """Wait until the connection is found dead; return why."""
        await self._lost.wait()
        assert self._lost_error is not None
        return self._lost_error

    async def close(self, timeout_s: float = 2.0) -> None:
        """Delete the subscription and close the session (best effort, bounded in time)."""
        client, self._client = self._client, None
        self._subscription = None
        if client is None:
            return
        if self._lost.is_set():
            # CloseSession cannot get through: remember the session for the next connection.
            token = client.uaclient.session.authentication_token
            if token is not None and not token.is_null():
                self.orphan = OrphanSession(
                    self.endpoint, token, client._server_nonce, tuple(client._policy_ids),
                    time.monotonic() + self.session_timeout_s)
        try:
            if not self._lost.is_set():
                await asyncio.wait_for(client.disconnect(), timeout=timeout_s)
            else:
                # The transport is gone; asyncua still owns tasks to stop.
                await asyncio.wait_for(client.disconnect(), timeout=min(timeout_s, 0.5))
        except (Exception, asyncio.TimeoutError):
            logger.debug("%s: closing the session failed", self.endpoint, exc_info=True)
        finally:
            try:
                client.disconnect_socket()
            except Exception:  # pragma: no cover
                pass
        self._mark_lost(TransportError(f"{self.endpoint}: closed"))

    async def __aenter__(self) -> "OpcUaConnection":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _require(self) -> Client:
        if self._client is None:
            raise TransportError(f"{self.endpoint}: not connected")
        if self._lost.is_set():
            assert self._lost_error is not None
            raise self._lost_error
        return self._client

    async def _call(self, doing: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (Exception, asyncio.TimeoutError) as exc:
            error = translate_error(exc, doing)
            if isinstance(error, TransportError):
                self._mark_lost(error)
            raise error from exc

    # -- reading ----------------------------------------------------------------------------

    async def namespace_array(self) -> list[str]:
        """The server's NamespaceArray, read now (indexes may change at each restart)."""
        client = self._require()
        return await self._call("reading NamespaceArray", client.get_namespace_array())

    async def read_server_state(self) -> str:
        """ServerStatus/State (Running, Shutdown, ...): the cheap liveness read."""
        client = self._require()
        state = await self._call("reading ServerStatus/State", client.nodes.server_state.read_value())
        return ua.ServerState(state).name

    async def read_value(self, node_id: str) -> Any:
        """One attribute Value read (tests and diagnostics; sources use subscriptions)."""
        client = self._require()
        value = await self._call(f"reading {node_id}", client.get_node(node_id).read_value())
        return _plain(value)

    async def data_type_name(self, node_id: str) -> tuple[str, str]:
        """(namespace URI, browse name) of a variable's DataType (to check node maps)."""
        client = self._require()
        array = await self.namespace_array()
        data_type = await self._call("reading DataType", client.get_node(node_id).read_data_type())
        name = await self._call("reading DataType name", client.get_node(data_type).read_browse_name())
        return array[name.NamespaceIndex], name.Name

    # -- resolving --------------------------------------------------------------------------

    async def resolve(self, node_map: NodeMap, machine_browse_name: str | None = None) -> ResolvedNodes:
        """Resolve every quantity of `node_map` in this session.

        Quantities that do not resolve are listed in `missing`; when none resolves, or the root
        does not, OpcUaStatusError is raised.
        """
        client = self._require()
        array = await self.namespace_array()
        namespaces = {uri: i for i, uri in enumerate(array)}
        resolved = ResolvedNodes(node_map, {}, {}, namespaces)
        needs_root = any(not e.node_id for e in node_map.quantities.values())
        root: ua.NodeId | None = None
        if needs_root:
            root = await self._follow(client.nodes.objects.nodeid, node_map.root_steps(),
                                      namespaces, machine_browse_name, "root")
        for quantity, entry in node_map.quantities.items():
            try:
                if entry.node_id:
                    nodeid = self._parse_node_id(entry.node_id, namespaces)
                else:
                    assert root is not None
                    nodeid = await self._follow(root, node_map.steps(quantity), namespaces,
                                                machine_browse_name, quantity)
            except OpcUaStatusError as exc:
                resolved.missing[quantity] = str(exc)
                continue
            resolved._ids[quantity] = nodeid
            resolved.nodes[quantity] = nodeid.to_string()
        if not resolved._ids:
            raise OpcUaStatusError(
                f"{self.endpoint}: no quantity of node map {node_map.name!r} resolves: "
                + "; ".join(f"{q}: {why}" for q, why in resolved.missing.items()),
                status_name="BadNoMatch")
        return resolved

    def _parse_node_id(self, text: str, namespaces: Mapping[str, int]) -> ua.NodeId:
        try:
            parsed = ua.NodeId.from_string(text)
        except Exception as exc:
            raise OpcUaStatusError(f"not a node id: {text!r}", status_name="BadNodeIdInvalid") from exc
        uri = getattr(parsed, "NamespaceUri", None)
        if uri:
            if uri not in namespaces:
                raise OpcUaStatusError(f"{text!r}: the server has no namespace {uri!r}",
                                       status_name="BadNodeIdUnknown")
            return ua.NodeId(parsed.Identifier, namespaces[uri], parsed.NodeIdType)
        return ua.NodeId(parsed.Identifier, parsed.NamespaceIndex, parsed.NodeIdType)

    async def _follow(self, start: ua.NodeId, steps: list[PathStep], namespaces: Mapping[str, int],
                      machine_browse_name: str | None, what: str) -> ua.NodeId:
        """Walk `steps` from `start`; runs of fixed names go in one TranslateBrowsePaths."""
        client = self._require()
        current = start
        run: list[ua.QualifiedName] = []
        done: list[str] = []

        async def flush() -> None:
            nonlocal current, run
            if not run:
                return
            try:
                node = await client.get_node(current).get_child(run)
            except ua.UaStatusCodeError as exc:
                name = ua.StatusCode(exc.code).name
                raise OpcUaStatusError(f"{what}: browse path {'/'.join(done)} not found ({name})",
                                       status_name=name) from exc
            except (Exception, asyncio.TimeoutError) as exc:
                error = translate_error(exc, f"resolving {what}")
                if isinstance(error, TransportError):
                    self._mark_lost(error)
                raise error from exc
            current, run = node.nodeid, []

        for step in steps:
            done.append(str(step))
            if step.kind == "name":
                if step.namespace not in namespaces:
                    raise OpcUaStatusError(f"{what}: the server has no namespace {step.namespace!r}",
                                           status_name="BadNoMatch")
                run.append(ua.QualifiedName(step.name, namespaces[step.namespace]))
                continue
            await flush()
            if step.kind == "machine":
                current = await self._machine_child(current, machine_browse_name, what)
            else:
                current = await self._child_of_type(current, step, namespaces, what)
        await flush()
        return current

    async def _browse_objects(self, nodeid: ua.NodeId, what: str) -> list[ua.ReferenceDescription]:
        client = self._require()
        refs = await self._call(f"browsing for {what}", client.get_node(nodeid).get_children_descriptions(
            refs=ua.ObjectIds.HierarchicalReferences, nodeclassmask=ua.NodeClass.Object))
        return sorted(refs, key=lambda r: (r.BrowseName.Name, r.BrowseName.NamespaceIndex))

    async def _machine_child(self, parent: ua.NodeId, browse_name: str | None, what: str) -> ua.NodeId:
        children = await self._browse_objects(parent, what)
        if browse_name is not None:
            matches = [r for r in children if r.BrowseName.Name == browse_name]
        else:
            matches = children
        if len(matches) == 1:
            return matches[0].NodeId
        names = ", ".join(r.BrowseName.Name for r in children) or "none"
        if not matches:
            raise OpcUaStatusError(f"{what}: no machine {browse_name!r} (machines: {names})",
                                   status_name="BadNoMatch")
        raise OpcUaStatusError(f"{what}: several machines ({names}); set machine_browse_name in "
                               "the site file", status_name="BadNoMatch")

    async def _child_of_type(self, parent: ua.NodeId, step: PathStep, namespaces: Mapping[str, int],
                             what: str) -> ua.NodeId:
        if step.namespace not in namespaces:
            raise OpcUaStatusError(f"{what}: the server has no namespace {step.namespace!r}",
                                   status_name="BadNoMatch")
        for ref in await self._browse_objects(parent, what):
            typedef = ref.TypeDefinition
            if typedef is None or typedef.is_null():
                continue
            typeid = ua.NodeId(typedef.Identifier, typedef.NamespaceIndex, typedef.NodeIdType)
            if await self._is_type(typeid, namespaces[step.namespace], step.name, what):
                return ref.NodeId
        raise OpcUaStatusError(f"{what}: no child of type {step} found", status_name="BadNoMatch")

    async def _is_type(self, typeid: ua.NodeId, ns: int, name: str, what: str) -> bool:
        """Whether `typeid` is the ObjectType ns:name or one of its subtypes."""
        key = (typeid, str(ns), name)
        if key in self._type_cache:
            return self._type_cache[key]
        client = self._require()
        answer, current = False, typeid
        for _ in range(_MAX_TYPE_DEPTH):
            if current == _BASE_OBJECT_TYPE:
                break
            node = client.get_node(current)
            bname = await self._call(f"reading a type name for {what}", node.read_browse_name())
            if bname.NamespaceIndex == ns and bname.Name == name:
                answer = True
                break
            parents = await self._call(f"browsing supertypes for {what}", node.get_references(
                refs=ua.ObjectIds.HasSubtype, direction=ua.BrowseDirection.Inverse))
            if not parents:
                break
            current = parents[0].NodeId
        self._type_cache[key] = answer
        return answer

    # -- subscribing ------------------------------------------------------------------------

    async def subscribe(self, resolved: ResolvedNodes, on_change: Callable[[DataChange], None],
                        publishing_interval_s: float = 0.5, queue_size: int = 50) -> dict[str, str]:
        """Create the one subscription with a monitored item per resolved quantity.

        on_change is called (synchronously, in the event loop) for every change, starting with
        the current value of every node. queue_size: changes a server may hold per node
        between two publishes (a program that starts and ends within one publishing interval
        still shows both). Returns quantity -> why its monitored item failed.
        """
        client = self._require()
        if self._subscription is not None:
            raise RuntimeError("already subscribed (one subscription per connection)")
        handler = _Handler(self, resolved, on_change)
        interval_ms = publishing_interval_s * 1000
        subscription = await self._call(
            "creating the subscription", client.create_subscription(interval_ms, handler))
        self._subscription = subscription
        quantities = list(resolved._ids)
        nodes = [client.get_node(resolved._ids[q]) for q in quantities]
        results = await self._call("creating monitored items", subscription.subscribe_data_change(
            nodes, queuesize=queue_size, sampling_interval=interval_ms))
        failed = {q: r.name for q, r in zip(quantities, results) if isinstance(r, ua.StatusCode)}
        if len(failed) == len(quantities):
            raise OpcUaStatusError(
                f"{self.endpoint}: no monitored item could be created: "
                + ", ".join(f"{q}: {s}" for q, s in failed.items()),
                status_name=next(iter(failed.values())))
        return failed

