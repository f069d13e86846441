"""What a booking import says back: the error listing every problem, and what was left out on
purpose (cancellations to withdraw, warnings)."""

from __future__ import annotations

from dataclasses import dataclass, field

from analytics.records import Session

MAX_PROBLEMS = 100  # problems listed in one error; the rest are counted


class SessionsError(Exception):
    """Sessions cannot be read; `problems` lists every mistake found (where, what, what to do)."""

    def __init__(self, problems: list[str]) -> None:
        if len(problems) > MAX_PROBLEMS + 1:  # (a last '... and N more' line is kept)
            problems = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more problems"]
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class ImportReport:
    """What an import left out on purpose, to show to the user.

    canceled: cancelled bookings (to withdraw a session stored earlier); warnings: one line each.
    """

    canceled: list[Session] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
