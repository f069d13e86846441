"""OPC UA end to end over real sockets on 127.0.0.1: the CNC simulator (umati MachineToolType
built from the standard nodesets, hand-built OPC 40502 CncInterface), the asyncua adapter and
CncSource. No protocol mocks."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import pytest
import pytest_asyncio
from asyncua import Server, ua
from asyncua.common.callback import CallbackType

from collector.cnc_source import CncSource
from collector.errors import ConfigError, OpcUaSecurityError, OpcUaStatusError, TransportError
from collector.opcua_adapter import OpcUaConnection, translate_error
from collector.sink import ListSink
from devices.node_maps import load_node_map
from devices.site import Controller
from devices.sim.opcua_server import CNC_URI, MACHINETOOL_URI, CncServer, SimMachine
from devices.sim.signals import ControllerSignals

pytestmark = pytest.mark.asyncio(loop_scope="module")

DUMMY_NAMESPACES = ["urn:dummy:first", "urn:dummy:second", "urn:dummy:third"]
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
FAST = dict(backoff_initial_s=0.1, backoff_max_s=0.5, watchdog_interval_s=0.5, timeout_s=2.0)
LOGGER = "wattelier.collector.opcua"

# What the collector must read back for what the simulator shows, per standard: identity
# except where the standard has no word (CNC: no Ended status, three modes only).
EXPECTED_EXECUTION = {"opc40502-cnc": {"ended": "stopped"}, "umati-machinetool": {}}
EXPECTED_MODE = {"opc40502-cnc": {"setup": "manual"}, "umati-machinetool": {}}
QUANTITIES = {
    "umati-machinetool": ("execution", "mode", "program", "feed_override_pct", "part_count"),
    "opc40502-cnc": ("execution", "mode", "program", "feed_override_pct", "spindle_speed_rpm"),
}


def expected_fields(node_map: str, s: ControllerSignals) -> dict:
    values = {
        "execution": EXPECTED_EXECUTION[node_map].get(s.execution, s.execution),
        "mode": EXPECTED_MODE[node_map].get(s.mode, s.mode),
        "program": s.program,
        "feed_override_pct": float(s.feed_override_pct),
        "part_count": int(s.part_count),
        "spindle_speed_rpm": float(s.spindle_speed_rpm),
    }
    return {q: values[q] for q in QUANTITIES[node_map]}


def controller(server: CncServer, machine: str, node_map: str, browse_name: str | None = None,
               **extra) -> Controller:
    return Controller(machine=machine, endpoint=server.endpoint, node_map=node_map,
                      machine_browse_name=browse_name, security_policy="None",
                      allow_insecure=True, publishing_interval_s=0.1, **extra)


def flatten(points, since_ns: int = 0) -> dict:
    return {(p.time_ns, q): v for p in points if p.time_ns >= since_ns for q, v in p.fields.items()}


async def wait_for(predicate, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim():
    """One umati machine and one OPC 40502 machine; dummy namespaces registered first so the
    standard namespaces do not get their usual indexes."""
    server = CncServer([SimMachine("router-1", "umati-machinetool", browse_name="Router1"),
                        SimMachine("mill-1", "opc40502-cnc")],
                       extra_namespaces=DUMMY_NAMESPACES)
    for machine in ("router-1", "mill-1"):
        await server.update(machine, ControllerSignals(part_count=40), time_ns=T0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def no_writes(sim):
    """The collector never writes: the simulator's counter does not move during the test."""
    before = sim.write_attempts
    yield sim
    assert sim.write_attempts == before, sim.write_attempts_by_service


async def test_namespaces_are_not_where_the_nodesets_put_them(sim, no_writes):
    async with OpcUaConnection(sim.endpoint) as connection:
        array = await connection.namespace_array()
    for dummy in DUMMY_NAMESPACES:
        assert array.index(dummy) < array.index("http://opcfoundation.org/UA/DI/")
    # In its own nodeset file MachineTool is ns=1; on a plain asyncua server it would be 5.
    assert array.index(MACHINETOOL_URI) == sim.namespace_index(MACHINETOOL_URI) >= 5 + 2
    assert array.index(CNC_URI) > len(DUMMY_NAMESPACES)


