"""JSON documents printed by the commands (`--json`)."""

from __future__ import annotations

import json
import sys
from typing import Any


def json_document(doc: Any) -> str:
    """`doc` as JSON text: indented for a person at a terminal, on one line when the output goes
    to a pipe or a file (the fast C encoder; a week of results for 20 machines: about ten times
    faster). NaN and infinities are refused (they are not JSON)."""
    if sys.stdout.isatty():
        return json.dumps(doc, indent=2, allow_nan=False)
    return json.dumps(doc, allow_nan=False, separators=(",", ":"))
