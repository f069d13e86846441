"""Node maps: every shipped file loads, broken files fail clearly, paths resolve on real
standard instances (the simulator builds umati machines from the OPC Foundation nodesets)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devices import node_maps
from devices.node_maps import NodeMapError, UnmappedValueError, load_node_map, load_node_map_file
from devices.vocabulary import CNC_QUANTITIES, EXECUTION_STATES, OPERATION_MODES

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("generic", "opc40502-cnc", "umati-machinetool")


@pytest.mark.parametrize("name", node_maps.available_node_maps())
def test_every_node_map_loads(name):
    node_map = load_node_map(name)
    assert node_map.name == name
    assert node_map.source.strip()
    for quantity, entry in node_map.quantities.items():
        assert quantity in CNC_QUANTITIES
        assert re.search(r"OPC 405\d\d", entry.source), f"{name}: {quantity} cites no standard"
        for step in node_map.steps(quantity):
            assert step.kind in ("name", "type")
    if node_map.kind == "browse_paths":
        assert node_map.root


def test_shipped_maps_are_listed():
    assert set(SHIPPED) <= set(node_maps.available_node_maps())


def test_unknown_map_name_lists_the_known_ones():
    with pytest.raises(NodeMapError, match="unknown node map 'fanuc'.*umati-machinetool"):
        load_node_map("fanuc")


def test_enumeration_tables_follow_the_standards():
    umati = load_node_map("umati-machinetool")
    assert {(e.value, e.name, e.vocabulary) for e in umati.quantities["mode"].enum} == {
        (0, "Manual", "manual"), (1, "Automatic", "automatic"), (2, "Setup", "setup"),
        (3, "AutoWithManualIntervention", "automatic"), (4, "Service", "service"),
        (5, "Other", "other")}
    assert {(e.name, e.vocabulary) for e in umati.quantities["execution"].enum} == {
        ("Running", "running"), ("Ended", "ended"), ("Interrupted", "interrupted"),
        ("Aborted", "aborted"), ("Initializing", "stopped")}
    cnc = load_node_map("opc40502-cnc")
    assert [(e.value, e.name) for e in cnc.quantities["execution"].enum] == [
        (0, "Stopped"), (1, "Running"), (2, "Waiting"), (3, "Interrupted"), (4, "Canceled")]
    assert [(e.value, e.name, e.vocabulary) for e in cnc.quantities["mode"].enum] == [
        (0, "Manual", "manual"), (1, "MDA", "mda"), (2, "Automatic", "automatic")]
    for node_map in (umati, cnc):
        assert {e.vocabulary for e in node_map.quantities["execution"].enum} <= set(EXECUTION_STATES)
        assert {e.vocabulary for e in node_map.quantities["mode"].enum} <= set(OPERATION_MODES)


def test_convert_gives_vocabulary_values_and_kinds():
    umati = load_node_map("umati-machinetool")
    assert umati.convert("mode", 3) == "automatic"
    assert umati.convert("execution", "Running") == "running"
    assert umati.convert("execution", "running") == "running"  # case does not matter
    assert umati.convert("program", "P1001-table") == "P1001-table"
    assert umati.convert("part_count", 42) == 42 and type(umati.convert("part_count", 42)) is int
    assert umati.convert("feed_override_pct", 100) == 100.0
    assert type(umati.convert("feed_override_pct", 100)) is float
    with pytest.raises(UnmappedValueError, match="mode: 9"):
        umati.convert("mode", 9)
    with pytest.raises(UnmappedValueError):
        umati.convert("execution", "Läuft")
    with pytest.raises(UnmappedValueError):
        umati.convert("part_count", 1.5)
    with pytest.raises(UnmappedValueError):
        umati.convert("feed_override_pct", float("nan"))
    cnc = load_node_map("opc40502-cnc")
    assert cnc.convert("execution", 4) == "canceled"
    assert cnc.convert("spindle_speed_rpm", 18000) == 18000.0


def test_generic_map_takes_the_site_nodes_table():
    generic = load_node_map("generic")
    filled = generic.for_nodes({"spindle_speed_rpm": "nsu=urn:acme:plc;s=Spindle.Speed",
                                "part_count": "ns=2;i=1042", "execution": "ns=3;s=State"})
    assert filled.quantities["part_count"].node_id == "ns=2;i=1042"
    assert filled.convert("spindle_speed_rpm", 12000) == 12000.0
    assert filled.convert("execution", "RUN") == "RUN"  # used as it is
    with pytest.raises(NodeMapError, match="quantities.spindle_rpm: unknown quantity"):
        generic.for_nodes({"spindle_rpm": "ns=2;i=1"})
    with pytest.raises(NodeMapError, match="quantities.part_count.node_id: 'Parts' is not a node id"):
        generic.for_nodes({"part_count": "Parts"})
    with pytest.raises(NodeMapError, match="needs the controller's nodes table"):
        generic.for_nodes({})
    with pytest.raises(NodeMapError, match="takes no nodes table"):
        load_node_map("umati-machinetool").for_nodes({"part_count": "ns=2;i=1"})


GOOD = '''
name = "{name}"
title = "Test"
source = "OPC 40502 v1.00"
root = ["cnc:CncInterface"]
[namespaces]
cnc = "http://opcfoundation.org/UA/CNC"
[quantities.execution]
path = ["cnc:CncChannelList", "<cnc:CncChannelType>", "cnc:ActProgramStatus"]
value = "Enumeration"
enum = [{{ value = 0, name = "Stopped", vocabulary = "stopped" }}]
'''


@pytest.mark.parametrize("broken, key, message", [
    (GOOD.replace('vocabulary = "stopped"', 'vocabulary = "idle"'),
     "quantities.execution.enum[0].vocabulary", "'idle' is not a execution word"),
    (GOOD.replace('"cnc:CncChannelList"', '"mt:CncChannelList"'),
     "quantities.execution.path[0]", "unknown namespace alias 'mt'"),
    (GOOD.replace('"<cnc:CncChannelType>"', '"<cnc:CncChannelType"'),
     "quantities.execution.path[1]", "must look like"),
    (GOOD.replace('enum = [{{ value = 0, name = "Stopped", vocabulary = "stopped" }}]', ""),
     "quantities.execution.enum", "an Enumeration needs its table"),
    (GOOD.replace("[quantities.execution]", "[quantities.spindle_rpm]"),
     "quantities.spindle_rpm", "unknown quantity"),
    (GOOD.replace('value = "Enumeration"', 'value = "Enum"'),
     "quantities.execution.value", "Input should be"),
    (GOOD.replace('source = "OPC 40502 v1.00"\n', ''), "source", "Field required"),
    (GOOD.replace('root = ["cnc:CncInterface"]', 'root = ["cnc:CncInterface"]\ncolour = "red"'),
     "colour", "Extra inputs are not permitted"),
    (GOOD + "\n[quantities.part_count]\npath = [\"cnc:X\"]\nvalue = \"String\"\n",
     "quantities.part_count.value", "part_count is a number"),
    (GOOD.replace("[namespaces]", "[namespaces]\nua = \"urn:other\""),
     "namespaces.ua", "reserved"),
], ids=["vocabulary", "alias", "step", "no-table", "quantity", "value-kind", "no-source",
        "extra-key", "kind-mismatch", "ua-alias"])
def test_broken_node_map_names_file_and_key(tmp_path, broken, key, message):
    path = tmp_path / "broken-map.toml"
    path.write_text(broken.format(name="broken-map"), encoding="utf-8")
    with pytest.raises(NodeMapError) as info:
        load_node_map_file(path)
    text = str(info.value)
    assert text.startswith(f"{path}: "), text
    assert key in text and message in text, text


def test_good_sample_loads_and_name_must_match_file(tmp_path):
    path = tmp_path / "sample.toml"
    path.write_text(GOOD.format(name="sample"), encoding="utf-8")
    assert load_node_map_file(path).quantities["execution"].enum[0].vocabulary == "stopped"
    other = tmp_path / "other.toml"
    other.write_text(GOOD.format(name="sample"), encoding="utf-8")
    with pytest.raises(NodeMapError, match="must equal the file name"):
        load_node_map_file(other)
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ", encoding="utf-8")
    with pytest.raises(NodeMapError, match=r"bad\.toml: not valid TOML"):
        load_node_map_file(bad)


def test_nodesets_ship_inside_the_package_with_their_license():
    folder = PACKAGE_ROOT / "devices" / "data" / "nodesets"
    files = sorted(p.name for p in folder.glob("*.xml"))
    assert files == ["Opc.Ua.Di.NodeSet2.xml", "Opc.Ua.IA.NodeSet2.xml",
                     "Opc.Ua.MachineTool.NodeSet2.xml", "Opc.Ua.Machinery.NodeSet2.xml"]
    for name in files:
        head = (folder / name).read_text(encoding="utf-8")[:2000]
        assert "OPC Foundation MIT License 1.00" in head
    for module in ("devices/sim/opcua_server.py", "devices/node_maps.py",
                   "collector/opcua_adapter.py", "collector/cnc_source.py"):
        text = (PACKAGE_ROOT / module).read_text(encoding="utf-8")
        assert "../shared" not in text and "work/shared" not in text, module


async def test_maps_resolve_on_the_simulators_standard_instances():
    """Every quantity of both standard maps resolves on real instances, with the declared
    DataType, and enumeration tables agree with the server's DataTypeDefinition."""
    from collector.errors import OpcUaStatusError
    from collector.opcua_adapter import OpcUaConnection
    from devices.sim.opcua_server import CncServer, SimMachine

    server = CncServer([SimMachine("router-1", "umati-machinetool", browse_name="Router1"),
                        SimMachine("lathe-1", "umati-machinetool", browse_name="Lathe1"),
                        SimMachine("mill-1", "opc40502-cnc")],
                       extra_namespaces=["urn:dummy:first", "urn:dummy:second"])
    async with server:
        async with OpcUaConnection(server.endpoint) as connection:
            client = connection._client
            for map_name, browse_name in (("umati-machinetool", "Router1"),
                                          ("umati-machinetool", "Lathe1"),
                                          ("opc40502-cnc", None)):
                node_map = load_node_map(map_name)
                resolved = await connection.resolve(node_map, browse_name)
                assert resolved.missing == {}
                assert set(resolved.nodes) == set(node_map.quantities)
                for quantity, node_id in resolved.nodes.items():
                    entry = node_map.quantities[quantity]
                    declared = entry.data_type.split(":")
                    uri, name = await connection.data_type_name(node_id)
                    assert (uri, name) == (node_map.aliases[declared[0]], declared[1]), quantity
                    if entry.value == "Enumeration":
                        data_type = await client.get_node(node_id).read_data_type()
                        definition = await client.get_node(data_type).read_data_type_definition()
                        server_table = {f.Name: f.Value for f in definition.Fields}
                        for e in entry.enum:
                            assert server_table[e.name] == e.value, (quantity, e.name)
            # The machine root is a real MachineToolType instance (OPC 40501-1).
            machinery = (await connection.namespace_array()).index(
                "http://opcfoundation.org/UA/Machinery/")
            machines = await client.nodes.objects.get_child(f"{machinery}:Machines")
            types = {}
            for machine in await machines.get_children():
                type_node = client.get_node(await machine.read_type_definition())
                types[(await machine.read_browse_name()).Name] = (
                    await type_node.read_browse_name()).Name
            assert types == {"Router1": "MachineToolType", "Lathe1": "MachineToolType"}
            # Without a machine_browse_name the choice is ambiguous: said clearly.
            with pytest.raises(OpcUaStatusError, match="several machines"):
                await connection.resolve(load_node_map("umati-machinetool"), None)
    assert server.write_attempts == 0