async def test_signal_sequence_reaches_the_sink_in_our_vocabulary(sim, no_writes):
    machines = {"router-1": ("umati-machinetool", "Router1", "router-1-cnc"),
                "mill-1": ("opc40502-cnc", None, "mill-1-cnc")}
    stop = asyncio.Event()
    sinks, sources, tasks = {}, {}, []
    for machine, (node_map, browse_name, name) in machines.items():
        sources[machine] = CncSource(name, controller(sim, machine, node_map, browse_name),
                                     load_node_map(node_map), "Manufacture du Canal", **FAST)
        sinks[machine] = ListSink()
        tasks.append(asyncio.create_task(sources[machine].run(sinks[machine], stop)))
    try:
        # On subscribing, the collector gets every current value with its source timestamp.
        for machine, (node_map, _, _) in machines.items():
            current = sim.machines[machine]
            expected = {(current.time_ns, q): v
                        for q, v in expected_fields(node_map, current.signals).items()}
            await wait_for(lambda: expected.items() <= flatten(sinks[machine].points).items(),
                           what=f"initial values of {machine}")
        start_ns = max(sim.machines[m].time_ns for m in machines) + 1_000_000_000
        mode_2 = {"router-1": "automatic", "mill-1": "mda"}
        mode_3 = {"router-1": "setup", "mill-1": "automatic"}
        steps = [
            dict(execution="stopped", mode="manual", program="", spindle_speed_rpm=0.0,
                 feed_override_pct=100.0, part_count=41),
            dict(execution="stopped", mode="<2>", program="P1001-table", spindle_speed_rpm=0.0,
                 feed_override_pct=100.0, part_count=41),
            dict(execution="running", mode="<2>", program="P1001-table", spindle_speed_rpm=18000.0,
                 feed_override_pct=95.0, part_count=41),
            dict(execution="running", mode="<2>", program="P1001-table", spindle_speed_rpm=18000.0,
                 feed_override_pct=110.0, part_count=41),
            dict(execution="ended", mode="<2>", program="P1001-table", spindle_speed_rpm=0.0,
                 feed_override_pct=110.0, part_count=42),
            dict(execution="stopped", mode="<3>", program="", spindle_speed_rpm=0.0,
                 feed_override_pct=100.0, part_count=42),
        ]
        expected = {m: {} for m in machines}
        previous = {m: expected_fields(machines[m][0], sim.machines[m].signals) for m in machines}
        for i, step in enumerate(steps):
            time_ns = start_ns + i * 1_000_123_000  # whole microseconds, not whole seconds
            for machine, (node_map, _, _) in machines.items():
                mode = {"<2>": mode_2[machine], "<3>": mode_3[machine]}.get(step["mode"], step["mode"])
                signals = ControllerSignals(**{**step, "mode": mode})
                await sim.update(machine, signals, time_ns=time_ns)
                fields = expected_fields(node_map, signals)
                for q, v in fields.items():
                    if previous[machine][q] != v:  # a server reports changes only
                        expected[machine][(time_ns, q)] = v
                previous[machine] = fields
            await asyncio.sleep(0.05)
        for machine in machines:
            await wait_for(
                lambda: expected[machine].keys() <= flatten(sinks[machine].points, start_ns).keys(),
                what=f"sequence of {machine}")
            await asyncio.sleep(0.3)  # nothing more must come
            assert flatten(sinks[machine].points, start_ns) == expected[machine]
        # The sequence really exercised the vocabulary.
        router = flatten(sinks["router-1"].points, start_ns)
        assert router[(start_ns + 2 * 1_000_123_000, "execution")] == "running"
        assert router[(start_ns + 4 * 1_000_123_000, "execution")] == "ended"
        assert router[(start_ns + 4 * 1_000_123_000, "part_count")] == 42
        assert router[(start_ns + 5 * 1_000_123_000, "mode")] == "setup"
        mill = flatten(sinks["mill-1"].points, start_ns)
        assert mill[(start_ns + 2 * 1_000_123_000, "spindle_speed_rpm")] == 18000.0
        assert mill[(start_ns + 1 * 1_000_123_000, "mode")] == "mda"
        assert mill[(start_ns + 4 * 1_000_123_000, "execution")] == "stopped"
        for machine, sink in sinks.items():
            for point in sink.points:
                assert point.measurement == "cnc"
                assert point.tags == {"site": "Manufacture du Canal", "machine": machine,
                                      "controller": machines[machine][2]}
                for q, v in point.fields.items():
                    kind = {"float": float, "int": int, "str": str}[
                        {"feed_override_pct": "float", "spindle_speed_rpm": "float",
                         "part_count": "int"}.get(q, "str")]
                    assert type(v) is kind, (q, v)
            assert sink.dropped == {}
            assert sources[machine].points_emitted == len(sink.points)
            assert sources[machine].reconnects == 0
            assert sources[machine].missing == {}
        # Changes with one timestamp travel together.
        assert any(len(p.fields) > 1 for p in sinks["mill-1"].points if p.time_ns >= start_ns)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert sim.sessions_active == 0  # sessions closed cleanly at stop


