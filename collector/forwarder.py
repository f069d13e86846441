"""The forwarder: ships the journal to InfluxDB, oldest first, and never loses a good point.

Loop: read a batch of unsent points (in journal order, so oldest first), write it as line
protocol, and advance the target's cursor in the journal once the server accepted it (or the
refused lines are in quarantine). The next batch is read while the current one is in flight.

- Network errors, 5xx, 429, 408: wait and send the same batch again, with exponential backoff
  (doubling from `backoff_initial_s` up to `backoff_max_s`) and jitter (a random share of up to
  half of each wait), never sooner than the server's Retry-After. The journal keeps collecting
  meanwhile; on recovery the backlog drains oldest first while new points keep arriving.
- 400 (a batch the server refuses in part): the batch is split in halves, recursively, to
  isolate the refused lines; these go to the quarantine with the server's message and every
  other line is written. A good point is never dropped because of a bad neighbour.
- 413: split the same way (a single line over the limit is quarantined).
- 404 on the v1 API: the database is created (and the user told), then the batch resent.

Sending a batch again is harmless: a point has its edge timestamp, so the server overwrites
it with the same values (docs/design.md, "Edge timestamps"). A crash between a write and the
cursor update therefore costs one repeated batch, never a lost or a doubled point.

Stopping is bounded whatever the server does. Once `stop` is set the forwarder keeps sending
for at most `drain_timeout_s`; then the request in flight, if any, is cut (its socket is shut
down: InfluxTarget.abort) and the forwarder returns within ABORT_GRACE_S more, so

    forwarder stop <= drain_timeout_s + ABORT_GRACE_S (1 s)

even against a black-holed server (one that accepts the connection and never answers), where
a request would otherwise wait for its `timeout_s`. A wait for a retry that would end after
the deadline is not waited for at all. Every request runs in a daemon thread of its own, not in
the event loop's executor: a request that cannot be cut (a connection still being opened, a
slow name lookup) is left behind and does not hold up the exit, which joins executor threads.
What was not accepted stays in the journal (the cursor moves only on an accepted write) and is
sent at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from storage.errors import (InfluxAuthError, InfluxError, InfluxNotFound, InfluxRejected,
                            InfluxTooLarge, InfluxUnavailable)
from storage.forward_store import Batch, ForwardStore, record_target
from storage.influxdb import InfluxTarget
from storage.journal_schema import JournalError

log = logging.getLogger("wattelier.collector.forwarder")
ABORT_GRACE_S = 1.0  # after the drain deadline: how long a cut request may take to return [s]


@dataclass
class ForwarderStats:
    forwarded: int = 0
    quarantined: int = 0
    batches: int = 0
    requests: int = 0
    retries: int = 0
    requests_cut: int = 0  # requests in flight at the drain deadline, cut
    requests_left_behind: int = 0  # of those, still not returned ABORT_GRACE_S later
    up: bool | None = None
    last_error: str = ""
    errors_by_kind: dict[str, int] = field(default_factory=dict)


class _Stopped(Exception):
    """The drain deadline passed (while waiting to retry, or with a request in flight)."""


class Forwarder:
    """Forward one journal to one InfluxDB target.

    batch_points: points per write request (InfluxDB advises 5 000 to 10 000).
    backoff_initial_s, backoff_max_s: retry waits double from the first up to the cap.
    idle_s: how long to wait for new points when the backlog is empty.
    """

    def __init__(self, journal_path: str | Path, target: InfluxTarget, *, batch_points: int = 10_000,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 60.0, idle_s: float = 0.5,
                 rng: random.Random | None = None) -> None:
        self.journal_path = Path(journal_path)
        self.target = target
        self.batch_points = batch_points
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.idle_s = idle_s
        self.rng = rng or random.Random()
        self.stats = ForwarderStats()
        self.store: ForwardStore | None = None
        self._failures = 0
        self._down_since: float | None = None
        self._deadline: float | None = None  # monotonic time the drain ends, once stopping
        self._stopping = asyncio.Event()  # set when the drain starts
        self._expired = asyncio.Event()  # set when the drain deadline has passed
        self._wake = asyncio.Event()

    # -- health and waiting ----------------------------------------------------------------
    def _failed(self, error: InfluxError) -> None:
        self.stats.errors_by_kind[error.kind] = self.stats.errors_by_kind.get(error.kind, 0) + 1
        self.stats.last_error = str(error)
        self._failures += 1
        if self.stats.up is not False:
            self.stats.up = False
            self._down_since = time.monotonic()
            hint = ""
            if isinstance(error, InfluxAuthError):
                hint = " (check WATTELIER_INFLUX_TOKEN and the user's write permission)"
            log.warning("InfluxDB %s is not accepting writes: %s%s; points stay in the journal "
                        "and are sent when it is back", self.target.settings.url, error, hint)
            self._note_target(error=str(error))

    def _succeeded(self) -> None:
        self._failures = 0
        if self.stats.up is False:
            down_s = time.monotonic() - (self._down_since or time.monotonic())
            backlog = self.store.backlog() if self.store else 0
            log.warning("InfluxDB %s is back after %.1f s; sending the backlog of %d points",
                        self.target.settings.url, down_s, backlog)
        if self.stats.up is not True:
            self._note_target(accepted=True)
        self.stats.up = True

    def _note_target(self, error: str | None = None, accepted: bool = False) -> None:
        """Note the target in the journal (configured, its last error, back), for `wattelier
        journal`; rare (at start and when its state changes), and never stops forwarding."""
        try:
            record_target(self.journal_path, self.target.settings.url, error=error, accepted=accepted)
        except JournalError as exc:
            log.debug("forwarder: could not note the target in the journal: %s", exc)

    def backoff_s(self, failures: int, retry_after_s: float | None = None) -> float:
        """Wait before the next attempt after `failures` failures in a row."""
        base = min(self.backoff_max_s, self.backoff_initial_s * 2 ** max(0, failures - 1))
        wait = base * (1.0 - 0.5 * self.rng.random())  # jitter: up to half of the wait
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, 3600.0))
        return wait

    async def _sleep(self, seconds: float, stop: asyncio.Event) -> None:
        """Wait `seconds` before a retry; raise _Stopped at once when the drain deadline is
        known to come first, or when it passes meanwhile."""
        end = time.monotonic() + seconds
        while True:
            if self._expired.is_set() or (self._deadline is not None and end >= self._deadline):
                raise _Stopped
            left = end - time.monotonic()
            if left <= 0:
                return
            # Before the stop, wake at the stop to check the wait against the deadline.
            event = self._expired if self._deadline is not None else self._stopping
            try:
                await asyncio.wait_for(event.wait(), timeout=left)
            except asyncio.TimeoutError:
                return

    async def _call(self, blocking: Callable, *args):
        """Run a blocking call of the target (a request) in a daemon thread and return its
        result. At the drain deadline the request is cut (InfluxTarget.abort), given
        ABORT_GRACE_S to return, and _Stopped is raised; a thread that still has not returned
        is left behind (a daemon: it does not hold up the exit)."""
        if self._expired.is_set():
            raise _Stopped
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future = loop.create_future()
        # Read an error nobody awaits any more (a cut request), so asyncio does not report it.
        outcome.add_done_callback(lambda future: future.cancelled() or future.exception())

        def settle(result, error: Exception | None) -> None:
            if not outcome.done():
                if error is None:
                    outcome.set_result(result)
                else:
                    outcome.set_exception(error)

        def work() -> None:
            try:
                done = (blocking(*args), None)
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                done = (None, exc)
            try:
                loop.call_soon_threadsafe(settle, *done)
            except RuntimeError:
                pass  # the event loop is closed: nobody waits for this request any more

        threading.Thread(target=work, name="influx-request", daemon=True).start()
        expired = asyncio.ensure_future(self._expired.wait())
        try:
            await asyncio.wait([outcome, expired], return_when=asyncio.FIRST_COMPLETED)
        finally:
            expired.cancel()
        if outcome.done():
            return outcome.result()  # an answer that came with the deadline still counts
        self.stats.requests_cut += 1
        sockets = self.target.abort()
        log.info("drain timeout: cut the request in flight to InfluxDB %s (%d connection(s))",
                 self.target.settings.url, sockets)
        try:
            await asyncio.wait_for(asyncio.shield(outcome), ABORT_GRACE_S)
        except asyncio.TimeoutError:
            self.stats.requests_left_behind += 1
        except Exception:  # noqa: BLE001, S110 - the cut request's own error: stopping anyway
            pass
        raise _Stopped

    def wake(self) -> None:
        """New points are in the journal: do not wait for the idle period to end."""
        self._wake.set()

    # -- sending ---------------------------------------------------------------------------
    async def _connect(self, stop: asyncio.Event) -> None:
        """Settle the API (auto) and the target's database, retrying while unreachable."""
        while True:
            try:
                await self._call(self.target.resolve_api)
                if self.target.api == "v1":
                    await self._call(self.target.ensure_database)
                break
            except InfluxError as exc:
                if isinstance(exc, InfluxAuthError) and self.target.api == "v1":
                    # Not allowed to list or create databases: writing may still be allowed.
                    log.warning("cannot check InfluxDB database %r: %s", self.target.settings.database, exc)
                    break
                self._failed(exc)
                await self._sleep(self.backoff_s(self._failures, getattr(exc, "retry_after_s", None)), stop)
        self.store = await asyncio.to_thread(ForwardStore, self.journal_path, self.target.target_key)

    async def _write(self, lines: list[str], body: bytes | None = None) -> None:
        self.stats.requests += 1
        if body is None:
            await self._call(self.target.write_lines, lines)
        else:
            await self._call(self.target.write_body, body)

    def _prepare(self, after_id: int) -> Batch:
        """Read the next batch and encode its body (runs in a thread, ahead of sending)."""
        batch = self.store.read_batch(after_id, self.batch_points)
        if batch.lines:
            batch.body = self.target.encode(batch.lines)
        return batch

    async def send(self, batch: Batch, stop: asyncio.Event) -> list[tuple[int, str, str]]:
        """Write a batch, isolating refused lines; return the quarantined (id, line, error).

        Retries while the server is unavailable; raises _Stopped when the drain deadline passes.
        """
        quarantined: list[tuple[int, str, str]] = []
        work: list[tuple[list[int], list[str]]] = [(batch.point_ids, batch.lines)] if batch.lines else []
        created_database = False
        whole = batch.body
        while work:
            ids, lines = work[0]
            try:
                await self._write(lines, whole if len(lines) == len(batch.lines) else None)
            except (InfluxRejected, InfluxTooLarge) as exc:
                self._succeeded()  # the server answers
                work.pop(0)
                if len(lines) == 1:
                    quarantined.append((ids[0], lines[0], str(exc)))
                    log.warning("InfluxDB refused a line, kept in quarantine: %s | %s", exc, lines[0][:300])
                else:
                    half = len(lines) // 2
                    work[:0] = [(ids[:half], lines[:half]), (ids[half:], lines[half:])]
                continue
            except InfluxNotFound as exc:
                if self.target.api == "v1" and not created_database:
                    created_database = True
                    try:
                        await self._call(self.target.ensure_database)
                        continue
                    except InfluxError as create_exc:
                        exc = create_exc  # noqa: PLW2901 - report why the database is missing
                self._failed(exc)
                self.stats.retries += 1
                await self._sleep(self.backoff_s(self._failures), stop)
                continue
            except InfluxError as exc:
                self._failed(exc)
                self.stats.retries += 1
                retry_after = exc.retry_after_s if isinstance(exc, InfluxUnavailable) else None
                await self._sleep(self.backoff_s(self._failures, retry_after), stop)
                continue
            self._succeeded()
            work.pop(0)
        return quarantined

    async def run(self, stop: asyncio.Event, drain_timeout_s: float = 10.0) -> None:
        """Forward until `stop` is set, then keep draining the backlog for at most
        drain_timeout_s (what is left stays in the journal for the next start)."""
        stop_watch = asyncio.create_task(self._arm_deadline(stop, drain_timeout_s))
        prefetch: asyncio.Task | None = None
        recording: asyncio.Task | None = None
        try:
            await asyncio.to_thread(self._note_target)  # configured: shown even if never reached
            await self._connect(stop)
            store = self.store
            after = await asyncio.to_thread(store.cursor)
            while True:
                if prefetch is not None:
                    batch, prefetch = await prefetch, None
                else:
                    batch = await asyncio.to_thread(self._prepare, after)
                if not batch.lines and not batch.unformattable:
                    if recording is not None:
                        await recording
                        recording = None
                    if stop.is_set():
                        break  # drained
                    self._wake.clear()
                    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                    await asyncio.wait(waiters, timeout=self.idle_s, return_when=asyncio.FIRST_COMPLETED)
                    for w in waiters:
                        w.cancel()
                    continue
                # Read and encode the next batch while this one is in flight.
                prefetch = asyncio.create_task(asyncio.to_thread(self._prepare, batch.last_id))
                quarantined = await self.send(batch, stop)
                if recording is not None:
                    await recording  # the cursor moves in order
                recording = asyncio.create_task(self._record(batch, quarantined))
                after = batch.last_id
                if self._expired.is_set():
                    break
        except _Stopped:
            pass
        finally:
            stop_watch.cancel()
            for pending in (prefetch, recording):
                if pending is not None:
                    try:
                        await pending
                    except Exception as exc:  # noqa: BLE001 - a failed cursor update is retried next start
                        log.error("forwarder: %r while stopping", exc)
            if self.store is not None:
                left = await asyncio.to_thread(self.store.backlog)
                if left:
                    log.warning("forwarder stopped with %d points not yet in InfluxDB; they stay in "
                                "the journal and are sent at the next start", left)
                self.store.close()
            else:
                log.warning("forwarder stopped before InfluxDB %s answered; every point stays in the "
                            "journal and is sent at the next start", self.target.settings.url)
            await asyncio.to_thread(self.target.close)

    async def _record(self, batch: Batch, quarantined: list[tuple[int, str, str]]) -> None:
        """Advance the cursor past a finished batch (overlaps with sending the next one).

        A journal that cannot take the write now (disk full, JournalError) is asked again
        after a backoff, said once, until it can; forwarding waits meanwhile, so the cursor
        still moves in order. At stop it is left: the batch is sent again at the next start,
        which is harmless (same points, same time stamps)."""
        failures = 0
        while True:
            try:
                await asyncio.to_thread(self.store.record, batch, quarantined)
                break
            except JournalError as exc:
                if self._stopping.is_set():
                    raise
                failures += 1
                if failures == 1:
                    log.warning("forwarder: cannot note in the journal what InfluxDB accepted (%s); "
                                "trying again, forwarding waits meanwhile", exc)
                await asyncio.sleep(self.backoff_s(failures))
        if failures:
            log.warning("forwarder: the journal takes its cursor again; forwarding goes on")
        self.stats.batches += 1
        self.stats.forwarded += len(batch) - len(quarantined)
        self.stats.quarantined += len(quarantined) + len(batch.unformattable)

    async def _arm_deadline(self, stop: asyncio.Event, drain_timeout_s: float) -> None:
        """Once `stop` is set, let the drain run drain_timeout_s, then mark it expired."""
        await stop.wait()
        self._deadline = time.monotonic() + drain_timeout_s
        self._stopping.set()
        await asyncio.sleep(drain_timeout_s)
        self._expired.set()
