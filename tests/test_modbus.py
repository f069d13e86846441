"""Modbus meters end to end: the simulator on real loopback sockets, read by the collector.

No protocol mocks: every test runs ModbusMeterServer on 127.0.0.1 (port 0, a free port) and
reads it through ModbusLink / MeterSource, or through a raw pymodbus client where the test is
about the simulator itself.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import math
import re
import time
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from collector.coalesce import ReadBlock, plan_reads
from collector.errors import ConfigError, ModbusExceptionReply, TransportError
from collector.meter_source import MeterSource
from collector.modbus_adapter import LinkPool, ModbusLink
from collector.sink import ListSink
from devices.meter_models import MeterModel, available_models, load_model
from devices.site import Meter
from devices.sim.modbus_server import (
    Framing,
    MeterFault,
    ModbusMeterServer,
    SimulatedMeter,
)
from devices.sim.ports import free_port

try:  # tests/ is on sys.path while it is not a package (pytest's default import mode)
    from test_coalesce import brute_force_minimum
except ImportError:
    from tests.test_coalesce import brute_force_minimum

ROOT = Path(__file__).resolve().parents[1]
METER_LOG = "wattelier.collector.meter"

# True values for every meter quantity: what the simulated meters measure.
TRUE_VALUES = {
    "power_w": 1234.5,
    "energy_import_kwh": 10432.25,
    "energy_export_kwh": 12.75,
    "power_factor": 0.95,
    "frequency_hz": 50.02,
    "voltage_l1_v": 230.1, "voltage_l2_v": 231.4, "voltage_l3_v": 229.8,
    "current_l1_a": 5.25, "current_l2_a": 4.5, "current_l3_a": 6.125,
    "power_l1_w": 400.5, "power_l2_w": 350.25, "power_l3_w": 483.75,
}


def constant(values: dict[str, float]):
    return lambda now: values


def make_model(name: str, points: list[dict], *, max_registers: int = 60,
               allow_gaps: bool = True) -> MeterModel:
    """A register map built in the test (the reference tables, or odd types and orders)."""
    units = {"power_w": "W", "energy_import_kwh": "kWh", "energy_export_kwh": "kWh",
             "power_factor": "1", "frequency_hz": "Hz"}
    full = []
    for p in points:
        q = p["quantity"]
        unit = units.get(q) or {"v": "V", "a": "A", "w": "W"}[q.rsplit("_", 1)[1]]
        full.append({"name": q, "unit": unit, "type": "float32", **p})
    return MeterModel.model_validate({
        "model": name, "manufacturer": "test", "name": name, "phases": 3,
        "max_registers_per_read": max_registers, "allow_gaps": allow_gaps,
        "sources": ['docs/reference.md, "Modbus meters"'], "points": full,
        "frames": [{"quantity": "power_w", "words": [0, 0], "value": 0.0}],
    })


def sdm630_reference(max_registers: int = 60) -> MeterModel:
    """The Eastron SDM630 map of docs/reference.md, "Modbus meters" (function 4, float32 ABCD)."""
    addresses = {"voltage_l1_v": 0x00, "voltage_l2_v": 0x02, "voltage_l3_v": 0x04,
                 "current_l1_a": 0x06, "current_l2_a": 0x08, "current_l3_a": 0x0A,
                 "power_l1_w": 0x0C, "power_l2_w": 0x0E, "power_l3_w": 0x10, "power_w": 0x34,
                 "energy_import_kwh": 0x48, "energy_export_kwh": 0x4A}
    return make_model("ref-sdm630", [{"quantity": q, "function": 4, "address": a}
                                     for q, a in addresses.items()], max_registers=max_registers)


def all_types_model() -> MeterModel:
    """Every data type and word order the codec knows, holding and input registers mixed,
    no gaps allowed."""
    return make_model("all-types", [
        {"quantity": "power_w", "function": 3, "address": 100, "type": "float32",
         "order": "CDAB"},
        {"quantity": "energy_import_kwh", "function": 3, "address": 102, "type": "uint64",
         "order": "DCBA", "scale": 0.001},
        {"quantity": "energy_export_kwh", "function": 3, "address": 106, "type": "int64",
         "order": "BADC", "scale": 0.01},
        {"quantity": "voltage_l1_v", "function": 4, "address": 0, "type": "uint16",
         "scale": 0.1},
        {"quantity": "current_l1_a", "function": 4, "address": 1, "type": "int32",
         "order": "CDAB", "scale": 0.001},
        {"quantity": "power_factor", "function": 4, "address": 3, "type": "int16",
         "scale": 0.001},
        {"quantity": "frequency_hz", "function": 4, "address": 10, "type": "float64",
         "order": "DCBA"},
        {"quantity": "power_l1_w", "function": 4, "address": 14, "type": "uint32",
         "order": "BADC", "scale": 0.5},
    ], max_registers=8, allow_gaps=False)


def models_under_test() -> list[MeterModel]:
    return [load_model(name) for name in available_models()] + [sdm630_reference(),
                                                                all_types_model()]


MODELS = {m.model: m for m in models_under_test()}


def meter_config(model: MeterModel, server: ModbusMeterServer, unit_id: int = 1, *,
                 feeds: str = "router-1", poll_interval_s: float = 0.1,
                 timeout_s: float = 1.0) -> Meter:
    transport = "tcp" if server.framing is Framing.TCP else "rtu_over_tcp"
    return Meter(model=model.model, feeds=feeds, transport=transport, host=server.host,
                 port=server.port, unit_id=unit_id, poll_interval_s=poll_interval_s,
                 timeout_s=timeout_s)


@pytest.fixture
async def sim():
    """Start simulator endpoints; at teardown stop them and check no write ever reached one."""
    servers: list[ModbusMeterServer] = []

    async def start(meters, **options) -> ModbusMeterServer:
        server = ModbusMeterServer(meters, **options)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
    for server in servers:
        assert server.write_attempts == 0, f"the collector sent a write to {server}"
        for meter in server.meters.values():
            assert meter.write_attempts == 0


@pytest.fixture
async def pool():
    links = LinkPool(reconnect_min_s=0.05, reconnect_max_s=0.2)
    yield links
    await links.close()


async def run_for(seconds: float, *sources: MeterSource, sink: ListSink) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(sink, stop)) for s in sources]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 3.0)


# -- every model answers through the simulator and decodes to its true values -------------


@pytest.mark.parametrize("name", sorted(MODELS))
async def test_every_model_decodes_to_true_values(name, sim, pool):
    model = MODELS[name]
    simulated = SimulatedMeter(7, model, constant(TRUE_VALUES))
    server = await sim([simulated])
    meter = meter_config(model, server, unit_id=7)
    source = MeterSource("m1", meter, model, pool.link_for(meter), site="lab")
    sink = ListSink()

    before = time.time_ns()
    point = await source.poll(sink)
    after = time.time_ns()

    assert point is not None, source.errors_by_kind
    assert sink.points == [point] and not sink.dropped
    assert point.measurement == "meter"
    assert point.tags == {"site": "lab", "meter": "m1", "machine": "router-1"}
    assert before <= point.time_ns <= after
    assert set(point.fields) == {p.quantity for p in model.points}
    for p in model.points:
        true = TRUE_VALUES[p.quantity]
        got = point.fields[p.quantity]
        assert isinstance(got, float)
        assert abs(got - true) <= p.resolution(true) * (1 + 1e-9), (p.quantity, got, true)
    # each request of the plan, and nothing else, reached the meter
    assert simulated.read_requests == len(source.plan) == source.requests_sent


# -- coalescing: minimal reads, and the simulator refuses reads longer than the meter's limit -


@pytest.mark.parametrize("name", sorted(MODELS))
async def test_reads_per_poll_are_minimal(name, sim, pool):
    model = MODELS[name]
    simulated = SimulatedMeter(1, model, constant(TRUE_VALUES))
    server = await sim([simulated])
    meter = meter_config(model, server)
    source = MeterSource("m", meter, model, pool.link_for(meter), site="lab")
    minimum = brute_force_minimum(list(model.points), model.max_registers_per_read,
                                  model.allow_gaps)
    sink = ListSink()
    for cycle in range(1, 4):
        assert await source.poll(sink) is not None
        assert simulated.read_requests == cycle * minimum
    assert len(plan_reads(model.points, model.max_registers_per_read, model.allow_gaps)) \
        == len(source.plan) == minimum


KNOWN_MINIMUM = {"ref-sdm630": 2, "all-types": 4}  # by hand, from the maps above


@pytest.mark.parametrize("name", sorted(KNOWN_MINIMUM))
def test_known_minimum_reads(name):
    model = MODELS[name]
    assert len(plan_reads(model.points, model.max_registers_per_read, model.allow_gaps)) \
        == KNOWN_MINIMUM[name]


async def test_reads_beyond_the_meter_limit_or_map_are_refused(sim, pool):
    model = sdm630_reference(max_registers=40)
    server = await sim([SimulatedMeter(1, model, constant(TRUE_VALUES))])
    link = pool.link_for(meter_config(model, server))
    assert len(await link.read(1, 4, 0x00, 40, 1.0)) == 40  # within the limit: answered
    with pytest.raises(ModbusExceptionReply) as refused:
        await link.read(1, 4, 0x00, 41, 1.0)
    assert refused.value.exception_code == 3  # illegal data value
    with pytest.raises(ModbusExceptionReply) as outside:
        await link.read(1, 4, 0x4A, 4, 1.0)  # runs past the last mapped register
    assert outside.value.exception_code == 2  # illegal data address
    with pytest.raises(ModbusExceptionReply) as other_space:
        await link.read(1, 3, 0x00, 2, 1.0)  # this map has no holding registers
    assert other_space.value.exception_code == 2
    # a gap inside the span reads as zeros
    assert await link.read(1, 4, 0x12, 2, 1.0) == [0, 0]


async def test_without_gaps_only_mapped_registers_are_readable(sim, pool):
    model = all_types_model()
    server = await sim([SimulatedMeter(1, model, constant(TRUE_VALUES))])
    link = pool.link_for(meter_config(model, server))
    assert len(await link.read(1, 4, 0, 4, 1.0)) == 4  # uint16 + int32 + int16, contiguous
    with pytest.raises(ModbusExceptionReply) as gap:
        await link.read(1, 4, 2, 8, 1.0)  # within the limit, but spans the unmapped 4..9
    assert gap.value.exception_code == 2


async def test_a_plan_exceeding_the_limit_fails_against_the_simulator(sim, pool):
    # the proof that the simulator would catch a planner ignoring max_registers_per_read
    model = sdm630_reference(max_registers=40)
    simulated = SimulatedMeter(1, model, constant(TRUE_VALUES))
    server = await sim([simulated])
    meter = meter_config(model, server)
    source = MeterSource("m", meter, model, pool.link_for(meter), site="lab")
    source.plan = [ReadBlock(4, 0, 0x4C, tuple(sorted(model.points, key=lambda p: p.address)))]
    assert await source.poll(ListSink()) is None
    assert source.errors_by_kind == {"modbus_exception": 1}


# -- RTU over TCP gateway: several units on one line, requests serialised --------------------


async def test_rtu_over_tcp_gateway_serialises_three_units(sim, pool):
    models = [MODELS["ref-sdm630"], MODELS["all-types"], MODELS["ref-sdm630"]]
    simulated = [SimulatedMeter(unit, m, constant(TRUE_VALUES))
                 for unit, m in zip((1, 2, 3), models)]
    server = await sim(simulated, framing=Framing.RTU_OVER_TCP, response_delay_s=0.005)
    sources = []
    for s in simulated:
        meter = meter_config(s.model, server, s.unit_id, poll_interval_s=0.1)
        sources.append(MeterSource(f"m{s.unit_id}", meter, s.model, pool.link_for(meter),
                                   site="lab"))
    assert len(pool.links) == 1  # one line, one owner
    sink = ListSink()
    await run_for(0.5, *sources, sink=sink)

    by_meter = {name: [p for p in sink.points if p.tags["meter"] == name]
                for name in ("m1", "m2", "m3")}
    for source, s in zip(sources, simulated):
        points = by_meter[source.name]
        assert len(points) >= 3, source.errors_by_kind
        assert not source.errors_by_kind
        assert points[-1].fields["power_w"] == pytest.approx(1234.5)
        assert s.read_requests == source.requests_sent == source.polls * len(source.plan)
    assert server.max_in_flight == 1


async def test_concurrency_tracking_sees_parallel_clients(sim):
    # the counter behind the assertion above can fail: three links in parallel overlap
    model = MODELS["ref-sdm630"]
    server = await sim([SimulatedMeter(u, model, constant(TRUE_VALUES)) for u in (1, 2, 3)],
                       framing=Framing.RTU_OVER_TCP, response_delay_s=0.05)
    links = [ModbusLink("rtu_over_tcp", host=server.host, port=server.port) for _ in range(3)]
    try:
        await asyncio.gather(*(link.read(u, 4, 0, 2, 1.0) for u, link in zip((1, 2, 3), links)))
    finally:
        for link in links:
            await link.close()
    assert server.max_in_flight > 1


# -- faults: silence and exception replies, logged once each way ----------------------------


def lines(caplog, text: str, meter: str) -> list[str]:
    """Log lines of the meter logger about one meter that contain `text`."""
    about = re.compile(rf"\bmeter {re.escape(meter)}\b")
    return [r.getMessage() for r in caplog.records
            if r.name == METER_LOG and text in r.getMessage() and about.search(r.getMessage())]


async def test_faulty_meters_do_not_stop_a_healthy_one(sim, pool, caplog):
    caplog.set_level(logging.INFO, logger=METER_LOG)
    model = MODELS["ref-sdm630"]
    silent = SimulatedMeter(1, model, constant(TRUE_VALUES), fault=MeterFault.SILENT)
    failing = SimulatedMeter(2, model, constant(TRUE_VALUES), fault=MeterFault.EXCEPTION)
    healthy = SimulatedMeter(3, model, constant(TRUE_VALUES))
    server = await sim([silent, failing, healthy])
    sources = {}
    for s in (silent, failing, healthy):
        meter = meter_config(model, server, s.unit_id, poll_interval_s=0.1, timeout_s=0.1)
        sources[s.unit_id] = MeterSource(f"m{s.unit_id}", meter, model, pool.link_for(meter),
                                         site="lab")
    sink = ListSink()
    await run_for(0.8, *sources.values(), sink=sink)

    assert {p.tags["meter"] for p in sink.points} == {"m3"}
    assert len(sink.points) >= 3
    assert set(sources[1].errors_by_kind) == {"transport"}
    assert set(sources[2].errors_by_kind) == {"modbus_exception"}
    assert sources[1].errors_by_kind["transport"] >= 3
    assert sources[2].errors_by_kind["modbus_exception"] >= 3
    assert not sources[3].errors_by_kind
    assert len(lines(caplog, "is down", "m1")) == 1
    assert len(lines(caplog, "is down", "m2")) == 1
    assert "exception 4 (server device failure)" in lines(caplog, "is down", "m2")[0]
    assert "no answer within" in lines(caplog, "is down", "m1")[0]
    assert not lines(caplog, "is down", "m3")
    # one silent unit behind a shared endpoint must not make its neighbours reconnect
    assert pool.links[0].connects == 1

    silent.fault = MeterFault.NONE
    failing.fault = MeterFault.NONE
    sink = ListSink()
    await run_for(0.5, *sources.values(), sink=sink)
    assert {p.tags["meter"] for p in sink.points} == {"m1", "m2", "m3"}
    for name in ("m1", "m2"):
        assert len(lines(caplog, "is down", name)) == 1
        assert len(lines(caplog, "is back", name)) == 1
    assert not lines(caplog, "is back", "m3")


async def test_busy_meter_answers_exception_6(sim, pool):
    model = MODELS["ref-sdm630"]
    busy = SimulatedMeter(1, model, constant(TRUE_VALUES), fault=MeterFault.EXCEPTION,
                          exception_code=6)
    server = await sim([busy])
    link = pool.link_for(meter_config(model, server))
    with pytest.raises(ModbusExceptionReply, match="server device busy") as reply:
        await link.read(1, 4, 0, 2, 1.0)
    assert reply.value.exception_code == 6
    assert link.consecutive_failures == 0  # an exception reply proves the line works


async def test_lost_endpoint_reconnects_with_backoff(sim, pool, caplog):
    caplog.set_level(logging.INFO, logger=METER_LOG)
    model = MODELS["ref-sdm630"]
    port = free_port()
    server = await sim([SimulatedMeter(1, model, constant(TRUE_VALUES))], port=port)
    meter = meter_config(model, server, timeout_s=0.2)
    link = pool.link_for(meter)
    source = MeterSource("m", meter, model, link, site="lab", reconnect_after=2)
    sink = ListSink()
    assert await source.poll(sink) is not None

    await server.stop()
    for _ in range(4):
        assert await source.poll(sink) is None
    assert set(source.errors_by_kind) == {"transport"}
    with pytest.raises(TransportError, match="next attempt in"):
        await link.read(1, 4, 0, 2, 0.2)  # during the backoff: fails at once, no connect

    await sim([SimulatedMeter(1, model, constant(TRUE_VALUES))], port=port)
    deadline = time.monotonic() + 3.0
    while await source.poll(sink) is None:
        assert time.monotonic() < deadline, "no reconnect"
        await asyncio.sleep(0.05)
    assert link.connects == 2
    assert len(lines(caplog, "is down", "m")) == 1
    assert len(lines(caplog, "is back", "m")) == 1


async def test_a_silent_line_is_reconnected_after_n_failures(sim, pool):
    model = MODELS["ref-sdm630"]
    server = await sim([SimulatedMeter(1, model, constant(TRUE_VALUES),
                                       fault=MeterFault.SILENT)])
    meter = meter_config(model, server, timeout_s=0.05)
    link = pool.link_for(meter)
    source = MeterSource("m", meter, model, link, site="lab", reconnect_after=2)
    for _ in range(4):
        assert await source.poll(ListSink()) is None
    # Modbus TCP keeps the connection on a timeout; the source drops it every 2nd failure
    assert link.connects == 2
    assert source.errors_by_kind == {"transport": 4}


async def test_rtu_framing_drops_the_connection_after_a_timeout(sim, pool):
    # RTU frames carry no transaction id: a late answer must not meet the next request
    model = MODELS["ref-sdm630"]
    server = await sim([SimulatedMeter(1, model, constant(TRUE_VALUES),
                                       fault=MeterFault.SILENT),
                        SimulatedMeter(2, model, constant(TRUE_VALUES))],
                       framing=Framing.RTU_OVER_TCP)
    link = pool.link_for(meter_config(model, server))
    with pytest.raises(TransportError, match="no answer within"):
        await link.read(1, 4, 0x34, 2, 0.05)
    assert not link.connected
    assert await link.read(2, 4, 0x34, 2, 1.0) == [0x449A, 0x5000]
    assert link.connects == 2


async def test_refused_connection_is_a_transport_error():
    link = ModbusLink("tcp", host="127.0.0.1", port=free_port(), reconnect_min_s=0.05)
    try:
        with pytest.raises(TransportError, match="cannot connect"):
            await link.read(1, 4, 0, 2, 0.5)
        with pytest.raises(TransportError, match="next attempt"):
            await link.read(1, 4, 0, 2, 0.5)
        assert link.consecutive_failures == 1
    finally:
        await link.close()


# -- bad values are flagged, never stored as truth -------------------------------------------


async def test_nan_and_counter_backwards_are_dropped(sim, pool, caplog):
    caplog.set_level(logging.INFO, logger=METER_LOG)
    model = MODELS["ref-sdm630"]
    state = dict(TRUE_VALUES, power_w=math.nan, energy_import_kwh=100.0)
    server = await sim([SimulatedMeter(1, model, lambda now: state)])
    meter = meter_config(model, server)
    source = MeterSource("m", meter, model, pool.link_for(meter), site="lab")
    sink = ListSink()

    point = await source.poll(sink)
    assert "power_w" not in point.fields and point.fields["energy_import_kwh"] == 100.0
    assert sink.dropped == {"nan_or_infinite": 1}

    state.update(power_w=math.inf, energy_import_kwh=99.0)
    point = await source.poll(sink)
    assert "power_w" not in point.fields and "energy_import_kwh" not in point.fields
    assert point.fields["voltage_l1_v"] == pytest.approx(230.1)
    state.update(power_w=-math.inf, energy_import_kwh=99.5)
    point = await source.poll(sink)
    assert "energy_import_kwh" not in point.fields
    assert sink.dropped == {"nan_or_infinite": 3, "counter_backwards": 2}

    state.update(power_w=10.0, energy_import_kwh=100.5)
    point = await source.poll(sink)
    assert point.fields["energy_import_kwh"] == 100.5 and point.fields["power_w"] == 10.0
    assert len(lines(caplog, "went backwards", "m")) == 1
    assert all(math.isfinite(v) for p in sink.points for v in p.fields.values())


async def test_a_counter_that_stays_lower_is_taken_as_a_reset(sim, pool, caplog):
    caplog.set_level(logging.INFO, logger=METER_LOG)
    model = MODELS["ref-sdm630"]
    state = dict(TRUE_VALUES, energy_import_kwh=5000.0)
    server = await sim([SimulatedMeter(1, model, lambda now: state)])
    meter = meter_config(model, server)
    source = MeterSource("m", meter, model, pool.link_for(meter), site="lab",
                         counter_reset_polls=3)
    sink = ListSink()
    kept = []
    for value in (5000.0, 1.0, 2.0, 3.0, 4.0):
        state["energy_import_kwh"] = value
        point = await source.poll(sink)
        kept.append(point.fields.get("energy_import_kwh"))
    assert kept == [5000.0, None, None, 3.0, 4.0]
    assert sink.dropped == {"counter_backwards": 2}
    assert len(lines(caplog, "went backwards", "m")) == 1
    assert len(lines(caplog, "counter reset", "m")) == 1


# -- the schedule: fixed grid, slow polls skip slots instead of piling up --------------------


async def test_polls_follow_the_interval_and_skip_when_slow(sim, pool):
    model = MODELS["ref-sdm630"]
    fast = await sim([SimulatedMeter(1, model, constant(TRUE_VALUES))])
    meter = meter_config(model, fast, poll_interval_s=0.1)
    source = MeterSource("fast", meter, model, pool.link_for(meter), site="lab")
    sink = ListSink()
    await run_for(0.55, source, sink=sink)
    assert 4 <= source.polls <= 7 and source.cycles_skipped == 0
    times = [p.time_ns for p in sink.points]
    steps = [(b - a) / 1e9 for a, b in zip(times, times[1:])]
    assert all(0.05 < s < 0.15 for s in steps), steps

    slow = await sim([SimulatedMeter(1, model, constant(TRUE_VALUES))], response_delay_s=0.12)
    meter = meter_config(model, slow, poll_interval_s=0.1)  # 2 reads of 0.12 s per poll
    source = MeterSource("slow", meter, model, pool.link_for(meter), site="lab")
    await run_for(0.8, source, sink=ListSink())
    assert source.polls <= 4 and source.cycles_skipped >= source.polls - 1


# -- read-only: the collector never writes; the simulator's write counter does count ---------


async def test_raw_writes_are_counted_and_refused():
    model = MODELS["ref-sdm630"]
    meter = SimulatedMeter(1, model, constant(TRUE_VALUES))
    async with ModbusMeterServer([meter]) as server:
        client = AsyncModbusTcpClient("127.0.0.1", port=server.port, retries=0, timeout=2)
        await client.connect()
        try:
            answers = [
                await client.write_register(0x34, 1, device_id=1),
                await client.write_registers(0x34, [1, 2], device_id=1),
                await client.write_coil(0, True, device_id=1),
                await client.write_coils(0, [True, False], device_id=1),
                await client.mask_write_register(address=0x34, and_mask=0, or_mask=1,
                                                 device_id=1),
                await client.readwrite_registers(read_address=0x34, read_count=2,
                                                 write_address=0x34, values=[1, 2],
                                                 device_id=1),
                await client.write_register(0x9000, 1, device_id=1),  # outside the map
            ]
            assert all(a.isError() for a in answers)
            assert meter.write_attempts == server.write_attempts == len(answers)
            # nothing was written: the meter still reads its true power
            reply = await client.read_input_registers(0x34, count=2, device_id=1)
            assert reply.registers == [0x449A, 0x5000]
        finally:
            client.close()


async def test_the_link_refuses_anything_but_reads():
    link = ModbusLink("tcp", host="127.0.0.1", port=free_port())
    for function in (5, 6, 15, 16, 22, 23, 1, 2):
        with pytest.raises(ValueError, match="only reads"):
            await link.read(1, function, 0, 1, 0.5)
    assert link.requests_sent == 0 and link.connects == 0
    await link.close()


def test_only_the_adapters_import_pymodbus():
    allowed = {ROOT / "collector" / "modbus_adapter.py", ROOT / "devices" / "sim" /
               "modbus_server.py"}
    for path in [*ROOT.glob("collector/**/*.py"), *ROOT.glob("devices/**/*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        if any(name.split(".")[0] == "pymodbus" for name in names):
            assert path in allowed, f"{path} imports pymodbus"


def test_the_adapter_has_no_write_call():
    tree = ast.parse((ROOT / "collector" / "modbus_adapter.py").read_text(encoding="utf-8"))
    called = {n.func.attr for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert not {c for c in called if c.startswith(("write_", "mask_write", "readwrite"))}


def test_config_is_checked_before_any_io():
    with pytest.raises(ConfigError, match="host"):
        ModbusLink("tcp")
    with pytest.raises(ConfigError, match="serial_port"):
        ModbusLink("rtu")
    model = MODELS["ref-sdm630"]
    meter = Meter(model="eastron-sdm120", feeds="x", host="127.0.0.1")
    with pytest.raises(ConfigError, match="register map"):
        MeterSource("m", meter, model, ModbusLink.for_meter(meter), site="lab")