async def test_raw_client_write_is_counted_and_refused(sim):
    """The counter behind the no_writes fixture can fail: a plain client's write counts."""
    before = sim.write_attempts
    async with OpcUaConnection(sim.endpoint) as connection:
        resolved = await connection.resolve(load_node_map("opc40502-cnc"))
        client = connection._client
        node = client.get_node(resolved.nodes["program"])
        with pytest.raises(ua.UaStatusCodeError) as info:
            await node.write_value(ua.Variant("M30-hack", ua.VariantType.String))
        assert ua.StatusCode(info.value.code).name == "BadUserAccessDenied"
        with pytest.raises(ua.UaStatusCodeError):
            await client.nodes.objects.add_folder(2, "Intruder")
        assert await connection.read_value(resolved.nodes["program"]) != "M30-hack"
    assert sim.write_attempts == before + 2
    assert sim.write_attempts_by_service["Write"] >= 1
    assert sim.write_attempts_by_service["AddNodes"] >= 1


async def test_server_restart_logs_down_and_back_once_and_resubscribes(caplog):
    """The server stops and comes back on the same port with other namespace indexes."""
    server = CncServer([SimMachine("router-1", "umati-machinetool", browse_name="Router1"),
                        SimMachine("mill-1", "opc40502-cnc")],
                       extra_namespaces=DUMMY_NAMESPACES[:1])
    await server.update("router-1", ControllerSignals(program="P1", part_count=7), time_ns=T0)
    await server.start()
    port = server.port
    source = CncSource("router-1-cnc", controller(server, "router-1", "umati-machinetool", "Router1"),
                       load_node_map("umati-machinetool"), "site", **FAST)
    sink, stop = ListSink(), asyncio.Event()
    caplog.set_level(logging.INFO, logger=LOGGER)
    task = asyncio.create_task(source.run(sink, stop))
    try:
        await wait_for(lambda: source.subscribed and sink.points, what="first subscription")
        old_index = server.namespace_index(MACHINETOOL_URI)
        await server.stop()
        await wait_for(lambda: not source.subscribed, what="loss detected")
        await asyncio.sleep(1.0)  # a few refused reconnects: still one "down" line
        server.extra_namespaces = DUMMY_NAMESPACES  # indexes move at the restart
        await server.start()
        back_at = time.monotonic()
        assert server.port == port
        assert server.namespace_index(MACHINETOOL_URI) == old_index + 2
        await wait_for(lambda: source.subscribed, what="resubscription")
        assert time.monotonic() - back_at < 10.0
        count = len(sink.points)
        await server.update("router-1", ControllerSignals(execution="running", program="P2",
                                                          part_count=8), time_ns=T0 + 5_000_000)
        await wait_for(lambda: (T0 + 5_000_000, "execution") in flatten(sink.points[count:]),
                       what="points after restart")
        after = flatten(sink.points[count:])
        assert after[(T0 + 5_000_000, "execution")] == "running"
        assert after[(T0 + 5_000_000, "program")] == "P2"
        assert after[(T0 + 5_000_000, "part_count")] == 8
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await server.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert sum(" is down" in line for line in lines) == 1, lines
    assert sum(" is back after" in line for line in lines) == 1, lines
    assert source.reconnects == 1 and source.connects == 2
    assert source.errors_by_kind.get("transport", 0) >= 2
    assert server.max_sessions_seen == 1  # never two sessions from the collector at once
    assert server.sessions_created >= 2
    assert server.write_attempts == 0


