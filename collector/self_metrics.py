"""Self-metrics: the collector reports on itself as the `collector` measurement.

Every `interval_s` one point, tagged `site`, goes into the journal (and so to InfluxDB) with
integer counts: points read from devices since start, points journaled, forwarded, quarantined
and dropped by reason (totals kept in the journal, so they survive restarts), the forwarding
backlog, devices up and down, and reconnects since start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from storage.points import Point
from collector.sink import Sink
from devices import vocabulary

Snapshot = Callable[[], dict[str, int | float]]


class SelfMetrics:
    """Emit the collector's own counters periodically into a sink."""

    def __init__(self, site: str, snapshot: Snapshot, interval_s: float = 10.0) -> None:
        self.site = site
        self.snapshot = snapshot
        self.interval_s = interval_s
        self.points_emitted = 0

    def emit(self, sink: Sink, snapshot: dict[str, int | float] | None = None) -> Point:
        snapshot = self.snapshot() if snapshot is None else snapshot
        fields = {k: v for k, v in snapshot.items() if v is not None}
        point = Point(vocabulary.COLLECTOR, {"site": self.site}, fields, time.time_ns())
        sink.put([point])
        self.points_emitted += 1
        return point

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            except asyncio.TimeoutError:
                self.emit(sink, await asyncio.to_thread(self.snapshot))
