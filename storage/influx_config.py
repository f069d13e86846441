"""The InfluxDB target of a site: its [influxdb] section, command-line overrides and the token.

Plain settings, kept apart from the adapter (storage.influxdb) and from
collector.runtime, so that a command that may not write to InfluxDB at all (analyze from the
journal, sessions) does not import influxdb-client nor the protocol libraries of the sources.

A secret never goes into the URL: the URL is logged at start, named in error messages and
stored in the journal as the forwarding target's name. Settings built from a URL with
credentials (`http://user:pass@host:8086`, InfluxDB 1.x's `?u=...&p=...`) are refused with a
ConfigError saying where the secret goes instead (`check_url`, with the site file's own rule,
devices.site.url_credentials_problem), whichever command builds them.
"""

from __future__ import annotations

import ipaddress

import urllib.parse
from dataclasses import dataclass

from devices.errors import ConfigError
from devices.secrets import read_secret
from devices.site import Site, url_credentials_problem

APIS = ("v1", "v2", "auto")
DEFAULT_TOKEN_ENV = "WATTELIER_INFLUX_TOKEN"


def check_url(url: str, where: str = "influxdb url") -> None:
    """Refuse a URL that carries credentials or is not a plain http(s) base address.

    where: what names the URL for the user (`--influx-url`, the site file's `[influxdb] url`).
    Raises ConfigError, in one line that never repeats a secret.
    """
    credentials = url_credentials_problem(url)
    if credentials:
        raise ConfigError(f"{where}: {credentials}")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{where} must look like http://host:8086, got {url!r}")
    if parsed.query or parsed.fragment:  # not repeated: it may hold a secret under another name
        raise ConfigError(f"{where} must be the server's base address, without ?query or #fragment, got "
                          f"'{parsed.scheme}://{parsed.netloc}{parsed.path}...'")


@dataclass(frozen=True)
class InfluxSettings:
    """Where and how to write.

    url: base URL (http or https).
    api: "v1", "v2" or "auto".
    database: v1 database (created when missing); retention_policy optional.
    bucket, org: v2 target.
    token: v2 token, or v1 password (with username); from the environment, never the site file.
    verify_tls: check the server's certificate (on by default).
    timeout_s: per request.
    """

    url: str
    api: str = "auto"
    database: str = "wattelier"
    retention_policy: str | None = None
    bucket: str = "wattelier"
    org: str = "wattelier"
    username: str | None = None
    token: str | None = None
    verify_tls: bool = True
    timeout_s: float = 30.0
    gzip_level: int = 1

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise ConfigError(f"influxdb api must be one of {APIS}, got {self.api!r}")
        check_url(self.url)

    @property
    def compressed(self) -> bool:
        """Whether write bodies are gzip-compressed: gzip_level > 0 and a server that is not on
        this machine (over loopback compression saves no time on the wire and costs both the
        forwarder and InfluxDB CPU: measured by benchmarks/forwarder.py)."""
        if not self.gzip_level:
            return False
        host = (urllib.parse.urlsplit(self.url).hostname or "").lower()
        if host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:  # a host name
            return True

    def target_key(self, api: str) -> str:
        """Identity of the destination: the journal keeps one forwarding cursor per target."""
        base = self.url.rstrip("/")
        if api == "v1":
            return f"{base} v1 db={self.database}" + (f" rp={self.retention_policy}" if self.retention_policy else "")
        return f"{base} v2 org={self.org} bucket={self.bucket}"

    def possible_target_keys(self) -> set[str]:
        """The target keys this destination may write under: its API's, or both while `auto`
        has not asked the server yet."""
        return {self.target_key(api) for api in (("v1", "v2") if self.api == "auto" else (self.api,))}


def influx_settings_for(site: Site, url: str | None = None, api: str | None = None,
                        database: str | None = None, bucket: str | None = None,
                        org: str | None = None) -> InfluxSettings | None:
    """The InfluxDB target: the site file's [influxdb] section, overridden by command-line
    values; None when neither names a URL. The token comes from the environment
    (WATTELIER_INFLUX_TOKEN or the section's token_env) or the secrets file (`influx_token`)."""
    section = site.influxdb
    if url is None and section is None:
        return None
    token_env = section.token_env if section else DEFAULT_TOKEN_ENV
    base = section.model_dump() if section else {}
    check_url(url or base["url"], "--influx-url" if url else "the site file's [influxdb] url")
    return InfluxSettings(
        url=url or base["url"],
        api=api or base.get("api", "auto"),
        database=database or base.get("database", "wattelier"),
        retention_policy=base.get("retention_policy"),
        bucket=bucket or base.get("bucket", "wattelier"),
        org=org or base.get("org", "wattelier"),
        username=base.get("username"),
        token=read_secret(site, token_env, "influx_token"),
        verify_tls=base.get("verify_tls", True),
        timeout_s=base.get("timeout_s", 30.0),
    )
