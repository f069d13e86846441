"""Machine sessions from the Fab-manager Open API.

`GET {url}/open_api/v1/reservations?reservable_type=Machine&page=N&per_page=M` with the
header ``Authorization: Token token=...``, page after page (the Open API paginates with
api-pagination: a `Link` header with rel="next" while there is a next page; without the
header, a short or empty page ends the list). Documented format (Fab-manager,
app/doc/open_api/v1/reservations_doc.rb and app/views/open_api/v1/reservations): each
reservation has `id`, `user_id`, `reservable_type`, `reservable_id`, `reservable {id, name}`,
`user {id, full_name}`, `created_at`, `updated_at` and `reserved_slots [{start_at, end_at,
canceled_at}]`. Contiguous slots of one reservation make one session; a reservation is kept
whole when one of its sessions overlaps [since, until). booking_id = the reservation id.

How the Open API lists reservations (app/controllers/open_api/v1/reservations_controller.rb
and concerns/reservations_filters_concern.rb): ordered by `created_at`, newest first, cut in
pages by kaminari (`page`, `per_page`, 20 by default); `after` and `before` keep the
reservations *created* at or after / at or before a time, not those whose slots are then.
Moving or cancelling a slot changes the slot's row (slots_reservations), not the
reservation's `created_at` nor its `updated_at` (app/models/slots_reservation.rb does not
touch its reservation). So `since`/`until` are applied here to the slots, and an incremental
read (`FabmanagerState`, `fetch_fabmanager_incremental`) asks for `after` = the creation time
of the oldest reservation that could still change: one whose last slot ended less than
`SETTLED_S` before the last read. Everything created earlier was read when it was settled.

- The state: the newest `created_at` seen (Fab-manager's clock), the oldest `created_at` of a
  reservation not settled at the last read, the time of that read, the address and the site's
  Fab-manager ids (other ids make other sessions: a change reads everything again). The
  caller keeps it and saves the new one only once the sessions are stored, so a crash between
  the two reads the same reservations again next time (stored sessions are replaced by
  booking id, never doubled).
- `after` is also at most `CREATION_MARGIN_S` before the newest `created_at` seen (a
  reservation committed after a later-created one is not missed), and is sent in UTC with its
  milliseconds rounded down (the Open API writes milliseconds, the database holds
  microseconds). New reservations are newer: they are listed first.
- Pages stop once a reservation is older than `after`: Fab-manager already leaves those
  out; one that ignored the filter would list them after the newer ones, and they are skipped
  (`FabmanagerReport.older_than_after`).
- `SETTLED_S` is a week: a member moves or cancels a slot only before it starts (Fab-manager's
  `booking_move_delay` and `booking_cancel_delay`, hours before the slot); after it ended
  only a manager changes it, correcting last week's bookings (no-show, wrong machine). A
  later correction needs a full read (`wattelier sessions fabmanager --full`). A longer
  horizon costs little: the re-read spans the reservations created since the oldest
  unsettled one, so it grows with how far ahead members book, plus SETTLED_S.
- A reservation booked far ahead (created a year before its slot) holds `after` back until it
  is settled; a reservation without a readable `created_at` keeps the previous state.
- A reservation removed from Fab-manager altogether is withdrawn by neither read (cancelled
  slots are).

- A machine id no site machine has (`fabmanager_id`): the reservation is skipped, counted,
  and the ids are listed (the machine is not monitored: nothing to attribute).
- A user id no site member has (`fabmanager_user_id`): the session is kept with member
  ``fabmanager-user-ID`` (the machine was booked: its energy is not standby waste), counted
  and listed so that the manager can add the id to the member.
- A reservation by a deleted member: Fab-manager keeps it, anonymised, with `user_id` null and
  no `user` object (index.json.jbuilder writes `user` only while the statistic profile still
  has a user). The session is kept with member ``fabmanager-deleted-user`` (no one can be
  named; the machine was still booked), counted and said in a warning.
- Reservations whose every slot is cancelled are cancellations (`ImportReport.canceled`).

The token never appears in a message, and redirects are refused (the token would follow
them); HTTP and network errors become a SessionsError saying what to check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from analytics.bookings.report import ImportReport, SessionsError
from analytics.bookings.times import parse_time_s, to_ms
from analytics.records import Session
from storage.http_client import HttpUnreachable, request

log = logging.getLogger("wattelier.analytics.bookings.fabmanager")

FABMANAGER_MAX_PAGES = 10_000
UNKNOWN_USER_PREFIX = "fabmanager-user-"
DELETED_USER_MEMBER = "fabmanager-deleted-user"  # reservations of members deleted in Fab-manager
SETTLED_S = 7 * 86400.0
"""[s] A reservation whose last slot ended this long before a read is not read again by the
next incremental read (see the module docstring for why a week)."""
CREATION_MARGIN_S = 3600.0
"""[s] The next read also asks for the reservations created up to this long before the newest
one seen: one whose transaction was committed after a later one's is not missed."""


