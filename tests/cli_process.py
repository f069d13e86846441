"""Run `wattelier` as a real process and check how it ends an expected failure.

An expected failure (bad input, a server down, a port in use) must end with a non-zero exit,
one clear line on stderr (what, where, what to do) and no traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_wattelier(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                  timeout_s: float = 120.0, stdin: str | None = None) -> Finished:
    """`python -m wattelier.cli ARGS` in a new process, with its output."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", **(env or {})}
    environment.pop("JOURNAL_STREAM", None)
    done = subprocess.run([sys.executable, "-m", "wattelier.cli", *args], cwd=cwd or ROOT,
                          env=environment, capture_output=True, text=True, timeout=timeout_s,
                          input=stdin)
    return Finished(done.returncode, done.stdout, done.stderr)


LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} [A-Z]+ ")


def assert_clear_failure(done: Finished, *expected: str, exit_code: int | None = None,
                         one_line: bool = True) -> str:
    """The process failed with no traceback; its stderr holds every `expected` text.

    With `one_line`, stderr holds exactly one line besides log lines (which carry a time
    stamp); `one_line=False` for a command that lists several problems of one file, one a
    line. Returns stderr's non-empty lines.
    """
    assert "Traceback" not in done.output, done.output
    assert done.returncode != 0, done.output
    if exit_code is not None:
        assert done.returncode == exit_code, done.output
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if one_line:
        message = [line for line in lines if not LOG_LINE.match(line)]
        assert len(message) == 1, f"expected one error line, got:\n{done.stderr}"
    text = "\n".join(lines)
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in:\n{done.output}"
    return text
