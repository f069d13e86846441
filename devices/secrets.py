"""Secrets (passwords, tokens) never live in the site file: environment first, then a secrets file.

The secrets file is TOML, named by the site's `secrets_file` (relative to the site file's folder),
readable by its owner only; keys are dotted paths, e.g.::

    influx_token = "..."
    [controllers.mill-1-cnc]
    password = "..."

One set of rules (`load_secrets`, `secrets_problem`) serves `wattelier check`, the start of
`wattelier collect` and every reader: a file that others may read, that is not TOML, or whose
secret is not a string is refused.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from devices.site import BOM, Site


class SecretsError(Exception):
    """The secrets file cannot be used."""


# The top-level secrets the commands read from the file (besides controllers.NAME.password).
KNOWN_KEYS = ("influx_token", "fabmanager_token", "grafana_token")


def secrets_path(site: Site) -> Path | None:
    if not site.secrets_file:
        return None
    path = Path(site.secrets_file).expanduser()
    return path if path.is_absolute() else site.folder / path


def load_secrets(path: Path) -> dict[str, Any]:
    """The tables of a secrets file. Raises SecretsError when others may read it (the one rule
    `check`, `collect` and every reader apply), or it cannot be read as TOML."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SecretsError(f"{path}: cannot read secrets file: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretsError(f"{path}: secrets file readable by others (mode {stat.filemode(mode)}); "
                           f"run `chmod 600 {path}`")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretsError(f"{path}: cannot read secrets file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SecretsError(f"{path}: secrets file is not UTF-8 text ({exc.reason} at byte "
                           f"{exc.start})") from exc
    if text.startswith(BOM):
        raise SecretsError(f"{path}: secrets file starts with a UTF-8 byte order mark; save it "
                           "as UTF-8 without BOM")
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise SecretsError(f"{path}: secrets file is not valid TOML: {exc}") from exc


def _lookup(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def secrets_problem(site: Site) -> str | None:
    """Why the site's secrets file cannot be used (the rules of `read_secret`, applied whether
    or not a secret is wanted from it now), None when it can or when there is none."""
    path = secrets_path(site)
    if path is None or not path.exists():
        return None
    try:
        data = load_secrets(path)
    except SecretsError as exc:
        return str(exc)
    wanted = list(KNOWN_KEYS) + [f"controllers.{name}.password" for name in site.controllers]
    for key in wanted:
        value = _lookup(data, key)
        if value is not None and not isinstance(value, str):
            return f"{path}: {key} must be a string (in quotes), got a {type(value).__name__}"
    return None


def read_secret(site: Site, env_name: str | None, key: str) -> str | None:
    """The secret from the environment variable `env_name`, else `key` (dotted) of the secrets
    file, else None. Raises SecretsError for a secrets file that cannot be used."""
    if env_name and os.environ.get(env_name):
        return os.environ[env_name]
    path = secrets_path(site)
    if path is None or not path.exists():
        return None
    value = _lookup(load_secrets(path), key)
    if value is not None and not isinstance(value, str):
        raise SecretsError(f"{path}: {key} must be a string (in quotes), got a {type(value).__name__}")
    return value
