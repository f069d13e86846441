"""Reading the device knowledge files (meter models, node maps, emission factor tables): TOML
validated by a pydantic model, every mistake named with the file and the key path."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


def shown(value: object, limit: int = 60) -> str:
    """`repr(value)` for a message, cut to about `limit` characters (a file may hold a huge
    value)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return text[:limit] + "..." + size


def validation_text(exc: ValidationError) -> str:
    """pydantic's errors in one line: ``key.path: message; ...``."""
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def read_data_file(path: Path, model: type[ModelT], error: type[Exception], what: str) -> ModelT:
    """The file's TOML validated by `model`; `error` (the caller's error type) for a file that
    cannot be read, is not UTF-8 TOML, or does not validate, naming `path` and `what` it is."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{path}: {validation_text(exc)}") from exc
