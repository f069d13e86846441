"""Secrets (passwords, tokens) never live in the site file: environment first, then a secrets file.

The secrets file is TOML, named by the site's `secrets_file` (relative to the site file's folder),
readable by its owner only; keys are dotted paths, e.g.::

    influx_token = "..."
    [controllers.mill-1-cnc]
    password = "..."
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from devices.site import Site


class SecretsError(Exception):
    """The secrets file cannot be used."""


def secrets_path(site: Site) -> Path | None:
    if not site.secrets_file:
        return None
    path = Path(site.secrets_file).expanduser()
    return path if path.is_absolute() else site.folder / path


def read_secret(site: Site, env_name: str | None, key: str) -> str | None:
    """The secret from the environment variable `env_name`, else `key` (dotted) of the secrets
    file, else None."""
    if env_name and os.environ.get(env_name):
        return os.environ[env_name]
    path = secrets_path(site)
    if path is None or not path.exists():
        return None
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretsError(f"{path}: secrets file readable by others (mode {stat.filemode(mode)}); "
                           f"run `chmod 600 {path}`")
    try:
        data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SecretsError(f"{path}: cannot read secrets file: {exc}") from exc
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return str(data)