async def test_generic_map_reads_user_listed_node_ids():
    """A plain OPC UA server (no standard model): node ids from the site file's nodes table,
    one in nsu=URI form and one in ns=index form, values used as they are."""
    server = Server()
    await server.init()
    server.set_endpoint("opc.tcp://127.0.0.1:0/plc")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    await server.register_namespace("urn:dummy:offset")
    idx = await server.register_namespace("urn:acme:plc")
    folder = await server.nodes.objects.add_folder(idx, "PLC")
    speed = await folder.add_variable(ua.NodeId("Spindle.Speed", idx), "Speed", 0.0)
    parts = await folder.add_variable(ua.NodeId(1042, idx), "Parts", ua.Variant(0, ua.VariantType.UInt32))
    state = await folder.add_variable(ua.NodeId("State", idx), "State", "idle")
    writes = []
    server.subscribe_server_callback(CallbackType.PreWrite,
                                     lambda event, _: writes.append(event) if event.is_external else None)
    stamp = dt.datetime(2026, 3, 1, 8, 30, 0, 123456, tzinfo=dt.timezone.utc)
    stamp_ns = 1_772_353_800_123_456_000
    for node, variant in ((speed, ua.Variant(12000.0, ua.VariantType.Double)),
                          (parts, ua.Variant(7, ua.VariantType.UInt32)),
                          (state, ua.Variant("RUN", ua.VariantType.String))):
        await server.write_attribute_value(node.nodeid, ua.DataValue(variant, SourceTimestamp=stamp))
    await server.start()
    endpoint = f"opc.tcp://127.0.0.1:{server.bserver.port}/plc"
    ctl = Controller(machine="lathe-1", endpoint=endpoint, node_map="generic",
                     security_policy="None", allow_insecure=True, publishing_interval_s=0.1,
                     nodes={"spindle_speed_rpm": "nsu=urn:acme:plc;s=Spindle.Speed",
                            "part_count": f"ns={idx};i=1042", "execution": "nsu=urn:acme:plc;s=State"})
    source = CncSource("lathe-1-plc", ctl, load_node_map("generic"), "site", **FAST)
    sink, stop = ListSink(), asyncio.Event()
    task = asyncio.create_task(source.run(sink, stop))
    try:
        await wait_for(lambda: len(flatten(sink.points)) >= 3, what="generic values")
        assert flatten(sink.points) == {(stamp_ns, "spindle_speed_rpm"): 12000.0,
                                        (stamp_ns, "part_count"): 7,
                                        (stamp_ns, "execution"): "RUN"}
        assert type(flatten(sink.points)[(stamp_ns, "part_count")]) is int
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await server.stop()
    assert writes == []


async def test_unreachable_endpoint_is_down_once_and_stops_promptly(caplog):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(machine="mill-1", endpoint=f"opc.tcp://127.0.0.1:{port}/none",
                     node_map="opc40502-cnc", security_policy="None", allow_insecure=True)
    source = CncSource("mill-1-cnc", ctl, load_node_map("opc40502-cnc"), "site", **FAST)
    caplog.set_level(logging.INFO, logger=LOGGER)
    sink, stop = ListSink(), asyncio.Event()
    task = asyncio.create_task(source.run(sink, stop))
    await asyncio.sleep(1.5)
    stop.set()
    started = time.monotonic()
    await asyncio.wait_for(task, timeout=5)
    assert time.monotonic() - started < 1.0
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert sum(" is down" in line for line in lines) == 1, lines
    assert source.errors_by_kind["transport"] >= 3
    assert sink.points == [] and source.connects == 0


