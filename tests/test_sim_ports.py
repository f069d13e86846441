"""Ports for simulators and test servers: below the ephemeral range, free, never twice."""

from __future__ import annotations

import socket

import pytest

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
    low, high = (int(x) for x in ports.EPHEMERAL_RANGE_FILE.read_text().split())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        # no room below the range, and the lower half of the kernel's range already handed
        # out: the kernel's choices, never the listening port nor one handed out before
        middle = (low + high) // 2
        monkeypatch.setattr(ports, "ephemeral_low", lambda: ports.LOWEST_PORT + 10)
        monkeypatch.setattr(ports, "_handed_out", set(range(low, middle)))
        given = [ports.free_port() for _ in range(20)]
        assert taken not in given and all(middle <= p <= high for p in given)


def test_without_room_below_the_range_the_kernel_chooses(monkeypatch):
    kernel_low = ports.ephemeral_low()
    monkeypatch.setattr(ports, "ephemeral_low", lambda: ports.LOWEST_PORT + 10)
    given = [ports.free_port() for _ in range(50)]
    assert all(p >= kernel_low for p in given)  # from the ephemeral range
    assert len(set(given)) == len(given) and set(given) <= ports._handed_out


def test_when_every_port_was_handed_out_it_says_so(monkeypatch):
    monkeypatch.setattr(ports, "ephemeral_low", lambda: ports.LOWEST_PORT + 10)
    monkeypatch.setattr(ports, "_handed_out", set(range(1, 65536)))
    with pytest.raises(RuntimeError, match="not handed out already"):
        ports.free_port()
