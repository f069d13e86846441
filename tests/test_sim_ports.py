"""Ports for simulators and test servers: below the ephemeral range, free, never twice."""

from __future__ import annotations

import socket

from devices.sim import ports


def test_ports_are_free_below_the_ephemeral_range_and_not_handed_out_twice():
    low = ports.ephemeral_low()
    assert 1024 < low <= 65535
    given = [ports.free_port() for _ in range(200)]
    assert len(set(given)) == len(given)
    assert all(ports.LOWEST_PORT <= p < low for p in given)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", given[-1]))  # free when handed out


def test_a_listening_port_is_never_chosen(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        # the only candidate below the range is the busy port: the kernel's choice instead
        monkeypatch.setattr(ports, "LOWEST_PORT", taken - 1000)
        monkeypatch.setattr(ports, "ephemeral_low", lambda: taken + 1)
        monkeypatch.setattr(ports, "_handed_out", set(range(taken - 1000, taken)))
        port = ports.free_port()
        assert port != taken and port not in range(taken - 1000, taken)


def test_without_room_below_the_range_the_kernel_chooses(monkeypatch):
    kernel_low = ports.ephemeral_low()
    monkeypatch.setattr(ports, "ephemeral_low", lambda: ports.LOWEST_PORT + 10)
    port = ports.free_port()
    assert port >= kernel_low  # from the ephemeral range
    assert port in ports._handed_out
