"""The collector's self-metrics name the devices that do not answer: beside the site's point,
one `collector` point per device tagged `device`, with `up` and `failures`."""

from __future__ import annotations

import asyncio

from collector.runtime import Collector
from storage.journal import Journal
from tests.stores import journal_points


async def test_meters_that_do_not_answer_are_named_down(tmp_path, example_site):
    """The example site's meters are not running here (nothing listens on their ports): each
    is reported down by name, with its failed reads counted (controllers, which need secrets,
    left out)."""
    site = example_site.model_copy(update={"controllers": {}})
    path = tmp_path / "j.sqlite"
    collector = Collector(site, Journal(path))
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    try:
        for _ in range(200):
            if all(s.health.up is False for s in collector.meter_sources.values()):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task  # the last self-metrics are written as it stops
        collector.journal.close()
    points = journal_points(path)
    site_points = [f for (m, tags, _), f in points.items() if m == "collector" and "device" not in dict(tags)]
    devices = {dict(tags)["device"]: f for (m, tags, _), f in points.items()
               if m == "collector" and "device" in dict(tags)}
    assert site_points[-1]["devices_down"] == len(site.meters) and site_points[-1]["devices_up"] == 0
    assert set(devices) == {f"meter:{name}" for name in site.meters}
    assert all(f["up"] == 0 and f["failures"] >= 1 for f in devices.values())
