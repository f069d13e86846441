"""Real database servers for tests and benchmarks, started on free loopback ports.

- `InfluxServer`: InfluxDB 1.6.7 from Debian (`influxd`), a temporary data folder, HTTP on a free
  port; the real v1 write API and InfluxQL.
- `VictoriaServer`: VictoriaMetrics from Debian (`victoria-metrics`), which accepts the v2 write
  API of influxdb-client (`/api/v2/write`); read back through `/api/v1/export`.

Both can be stopped and started again on the same port and data folder (outage tests).
"""

from __future__ import annotations

import abc
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from devices.sim.ports import free_port


class ServerNotInstalled(RuntimeError):
    pass


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServerNotInstalled(f"{name} is not installed; `bash scripts/test.sh` installs it "
                                 "(Debian package)")
    return path


class _Server(abc.ABC):
    name = "server"

    def __init__(self, workdir: Path | None = None) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"wattelier-{self.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The server's command line (its config written into self.workdir)."""

    @abc.abstractmethod
    def _ready(self) -> bool:
        """Whether the server answers yet."""

    def start(self, timeout_s: float = 30.0) -> "_Server":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.workdir)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            if self._ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "_Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, timeout_s: float = 2.0) -> tuple[int, bytes, dict]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout_s) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)


class InfluxServer(_Server):
    """InfluxDB 1.x (`influxd`) with everything in a temporary folder."""

    name = "influxdb"

    def __init__(self, workdir: Path | None = None, max_body_size: int = 25_000_000) -> None:
        super().__init__(workdir)
        self.rpc_port = free_port()
        self.max_body_size = max_body_size

    def _command(self) -> list[str]:
        d = self.workdir
        config = d / "influxdb.conf"
        config.write_text(f"""reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d / 'meta'}"
  logging-enabled = false
[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  query-log-enabled = false
  trace-logging-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = {self.max_body_size}
[continuous_queries]
  enabled = false
""", encoding="utf-8")
        return [_binary("influxd"), "run", "-config", str(config)]

    def _ready(self) -> bool:
        try:
            return self._get("/ping")[0] == 204
        except OSError:
            return False

    def query(self, q: str, db: str | None = None, epoch: str = "ns") -> list[dict]:
        """Run InfluxQL; return the list of series of the first statement's result."""
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(self.url + "/query", data=data, timeout=60) as resp:
            body = json.loads(resp.read())
        result = body["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        return result.get("series", [])

    def rows(self, q: str, db: str) -> list[dict]:
        """Rows of every series of a query, as dicts (tags merged in)."""
        out = []
        for series in self.query(q, db):
            tags = series.get("tags", {})
            for values in series["values"]:
                row = dict(zip(series["columns"], values))
                row.update(tags)
                out.append(row)
        return out


class VictoriaServer(_Server):
    """VictoriaMetrics single-node with a temporary storage folder."""

    name = "victoria-metrics"

    def _command(self) -> list[str]:
        return [_binary("victoria-metrics"), f"-storageDataPath={self.workdir / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}", "-retentionPeriod=100y",
                "-search.disableCache", "-loggerLevel=ERROR"]

    def _ready(self) -> bool:
        try:
            return self._get("/health")[0] == 200
        except OSError:
            return False

    def export(self, match: str = '{__name__!=""}') -> list[dict]:
        """Every stored sample, as VictoriaMetrics' JSON-lines export (after a forced flush)."""
        self._get("/internal/force_flush")
        query = urllib.parse.urlencode({"match[]": match})
        status, body, _ = self._get(f"/api/v1/export?{query}", timeout_s=60)
        if status != 200:
            raise RuntimeError(f"export failed: {status} {body[:200]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]
