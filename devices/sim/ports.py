"""Free TCP ports for the simulated devices (and the servers tests start), chosen below the
kernel's range of ephemeral ports.

Binding port 0 finds a free port in the ephemeral range, the range the kernel also takes the
local port of every outgoing connection from. A port chosen that way and bound later (a site's
meters and controllers are given their ports before the simulators start) can be taken in
between by a client connecting elsewhere, the collector to a meter started a moment before,
and the server then fails with "address already in use". No outgoing connection is given a
port below the ephemeral range, so ports are drawn there at random, each checked by binding
it, and never handed out twice by one process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST_PORT = 10_000  # well above the ports of common services
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_LOW = 32_768  # Linux's default ip_local_port_range start

_handed_out: set[int] = set()
_random = random.SystemRandom()


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default where unreadable)."""
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_LOW


def bind_errno(host: str, port: int) -> int | None:
    """Why binding host:port fails now (its errno, e.g. EADDRINUSE), None when it binds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno
    return None


def _bindable(host: str, port: int) -> bool:
    return bind_errno(host, port) is None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now, outside the ephemeral range where there is room below it
    (else one the kernel picks). Where a server can bind port 0 itself and report it, prefer
    that."""
    high = ephemeral_low()
    if high - LOWEST_PORT >= 1000:
        for _ in range(500):
            port = _random.randrange(LOWEST_PORT, high)
            if port not in _handed_out and _bindable(host, port):
                _handed_out.add(port)
                return port
    for _ in range(500):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free TCP port on {host} that was not handed out already")
