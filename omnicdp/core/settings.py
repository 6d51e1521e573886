"""Typed settings from command-line flags and ``CDP_*`` environment variables.

Each service declares one frozen dataclass whose fields carry ``setting(...)`` metadata;
``add_arguments`` turns it into argparse flags and ``load`` builds it with the precedence
flag > environment > default, validating as it goes. ``describe`` prints it without secrets.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}


def setting(default: Any, env: str, help: str, secret: bool = False) -> Any:
    """Declare a settings field, its environment variable and its help text."""
    return dataclasses.field(default=default, metadata={"env": env, "help": help, "secret": secret})


def _flag(field: dataclasses.Field) -> str:
    return "--" + field.name.replace("_", "-")


def _convert(field: dataclasses.Field, raw: Any) -> Any:
    kind = _TYPES[field.type] if isinstance(field.type, str) else field.type
    if raw is None or isinstance(raw, kind):
        return raw
    try:
        if kind is bool:
            return str(raw).strip().lower() in {"1", "true", "yes", "on"}
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise SystemExit(
            f"invalid value {raw!r} for {_flag(field)} / {field.metadata['env']}: "
            f"expected {kind.__name__}"
        ) from exc


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    for field in dataclasses.fields(cls):
        env = field.metadata["env"]
        parser.add_argument(
            _flag(field), dest=field.name, default=None,
            help=f"{field.metadata['help']} (env {env}; default: {field.default or 'none'})",
        )


def load(cls: type[T], args: argparse.Namespace | None = None,
         environ: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build settings: explicit overrides, then flags, then environment, then defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        raw = overrides.get(field.name)
        if raw is None and args is not None:
            raw = getattr(args, field.name, None)
        if raw is None:
            raw = environ.get(field.metadata["env"]) or None
        values[field.name] = field.default if raw is None else _convert(field, raw)
    settings = cls(**values)
    validate = getattr(settings, "validate", None)
    if validate is not None:
        validate()
    return settings


def describe(settings: Any) -> str:
    """One line per setting, secrets masked, for the start-up log."""
    parts = []
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if field.metadata.get("secret") and value:
            value = "***"
        parts.append(f"{field.name}={value}")
    return " ".join(parts)
