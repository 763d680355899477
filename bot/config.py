"""Settings: a TOML file plus SCHOOLBOT_* environment overrides, validated once at start.

The model itself (every key, type, default and rule) is handlers/config.py.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from handlers.config import (
    BackupSettings,
    DeliverySettings,
    LogSettings,
    MediaSettings,
    OutboxSettings,
    PauseWindow,
    PeriodicDeadline,
    RankingSettings,
    RegistrationSettings,
    ScheduleSettings,
    Settings,
    TelegramSettings,
    ZaloSettings,
)
from storage.errors import ConfigError

log = logging.getLogger("schoolbot.config")

__all__ = [
    "BackupSettings",
    "DeliverySettings",
    "LogSettings",
    "MediaSettings",
    "OutboxSettings",
    "PauseWindow",
    "PeriodicDeadline",
    "RankingSettings",
    "RegistrationSettings",
    "ScheduleSettings",
    "Settings",
    "TelegramSettings",
    "ZaloSettings",
    "load_settings",
]


def _is_secret(path: str) -> bool:
    return any(word in path for word in ("token", "secret", "password"))


def _describe(exc: ValidationError, values: dict[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(settings)"
        given = err.get("input")
        if isinstance(given, dict):
            shown = ""  # a whole-table rule: the message names the keys
        elif _is_secret(path):
            shown = " = ***"
        else:
            shown = f" = {given!r}"
        lines.append(f"{path}{shown}: {err['msg']}")
    if len(lines) == 1:
        return f"invalid configuration: {lines[0]}"
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read `path` (if it exists), apply the environment, validate; raise ConfigError on any fault."""
    data: dict[str, Any] = {}
    if path is not None and Path(path).exists():
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    data.update(overrides)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data)) from None
    if settings.zalo.deliver_to is not None:
        log.warning(
            "zalo.deliver_to is deprecated: write [delivery] prefer = %r instead%s",
            settings.zalo.deliver_to,
            " (delivery.prefer is set and wins)" if "prefer" in settings.delivery.model_fields_set else "",
        )
    return settings
