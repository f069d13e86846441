"""Simulated Modbus power meters served over a real TCP socket (the only pymodbus user in sim).

One `ModbusMeterServer` is one listening endpoint: a Modbus TCP meter, or a transparent RTU over
TCP gateway with several meters on its RS-485 line. Each `SimulatedMeter` behind it answers from
its register map (`devices/data/meters/*.toml`) with values taken, at the moment of each
request, from a value provider ``(unix time [s]) -> {quantity: value}`` and encoded with each
point's own codec, so the collector decodes what a real meter would send.

Built on pymodbus 3.16's simulator API (`SimDevice` / `SimData` in `ModbusTcpServer`), with two
documented hooks of that server doing the meter-specific parts:

- `SimDevice.action` fills the requested registers from the value provider on every read (the
  datastore itself only holds zeros) and tracks how many requests the endpoint handles at once.
- the server's `trace_pdu` hook (pymodbus: "the trace methods allow to modify the pdu") sees
  every decoded request first. It counts reads and write attempts per unit, and replaces the
  request by a refusal where a real meter refuses before touching its registers: any write
  (exception 1, the meter is read-only here), a read longer than the model's
  `max_registers_per_read` (exception 3), the EXCEPTION fault (exception 4 or 6), coil reads
  (exception 1). The SILENT fault, a request inside one of the meter's `silent_windows` (a
  power hole: devices.sim.holes) and unknown unit ids get no answer at all, through pymodbus's
  own "missing device" path (`NoSuchIdException` with `ignore_missing_devices=True`).

Register layout per unit: holding (function 3) and input (function 4) registers are separate
address spaces. With `allow_gaps` the readable span of a function code runs from its first to its
last mapped register and unmapped registers inside it answer 0; without it, only mapped registers
are readable. Reads outside the readable registers answer exception 2 (illegal data address),
checked by pymodbus's datastore.

pymodbus quirks met here (3.16.1): `SimCore` raises a bare KeyError (answered as exception 4 with
an error log) for a unit id it does not know, so unknown ids are filtered before it; in non-shared
mode every one of the four register lists must hold at least one `SimData`; the datastore checks
addresses before calling `action`, so checks that a meter makes first (function, quantity) are made
in the request hook; the server keeps one "last request" per connection, so it cannot answer
pipelined requests on one connection (real meters and gateways cannot either).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from enum import Enum

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.meter_models import MeterModel, MeterPoint

logger = logging.getLogger("wattelier.sim.modbus")

ValueProvider = Callable[[float], Mapping[str, float]]
"""unix time [s] -> canonical quantity name (power_w, energy_import_kwh, ...) -> value."""

READ_FUNCTIONS = frozenset({3, 4})
WRITE_FUNCTIONS = frozenset({5, 6, 15, 16, 22, 23})
BIT_READ_FUNCTIONS = frozenset({1, 2})

# Modbus exception codes (Modbus Application Protocol v1.1b3, section 7).
ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
SERVER_DEVICE_FAILURE = 4
SERVER_DEVICE_BUSY = 6


class MeterFault(str, Enum):
    """A fault injected into a simulated meter; settable while the server runs."""

    NONE = "none"
    SILENT = "silent"  # no answer at all: the client times out
    EXCEPTION = "exception"  # every request answered with SimulatedMeter.exception_code


class Framing(str, Enum):
    """How requests are framed on the server's TCP socket."""

    TCP = "tcp"  # Modbus TCP (MBAP header)
    RTU_OVER_TCP = "rtu_over_tcp"  # raw RTU frames with CRC, as a transparent gateway passes them


