"""The simulated workshop: the physical model served over real OPC UA and Modbus TCP.

`SimulatedWorkshop(site)` starts one Modbus server per meter endpoint of the site file (meters
that share a gateway share a server, by unit id) and one OPC UA server per controller endpoint,
all answering from one `Workshop` model on the real clock. It records the ground truth (jobs,
sessions, energies) and counts every write attempt from clients, which must stay zero.

OPC UA security follows the site's controllers: an endpoint whose controllers use
Basic256Sha256 is served with Sign and SignAndEncrypt endpoints (plus None if one of its
controllers uses None), its certificate made in `pki_dir` (default: a temporary folder removed
at stop), and a user per controller `username`. The password is the one in the environment
variable named by `password_env`; when that variable is unset, the workshop uses DEMO_PASSWORD
and puts it into this process's environment, so that a collector started in the same process
(`wattelier demo`) finds it. With `pki_dir` given, `workshop.site` is the site with each
secured controller's certificate folder moved to `pki_dir/collector` and the servers'
certificates copied into its trust folder: give that site to the collector, and nothing is
written outside `pki_dir`. User certificates named by controllers are accepted as users.

Power holes (`power_holes`, devices.sim.holes) make a meter's unit stop answering for a stretch
counted from `start`, while the model, the meter's counter included, runs on; the ground truth
lists them with their times.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from devices.meter_models import load_model
from devices.sim.holes import PowerHole, check_power_holes, hole_windows
from devices.sim.modbus_server import Framing, ModbusMeterServer, SimulatedMeter
from devices.sim.opcua_server import CncServer, SimSecurity
from devices.sim.physics import Workshop
from devices.sim.ports import bind_errno, free_port
from devices.site import Controller, SecurityPolicy, Site, Transport

log = logging.getLogger("wattelier.sim")


class SimulatorError(Exception):
    """The simulated workshop cannot start (a port in use, an address not on this computer)."""


async def _listen(server, host: str | None, port: int | None, what: str) -> None:
    """Start one simulated server; a port it cannot listen on becomes a SimulatorError that
    names the port and what to do (asyncua's own log of the failure, with its traceback, is
    held back: the error says it in one line)."""
    quiet = logging.getLogger("asyncua.server.server")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        await server.start()
    except (OSError, RuntimeError) as exc:
        in_use = bind_errno(host or "127.0.0.1", port or 0) == errno.EADDRINUSE
        reason = ("the port is in use" if in_use
                  else "the address is not on this computer or not allowed")
        raise SimulatorError(f"{what}: cannot listen on {host}:{port}: {reason}; stop what uses "
                             "it or give the site file another port") from exc
    finally:
        quiet.setLevel(level)


SIGNAL_TICK_S = 0.05
# The simulated controllers' password when the site's password_env variable is unset. Not a
# secret: it only opens the simulator on this computer.
DEMO_PASSWORD = "wattelier-demo"
# Folders under pki_dir: the collector's certificate folder, and one per simulated server.
COLLECTOR_PKI = "collector"
SERVERS_PKI = "servers"


def relocate(site: Site, host: str = "127.0.0.1") -> Site:
    """The same site with every meter and controller endpoint moved to free ports on `host`.

    Meters sharing an endpoint (a gateway) keep sharing it. Serial (RTU) meters become RTU over
    TCP, since a serial line cannot be simulated on loopback.
    """
    ports: dict[tuple[str, int], int] = {}
    meters = {}
    for name, meter in site.meters.items():
        key = (meter.host or meter.serial_port or name, meter.port)
        if key not in ports:
            ports[key] = free_port(host)
        transport = Transport.RTU_OVER_TCP if meter.transport is Transport.RTU else meter.transport
        meters[name] = meter.model_copy(update={"host": host, "port": ports[key], "transport": transport})
    endpoints: dict[str, int] = {}
    controllers = {}
    for name, ctl in site.controllers.items():
        parts = urlsplit(ctl.endpoint)
        netloc = parts.netloc
        if netloc not in endpoints:
            endpoints[netloc] = free_port(host)
        endpoint = f"opc.tcp://{host}:{endpoints[netloc]}{parts.path}"
        controllers[name] = ctl.model_copy(update={"endpoint": endpoint})
    return site.model_copy(update={"meters": meters, "controllers": controllers})


def iso(t_s: float) -> str:
    """ISO 8601 UTC with milliseconds."""
    return dt.datetime.fromtimestamp(t_s, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_sessions_csv(path: Path, sessions) -> None:
    """Simulated bookings as `machine,member,start,end` (UTC), the CSV `sessions import` reads."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["machine", "member", "start", "end"])
        for s in sessions:
            writer.writerow([s.machine, s.member, iso(s.start_s), iso(s.end_s)])