async def test_adapter_errors_are_ours(sim, no_writes):
    assert isinstance(translate_error(ua.UaStatusCodeError(ua.StatusCodes.BadTooManySessions), "x"),
                      OpcUaStatusError)
    assert translate_error(ua.UaStatusCodeError(ua.StatusCodes.BadTooManySessions),
                           "x").status_name == "BadTooManySessions"
    assert isinstance(translate_error(asyncio.TimeoutError(), "x"), TransportError)
    assert isinstance(translate_error(ConnectionResetError(), "x"), TransportError)
    denied = translate_error(ua.UaStatusCodeError(ua.StatusCodes.BadUserAccessDenied), "x")
    assert isinstance(denied, OpcUaSecurityError) and denied.status_name == "BadUserAccessDenied"
    with pytest.raises(ConfigError, match="Sign or SignAndEncrypt"):
        OpcUaConnection(sim.endpoint, security_policy="Basic256Sha256", security_mode="None")
    with pytest.raises(ConfigError, match="not both"):
        OpcUaConnection(sim.endpoint, username="u", user_certificate="c.der", user_private_key="k.pem")
    with pytest.raises(ConfigError, match="opc.tcp://"):
        OpcUaConnection("http://127.0.0.1:4840")
    async with OpcUaConnection(sim.endpoint) as connection:
        assert await connection.read_server_state() == "Running"
        # A machine that is not there: the root does not resolve, said with the names found.
        with pytest.raises(OpcUaStatusError, match="no machine 'Mill9'.*Router1"):
            await connection.resolve(load_node_map("umati-machinetool"), "Mill9")
        # A quantity whose node is absent is listed as missing; the others still resolve.
        generic = load_node_map("generic").for_nodes(
            {"part_count": "nsu=urn:wattelier:sim:cnc;s=NoSuchNode",
             "program": "nsu=urn:wattelier:sim:cnc;s=CncInterface.CncChannelList.Channel1.ActProgramName",
             "alarm": "nsu=urn:not:there;s=Alarm"})
        resolved = await connection.resolve(generic)
        # Node ids are parsed here; whether they exist shows when subscribing.
        assert set(resolved.nodes) == {"part_count", "program"}
        assert "urn:not:there" in resolved.missing["alarm"]
        failed = await connection.subscribe(resolved, lambda change: None, 0.1)
        assert failed == {"part_count": "BadNodeIdUnknown"}
    with pytest.raises(TransportError):
        await connection.read_server_state()  # closed: no hidden second session


async def test_server_that_stops_answering_is_found_dead(caplog):
    """No socket error, just silence: asyncua's watchdog read of ServerStatus/State times out,
    the source logs one "down", reconnects (new connections are answered) and one "back"."""
    server = CncServer()
    server.add_machine("mill-1", "opc40502-cnc")
    await server.update("mill-1", ControllerSignals(program="P1"), source_time_s=T0 / 1e9)
    await server.start()
    source = CncSource("mill-1-cnc", controller(server, "mill-1", "opc40502-cnc"),
                       load_node_map("opc40502-cnc"), "site",
                       **{**FAST, "timeout_s": 1.0, "session_timeout_s": 5.0})
    sink, stop = ListSink(), asyncio.Event()
    caplog.set_level(logging.INFO, logger=LOGGER)
    task = asyncio.create_task(source.run(sink, stop))
    try:
        await wait_for(lambda: source.subscribed and sink.points, what="first subscription")
        assert server.freeze_connections() == 1
        frozen_at = time.monotonic()
        await wait_for(lambda: not source.subscribed, what="silence detected")
        assert time.monotonic() - frozen_at < 5.0
        await wait_for(lambda: source.subscribed, what="resubscription")
        count = len(sink.points)
        await server.update("mill-1", ControllerSignals(program="P2"),
                            source_time_s=(T0 + 1_000) / 1e9)  # 1 µs later
        await wait_for(lambda: (T0 + 1_000, "program") in flatten(sink.points[count:]),
                       what="points after the silence")
        assert (T0, "program") in flatten(sink.points)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await server.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert sum(" is down" in line for line in lines) == 1, lines
    assert sum(" is back after" in line for line in lines) == 1, lines
    assert source.reconnects == 1
    # The frozen session was taken over on a new channel and closed before the new one.
    assert source.orphans_closed == 1
    assert server.max_sessions_seen == 1 and server.sessions_created == 2
    assert server.write_attempts == 0
