"""Expected failures of `analyze`, `simulate` and `demo`, run as real processes: a non-zero exit,
one clear line (what, where, what to do) and no traceback; and the frictions of a first hour."""

from __future__ import annotations

import socket

from devices.site import example_site_path
from tests.cli_process import assert_clear_failure, run_wattelier
from tests.conftest import free_port

T0 = 1_773_133_200.0  # 2026-03-10T09:00:00Z, 10:00 in Paris


def test_analyze_with_influxdb_down_says_so_in_one_line(tmp_path):
    port = free_port()  # nothing listens there
    done = run_wattelier("analyze", "--influx-url", f"http://127.0.0.1:{port}", "--influx-api", "v1")
    assert_clear_failure(done, "cannot read InfluxDB", f"127.0.0.1:{port}", "Connection refused",
                         "start it", exit_code=2)


def test_analyze_against_a_server_that_is_not_influxdb_says_so_in_one_line(tmp_path):
    """Something listens but does not answer HTTP (a wrong port): one line, no traceback."""
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer_garbage():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"garbage\r\n\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        done = run_wattelier("analyze", "--influx-url", f"http://127.0.0.1:{port}", "--influx-api", "v1")
    finally:
        server.close()
    assert_clear_failure(done, "cannot read InfluxDB", f"127.0.0.1:{port}", "not an HTTP answer (garbage)",
                         "is it InfluxDB?", exit_code=2)


def test_simulate_with_a_port_in_use_names_the_port(tmp_path):
    port = free_port()
    site = tmp_path / "site.toml"
    site.write_text(example_site_path().read_text().replace("port = 15020", f"port = {port}"))
    with socket.create_server(("127.0.0.1", port)):
        done = run_wattelier("simulate", "--config", str(site), "--seconds", "1")
    assert_clear_failure(done, f"cannot listen on 127.0.0.1:{port}", "the port is in use",
                         "give the site file another port", exit_code=2)


def test_demo_out_naming_a_file_is_refused(tmp_path):
    existing = tmp_path / "results"
    existing.write_text("keep me")
    done = run_wattelier("demo", "--out", str(existing))
    assert_clear_failure(done, f"--out {existing}: is a file, not a folder", exit_code=2)
    assert existing.read_text() == "keep me"


def _power_csv(tmp_path):
    lines = ["time,machine,power_w"]
    for k in range(61):
        power = 2000.0 if 12 <= k <= 30 else 100.0
        lines.append(f"{T0 + 10 * k},laser-1,{power}")
    path = tmp_path / "power.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_analyze_sessions_file_gets_the_checks_of_sessions_import(tmp_path):
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("machine,member,start,end\n"
                        "laser-1,nobody,2026-03-10T09:00:00Z,2026-03-10T09:10:00Z\n")
    done = run_wattelier("analyze", "--power", str(_power_csv(tmp_path)), "--sessions", str(sessions),
                         "--config", str(example_site_path()))
    text = assert_clear_failure(done, f"{sessions}:2", "'nobody' is not a member of the site",
                                exit_code=2, one_line=False)
    assert "refusing to analyse" in text


def test_analyze_sessions_double_booking_is_a_warning_and_local_times_are_the_sites(tmp_path):
    sessions = tmp_path / "sessions.csv"
    sessions.write_text("machine,member,start,end\n"  # local times: Europe/Paris, UTC+1 in March
                        "laser-1,amelie,2026-03-10T10:00:00,2026-03-10T10:06:00\n"
                        "laser-1,bastien,2026-03-10T10:04:00,2026-03-10T10:10:00\n")
    done = run_wattelier("analyze", "--power", str(_power_csv(tmp_path)), "--sessions", str(sessions),
                         "--config", str(example_site_path()), "--from", "2026-03-10T10:00",
                         "--to", "2026-03-10T10:10")
    assert done.returncode == 0, done.output
    assert "Traceback" not in done.output
    assert "laser-1 is booked twice at once, by amelie and bastien" in done.stderr
    assert "2026-03-10T09:00:00Z .. 2026-03-10T09:10:00Z" in done.stdout  # 10:00 in Paris
    assert "amelie" in done.stdout and "bastien" in done.stdout
    assert "-0.000" not in done.stdout
    assert "coverage" in done.stdout and "%" in done.stdout


def test_analyze_without_config_uses_the_example_site(tmp_path):
    journal = tmp_path / "empty.sqlite"
    done = run_wattelier("simulate", "--backfill", "0.05", "--journal", str(journal))
    assert done.returncode == 0, done.output
    done = run_wattelier("analyze", "--journal", str(journal))
    assert done.returncode == 0, done.output
    assert "router-1" in done.stdout and "kgCO2e" in done.stdout


def test_stored_analysis_of_a_year_without_a_factor_says_so_in_one_line(tmp_path):
    from storage.journal import Journal

    journal = tmp_path / "j.sqlite"
    Journal(journal).close()
    done = run_wattelier("analyze", "--journal", str(journal), "--from", "2019-06-01T00:00",
                         "--to", "2019-06-02T00:00")
    assert_clear_failure(done, "cannot analyse", "no vintage for 2019", "--emission-factor", exit_code=2)