class SimulatedMeter:
    """One meter behind a server, answering from its register map.

    unit_id: Modbus unit (slave) id, 1..247.
    model: the register map.
    values: value provider, called at each read request.
    fault: injected fault (MeterFault), may be changed at any time.
    exception_code: the code answered under MeterFault.EXCEPTION: 4 (server device failure) or
        6 (server device busy).
    silent_windows: (first, end) Unix times [s] in which the unit answers nothing, as behind a
        dead gateway or a cut RS-485 line (its values, counter included, run on meanwhile).

    Counters: `read_requests` (every read request addressed to this unit, answered or not),
    `write_attempts` (every request with a write function code, always refused),
    `exception_replies` (exception answers sent by this unit's own rules: faults, refusals),
    `silenced_requests` (requests left unanswered inside a silent window).
    """

    def __init__(self, unit_id: int, model: MeterModel, values: ValueProvider, *,
                 fault: MeterFault = MeterFault.NONE,
                 exception_code: int = SERVER_DEVICE_FAILURE,
                 silent_windows: Iterable[tuple[float, float]] = ()) -> None:
        if not 1 <= unit_id <= 247:
            raise ValueError(f"unit_id must be 1..247, got {unit_id}")
        self.unit_id = unit_id
        self.model = model
        self.values = values
        self.fault = MeterFault(fault)
        self.exception_code = exception_code
        self.read_requests = 0
        self.write_attempts = 0
        self.exception_replies = 0
        self.silent_windows = tuple(sorted(silent_windows))
        self.silenced_requests = 0
        self._points = {fc: sorted((p for p in model.points if p.function == fc),
                                   key=lambda p: p.address) for fc in READ_FUNCTIONS}

    def __repr__(self) -> str:
        return f"SimulatedMeter(unit_id={self.unit_id}, model={self.model.model!r})"

    def silent_at(self, now_s: float) -> bool:
        """Whether now_s [Unix s] falls in one of the silent windows (first included)."""
        return any(first <= now_s < end for first, end in self.silent_windows)

    # -- register image -------------------------------------------------------------------

    def readable_ranges(self, function: int) -> list[tuple[int, int]]:
        """Readable (address, count) ranges of a function code, in address order."""
        points = self._points.get(function, [])
        if not points:
            return []
        if self.model.allow_gaps:
            start = points[0].address
            end = max(p.address + p.count for p in points)
            return [(start, end - start)]
        ranges: list[list[int]] = []
        for p in points:
            if ranges and p.address <= ranges[-1][1]:
                ranges[-1][1] = max(ranges[-1][1], p.address + p.count)
            else:
                ranges.append([p.address, p.address + p.count])
        return [(start, end - start) for start, end in ranges]

    def registers(self, function: int, address: int, count: int,
                  now: float | None = None) -> list[int]:
        """The words this meter sends for a read at time `now` (unmapped registers are 0).

        A value the point's type cannot carry (NaN in an integer register, out of range) is
        sent as zeros, as a meter without a reading would.
        """
        values = self.values(time.time() if now is None else now)
        words = [0] * count
        end = address + count
        for point in self._points.get(function, []):
            if point.address >= end or point.address + point.count <= address:
                continue
            if point.quantity not in values:
                continue
            encoded = _encode(point, values[point.quantity])
            for i, word in enumerate(encoded):
                if address <= point.address + i < end:
                    words[point.address + i - address] = word
        return words

    def _sim_device(self, action) -> SimDevice:
        holding = [SimData(address=a, count=n, values=0, datatype=DataType.REGISTERS)
                   for a, n in self.readable_ranges(3)]
        inputs = [SimData(address=a, count=n, values=0, datatype=DataType.REGISTERS)
                  for a, n in self.readable_ranges(4)]
        # pymodbus needs every list non-empty; these placeholders are never reached because the
        # request hook refuses coil reads and reads of a function code the map does not use.
        placeholder_bits = [SimData(address=0, values=False, datatype=DataType.BITS)]
        return SimDevice(
            id=self.unit_id,
            simdata=(placeholder_bits, list(placeholder_bits),
                     holding or [SimData(address=0, datatype=DataType.INVALID)],
                     inputs or [SimData(address=0, datatype=DataType.INVALID)]),
            action=action,
        )


def _encode(point: MeterPoint, value: float) -> list[int]:
    try:
        if not point.type.startswith("float") and not math.isfinite(value):
            raise ValueError("not finite")
        return point.encode(value)
    except (ValueError, OverflowError, struct.error):
        return [0] * point.count


class _Refusal(ModbusPDU):
    """Stands in for a request the meter refuses: answers an exception, touches nothing."""

    def __init__(self, request: ModbusPDU, exception_code: int) -> None:
        super().__init__(dev_id=request.dev_id, transaction_id=request.transaction_id)
        self.function_code = request.function_code
        self.refused_code = exception_code

    async def datastore_update(self, context, device_id: int) -> ModbusPDU:
        return ExceptionResponse(self.function_code, self.refused_code, device_id=device_id,
                                 transaction=self.transaction_id)


class _Silence(ModbusPDU):
    """Stands in for a request nobody answers (pymodbus drops the 'missing device' reply)."""

    def __init__(self, request: ModbusPDU) -> None:
        super().__init__(dev_id=request.dev_id, transaction_id=request.transaction_id)
        self.function_code = request.function_code

    async def datastore_update(self, context, device_id: int) -> ModbusPDU:
        raise NoSuchIdException(f"unit {device_id} does not answer")


