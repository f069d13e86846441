"""Sessions from bookings: the public names of analytics.bookings, where they were first.

CSV (`read_sessions_csv`, analytics/bookings/csv_sessions.py), iCalendar (`read_sessions_ical`,
analytics/bookings/ical.py), the Fab-manager Open API (`fetch_fabmanager_reservations`,
`fetch_fabmanager_incremental`, analytics/bookings/fabmanager.py), times (`parse_time_s`, analytics/bookings/times.py);
stored sessions are read back by storage.bookings (`read_booked_sessions`).
"""

from __future__ import annotations

from analytics.bookings.csv_sessions import REQUIRED_COLUMNS, read_sessions_csv  # noqa: F401
from analytics.bookings.fabmanager import (DELETED_USER_MEMBER, FABMANAGER_MAX_PAGES,  # noqa: F401
                                           SETTLED_S, UNKNOWN_USER_PREFIX, FabmanagerReport,
                                           FabmanagerState, fetch_fabmanager_incremental,
                                           fetch_fabmanager_reservations)
from analytics.bookings.ical import read_sessions_ical  # noqa: F401
from analytics.bookings.names import Finder, machine_finder, member_finder, normalize_name  # noqa: F401
from analytics.bookings.report import MAX_PROBLEMS, ImportReport, SessionsError  # noqa: F401
from analytics.bookings.times import (PLAUSIBLE_MAX_S as MAX_TIME_S,  # noqa: F401
                                      PLAUSIBLE_MIN_S as MIN_TIME_S, localize_strict, parse_time_s)
from storage.bookings import read_booked_sessions  # noqa: F401  (reading stored sessions)
