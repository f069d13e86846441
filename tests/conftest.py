"""Shared fixtures."""

from __future__ import annotations

import socket

import pytest

from devices.site import example_site_path, load_site


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def example_site():
    return load_site(example_site_path())
