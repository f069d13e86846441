"""What a source hands its readings to (the journal writer implements it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from storage.points import Point


class Sink(Protocol):
    def put(self, points: Sequence[Point]) -> None:
        """Accept points without blocking; they reach the journal at the next commit."""

    def drop(self, reason: str, count: int = 1) -> None:
        """Count readings refused before storage (bad value, ...) with their reason."""


class ListSink:
    """A sink that keeps everything in memory (tests, one-shot reads)."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self.dropped: dict[str, int] = {}

    def put(self, points: Sequence[Point]) -> None:
        self.points.extend(points)

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count
