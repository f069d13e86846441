"""A Modbus power meter as a collector source: poll, decode, judge, emit one point per poll.

Each poll sends the meter's planned read blocks (collector.coalesce) through the line's
ModbusLink and emits one `meter` point stamped with the edge time (the wall clock when the
poll's first request was sent), tagged site / meter / machine, with every decoded quantity as a
float field.

Bad values are flagged, never stored as truth:
- NaN or infinite: the field is left out, counted as drop reason "nan_or_infinite".
- an energy counter below the last accepted value: left out, counted as "counter_backwards",
  logged once per episode; the last good value stays the reference. A counter that stays below
  it, without going backwards itself, for `counter_reset_polls` polls in a row is a real reset
  (meter replaced or cleared): the new value is accepted, logged once, and left to analytics,
  which handles resets. Without that rule a reset meter would lose its energy for good.

A failed poll (TransportError, ModbusExceptionReply) goes to the device health (logged once when
the meter goes, once when it is back) and is counted by kind; it never stops the source, and
other sources are untouched. After `reconnect_after` transport failures in a row, the line's
connection is dropped to force a reconnect, but only when the whole line is failing, so one dead
unit behind a gateway does not break its neighbours' connection.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from collector.coalesce import ReadBlock, decode_block, plan_reads
from collector.errors import ConfigError, DeviceError, TransportError
from collector.health import DeviceHealth
from collector.modbus_adapter import ModbusLink
from storage.points import Point
from collector.sink import Sink
from devices import vocabulary
from devices.meter_models import MeterModel
from devices.site import Meter

logger = logging.getLogger("wattelier.collector.meter")

DROP_NAN = "nan_or_infinite"
DROP_COUNTER_BACKWARDS = "counter_backwards"


class MeterSource:
    """Polls one meter through its line's link.

    name: the meter's name in the site file (the `meter` tag).
    meter: its site configuration (unit_id, poll_interval_s, timeout_s, feeds).
    model: its register map.
    link: the link of the line it is on (shared with the other meters there).
    site: the site name (the `site` tag).
    machine: the `machine` tag; defaults to what the meter feeds.
    reconnect_after: transport failures in a row before the connection is dropped.
    counter_reset_polls: polls in a row below the last accepted counter value before the lower
        value is taken as a counter reset.

    Counters: `polls`, `points_emitted`, `requests_sent`, `cycles_skipped` (polls not started
    because the previous one overran its slot), `errors_by_kind`, and the `health` object.

    `poll_span_max_s`: the longest time, over the polls that emitted a point, from the first
    request's send (the point's time stamp) to the last answer [s]. A meter takes each value
    while its request is on its way, so a value is at most that late on its time stamp: the
    timing uncertainty of any reading of this source.
    """

    def __init__(self, name: str, meter: Meter, model: MeterModel, link: ModbusLink, *,
                 site: str, machine: str | None = None, reconnect_after: int = 3,
                 counter_reset_polls: int = 10) -> None:
        if meter.model != model.model:
            raise ConfigError(f"meter {name}: configured as {meter.model!r} but given the "
                              f"register map of {model.model!r}")
        if reconnect_after < 1 or counter_reset_polls < 1:
            raise ConfigError("reconnect_after and counter_reset_polls must be at least 1")
        self.name = name
        self.meter = meter
        self.model = model
        self.link = link
        self.tags = {vocabulary.TAG_SITE: site, vocabulary.TAG_METER: name,
                     vocabulary.TAG_MACHINE: machine if machine is not None else meter.feeds}
        self.reconnect_after = reconnect_after
        self.counter_reset_polls = counter_reset_polls
        self.plan: list[ReadBlock] = plan_reads(model.points, model.max_registers_per_read,
                                                model.allow_gaps)
        self._counters = {p.quantity for p in model.points if p.is_counter}
        self.health = DeviceHealth(f"meter {name} ({link.key} unit {meter.unit_id})", logger)

        self.polls = 0
        self.points_emitted = 0
        self.requests_sent = 0
        self.cycles_skipped = 0
        self.poll_span_max_s = 0.0
        self._transport_failures = 0
        self._last_counter: dict[str, float] = {}
        self._backwards: dict[str, tuple[int, float]] = {}  # quantity -> (polls below, last value)
        self._unexpected_logged = False

    def __repr__(self) -> str:
        return f"MeterSource({self.name!r}, {self.link.key} unit {self.meter.unit_id})"

    @property
    def errors_by_kind(self) -> dict[str, int]:
        return self.health.errors_by_kind

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Poll every poll_interval_s until `stop` is set.

        Polls start on a fixed monotonic grid (start + k x interval), so the period does not
        drift; a poll that overruns its slot makes the source skip the slots it covered
        instead of starting polls back to back.
        """
        loop = asyncio.get_running_loop()
        interval = self.meter.poll_interval_s
        start = loop.time()
        slot = 0
        while not stop.is_set():
            await self.poll(sink)
            slot += 1
            now = loop.time()
            due = start + slot * interval
            if now > due:
                next_slot = math.floor((now - start) / interval) + 1
                self.cycles_skipped += next_slot - slot
                slot = next_slot
                due = start + slot * interval
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, due - loop.time()))
            except TimeoutError:
                pass

    async def poll(self, sink: Sink) -> Point | None:
        """One poll: read every block, emit the point. Returns it, or None when the poll failed
        or left no field."""
        self.polls += 1
        unit = self.meter.unit_id
        time_ns: int | None = None
        values: dict[str, float] = {}
        try:
            for block in self.plan:
                self.requests_sent += 1
                sent_ns, words = await self.link.read_timed(
                    unit, block.function, block.address, block.count, self.meter.timeout_s)
                if time_ns is None:
                    time_ns = sent_ns
                values.update(decode_block(block, words))
            answered_ns = time.time_ns()
        except DeviceError as exc:
            await self._poll_failed(exc)
            return None
        except Exception as exc:  # a bug must not stop the collector; say it once
            if not self._unexpected_logged:
                logger.exception("meter %s: unexpected error while polling", self.name)
                self._unexpected_logged = True
            self.health.failed(exc)
            return None
        self._transport_failures = 0
        self._unexpected_logged = False
        self.health.succeeded()

        fields = self._judge(values, sink)
        if not fields:
            return None
        point = Point(vocabulary.METER, dict(self.tags), fields, time_ns or answered_ns)
        sink.put([point])
        self.points_emitted += 1
        if time_ns is not None:
            self.poll_span_max_s = max(self.poll_span_max_s, (answered_ns - time_ns) / 1e9)
        return point

    async def _poll_failed(self, exc: DeviceError) -> None:
        self.health.failed(exc)
        if not isinstance(exc, TransportError):
            self._transport_failures = 0
            return
        self._transport_failures += 1
        if (self._transport_failures >= self.reconnect_after
                and self.link.consecutive_failures >= self.reconnect_after):
            self._transport_failures = 0
            await self.link.reset()

    def _judge(self, values: dict[str, float], sink: Sink) -> dict[str, float]:
        """Keep the values that can be true; count the others with their reason."""
        fields: dict[str, float] = {}
        for quantity, value in values.items():
            value = float(value)
            if not math.isfinite(value):
                sink.drop(DROP_NAN)
                continue
            if quantity in self._counters and not self._counter_ok(quantity, value):
                sink.drop(DROP_COUNTER_BACKWARDS)
                continue
            fields[quantity] = value
        return fields

    def _counter_ok(self, quantity: str, value: float) -> bool:
        last = self._last_counter.get(quantity)
        if last is None or value >= last:
            self._last_counter[quantity] = value
            self._backwards.pop(quantity, None)
            return True
        run = self._backwards.get(quantity)
        if run is None:
            logger.warning("meter %s: %s went backwards from %s to %s; readings are dropped "
                           "until it passes %s again", self.name, quantity, last, value, last)
            polls = 1
        else:
            polls = run[0] + 1 if value >= run[1] else 1  # the lower run must not fall itself
        if polls >= self.counter_reset_polls:
            logger.warning("meter %s: %s stayed below %s for %d polls; taking %s as a counter "
                           "reset", self.name, quantity, last, polls, value)
            self._last_counter[quantity] = value
            self._backwards.pop(quantity, None)
            return True
        self._backwards[quantity] = (polls, value)
        return False
