"""Where the last Fab-manager read stopped (analytics.bookings.fabmanager.FabmanagerState),
kept in the journal's `meta` table under FABMANAGER_STATE_KEY beside the sessions it describes
(storage.bookings_store.read_meta_text, keep_meta_text): written after the sessions, so a
state is never ahead of what is stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from storage.bookings_store import keep_meta_text, read_meta_text
from storage.journal import Journal

if TYPE_CHECKING:  # the Fab-manager reader loads when a command reads Fab-manager
    from analytics.bookings.fabmanager import FabmanagerState

FABMANAGER_STATE_KEY = "fabmanager_state"


def load_fabmanager_state(journal_path: str | Path) -> tuple[FabmanagerState | None, str]:
    """The state of the last Fab-manager read kept in the journal (read-only), and a warning
    when one is kept but cannot be read (then None: the next read reads everything).
    (None, "") when there is no journal or no state yet; JournalError for a damaged journal."""
    text = read_meta_text(journal_path, FABMANAGER_STATE_KEY)
    if text is None:
        return None, ""
    from analytics.bookings.fabmanager import FabmanagerState

    try:
        return FabmanagerState.from_json(text), ""
    except ValueError as exc:
        return None, (f"the Fab-manager state kept in {journal_path} (meta key {FABMANAGER_STATE_KEY}) cannot "
                      f"be read ({exc}): reading every reservation; this read writes a new one")


def save_fabmanager_state(journal: Journal, state: FabmanagerState) -> None:
    """Keep `state` in the journal, to be called once the sessions it covers are stored."""
    keep_meta_text(journal, FABMANAGER_STATE_KEY, state.to_json())
