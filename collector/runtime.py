"""The collector runtime: every source of a site reading into the journal, and the forwarder.

One ModbusLink per serial line or gateway (requests on it serialised), one MeterSource per
meter, one CncSource per controller, the journal committing in batches, the self-metrics, and,
when an InfluxDB is configured, the forwarder shipping the journal to it. A device that fails
does not stop the others: each source handles its own errors and reconnects.

Stopping (SIGTERM, Ctrl-C, the end of a demo) is bounded: sources stop reading (at most
STOP_GRACE_S), a last self-metrics point is taken, the journal commits what it holds, then the
forwarder sends what it can within its drain timeout, cuts the request in flight and closes;
the rest stays in the journal, sent at the next start. From the signal to the end:

    stop <= STOP_GRACE_S (5 s) + the journal's last commit + drain_timeout_s
            + ABORT_GRACE_S (1 s) + FORWARDER_CLOSE_S (2 s)

whatever InfluxDB does (down, refusing, or black-holed: connected and silent), and
independently of `timeout_s`; about 18 s with the default drain_timeout_s of 10 s, well under
the systemd unit's TimeoutStopSec of 60 s (keep drain_timeout_s under TimeoutStopSec - 20 s).
The forwarder normally ends by itself within drain_timeout_s + ABORT_GRACE_S; it is cancelled
if it has not after FORWARDER_CLOSE_S more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from collector.cnc_source import CncSource
from collector.forwarder import ABORT_GRACE_S, Forwarder
from storage.influxdb import InfluxSettings, InfluxTarget
from storage.influx_config import influx_settings_for
from storage.journal import Journal
from collector.meter_source import MeterSource
from collector.modbus_adapter import ModbusLink
from collector.self_metrics import SelfMetrics
from storage.forward_store import retire_targets
from storage.journal_schema import DROP_PREFIX, FORWARDED_PREFIX, QUARANTINED_PREFIX
from devices.meter_models import load_model
from devices.node_maps import load_node_map
from devices.secrets import secrets_path
from devices.site import Site

log = logging.getLogger("wattelier.collector")
STOP_GRACE_S = 5.0  # sources stop reading within this [s]
FORWARDER_CLOSE_S = 2.0  # after its drain and cut: the backlog count and closing [s]


def journal_for(site: Site, path: str | None = None, *, collector: bool = False) -> Journal:
    """The journal a site's settings describe (path overridable); collector: the collector's
    own, locked against a second collector (JournalLocked, naming the holder's PID)."""
    settings = site.journal
    return Journal(path or settings.path, max_points=settings.max_points,
                   overflow=settings.overflow, commit_interval_s=settings.commit_interval_s,
                   collector=collector)


class ObservingSink:
    """Passes points to the journal and keeps, per device, the count and the latest fields
    (for live displays)."""

    def __init__(self, journal: Journal, on_put=None) -> None:
        self.journal = journal
        self.counts: dict[str, int] = {}
        self.latest: dict[str, dict] = {}
        self.on_put = on_put

    def put(self, points) -> None:
        for p in points:
            device = p.tags.get("meter") or p.tags.get("controller") or p.tags.get("device") or p.measurement
            key = f"{p.measurement}:{device}"
            self.counts[key] = self.counts.get(key, 0) + 1
            self.latest.setdefault(key, {}).update(p.fields)
        self.journal.put(points)

    def drop(self, reason: str, count: int = 1) -> None:
        self.journal.drop(reason, count)


@dataclass
class Collector:
    """Runs every source of a site into a journal (and InfluxDB when given) until stopped."""

    site: Site
    journal: Journal
    influx: InfluxSettings | None = None
    self_metrics_interval_s: float = 10.0
    meter_sources: dict[str, MeterSource] = field(default_factory=dict)
    cnc_sources: dict[str, CncSource] = field(default_factory=dict)
    links: dict[str, ModbusLink] = field(default_factory=dict)
    sink: ObservingSink | None = None
    forwarder: Forwarder | None = None
    self_metrics: SelfMetrics | None = None

    def __post_init__(self) -> None:
        site_name = self.site.site.name
        self.sink = ObservingSink(self.journal)
        for name, meter in sorted(self.site.meters.items()):
            key = meter.line_key()
            if key not in self.links:
                self.links[key] = ModbusLink.for_meter(meter)
            self.meter_sources[name] = MeterSource(
                name, meter, load_model(meter.model), self.links[key], site=site_name)
        for name, ctl in sorted(self.site.controllers.items()):
            if ctl.security_policy.value == "None":
                log.warning("controller %s: OPC UA without security (allowed by the site file): "
                            "everything is sent in clear", name)
            self.cnc_sources[name] = CncSource(name, ctl, load_node_map(ctl.node_map), site_name,
                                               secrets_file=secrets_path(self.site))
        if self.influx is not None:
            section = self.site.influxdb
            self.forwarder = Forwarder(
                self.journal.path, InfluxTarget(self.influx),
                batch_points=section.batch_points if section else 10_000,
                backoff_max_s=section.backoff_max_s if section else 60.0)
        self.self_metrics = SelfMetrics(site_name, self.metrics_snapshot, self.self_metrics_interval_s,
                                        devices=self.device_states)
        self._started = time.monotonic()

    @property
    def drain_timeout_s(self) -> float:
        return self.site.influxdb.drain_timeout_s if self.site.influxdb else 10.0

    def device_states(self) -> dict[str, dict[str, int]]:
        """Each meter's and controller's state, once known: `up` (1 answering, 0 not) and
        `failures` (consecutive failed reads), keyed by the `device` tag value."""
        sources = [(f"meter:{name}", s) for name, s in self.meter_sources.items()]
        sources += [(f"controller:{name}", s) for name, s in self.cnc_sources.items()]
        return {device: {"up": int(s.health.up), "failures": s.health.consecutive_failures}
                for device, s in sources if s.health.up is not None}

    def metrics_snapshot(self) -> dict[str, int | float]:
        """The collector's own counters (the `collector` measurement's fields)."""
        counters = self.journal.counters()
        sources = list(self.meter_sources.values()) + list(self.cnc_sources.values())
        fields: dict[str, int | float] = {
            "points_read": sum(s.points_emitted for s in sources),
            "points_journaled": counters.get("points_written", 0),
            "devices_up": sum(1 for s in sources if s.health.up),
            "devices_down": sum(1 for s in sources if s.health.up is False),
            "reconnects": sum(s.reconnects for s in self.cnc_sources.values())
            + sum(max(0, link.connects - 1) for link in self.links.values()),
            "uptime_s": round(time.monotonic() - self._started, 3),
        }
        dropped = {k[len(DROP_PREFIX):]: v for k, v in counters.items() if k.startswith(DROP_PREFIX)}
        fields["points_dropped"] = sum(dropped.values())
        for reason, n in dropped.items():
            fields[f"dropped_{reason}"] = n
        if self.forwarder is not None and self.forwarder.store is not None:
            target = self.forwarder.store.target
            fields["points_forwarded"] = counters.get(FORWARDED_PREFIX + target, 0)
            fields["points_quarantined"] = counters.get(QUARANTINED_PREFIX + target, 0)
            fields["backlog"] = self.journal.backlog(target)
            oldest_ns = self.journal.oldest_unsent_ns(target)
            fields["oldest_unsent_age_s"] = (0.0 if oldest_ns is None
                                             else round(max(0.0, time.time() - oldest_ns / 1e9), 3))
            fields["influx_up"] = int(bool(self.forwarder.stats.up))
        return fields

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop` is set, then stop everything within a bounded time."""
        await asyncio.to_thread(retire_unconfigured_targets, self.journal.path, self.influx)
        sources_stop = asyncio.Event()
        journal_stop = asyncio.Event()
        forward_stop = asyncio.Event()
        journal_task = asyncio.create_task(self.journal.run(journal_stop), name="journal")
        forward_task = (asyncio.create_task(self.forwarder.run(forward_stop, self.drain_timeout_s),
                                            name="forwarder") if self.forwarder else None)
        tasks = [asyncio.create_task(src.run(self.sink, sources_stop), name=f"meter:{name}")
                 for name, src in self.meter_sources.items()]
        tasks += [asyncio.create_task(src.run(self.sink, sources_stop), name=f"cnc:{name}")
                  for name, src in self.cnc_sources.items()]
        metrics_task = asyncio.create_task(self.self_metrics.run(self.sink, sources_stop), name="self-metrics")
        log.info("collecting %d meters and %d controllers into %s%s", len(self.meter_sources),
                 len(self.cnc_sources), self.journal.path,
                 f", forwarding to {self.influx.url}" if self.influx else "")
        try:
            await stop.wait()
        finally:
            sources_stop.set()
            everything = tasks + [metrics_task]
            done, pending = await asyncio.wait(everything, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("task %s ended with an error: %r", task.get_name(), task.exception())
            for link in self.links.values():
                await link.close()
            self.self_metrics.emit(self.sink, await asyncio.to_thread(self.metrics_snapshot))
            journal_stop.set()
            try:
                await journal_task
            except Exception as exc:  # noqa: BLE001 - still stop the forwarder within the bound
                log.error("journal: last commit failed while stopping: %s", exc)
            if forward_task is not None:
                forward_stop.set()
                self.forwarder.wake()
                # The forwarder cuts its request in flight at the end of the drain.
                limit = self.drain_timeout_s + ABORT_GRACE_S + FORWARDER_CLOSE_S
                try:
                    await asyncio.wait_for(forward_task, timeout=limit)
                except asyncio.TimeoutError:
                    log.warning("forwarder did not stop within %.0f s; what is unsent stays in the journal",
                                limit)

    def points_by_device(self) -> dict[str, int]:
        """Points handed to the journal so far, per device ('meter:NAME', 'cnc:NAME')."""
        return dict(self.sink.counts)


def retire_unconfigured_targets(journal_path, influx: InfluxSettings | None) -> list[str]:
    """Forget the forwarding targets of the journal that the site file no longer names (none
    when it has no [influxdb]): packing and overflow wait for every target the journal knows
    (storage.forward_store.retire_targets), so one removed or renamed would hold them back for
    ever. Says so for each; returns their keys."""
    retired = retire_targets(journal_path, influx.possible_target_keys() if influx is not None else ())
    for r in retired:
        log.warning("forwarding target %s is no longer in the site file: forgotten; %d points it had "
                    "not accepted stay in the journal and are not sent to it (named again, it would be "
                    "sent everything from the journal's oldest point)", r.target, r.unsent)
    return [r.target for r in retired]
