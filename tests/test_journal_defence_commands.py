"""The journal's defences as the commands show them, each run as a real process (issue 14), the
ones that need the callers to use them: `sessions list` refusing a damaged journal (bookings
read through storage.journal_schema.connect_readonly), a second collector refused naming the
first (collect takes the lock), a disk that fills under a running collector said once, and a
target that never answered shown by `wattelier journal` (the forwarder notes it)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


from storage.journal import Journal
from storage.points import Point
from devices.site import example_site_path
from tests.cli_process import ROOT, assert_clear_failure, run_wattelier

EXAMPLE = str(example_site_path())
SECRETS = {"WATTELIER_MILL1_PASSWORD": "not-used"}  # the example's mill asks for one


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _journal(path: Path, n: int = 50) -> Path:
    journal = Journal(path)
    journal.put([Point("meter", {"site": "s", "meter": "m", "machine": "m"}, {"power_w": 1.0},
                       1_700_000_000 * 10**9 + i * 10**9) for i in range(n)])
    journal.close()
    return path


def _damaged(tmp_path: Path) -> Path:
    data = bytearray(_journal(tmp_path / "good.sqlite").read_bytes())
    data[2 * 4096:3 * 4096] = bytes(4096)
    path = tmp_path / "damaged.sqlite"
    path.write_bytes(bytes(data))
    return path


def _collector(journal: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **SECRETS}
    env.pop("JOURNAL_STREAM", None)
    return subprocess.Popen([sys.executable, "-m", "wattelier.cli", "collect", "--config", EXAMPLE,
                             "--journal", str(journal), *extra], cwd=journal.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def _wait_for(check, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_sessions_list_refuses_a_damaged_journal_and_leaves_it_as_it_was(tmp_path):
    path = _damaged(tmp_path)
    before = _sha(path)
    for args in (("sessions", "list", "--config", EXAMPLE, "--journal", str(path)),):
        done = run_wattelier(*args, cwd=tmp_path)
        assert_clear_failure(done, str(path), "damaged", "--journal NEW.sqlite", exit_code=2)
        assert _sha(path) == before, args


def test_a_second_collector_is_refused_naming_the_first(tmp_path):
    path = tmp_path / "j.sqlite"
    first = _collector(path)
    try:
        lock = Path(f"{path}.lock")
        _wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), "the first collector's lock")
        done = run_wattelier("collect", "--config", EXAMPLE, "--journal", str(path), cwd=tmp_path, env=SECRETS)
        assert_clear_failure(done, f"another collector (PID {first.pid})", str(path), exit_code=2)
        # readers go on while it runs
        shown = run_wattelier("journal", "--journal", str(path))
        assert shown.returncode == 0, shown.output
    finally:
        code, err = _stop(first)
    assert code == 0 and "Traceback" not in err, err


def test_a_disk_that_fills_under_the_collector_is_said_once(tmp_path):
    """A real tiny file system (tmpfs, 2 MiB) filled after the collector started: its last
    points at stop cannot be written; the log says 'disk full at PATH' once, no traceback, no
    'cannot rollback', and the collector stops cleanly."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        path = disk / "j.sqlite"
        proc = _collector(path)
        _wait_for(lambda: Path(f"{path}.lock").exists() and Path(f"{path}-wal").exists(), "the journal")
        time.sleep(1.0)
        filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(filler, b"\1" * 4096):
                pass
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(filler)
        code, err = _stop(proc)
        assert code == 0, err
        assert "Traceback" not in err and "rollback" not in err, err
        assert err.count(f"disk full at {path}") == 1, err
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_journal_shows_a_target_that_never_accepted_a_write(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = _journal(tmp_path / "j.sqlite", n=426)
    proc = _collector(path, "--influx-url", f"http://127.0.0.1:{port}", "--influx-api", "v1")
    try:
        _wait_for(lambda: "not accepting writes" in run_wattelier("journal", "--journal", str(path)).stdout
                  or proc.poll() is not None or _noted(path), "the forwarder's first error")
    finally:
        _stop(proc)
    done = run_wattelier("journal", "--journal", str(path))
    text = " ".join(done.stdout.split())
    assert f"http://127.0.0.1:{port} has not accepted a write yet: backlog" in text, done.stdout
    assert "last error:" in text and "refused" in text, done.stdout


def _noted(path: Path) -> bool:
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM forward_target WHERE last_error IS NOT NULL").fetchone()[0] > 0
    except sqlite3.Error:
        return False
    finally:
        db.close()
