"""The collector runtime: every source of a site reading into the journal.

One ModbusLink per serial line or gateway (requests on it serialised), one MeterSource per
meter, one CncSource per controller, and the journal committing in batches. A device that fails
does not stop the others: each source handles its own errors and reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from collector.cnc_source import CncSource
from collector.journal import Journal
from collector.meter_source import MeterSource
from collector.modbus_adapter import ModbusLink
from devices.meter_models import load_model
from devices.node_maps import load_node_map
from devices.site import Site

log = logging.getLogger("wattelier.collector")
STOP_GRACE_S = 5.0


def journal_for(site: Site, path: str | None = None) -> Journal:
    """The journal a site's settings describe (path overridable)."""
    settings = site.journal
    return Journal(path or settings.path, max_points=settings.max_points,
                   overflow=settings.overflow, commit_interval_s=settings.commit_interval_s)


class ObservingSink:
    """Passes points to the journal and keeps, per device, the count and the latest fields
    (for live displays)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.counts: dict[str, int] = {}
        self.latest: dict[str, dict] = {}

    def put(self, points) -> None:
        for p in points:
            device = p.tags.get("meter") or p.tags.get("controller") or p.measurement
            key = f"{p.measurement}:{device}"
            self.counts[key] = self.counts.get(key, 0) + 1
            self.latest.setdefault(key, {}).update(p.fields)
        self.journal.put(points)

    def drop(self, reason: str, count: int = 1) -> None:
        self.journal.drop(reason, count)


@dataclass
class Collector:
    """Runs every source of a site into a journal until stopped."""

    site: Site
    journal: Journal
    meter_sources: dict[str, MeterSource] = field(default_factory=dict)
    cnc_sources: dict[str, CncSource] = field(default_factory=dict)
    links: dict[str, ModbusLink] = field(default_factory=dict)
    sink: ObservingSink | None = None

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
            self.cnc_sources[name] = CncSource(name, ctl, load_node_map(ctl.node_map), site_name)

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop` is set, then stop the sources within a bounded time and commit."""
        sources_stop = asyncio.Event()
        journal_stop = asyncio.Event()
        journal_task = asyncio.create_task(self.journal.run(journal_stop), name="journal")
        tasks = [asyncio.create_task(src.run(self.sink, sources_stop), name=f"meter:{name}")
                 for name, src in self.meter_sources.items()]
        tasks += [asyncio.create_task(src.run(self.sink, sources_stop), name=f"cnc:{name}")
                  for name, src in self.cnc_sources.items()]
        log.info("collecting %d meters and %d controllers into %s", len(self.meter_sources),
                 len(self.cnc_sources), self.journal.path)
        try:
            await stop.wait()
        finally:
            sources_stop.set()
            done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S) if tasks else (set(), set())
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("source %s ended with an error: %r", task.get_name(), task.exception())
            for link in self.links.values():
                await link.close()
            journal_stop.set()
            await journal_task

    def points_by_device(self) -> dict[str, int]:
        """Points handed to the journal so far, per device ('meter:NAME', 'cnc:NAME')."""
        return dict(self.sink.counts)
