"""wattelier's own collector errors. Adapters turn protocol-library exceptions into these.

    CollectorError
    ├── ConfigError               the site file or a device file says something impossible
    └── DeviceError               something went wrong talking to a device
        ├── TransportError        no answer: refused, timed out, connection lost, garbled frame
        ├── DeviceReplyError      a valid answer that says no
        │   ├── ModbusExceptionReply   Modbus exception code (illegal address, device busy, ...)
        │   └── OpcUaStatusError       a bad OPC UA status code on a read or browse
        └── BadValueError         a value that decodes but cannot be true (NaN, inf, counter backwards)
"""

from __future__ import annotations


class CollectorError(Exception):
    """Root of wattelier collector errors."""


class ConfigError(CollectorError):
    """The configuration cannot be used."""


class DeviceError(CollectorError):
    """A device could not be read."""

    kind = "device"


class TransportError(DeviceError):
    """The device did not answer: connection refused or lost, timeout, garbled frame."""

    kind = "transport"


class DeviceReplyError(DeviceError):
    """The device answered, and the answer says no."""

    kind = "reply"


class ModbusExceptionReply(DeviceReplyError):
    """A Modbus exception response (function code | 0x80) with its exception code."""

    kind = "modbus_exception"

    def __init__(self, message: str, exception_code: int) -> None:
        super().__init__(message)
        self.exception_code = exception_code


class OpcUaStatusError(DeviceReplyError):
    """A bad OPC UA status code."""

    kind = "opcua_status"

    def __init__(self, message: str, status_name: str = "") -> None:
        super().__init__(message)
        self.status_name = status_name


class BadValueError(DeviceError):
    """A decoded value that cannot be true: NaN, infinite, or an energy counter going backwards."""

    kind = "bad_value"
