"""Device up/down bookkeeping: log once when a device goes and once when it comes back."""

from __future__ import annotations

import logging
import time


class DeviceHealth:
    """Tracks one device's reachability and counts consecutive failures.

    A device is logged once when it goes down (first failure after a success, or failure at
    start) and once when it comes back (first success after a failure), never on every poll.
    """

    def __init__(self, name: str, logger: logging.Logger) -> None:
        self.name = name
        self.logger = logger
        self.up: bool | None = None  # None: not yet known
        self.consecutive_failures = 0
        self.went_down_at: float | None = None
        self.errors_by_kind: dict[str, int] = {}

    def failed(self, error: Exception) -> None:
        kind = getattr(error, "kind", type(error).__name__)
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        self.consecutive_failures += 1
        if self.up is not False:
            self.up = False
            self.went_down_at = time.time()
            self.logger.warning("device %s is down: %s", self.name, error)

    def succeeded(self) -> None:
        self.consecutive_failures = 0
        if self.up is False:
            down_s = time.time() - (self.went_down_at or time.time())
            self.logger.warning("device %s is back after %.1f s", self.name, down_s)
        self.up = True
