"""Settings: a TOML file plus SCHOOLBOT_* environment overrides, validated once at start."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from storage.errors import ConfigError

SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class TelegramSettings(BaseModel):
    """How to reach Telegram: the cloud Bot API or a local Bot API server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretStr = SecretStr("")
    username: str = ""
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    listen: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    url_path: str = "telegram"
    secret_token: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _webhook_needs(self) -> TelegramSettings:
        if self.mode == "webhook":
            if not self.webhook_url.startswith("https://"):
                raise ValueError("webhook mode needs telegram.webhook_url starting with https://")
            if not SECRET_TOKEN_RE.match(self.secret_token.get_secret_value()):
                raise ValueError(
                    "webhook mode needs telegram.secret_token: 1-256 characters of A-Z a-z 0-9 _ -"
                )
        return self


class RegistrationSettings(BaseModel):
    """Invite codes and the throttle on wrong ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    invite_days: int = Field(default=14, ge=1, le=365)
    max_wrong_codes: int = Field(default=5, ge=1, le=100)
    wrong_code_window_minutes: int = Field(default=15, ge=1, le=1440)


class MediaSettings(BaseModel):
    """Files: how large a file the bot downloads (Telegram's cloud Bot API serves at most 20 MB)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_download_mb: float = Field(default=20, gt=0, le=2000)


class PeriodicDeadline(BaseModel):
    """A named periodic report deadline, e.g. the six-month report due on 20 June."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[a-z0-9_]{1,16}$")
    name: str = Field(min_length=1, max_length=100)
    due: str = Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$", description="MM-DD")


class ScheduleSettings(BaseModel):
    """Deadlines: the monthly article's day and the periodic reports' dates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    monthly_deadline_day: int = Field(default=15, ge=1, le=31)
    periodic: tuple[PeriodicDeadline, ...] = (
        PeriodicDeadline(key="6thang", name="Báo cáo 6 tháng", due="06-20"),
        PeriodicDeadline(key="nam", name="Báo cáo năm", due="12-01"),
    )

    @field_validator("periodic")
    @classmethod
    def _unique_keys(cls, value: tuple[PeriodicDeadline, ...]) -> tuple[PeriodicDeadline, ...]:
        keys = [p.key for p in value]
        if len(keys) != len(set(keys)):
            raise ValueError("each periodic deadline needs its own key")
        return value


class Settings(BaseSettings):
    """Every setting schoolbot reads; see config.example.toml for each key."""

    model_config = SettingsConfigDict(
        env_prefix="SCHOOLBOT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database_url: str = "sqlite:///data/schoolbot.db"
    media_dir: Path = Path("data/media")
    locale: Literal["vi", "en"] = "vi"
    timezone: str = "Asia/Ho_Chi_Minh"
    telegram: TelegramSettings = TelegramSettings()
    registration: RegistrationSettings = RegistrationSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    media: MediaSettings = MediaSettings()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone such as Asia/Ho_Chi_Minh") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if not value.startswith(
            ("sqlite://", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://")
        ):
            raise ValueError("must be an sqlite:/// or postgresql:// URL")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (passed as init values); nested keys merge.
        return (env_settings, init_settings)


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
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data)) from None