@dataclass
class FabmanagerReport(ImportReport):
    """What a Fab-manager import read and left out.

    unknown_machines: Fab-manager machine id -> (its name, reservations skipped).
    unknown_users: Fab-manager user id -> (full name, sessions kept as fabmanager-user-ID).
    deleted_users: reservations by members deleted in Fab-manager (`user_id` null), kept as
    member fabmanager-deleted-user; deleted_user_sessions: the sessions they gave.
    """

    pages: int = 0
    reservations: int = 0
    other_types: int = 0  # reservations of events, trainings, spaces: not machines
    outside_window: int = 0
    unknown_machines: dict[int, tuple[str, int]] = field(default_factory=dict)
    unknown_users: dict[int, tuple[str, int]] = field(default_factory=dict)
    deleted_users: int = 0
    deleted_user_sessions: int = 0
    after_s: float | None = None  # [Unix s] the `after` asked for; None: every page was read
    full_reason: str = ""  # why an incremental read read every page ("" when it did not)
    older_than_after: int = 0  # reservations listed though created before `after`: left out


@dataclass(frozen=True)
class FabmanagerState:
    """What the last complete read of a Fab-manager saw, for the next read to start from.

    url: the Fab-manager address; mapping: `mapping_fingerprint` of the site's machine and
    member ids then (other ids give other sessions: a change means reading everything).
    read_s: when that read was made [Unix s, this machine's clock].
    newest_created_s: the newest `created_at` seen [Unix s, Fab-manager's clock]; None: none.
    oldest_unsettled_created_s: the oldest `created_at` of a reservation whose last slot ended
    less than SETTLED_S before read_s (or ends later) [Unix s]; None: every one was settled.
    """

    url: str
    mapping: str
    read_s: float
    newest_created_s: float | None
    oldest_unsettled_created_s: float | None

    @property
    def after_s(self) -> float | None:
        """[Unix s] `after` for the next read: the oldest creation time that can still change
        (None: nothing was read, read everything)."""
        if self.newest_created_s is None:
            return None
        newest = self.newest_created_s - CREATION_MARGIN_S
        oldest = self.oldest_unsettled_created_s
        return newest if oldest is None else min(oldest, newest)

    def to_json(self) -> str:
        """The state as one JSON object (times in Unix seconds)."""
        return json.dumps({"version": 1, "url": self.url, "mapping": self.mapping, "read_s": self.read_s,
                           "newest_created_s": self.newest_created_s,
                           "oldest_unsettled_created_s": self.oldest_unsettled_created_s})

    @classmethod
    def from_json(cls, text: str) -> FabmanagerState:
        """The state `to_json` wrote; ValueError saying what is wrong otherwise."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not a version 1 state")

        def time_or_none(key: str) -> float | None:
            value = data.get(key)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{key} is not a time in Unix seconds: {value!r}")
            return float(value)

        if not isinstance(data.get("url"), str) or not isinstance(data.get("mapping"), str):
            raise ValueError("url and mapping must be text")
        read_s = time_or_none("read_s")
        if read_s is None:
            raise ValueError("read_s is missing")
        return cls(data["url"], data["mapping"], read_s, time_or_none("newest_created_s"),
                   time_or_none("oldest_unsettled_created_s"))


def mapping_fingerprint(machines_by_fabmanager_id: Mapping[int, str],
                        members_by_fabmanager_user_id: Mapping[int, str]) -> str:
    """A short digest of the site's Fab-manager machine and member ids (16 hex digits)."""
    text = json.dumps([sorted(machines_by_fabmanager_id.items()),
                       sorted(members_by_fabmanager_user_id.items())])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _error_detail(body: bytes) -> str:
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200]
    if isinstance(data, dict):
        errors = data.get("errors") or data.get("error")
        if isinstance(errors, list):
            return "; ".join(str(e) for e in errors)[:200]
        if errors:
            return str(errors)[:200]
    return json.dumps(data)[:200]