class SimulatedWorkshop:
    """Serve a site's machines, meters and controllers from one physical model.

    seed: the same seed gives the same workshop. pace: jobs and pauses run this many times
    faster than in life (the clock itself is real). pki_dir: where the OPC UA servers'
    certificates (and the collector's folder, see `site`) go; default: a temporary folder.
    power_holes: meters silent for a stretch after `start` (PowerHoleError, a ValueError,
    when one names no meter of the site).
    """

    def __init__(self, site: Site, seed: int = 1, pace: float = 1.0,
                 pki_dir: str | Path | None = None, dt_s: float | None = None,
                 power_holes: Iterable[PowerHole] = ()) -> None:
        self.power_holes = check_power_holes(power_holes, site)
        self.pki_dir = Path(pki_dir) if pki_dir is not None else None
        self._temp_pki: tempfile.TemporaryDirectory | None = None
        self.site = self._with_collector_pki(site) if self.pki_dir is not None else site
        self.seed = seed
        self.pace = pace
        self.dt_s = dt_s  # the physical model's grid step [s] (None: its default)
        self.passwords_set_in_environment: list[str] = []  # variables set to DEMO_PASSWORD
        self.model: Workshop | None = None
        self.modbus_servers: list[ModbusMeterServer] = []
        self.sim_meters: dict[str, SimulatedMeter] = {}
        self.cnc_servers: list[CncServer] = []
        self._machine_server: dict[str, CncServer] = {}
        self._pushed: dict[str, int] = {}
        self._task: asyncio.Task | None = None
        self.started_s: float | None = None

    async def start(self) -> None:
        t0 = time.time()
        self.started_s = t0
        self.model = Workshop(self.site, seed=self.seed, t0_s=t0, pace=self.pace, dt_s=self.dt_s)
        silent = hole_windows(self.power_holes, t0)
        groups: dict[tuple[str, int], list[tuple[str, object]]] = {}
        for name, meter in sorted(self.site.meters.items()):
            if meter.transport is Transport.RTU:
                log.warning("meter %s is on a serial line; the simulator serves TCP only (use relocate())", name)
                continue
            groups.setdefault((meter.host, meter.port), []).append((name, meter))
        for (host, port), members in groups.items():
            sims = []
            for name, meter in members:
                sim = SimulatedMeter(meter.unit_id, load_model(meter.model), self._provider(name),
                                     silent_windows=silent.get(name, ()))
                self.sim_meters[name] = sim
                sims.append(sim)
            framing = Framing.RTU_OVER_TCP if members[0][1].transport is Transport.RTU_OVER_TCP else Framing.TCP
            server = ModbusMeterServer(sims, host=host, port=port, framing=framing)
            try:
                await _listen(server, host, port, "meters " + ", ".join(n for n, _ in members))
            except SimulatorError:
                await self.stop()
                raise
            self.modbus_servers.append(server)
        by_endpoint: dict[str, list[tuple[str, Controller]]] = {}
        for name, ctl in sorted(self.site.controllers.items()):
            by_endpoint.setdefault(ctl.endpoint, []).append((name, ctl))
        for endpoint, ctls in by_endpoint.items():
            parts = urlsplit(endpoint)
            server = CncServer(host=parts.hostname or "127.0.0.1", port=parts.port or 4840,
                               path=parts.path, security=self._security(ctls))
            for _, ctl in ctls:
                server.add_machine(ctl.machine, ctl.node_map, ctl.machine_browse_name or ctl.machine)
            try:
                await _listen(server, parts.hostname, parts.port or 4840,
                              "controllers " + ", ".join(n for n, _ in ctls))
            except SimulatorError:
                await self.stop()
                raise
            self.cnc_servers.append(server)
            for _, ctl in ctls:
                self._machine_server[ctl.machine] = server
            if server.security is not None:
                self._trust(server, ctls)
        await self._push_signals(time.time())
        self._task = asyncio.create_task(self._signal_loop())

    # -- OPC UA security ------------------------------------------------------------------

    def _with_collector_pki(self, site: Site) -> Site:
        """The site with every secured controller's certificate folder in pki_dir/collector,
        and its trust folder in pki_dir/collector/trusted."""
        assert self.pki_dir is not None
        folder = self.pki_dir / COLLECTOR_PKI
        update = {"certificate_dir": str(folder), "trust_dir": str(folder / "trusted")}
        controllers = {
            name: ctl.model_copy(update=update)
            if ctl.security_policy is not SecurityPolicy.NONE else ctl
            for name, ctl in site.controllers.items()}
        return site.model_copy(update={"controllers": controllers})

    def _server_pki_root(self) -> Path:
        if self.pki_dir is not None:
            return self.pki_dir / SERVERS_PKI
        if self._temp_pki is None:
            self._temp_pki = tempfile.TemporaryDirectory(prefix="wattelier-sim-pki-")
        return Path(self._temp_pki.name)

    def _security(self, ctls: list[tuple[str, Controller]]) -> SimSecurity | None:
        """The security of the server of these controllers; None when none of them uses it."""
        secured = [(n, c) for n, c in ctls if c.security_policy is not SecurityPolicy.NONE]
        if not secured:
            return None
        users: dict[str, str] = {}
        user_certificates: list[Path] = []
        for name, ctl in ctls:
            if ctl.username:
                users[ctl.username] = self._password(name, ctl)
            if ctl.user_certificate and Path(ctl.user_certificate).is_file():
                user_certificates.append(Path(ctl.user_certificate))
        slug = re.sub(r"[^a-z0-9_-]+", "-", "+".join(n for n, _ in ctls))
        return SimSecurity(self._server_pki_root() / slug, allow_none=len(secured) < len(ctls),
                           users=users, user_certificates=tuple(user_certificates))

    def _password(self, name: str, ctl: Controller) -> str:
        env = ctl.password_env
        if env and os.environ.get(env) is not None:
            return os.environ[env]
        if env:
            os.environ[env] = DEMO_PASSWORD
            self.passwords_set_in_environment.append(env)
            log.info("controller %s: %s is not set; the simulator uses the demo password and "
                     "sets it in this process's environment", name, env)
        else:
            log.warning("controller %s: no password_env; the simulated server's password for %r "
                        "is the demo password %r", name, ctl.username, DEMO_PASSWORD)
        return DEMO_PASSWORD

    def _trust(self, server: CncServer, ctls: list[tuple[str, Controller]]) -> None:
        """Copy the server's certificate into the trust folder of its secured controllers
        (only those moved into pki_dir: never into a folder of the site file)."""
        assert server.certificate_path is not None
        if self.pki_dir is None:
            log.info("OPC UA simulator %s: its certificate is %s (trust it in the collector)",
                     server.endpoint, server.certificate_path)
            return
        for _, ctl in ctls:
            if ctl.security_policy is SecurityPolicy.NONE:
                continue
            trust_dir = Path(ctl.trust_dir)
            for folder in (self.pki_dir, Path(ctl.certificate_dir), trust_dir):
                folder.mkdir(parents=True, exist_ok=True)
                os.chmod(folder, 0o700)  # as the collector wants its folders
            shutil.copyfile(server.certificate_path,
                            trust_dir / f"{server.certificate_path.parent.name}.der")

    def _provider(self, meter_name: str):
        model = self.model

        def values(t_s: float) -> dict[str, float]:
            return model.meter_values(meter_name, t_s)

        return values

    async def _push_signals(self, now_s: float) -> None:
        """Push to the OPC UA servers every controller change up to now, each with the
        exact time it happened as SourceTimestamp."""
        for machine, server in self._machine_server.items():
            schedule = self.model.entities[machine].schedule
            schedule.extend_to(now_s)
            first = self._pushed.get(machine, -1) + 1
            if first == 0:  # first push: the segment holding now
                first = max(schedule.segment_index_array([now_s])[0], 0)
            last = int(schedule.segment_index_array([now_s])[0])
            for i in range(first, last + 1):
                start = schedule.segments[i].start_s
                _, signals = self.model.controller_signals(machine, start)
                await server.update(machine, signals, source_time_s=start)
                self._pushed[machine] = i

    async def _signal_loop(self) -> None:
        while True:
            await asyncio.sleep(SIGNAL_TICK_S)
            try:
                await self._push_signals(time.time())
            except Exception:  # a failed push must not stop the workshop; log it with context
                log.exception("pushing controller signals failed")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for server in self.modbus_servers:
            await server.stop()
        for server in self.cnc_servers:
            await server.stop()
        if self._temp_pki is not None:
            self._temp_pki.cleanup()
            self._temp_pki = None

    # -- counters and truth ---------------------------------------------------------------
    def write_attempts(self) -> int:
        """Every write attempted by any client on any simulated device."""
        return (sum(s.write_attempts for s in self.modbus_servers)
                + sum(s.write_attempts for s in self.cnc_servers))

    def read_requests(self) -> dict[str, int]:
        return {name: sim.read_requests for name, sim in self.sim_meters.items()}

    def silenced_requests(self) -> dict[str, int]:
        """Per meter, the requests left unanswered inside its power holes."""
        return {name: sim.silenced_requests for name, sim in self.sim_meters.items()}

    def ground_truth(self, until_s: float) -> dict:
        """Jobs (with energy), sessions and per-machine energy from start to until_s."""
        model = self.model
        jobs = [{
            "machine": j.machine, "job_id": j.job_id, "member": j.member, "program": j.program,
            "start": iso(j.start_s), "end": iso(j.end_s), "start_s": j.start_s, "end_s": j.end_s,
            "outcome": j.outcome,
            "energy_kwh": model.energy_kwh(j.machine, j.end_s) - model.energy_kwh(j.machine, j.start_s),
        } for j in model.jobs(until_s)]
        return {
            "seed": self.seed, "pace": self.pace, "start": iso(model.t0_s), "end": iso(until_s),
            "machines": {name: {"energy_kwh": model.energy_kwh(name, until_s)}
                         for name in list(model.entities)},
            "jobs": jobs,
            "sessions": [{"machine": s.machine, "member": s.member, "start": iso(s.start_s),
                          "end": iso(s.end_s)} for s in model.sessions(until_s)],
            "power_holes": [{"meter": h.meter, "start": iso(a), "end": iso(b), "start_s": a, "end_s": b}
                            for h in self.power_holes for a, b in [h.window(model.t0_s)]],
        }

    def write_sessions_csv(self, path: Path, until_s: float) -> None:
        """The members' bookings the simulation ran, as `machine,member,start,end` (UTC)."""
        write_sessions_csv(path, self.model.sessions(until_s))

    def write_truth_json(self, path: Path, until_s: float) -> None:
        path.write_text(json.dumps(self.ground_truth(until_s), indent=2), encoding="utf-8")
