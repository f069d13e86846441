"""wattelier's own collector errors. Adapters turn protocol-library exceptions into these.

    CollectorError
    └── DeviceError               something went wrong talking to a device
        ├── TransportError        no answer: refused, timed out, connection lost, garbled frame
        ├── DeviceReplyError      a valid answer that says no
        │   ├── ModbusExceptionReply   Modbus exception code (illegal address, device busy, ...)
        │   └── OpcUaStatusError       a bad OPC UA status code on a read or browse
        │       └── OpcUaSecurityError security or credentials refused (wrong password,
        │                                  no endpoint with the policy asked for, ...)
        ├── UntrustedCertificateError  the OPC UA server's certificate is not in the trust folder
        └── BadValueError         a value that decodes but cannot be true (NaN, inf, counter backwards)

The security errors need a person (credentials, trust lists, the site file); sources still
retry them with backoff, so that a fix is picked up without a restart.

A configuration that cannot be used is devices.errors.ConfigError (re-exported here for the
collector's modules); storage's errors (the journal, InfluxDB) are in storage.errors.
"""

from __future__ import annotations

from devices.errors import ConfigError  # noqa: F401 (re-exported)


class CollectorError(Exception):
    """Root of wattelier collector errors."""


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


class OpcUaSecurityError(OpcUaStatusError):
    """The server refused our security or our user (BadUserAccessDenied, BadIdentityToken*,
    BadCertificate*, BadSecurityPolicyRejected...), or it offers no endpoint with the
    security policy, mode or user token type that the site file asks for."""

    kind = "opcua_security"


class UntrustedCertificateError(DeviceError):
    """The OPC UA server's certificate is not in the collector's trust folder, or is not valid
    now. certificate_path: where the refused certificate was saved (to be checked and copied
    into trust_dir); thumbprint: its SHA-1, upper-case hex."""

    kind = "untrusted_certificate"

    def __init__(self, message: str, certificate_path: str, trust_dir: str, thumbprint: str) -> None:
        super().__init__(message)
        self.certificate_path = certificate_path
        self.trust_dir = trust_dir
        self.thumbprint = thumbprint


class BadValueError(DeviceError):
    """A decoded value that cannot be true: NaN, infinite, or an energy counter going backwards."""

    kind = "bad_value"
