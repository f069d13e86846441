"""Self-metrics: the collector reports on itself as the `collector` measurement.

Every `interval_s` one point, tagged `site`, goes into the journal (and so to InfluxDB) with
integer counts: points read from devices since start, points journaled, forwarded, quarantined
and dropped by reason (totals kept in the journal, so they survive restarts), the forwarding
backlog, devices up and down, and reconnects since start. Beside it, one point per device
whose state is known, tagged `site` and `device` (`meter:NAME`, `controller:NAME`): `up` (1 or
0) and `failures` (consecutive failed reads), so a dashboard and an alert can name the device
that does not answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from storage.points import Point
from collector.sink import Sink
from devices import vocabulary

Snapshot = Callable[[], dict[str, int | float]]
DeviceStates = Callable[[], dict[str, dict[str, int]]]
"""device tag value -> its fields (`up`, `failures`)."""


class SelfMetrics:
    """Emit the collector's own counters periodically into a sink."""

    def __init__(self, site: str, snapshot: Snapshot, interval_s: float = 10.0,
                 devices: DeviceStates | None = None) -> None:
        self.site = site
        self.snapshot = snapshot
        self.devices = devices
        self.interval_s = interval_s
        self.points_emitted = 0

    def emit(self, sink: Sink, snapshot: dict[str, int | float] | None = None) -> Point:
        """Put the site's point and the devices' points; return the site's."""
        snapshot = self.snapshot() if snapshot is None else snapshot
        now_ns = time.time_ns()
        fields = {k: v for k, v in snapshot.items() if v is not None}
        point = Point(vocabulary.COLLECTOR, {vocabulary.TAG_SITE: self.site}, fields, now_ns)
        devices = self.devices() if self.devices is not None else {}
        sink.put([point] + [Point(vocabulary.COLLECTOR, {vocabulary.TAG_SITE: self.site, vocabulary.TAG_DEVICE: name},
                                  device_fields, now_ns)
                            for name, device_fields in sorted(devices.items())])
        self.points_emitted += 1 + len(devices)
        return point

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            except asyncio.TimeoutError:
                self.emit(sink, await asyncio.to_thread(self.snapshot))
