"""The collector's only door to pymodbus: read-only Modbus links with our own error types.

A `ModbusLink` owns one connection to one line: a Modbus TCP endpoint, an RTU over TCP gateway,
or a local serial line. Every meter on that line goes through the same link, and an asyncio
lock keeps one request in flight at a time (a serial line carries one frame at a time and
most gateways and meters answer one request at a time), with an optional pause between frames.

The link only ever reads (function 3, read holding registers, or 4, read input registers): it has
no method that could send a write, and `read` refuses any other function code before any I/O.

pymodbus outcomes become wattelier errors (collector.errors):

    DeviceError
    ├── TransportError          no usable answer:
    │                             connection refused or lost, connect timeout, waiting for the
    │                             next reconnect attempt (backoff), no answer in time
    │                             (asyncio.TimeoutError), pymodbus ConnectionException,
    │                             ModbusIOException (garbled or mismatched frame), any other
    │                             ModbusException, OSError, a reply of the wrong length
    └── DeviceReplyError
        └── ModbusExceptionReply  a valid exception response (pymodbus ExceptionResponse,
                                  isError()), with its exception_code

Connection policy: pymodbus's own retries (`retries=0`) and background reconnect loop
(`reconnect_delay=0`) are off, because they hide failures from the device health and log on
every attempt. The link connects on demand; after a failed connect it waits before the next
attempt, exponentially from `reconnect_min_s` to `reconnect_max_s`, and reads asked for during
that wait fail at once with TransportError (no connection storm against a small gateway). A
lost connection is reopened on the next read. The timeout of each read is enforced here with
asyncio (pymodbus's own timeout is per client, not per request, and logs an error per miss).
After a timeout on RTU framing (serial or RTU over TCP) the connection is dropped: RTU frames
carry no transaction id, so a late answer could otherwise be taken for the next request's.
With Modbus TCP the connection is kept: pymodbus rejects an answer whose transaction id does
not match.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from collections.abc import Sequence

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from collector.errors import ConfigError, ModbusExceptionReply, TransportError
from devices.site import Meter, Transport

logger = logging.getLogger("wattelier.collector.modbus")

READ_FUNCTIONS = (3, 4)
MAX_READ_REGISTERS = 125  # Modbus Application Protocol v1.1b3, 6.3 and 6.4

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}

# pymodbus's own per-request timeout: kept above any timeout we enforce, so that ours fires first.
_PYMODBUS_TIMEOUT_S = 3600.0


class _ConnectionLost(Exception):
    """The connection closed while a request waited for its answer."""


class ModbusLink:
    """One owner for one Modbus line, shared by every meter on it.

    transport: Transport.TCP, Transport.RTU_OVER_TCP (host, port) or Transport.RTU
        (serial_port, baudrate, parity, stopbits, bytesize; needs pyserial).
    connect_timeout_s: longest wait for a connection [s].
    frame_gap_s: pause between the end of one exchange and the next request [s]; None means
        3.5 character times for a local serial line (at least 1.75 ms, as the Modbus serial
        line guide asks) and none for TCP.
    reconnect_min_s, reconnect_max_s: backoff between failed connection attempts [s].

    Counters: `requests_sent`, `consecutive_failures` (transport failures on the whole line,
    reset by any answer), `connects`.
    """

    def __init__(self, transport: Transport | str, *, host: str | None = None, port: int = 502,
                 serial_port: str | None = None, baudrate: int = 9600, parity: str = "N",
                 stopbits: int = 1, bytesize: int = 8, connect_timeout_s: float = 2.0,
                 frame_gap_s: float | None = None, reconnect_min_s: float = 0.5,
                 reconnect_max_s: float = 30.0) -> None:
        self.transport = Transport(transport)
        if self.transport is Transport.RTU:
            if not serial_port:
                raise ConfigError("a Modbus RTU link needs serial_port")
            if importlib.util.find_spec("serial") is None:
                raise ConfigError("Modbus RTU on a serial port needs pyserial "
                                  "(pip install pyserial)")
            self.key = f"serial:{serial_port}"
        else:
            if not host:
                raise ConfigError(f"a Modbus {self.transport.value} link needs host")
            if not 1 <= port <= 65535:
                raise ConfigError(f"port must be 1..65535, got {port}")
            self.key = f"{self.transport.value}:{host}:{port}"
        if not 0 < reconnect_min_s <= reconnect_max_s:
            raise ConfigError("need 0 < reconnect_min_s <= reconnect_max_s")
        if connect_timeout_s <= 0:
            raise ConfigError("connect_timeout_s must be greater than 0")
        self.host, self.port = host, port
        self.serial_port, self.baudrate = serial_port, baudrate
        self.parity, self.stopbits, self.bytesize = parity, stopbits, bytesize
        self.connect_timeout_s = connect_timeout_s
        if frame_gap_s is None:
            frame_gap_s = max(0.00175, 3.5 * 11 / baudrate) if self.transport is Transport.RTU \
                else 0.0
        self.frame_gap_s = frame_gap_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s

        self.requests_sent = 0
        self.consecutive_failures = 0
        self.connects = 0
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._backoff_s = reconnect_min_s
        self._next_connect_at = 0.0  # time.monotonic()
        self._last_exchange_end = 0.0
        self._closed = False
        self._lost = asyncio.Event()

    @classmethod
    def for_meter(cls, meter: Meter, **options) -> ModbusLink:
        """A link for the line a site meter is on (options: see the class)."""
        return cls(meter.transport, host=meter.host, port=meter.port,
                   serial_port=meter.serial_port, baudrate=meter.baudrate, parity=meter.parity,
                   stopbits=meter.stopbits, bytesize=meter.bytesize, **options)

    def __repr__(self) -> str:
        return f"ModbusLink({self.key})"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    @property
    def rtu_framing(self) -> bool:
        return self.transport is not Transport.TCP

    async def read(self, unit_id: int, function: int, address: int, count: int,
                   timeout_s: float) -> list[int]:
        """Read `count` registers from `address` of one unit; the 16-bit words as sent.

        function: 3 (holding registers) or 4 (input registers); anything else is refused.
        timeout_s: longest wait for the answer [s] (the wait for the line is not counted).
        Raises ModbusExceptionReply (the unit said no) or TransportError (no usable answer).
        """
        return (await self.read_timed(unit_id, function, address, count, timeout_s))[1]

    async def read_timed(self, unit_id: int, function: int, address: int, count: int,
                         timeout_s: float) -> tuple[int, list[int]]:
        """Like `read`, also giving the wall-clock time the request was sent [ns since the
        epoch, UTC]: the edge timestamp, taken after the wait for the line."""
        if function not in READ_FUNCTIONS:
            raise ValueError(f"the collector only reads (function 3 or 4), not function {function}")
        if not 1 <= count <= MAX_READ_REGISTERS:
            raise ValueError(f"count must be 1..{MAX_READ_REGISTERS}, got {count}")
        if not 0 <= address <= 0xFFFF or address + count > 0x10000:
            raise ValueError(f"registers {address}..{address + count - 1} are outside 0..65535")
        if not 0 <= unit_id <= 255:
            raise ValueError(f"unit id must be 0..255, got {unit_id}")
        async with self._lock:
            client = await self._ensure_connected()
            if self.frame_gap_s > 0:
                wait = self._last_exchange_end + self.frame_gap_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            self.requests_sent += 1
            sent_ns = time.time_ns()
            where = f"unit {unit_id} on {self.key}"
            try:
                if function == 3:
                    call = client.read_holding_registers(address, count=count, device_id=unit_id)
                else:
                    call = client.read_input_registers(address, count=count, device_id=unit_id)
                response = await self._exchange(call, timeout_s)
            except _ConnectionLost as exc:
                self._failed()
                self._drop_connection()
                raise TransportError(f"{where}: connection lost") from exc
            except (asyncio.TimeoutError, TimeoutError) as exc:
                self._failed()
                if self.rtu_framing:
                    self._drop_connection()
                raise TransportError(f"{where}: no answer within {timeout_s:g} s "
                                     f"(function {function}, address {address})") from exc
            except (ModbusException, OSError) as exc:
                self._failed()
                self._drop_connection()
                raise TransportError(f"{where}: {exc}") from exc
            finally:
                self._last_exchange_end = time.monotonic()
            if response.isError():
                self.consecutive_failures = 0  # the line works: the unit answered
                code = int(getattr(response, "exception_code", 0))
                name = EXCEPTION_NAMES.get(code, "unknown exception")
                raise ModbusExceptionReply(
                    f"{where}: exception {code} ({name}) to function {function}, "
                    f"address {address}, count {count}", code)
            words = list(response.registers)
            if len(words) != count:
                self._failed()
                self._drop_connection()
                raise TransportError(f"{where}: asked for {count} registers, got {len(words)}")
            self.consecutive_failures = 0
            return sent_ns, words

    async def reset(self) -> None:
        """Drop the connection; the next read reconnects at once (no backoff wait)."""
        async with self._lock:
            if self._client is not None:
                logger.info("closing the connection to %s to reconnect", self.key)
            self._drop_connection()
            self._next_connect_at = 0.0

    async def close(self) -> None:
        """Close the link for good; later reads fail with TransportError."""
        async with self._lock:
            self._closed = True
            self._drop_connection()

    # -- internals ---------------------------------------------------------------------------

    def _failed(self) -> None:
        self.consecutive_failures += 1

    async def _exchange(self, call, timeout_s: float):
        """Await pymodbus's answer, giving up at the timeout or as soon as the connection is
        lost (pymodbus itself would keep waiting for the answer until its own timeout)."""
        request = asyncio.ensure_future(call)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({request, lost}, timeout=timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            request.cancel()  # no effect once it is done
        if request in done:
            return request.result()
        if lost in done:
            raise _ConnectionLost()
        raise TimeoutError()

    def _drop_connection(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        lost = self._lost = asyncio.Event()  # one per connection

        def on_connection_change(connected: bool) -> None:  # pymodbus trace_connect hook
            if not connected:
                lost.set()

        common = dict(timeout=_PYMODBUS_TIMEOUT_S, retries=0, reconnect_delay=0,
                      name=self.key, trace_connect=on_connection_change)
        if self.transport is Transport.RTU:
            return AsyncModbusSerialClient(
                self.serial_port, framer=FramerType.RTU, baudrate=self.baudrate,
                parity=self.parity, stopbits=self.stopbits, bytesize=self.bytesize, **common)
        framer = FramerType.SOCKET if self.transport is Transport.TCP else FramerType.RTU
        return AsyncModbusTcpClient(self.host, port=self.port, framer=framer, **common)

    async def _ensure_connected(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._closed:
            raise TransportError(f"{self.key}: the link is closed")
        if self._client is not None and self._client.connected:
            return self._client
        self._drop_connection()  # lost since the last read
        now = time.monotonic()
        if now < self._next_connect_at:
            raise TransportError(f"{self.key}: not connected; next attempt in "
                                 f"{self._next_connect_at - now:.1f} s")
        client = self._new_client()
        try:
            ok = await asyncio.wait_for(client.connect(), self.connect_timeout_s)
        except (asyncio.TimeoutError, TimeoutError, OSError, ModbusException):
            ok = False
        if not ok or not client.connected:
            client.close()
            self._failed()
            delay = self._backoff_s
            self._next_connect_at = time.monotonic() + delay
            self._backoff_s = min(self._backoff_s * 2, self.reconnect_max_s)
            raise TransportError(f"{self.key}: cannot connect; next attempt in {delay:.1f} s")
        self._client = client
        self._backoff_s = self.reconnect_min_s
        self._next_connect_at = 0.0
        self.connects += 1
        logger.debug("connected to %s", self.key)
        return client


class LinkPool:
    """One link per line: meters sharing a gateway or serial port share its link."""

    def __init__(self, **options) -> None:
        self._options = options
        self._links: dict[str, ModbusLink] = {}

    def link_for(self, meter: Meter) -> ModbusLink:
        key = meter.line_key()
        if key not in self._links:
            self._links[key] = ModbusLink.for_meter(meter, **self._options)
        return self._links[key]

    @property
    def links(self) -> Sequence[ModbusLink]:
        return list(self._links.values())

    async def close(self) -> None:
        for link in self._links.values():
            await link.close()