def _has_next(link: str) -> bool:
    """Whether a Link header (RFC 8288) has a target with rel="next"."""
    for match in re.finditer(r';\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))', link, re.IGNORECASE):
        if "next" in (match.group(1) or match.group(2) or "").lower().split():
            return True
    return False


def _no_answer(base: str, timeout_s: float) -> str:
    return (f"no answer from Fab-manager at {base} within {timeout_s:g} s; check that Fab-manager is up "
            "and [fabmanager] url, or raise [fabmanager] timeout_s")


def _get_page(url: str, token: str, page: int, timeout_s: float) -> tuple[dict, str | None]:
    """One page of the Open API: its JSON object and its Link header (None: none).
    Redirects are not followed (storage.http_client): the token stays with `url`."""
    base = url.split("?")[0]
    try:
        answer = request("GET", url, headers={
            "Authorization": f"Token token={token}", "Accept": "application/json",
            "User-Agent": "wattelier (sessions import)"}, timeout_s=timeout_s)
    except HttpUnreachable as exc:
        if exc.timed_out:
            raise SessionsError([_no_answer(base, timeout_s)]) from None
        if not exc.connected:
            raise SessionsError([f"cannot reach Fab-manager at {base}: {exc.reason}; check [fabmanager] url "
                                 "and the network"]) from None
        raise SessionsError([f"cannot read the answer of Fab-manager at {base} ({exc.reason}): the "
                             "connection broke; check the network and try again"]) from None
    if not answer.ok:
        detail = _error_detail(answer.body)
        if answer.status == 401:
            raise SessionsError([f"Fab-manager refused the token (HTTP 401 {detail or 'Unauthorized'}) at "
                                 f"{base}: set WATTELIER_FABMANAGER_TOKEN (or the variable named by "
                                 "[fabmanager] token_env, or fabmanager_token in the secrets file) to "
                                 "the token of an Open API client (Fab-manager: Admin > Open API "
                                 "clients)"])
        if 300 <= answer.status < 400:
            raise SessionsError([f"Fab-manager at {base} redirects (HTTP {answer.status}) to "
                                 f"{answer.headers.get('Location')!r}; set [fabmanager] url to the final "
                                 "address (redirects are not followed, so the token stays with it)"])
        if answer.status == 404:
            raise SessionsError([f"no Fab-manager Open API at {base} (HTTP 404); [fabmanager] url must "
                                 "be the Fab-manager address, e.g. https://fablab.example.org"])
        then = ("Fab-manager's own log says why; try again later" if answer.status >= 500 else
                "check that [fabmanager] url is the Fab-manager address and that the Open API client "
                "may read reservations")
        raise SessionsError([f"Fab-manager answered HTTP {answer.status} {answer.reason} for page {page} of "
                             f"{base}: {detail or 'no detail'}; {then}"])
    body, link = answer.body, answer.headers.get("Link")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SessionsError([f"Fab-manager page {page} of {base} is not JSON ({exc}); is [fabmanager] url "
                             "the Fab-manager address?"]) from None
    if not isinstance(data, dict) or not isinstance(data.get("reservations"), list):
        raise SessionsError([f"Fab-manager page {page} of {base}: no 'reservations' list in the answer "
                             "(not the documented format of GET /open_api/v1/reservations)"])
    return data, link


