"""A CNC controller as a source of `cnc` points, over OPC UA subscriptions.

`CncSource(name, controller, node_map, site).run(sink, stop)` keeps one session to the
controller's endpoint: connect, resolve the node map (namespace indexes from their URIs, browse
paths to NodeIds), subscribe once to every quantity, and turn each data change into a Point::

    cnc,controller=<name>,machine=<machine>,site=<site> <quantity>=<value> <SourceTimestamp>

Changes that share a timestamp and arrive together become one point with several fields.
Values follow devices.vocabulary: text for execution/mode/program/alarm, floats for physical
quantities, an int for part_count.

When the connection dies (socket closed, ServerStatus read failing, subscription status bad)
the device is logged down once, the session is closed, and the source reconnects with
exponential backoff (0.5 s doubling up to 8 s, with jitter), resolving everything again since a
restarted server may number its namespaces differently; it is logged back once when subscribed
again. There is never more than one session from a source to its endpoint: the old one is
closed before a new one is opened, and a session the lost connection left on the server is
taken over and closed first (see collector.opcua_adapter).

The 8 s cap keeps "server back -> resubscribed" under 10 s however long the outage was; a
refused TCP connect every 8 s costs a controller nothing, and with one session at most,
retries cannot pile up sessions (BadTooManySessions). A subscription that dies within
STABLE_AFTER_S of its start does not reset the delay, so a flapping server is not hammered.

Security (see collector.opcua_adapter and collector.certs): with Basic256Sha256 the collector's
certificate is made when the source is created, if missing. The password of `username` comes
from the environment variable named by `password_env`, else from the site's `secrets_file`::

    # secrets.toml: readable by the collector's user only (chmod 600), never in version control
    [controllers.mill-1-cnc]
    password = "..."

Refusals (wrong password, untrusted server certificate, no endpoint with the policy asked
for) are logged once each with what to do, and retried with the same backoff: a password or a
trust list fixed on either side is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from collector import certs
from collector.errors import (ConfigError, DeviceError, OpcUaSecurityError,
                              UntrustedCertificateError)
from collector.health import DeviceHealth
from collector.opcua_adapter import DataChange, OpcUaConnection, OrphanSession, ResolvedNodes
from storage.points import Point
from collector.sink import Sink
from devices import vocabulary
from devices.node_maps import NodeMap, NodeMapError
from devices.secrets import SecretsError, load_secrets
from devices.site import Controller, SecurityPolicy

logger = logging.getLogger("wattelier.collector.opcua")

T = TypeVar("T")

# A subscription that lived this long resets the reconnect delay to its initial value.
STABLE_AFTER_S = 10.0


class _Stopped(Exception):
    """The stop event was set while waiting."""


class CncSource:
    """One controller's OPC UA subscription, turned into `cnc` points.

    name: the controller's name in the site file (tag `controller`).
    controller: its settings (endpoint, security, machine_browse_name, nodes...).
    node_map: the loaded node map (`devices.node_maps.load_node_map(controller.node_map)`).
    site: the site's name (tag `site`).
    backoff_initial_s, backoff_max_s: reconnect delays [s], doubled after each failure.
    timeout_s: answer time allowed to each request [s].
    watchdog_interval_s: how often the server's liveness is read [s].
    stop_timeout_s: time allowed to close the session when stopping [s].
    secrets_file: the site's secrets file (TOML; the runtime passes
        devices.secrets.secrets_path(site), relative paths are from the working directory),
        read when `password_env` is unset or not set in the environment.
    """

    def __init__(
        self,
        name: str,
        controller: Controller,
        node_map: NodeMap,
        site: str,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 8.0,
        timeout_s: float = 4.0,
        watchdog_interval_s: float = 1.0,
        session_timeout_s: float = 30.0,
        stop_timeout_s: float = 2.0,
        secrets_file: str | Path | None = None,
    ) -> None:
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ConfigError(f"controller {name}: need 0 < backoff_initial_s <= backoff_max_s")
        try:
            self.node_map = node_map.for_nodes(controller.nodes)
        except NodeMapError as exc:
            raise ConfigError(f"controller {name}: {exc}") from exc
        self.name = name
        self.controller = controller
        self.site = site
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stop_timeout_s = stop_timeout_s
        self._password, self._password_source = self._read_password(name, controller, secrets_file)
        self._connection_options = dict(timeout_s=timeout_s, watchdog_interval_s=watchdog_interval_s,
                                        session_timeout_s=session_timeout_s)
        connection = self._new_connection()  # checks the endpoint and security settings
        if controller.security_policy is not SecurityPolicy.NONE:
            # "Generated on first use": now, so that a folder that cannot be written stops
            # the start with a clear message, and the certificate can be given to the server.
            certs.ensure_client_certificate(connection.pki)
        self.tags = {vocabulary.TAG_SITE: site, vocabulary.TAG_MACHINE: controller.machine,
                     vocabulary.TAG_CONTROLLER: name}
        self.health = DeviceHealth(f"{name} ({controller.endpoint})", logger)
        self.points_emitted = 0
        self.changes_dropped = 0
        self.connects = 0
        self.reconnects = 0
        self.orphans_closed = 0  # sessions left by lost connections, closed before reconnecting
        self.subscribed = False
        self.resolved: dict[str, str] = {}
        self.missing: dict[str, str] = {}
        self._warned: set[Any] = set()

    @staticmethod
    def _read_password(name: str, controller: Controller,
                       secrets_file: str | Path | None) -> tuple[str | None, str | None]:
        """(password, where it came from) for the controller's username; (None, None) without
        a username. Raises ConfigError naming what to set."""
        if not controller.username:
            return None, None
        env = controller.password_env
        if env and os.environ.get(env):
            return os.environ[env], f"environment variable {env}"
        if secrets_file:
            password = _secret_from_file(Path(secrets_file), name)
            if password is not None:
                return password, f"secrets file {secrets_file}"
        wanted = [f"the environment variable {env}"] if env else []
        if secrets_file:
            wanted.append(f"password in [controllers.{name}] of {secrets_file}")
        if not wanted:
            raise ConfigError(f"controller {name}: a username needs password_env or the "
                              "site's secrets_file")
        raise ConfigError(f"controller {name}: no password for user {controller.username!r}: "
                          f"set {' or '.join(wanted)}")

    def _new_connection(self) -> OpcUaConnection:
        return OpcUaConnection.for_controller(self.controller, password=self._password,
                                              password_source=self._password_source,
                                              **self._connection_options)

    @property
    def errors_by_kind(self) -> dict[str, int]:
        return dict(self.health.errors_by_kind)

    def stats(self) -> dict[str, Any]:
        """Self-metrics of this source."""
        return {"points_emitted": self.points_emitted, "changes_dropped": self.changes_dropped,
                "connects": self.connects, "reconnects": self.reconnects,
                "orphans_closed": self.orphans_closed,
                "up": bool(self.health.up), "subscribed": self.subscribed,
                "errors_by_kind": self.errors_by_kind}

    # -- running ----------------------------------------------------------------------------

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Collect until `stop` is set; returns within about stop_timeout_s after that."""
        delay = self.backoff_initial_s
        ever_subscribed = False
        orphan: OrphanSession | None = None
        while not stop.is_set():
            connection = self._new_connection()
            queue: asyncio.Queue[DataChange] = asyncio.Queue()
            try:
                try:
                    await self._unless_stopped(
                        self._open(connection, queue.put_nowait, orphan), stop)
                except _Stopped:
                    break
                self.connects += 1
                if ever_subscribed:
                    self.reconnects += 1
                ever_subscribed = True
                self.subscribed = True
                self.health.succeeded()
                subscribed_at = time.monotonic()
                error = await self._pump(connection, queue, sink, stop)
                if error is None:
                    break
                if time.monotonic() - subscribed_at >= STABLE_AFTER_S:
                    delay = self.backoff_initial_s  # a flapping server keeps the longer delays
                self.health.failed(error)
            except DeviceError as exc:
                self._failed(exc)
                logger.debug("controller %s: attempt failed: %s", self.name, exc)
            except ConfigError as exc:
                # A certificate or key file that cannot be read or written: a person must act;
                # keep retrying so that the fix is picked up.
                self._failed(exc)
            except Exception as exc:
                # A bug (ours or the library's), not the device: keep the box collecting, but
                # show the traceback once per kind of failure.
                self.health.failed(exc)
                if ("internal", type(exc)) not in self._warned:
                    self._warned.add(("internal", type(exc)))
                    logger.exception("controller %s: unexpected error, retrying", self.name)
            finally:
                self.subscribed = False
                await connection.close(self.stop_timeout_s)
                orphan = connection.orphan
                self.orphans_closed += connection.orphans_closed
                self._emit(self._drain(queue), sink)  # changes delivered until the close
            wait_s = delay * random.uniform(0.8, 1.0)
            delay = min(delay * 2, self.backoff_max_s)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait_s)
            except asyncio.TimeoutError:
                pass

    async def _open(self, connection: OpcUaConnection, on_change: Callable[[DataChange], None],
                    orphan: OrphanSession | None) -> ResolvedNodes:
        await connection.connect(orphan)
        resolved = await connection.resolve(self.node_map, self.controller.machine_browse_name)
        failed = await connection.subscribe(resolved, on_change,
                                            self.controller.publishing_interval_s)
        self.resolved = {q: n for q, n in resolved.nodes.items() if q not in failed}
        self.missing = {**resolved.missing, **failed}
        if self.missing:
            self._warn_once(("missing", tuple(sorted(self.missing))),
                            "controller %s: node map %s: not read: %s", self.name,
                            self.node_map.name,
                            "; ".join(f"{q} ({why})" for q, why in sorted(self.missing.items())))
        logger.info("controller %s: subscribed to %s on %s", self.name,
                    ", ".join(sorted(self.resolved)), self.controller.endpoint)
        return resolved

    @staticmethod
    async def _unless_stopped(awaitable: Awaitable[T], stop: asyncio.Event) -> T:
        task = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
            raise _Stopped
        return task.result()

    async def _pump(self, connection: OpcUaConnection, queue: asyncio.Queue[DataChange],
                    sink: Sink, stop: asyncio.Event) -> DeviceError | None:
        """Emit changes until the connection is lost (returns the error) or stop (None)."""
        lost = asyncio.ensure_future(connection.wait_lost())
        stopper = asyncio.ensure_future(stop.wait())
        getter: asyncio.Future[DataChange] | None = None
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, lost, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    self._emit([getter.result(), *self._drain(queue)], sink)
                    getter = None
                    continue
                if stopper.done():
                    return None
                return lost.result()
        finally:
            for future in (getter, lost, stopper):
                if future is not None and not future.done():
                    future.cancel()
            if getter is not None and getter.done() and not getter.cancelled():
                self._emit([getter.result()], sink)

    @staticmethod
    def _drain(queue: asyncio.Queue[DataChange]) -> list[DataChange]:
        changes = []
        while True:
            try:
                changes.append(queue.get_nowait())
            except asyncio.QueueEmpty:
                return changes

    def _emit(self, changes: list[DataChange], sink: Sink) -> None:
        """Points from changes: consecutive changes with one timestamp share a point."""
        points: list[Point] = []
        fields: dict[str, Any] = {}
        time_ns: int | None = None
        for change in changes:
            if change.value is None:
                self._drop(change, sink)
                continue
            if fields and (change.time_ns != time_ns or change.quantity in fields):
                points.append(Point(vocabulary.CNC, dict(self.tags), fields, time_ns))
                fields = {}
            fields[change.quantity] = change.value
            time_ns = change.time_ns
        if fields:
            points.append(Point(vocabulary.CNC, dict(self.tags), fields, time_ns))
        if points:
            sink.put(points)
            self.points_emitted += len(points)

    def _drop(self, change: DataChange, sink: Sink) -> None:
        if change.problem == "null":
            return  # the server has no value yet: nothing was measured
        reason = "opcua_bad_status" if (change.problem or "").startswith("bad_status") \
            else "opcua_unmapped_value"
        self.changes_dropped += 1
        sink.drop(reason)
        self._warn_once(("drop", change.quantity, change.problem),
                        "controller %s: %s value %r not used: %s", self.name, change.quantity,
                        change.raw, change.problem)

    def _failed(self, error: DeviceError | ConfigError) -> None:
        """Count a failed attempt. A refusal that needs a person (credentials, trust,
        security settings) is logged once per distinct message, also when the device was
        already down for another reason; the "down" line says it when it is the first."""
        was_down = self.health.up is False
        self.health.failed(error)
        if isinstance(error, (OpcUaSecurityError, UntrustedCertificateError, ConfigError)):
            key = ("refused", str(error))
            if was_down:
                self._log_once(logging.ERROR, key, "controller %s: %s", self.name, error)
            else:
                self._warned.add(key)  # the "is down" line just said it

    def _warn_once(self, key: Any, message: str, *args: Any) -> None:
        self._log_once(logging.WARNING, key, message, *args)

    def _log_once(self, level: int, key: Any, message: str, *args: Any) -> None:
        if key in self._warned:
            return
        if len(self._warned) > 1000:
            self._warned.clear()
        self._warned.add(key)
        logger.log(level, message, *args)


def _secret_from_file(path: Path, controller_name: str) -> str | None:
    """`password` of [controllers.<name>] in a TOML secrets file, read with the rules of
    devices.secrets (the same as `check`); None when the file or the key is absent."""
    if not path.exists():
        return None
    try:
        data = load_secrets(path)
    except SecretsError as exc:
        raise ConfigError(str(exc)) from exc
    entry = data.get("controllers", {}).get(controller_name, {})
    password = entry.get("password") if isinstance(entry, dict) else None
    if password is not None and not isinstance(password, str):
        raise ConfigError(f"{path}: controllers.{controller_name}.password must be a string")
    return password