class ModbusMeterServer:
    """One listening endpoint serving one or more simulated meters by unit id.

    host, port: where to listen; port 0 picks a free port (read `port` after `start`).
    framing: Framing.TCP (a Modbus TCP meter or gateway) or Framing.RTU_OVER_TCP (a transparent
        serial gateway: RTU frames with CRC inside the TCP stream).
    response_delay_s: time each read takes to answer, as a real meter's processing time; with a
        delay, `max_in_flight` shows whether a client ever had two requests pending at once.

    Counters: `requests` (every request received), `write_attempts` (all units, unknown ids
    included), `in_flight` and `max_in_flight` (reads being answered at the same time).
    """

    def __init__(self, meters: SimulatedMeter | Iterable[SimulatedMeter], *,
                 host: str = "127.0.0.1", port: int = 0,
                 framing: Framing | str = Framing.TCP, response_delay_s: float = 0.0) -> None:
        if isinstance(meters, SimulatedMeter):
            meters = [meters]
        self.meters: dict[int, SimulatedMeter] = {}
        for meter in meters:
            if meter.unit_id in self.meters:
                raise ValueError(f"unit id {meter.unit_id} is used twice")
            self.meters[meter.unit_id] = meter
        if not self.meters:
            raise ValueError("a server needs at least one meter")
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.framing = Framing(framing)
        self.response_delay_s = response_delay_s
        self.requests = 0
        self.write_attempts = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: ModbusTcpServer | None = None

    def __repr__(self) -> str:
        return (f"ModbusMeterServer({self.host}:{self._port or self._requested_port}, "
                f"{self.framing.value}, units={sorted(self.meters)})")

    @property
    def port(self) -> int:
        """The port actually listened on (known after `start`)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    def meter(self, unit_id: int) -> SimulatedMeter:
        return self.meters[unit_id]

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the server is already started")
        devices = [m._sim_device(self._make_action(m)) for m in self.meters.values()]
        framer = FramerType.SOCKET if self.framing is Framing.TCP else FramerType.RTU
        server = ModbusTcpServer(
            context=devices,
            framer=framer,
            address=(self.host, self._requested_port),
            ignore_missing_devices=True,
            trace_pdu=self._on_pdu,
        )
        await server.serve_forever(background=True)
        listener = server.transport  # the asyncio.Server
        self._port = listener.sockets[0].getsockname()[1]
        self._server = server
        logger.debug("simulated meters %s listening on %s:%d (%s)", sorted(self.meters),
                     self.host, self._port, self.framing.value)

    async def stop(self) -> None:
        """Stop listening and drop every client connection."""
        server, self._server = self._server, None
        if server is None:
            return
        await server.shutdown()
        listener = server.transport
        if isinstance(listener, asyncio.AbstractServer):
            listener.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), 1.0)

    async def __aenter__(self) -> ModbusMeterServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    # -- request handling ------------------------------------------------------------------

    def _on_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """pymodbus trace hook: sees each decoded request before the datastore does."""
        if sending:
            return pdu
        self.requests += 1
        function = pdu.function_code
        if function in WRITE_FUNCTIONS:
            self.write_attempts += 1
        meter = self.meters.get(pdu.dev_id)
        if meter is None:
            return _Silence(pdu)  # nobody on the line has this id
        if function in WRITE_FUNCTIONS:
            meter.write_attempts += 1
        elif function in READ_FUNCTIONS:
            meter.read_requests += 1
        if meter.fault is MeterFault.SILENT:
            return _Silence(pdu)
        if meter.silent_windows and meter.silent_at(time.time()):
            meter.silenced_requests += 1
            return _Silence(pdu)
        code = None
        if meter.fault is MeterFault.EXCEPTION:
            code = meter.exception_code
        elif function in WRITE_FUNCTIONS or function in BIT_READ_FUNCTIONS:
            code = ILLEGAL_FUNCTION
        elif function in READ_FUNCTIONS:
            if pdu.count > meter.model.max_registers_per_read:
                code = ILLEGAL_DATA_VALUE
            elif not meter.readable_ranges(function):
                code = ILLEGAL_DATA_ADDRESS
        if code is None:
            return pdu
        meter.exception_replies += 1
        return _Refusal(pdu, code)

    def _make_action(self, meter: SimulatedMeter):
        async def action(function_code: int, start_address: int, address: int, count: int,
                         registers: list[int], set_values) -> ExcCodes | None:
            if set_values is not None or function_code not in READ_FUNCTIONS:
                return ExcCodes.ILLEGAL_FUNCTION  # unreachable: the hook refuses writes
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                if self.response_delay_s > 0:
                    await asyncio.sleep(self.response_delay_s)
                offset = address - start_address
                registers[offset:offset + count] = meter.registers(function_code, address, count)
            finally:
                self.in_flight -= 1
            return None

        return action