def _windows(slots: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Slots in time order, contiguous or overlapping ones merged."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(slots):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def fetch_fabmanager_reservations(base_url: str, token: str,
                                  machines_by_fabmanager_id: Mapping[int, str],
                                  members_by_fabmanager_user_id: Mapping[int, str],
                                  since: float | None = None, until: float | None = None, *,
                                  per_page: int = 100, timeout_s: float = 30.0,
                                  report: FabmanagerReport | None = None) -> list[Session]:
    """Machine sessions from Fab-manager's Open API, every page (see the module docstring).

    base_url: the Fab-manager address; token: an Open API client's token.
    since, until: Unix seconds; only reservations with a session overlapping [since, until).
    report: receives pages read, reservations skipped (unknown machines, other types, outside
    the window), users not matched, cancellations and warnings (logged when no report is given).
    Raises SessionsError for network and HTTP errors and answers not in the documented format.
    """
    sessions, _ = _fetch(base_url, token, machines_by_fabmanager_id, members_by_fabmanager_user_id,
                         since, until, None, per_page, timeout_s, report, time.time())
    return sessions


def fetch_fabmanager_incremental(base_url: str, token: str,
                                 machines_by_fabmanager_id: Mapping[int, str],
                                 members_by_fabmanager_user_id: Mapping[int, str],
                                 state: FabmanagerState | None,
                                 since: float | None = None, until: float | None = None, *,
                                 full: bool = False, per_page: int = 100, timeout_s: float = 30.0,
                                 report: FabmanagerReport | None = None,
                                 now_s: float | None = None) -> tuple[list[Session], FabmanagerState | None]:
    """Machine sessions of the reservations that can have changed since `state` was taken.

    state: what the last read saw (None: none, read everything). It is used only when it is
    about this `base_url` and the same machine and member ids (`mapping_fingerprint`), and
    `full` is not set; else every page is read (the reason is in `report.full_reason`).
    since, until: Unix seconds, as fetch_fabmanager_reservations (a read with a window must not
    be saved as the state: what lies outside it was not stored).
    now_s: the time of this read [Unix s] (default: now), from which SETTLED_S is counted.
    Returns the sessions and the state to keep once they are stored: None when this read could
    not make one (a reservation without a readable `created_at`) and there was none before;
    the previous state when a reservation's creation time could not be read (the next read
    starts where this one did).
    Raises SessionsError as fetch_fabmanager_reservations.
    """
    now_s = time.time() if now_s is None else now_s
    mapping = mapping_fingerprint(machines_by_fabmanager_id, members_by_fabmanager_user_id)
    url = base_url.rstrip("/")
    reason = ("--full" if full else "no earlier read in this journal" if state is None
              else f"the last read was of another Fab-manager ({state.url})" if state.url != url
              else "the site's fabmanager_id or fabmanager_user_id changed since the last read"
              if state.mapping != mapping else "")
    report = report if report is not None else FabmanagerReport()
    report.full_reason = reason
    previous = None if reason else state
    sessions, seen = _fetch(base_url, token, machines_by_fabmanager_id, members_by_fabmanager_user_id,
                            since, until, previous.after_s if previous else None, per_page, timeout_s,
                            report, now_s)
    if seen.unknown_created:
        report.warnings.append(f"{seen.unknown_created} reservation(s) without a readable created_at "
                               "(see the Open API answer): the next read starts where this one did")
        return sessions, state if not reason or state is None else None
    newest = max((t for t in (seen.newest_created_s, previous.newest_created_s if previous else None)
                  if t is not None), default=None)
    return sessions, FabmanagerState(url, mapping, now_s, newest, seen.oldest_unsettled_created_s)


@dataclass
class _Seen:
    """Creation times of the reservations one read saw [Unix s]."""

    settled_before_s: float  # a reservation whose last slot ends before this is settled
    newest_created_s: float | None = None
    oldest_unsettled_created_s: float | None = None
    unknown_created: int = 0

    def add(self, created_s: float | None, last_end_s: float) -> None:
        """One reservation: its creation time (None: unreadable) and its last slot's end [s]."""
        if created_s is None:
            self.unknown_created += 1
            return
        if self.newest_created_s is None or created_s > self.newest_created_s:
            self.newest_created_s = created_s
        if last_end_s > self.settled_before_s and (self.oldest_unsettled_created_s is None
                          or created_s < self.oldest_unsettled_created_s):
            self.oldest_unsettled_created_s = created_s


