"""Errors of configuration, shared by every layer above devices."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration cannot be used: the site file or a device file says something
    impossible, or a setting given on the command line."""