def _created_s(item: object) -> float | None:
    """A reservation's `created_at` [Unix s], None when missing or not a time."""
    text = item.get("created_at") if isinstance(item, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return parse_time_s(text)
    except ValueError:
        return None


def _after_text(after_s: float) -> str:
    """`after` as Fab-manager reads it (Time.zone.parse): ISO 8601 in UTC, milliseconds
    rounded down, so that the reservation created at that time is still listed (>=)."""
    whole = dt.datetime.fromtimestamp(math.floor(after_s * 1000) / 1000, dt.timezone.utc)
    return whole.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fetch(base_url: str, token: str, machines_by_fabmanager_id: Mapping[int, str],
           members_by_fabmanager_user_id: Mapping[int, str], since: float | None, until: float | None,
           after_s: float | None, per_page: int, timeout_s: float, report: FabmanagerReport | None,
           now_s: float) -> tuple[list[Session], _Seen]:
    """Read the pages (those of reservations created at or after `after_s` when given) and
    turn them into sessions; the creation times seen for the next state."""
    if not token:
        raise SessionsError(["no Fab-manager token: set WATTELIER_FABMANAGER_TOKEN (or the variable "
                             "named by [fabmanager] token_env, or fabmanager_token in the secrets file)"])
    log_warnings = report is None  # a caller that passes a report shows the warnings itself
    report = report if report is not None else FabmanagerReport()
    report.after_s = after_s
    base_url = base_url.rstrip("/")
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        report.warnings.append(f"{base_url} is plain http: the Open API token travels in clear; use https")
    sessions: list[Session] = []
    problems: list[str] = []
    seen_ids: set[int] = set()
    seen = _Seen(now_s - SETTLED_S)
    page = 1
    while True:
        query = {"reservable_type": "Machine", "page": page, "per_page": per_page}
        if after_s is not None:
            query["after"] = _after_text(after_s)
        data, link = _get_page(f"{base_url}/open_api/v1/reservations?{urllib.parse.urlencode(query)}",
                               token, page, timeout_s)
        report.pages = page
        items = data["reservations"]
        older = False  # a reservation created before `after`: the server ignored it, the rest is older
        for item in items:
            created_s = _created_s(item)
            if after_s is not None and created_s is not None and created_s < math.floor(after_s * 1000) / 1000:
                report.older_than_after += 1
                older = True
                continue
            problem, last_end_s = _reservation(item, page, machines_by_fabmanager_id,
                                               members_by_fabmanager_user_id, since, until, report,
                                               sessions, seen_ids)
            if problem:
                problems.append(problem)
            elif last_end_s is not None:  # a machine reservation read for the first time in this read
                seen.add(created_s, last_end_s)
        if not items or older:
            break
        has_next = _has_next(link) if link is not None else len(items) >= per_page
        if not has_next:
            break
        page += 1
        if page > FABMANAGER_MAX_PAGES:
            raise SessionsError([f"Fab-manager at {base_url} still has pages after {FABMANAGER_MAX_PAGES}; "
                                 "stopping (does it ignore the page parameter?)"])
    if problems:
        raise SessionsError(problems)
    if report.unknown_machines:
        listed = ", ".join(f"{i} ({name!r}, {n} reservation(s))"
                           for i, (name, n) in sorted(report.unknown_machines.items()))
        report.warnings.append(f"skipped the reservations of Fab-manager machines no site machine has as "
                               f"fabmanager_id: {listed}; add fabmanager_id = ID to [machines.NAME] to "
                               "import them (the next read then reads every reservation again)")
    if report.unknown_users:
        listed = ", ".join(f"{i} ({name!r}, {n} session(s))"
                           for i, (name, n) in sorted(report.unknown_users.items()))
        report.warnings.append(f"kept as member {UNKNOWN_USER_PREFIX}ID the sessions of Fab-manager users "
                               f"no site member has as fabmanager_user_id: {listed}; add "
                               "fabmanager_user_id = ID to [members.NAME] (the next read then reads "
                               "every reservation again)")
    if report.deleted_users:
        report.warnings.append(f"kept as member {DELETED_USER_MEMBER} {report.deleted_user_sessions} session(s) "
                               f"of {report.deleted_users} reservation(s) by members deleted in Fab-manager "
                               "(user_id null, anonymised there): their energy counts as booked, for no "
                               "one; nothing to do")
    for warning in report.warnings if log_warnings else []:
        log.warning("%s", warning)
    return sessions, seen


def _reservation(item: object, page: int, machines: Mapping[int, str], members: Mapping[int, str],
                 since: float | None, until: float | None, report: FabmanagerReport,
                 sessions: list[Session], seen_ids: set[int]) -> tuple[str | None, float | None]:
    """Turn one reservation into sessions (appended). Returns (a problem message when it is
    malformed, the end of its last slot [Unix s] when it is a machine reservation read for the
    first time in this read, else None)."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), int):
        return f"Fab-manager page {page}: a reservation without an integer id: {str(item)[:120]}", None
    rid = item["id"]
    where = f"Fab-manager page {page}, reservation {rid}"
    if rid in seen_ids:
        return None, None  # a reservation created while paging shifts the pages: already read
    seen_ids.add(rid)
    report.reservations += 1
    if item.get("reservable_type") != "Machine":
        report.other_types += 1
        return None, None
    reservable = item.get("reservable") if isinstance(item.get("reservable"), dict) else {}
    machine_id = item.get("reservable_id", reservable.get("id"))
    user = item.get("user") if isinstance(item.get("user"), dict) else {}
    user_id = item.get("user_id", user.get("id"))
    if user_id is None:
        user_id = user.get("id")  # null user_id: a deleted member unless a user object says who
    if not isinstance(machine_id, int) or not (user_id is None or isinstance(user_id, int)):
        return (f"{where}: reservable_id must be an integer and user_id an integer or null, got "
                f"{machine_id!r} and {user_id!r}"), None
    slots = item.get("reserved_slots")
    if not isinstance(slots, list) or not slots:
        return f"{where}: no reserved_slots", None
    live: list[tuple[float, float]] = []
    canceled: list[tuple[float, float]] = []
    for i, slot in enumerate(slots):
        if not isinstance(slot, dict):
            return f"{where}: reserved_slots[{i}] is not an object", None
        try:
            start = to_ms(parse_time_s(str(slot.get("start_at") or "")))
            end = to_ms(parse_time_s(str(slot.get("end_at") or "")))
        except ValueError as exc:
            return f"{where}: reserved_slots[{i}]: {exc}", None
        if end <= start:
            return (f"{where}: reserved_slots[{i}] ends before it starts ({slot.get('start_at')} .. "
                    f"{slot.get('end_at')})"), None
        (canceled if slot.get("canceled_at") else live).append((start, end))
    last_end_s = max(end for _, end in live + canceled)
    machine = machines.get(machine_id)
    if machine is None:
        name, n = report.unknown_machines.get(machine_id, (str(reservable.get("name", "")), 0))
        report.unknown_machines[machine_id] = (name, n + 1)
        return None, last_end_s
    windows = _windows(live)
    overlap = [(s, e) for s, e in (windows or _windows(canceled))
               if (since is None or e > since) and (until is None or s < until)]
    if not overlap:
        report.outside_window += 1
        return None, last_end_s
    member = members.get(user_id) if user_id is not None else DELETED_USER_MEMBER
    if user_id is None:
        report.deleted_users += 1
        report.deleted_user_sessions += len(windows)
    elif member is None:
        member = f"{UNKNOWN_USER_PREFIX}{user_id}"
        name, n = report.unknown_users.get(user_id, (str(user.get("full_name", "")), 0))
        report.unknown_users[user_id] = (name, n + len(windows or [0]))
    if not windows:  # every slot cancelled: the booking is withdrawn
        whole = _windows(canceled)
        report.canceled.append(Session(machine, member, whole[0][0], whole[-1][1], "fabmanager", str(rid)))
        return None, last_end_s
    sessions.extend(Session(machine, member, s, e, "fabmanager", str(rid)) for s, e in windows)
    return None, last_end_s
