"""The settings model: every setting, its type, default and rule (bot/config.py loads it).

It lives here, below the runtime, so that handlers see the type of `Context.settings` without
importing bot/ (layers: bot -> handlers -> storage).
"""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import date
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from handlers.calendar import DAY_MINUTES, minutes_of, quiet_spans

# Which account of a person with several (Telegram and Zalo) a message goes to.
Prefer = Literal["last_used", "telegram", "zalo", "both"]

SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
ZALO_SECRET_RE = re.compile(r"^[\x21-\x7e]{8,256}$")  # Zalo: 8-256 characters, sent as a header

# A ranking weight: points per unit of one part of the communications score.
Weight = Annotated[float, Field(ge=0, le=100)]


class Section(BaseModel):
    """A part of the settings: unknown keys are refused and nothing changes once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Hold = Annotated[float, Field(ge=0.0, le=600.0)]  # a test's pause, in seconds (0: none)


class ChannelSettings(Section):
    """What every platform connection has: a token, polling or a webhook, how many chats at once."""

    section: ClassVar[str]  # the table's name in the config file
    secret_rule: ClassVar[re.Pattern[str]]
    secret_words: ClassVar[str]  # the rule in words, for the error message

    token: SecretStr = SecretStr("")
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    listen: str = "127.0.0.1"
    secret_token: SecretStr = SecretStr("")
    # Updates of this many chats are handled at once; each chat's own updates stay in order.
    concurrent_chats: int = Field(default=32, ge=1, le=512)
    # Requests to the platform's API at once, each on its own connection (bot/channels/base.py,
    # pool_limits); a request finding them all busy waits its turn.
    connections: int = Field(default=8, ge=1, le=256)
    # Tests only: seconds each stored update waits before it is handled (0: none), so that a test can
    # kill the process between storing an update and handling it.
    hold_seconds: Hold = 0.0
    # Tests only: seconds the writer's replies wait after the update's commit, before they are sent
    # (0: none), so that a test can kill the process between the two.
    hold_reply_seconds: Hold = 0.0

    @model_validator(mode="after")
    def _webhook_needs(self) -> Self:
        if self.mode == "webhook":
            if not self.webhook_url.startswith("https://"):
                raise ValueError(f"webhook mode needs {self.section}.webhook_url starting with https://")
            if not self.secret_rule.match(self.secret_token.get_secret_value()):
                raise ValueError(f"webhook mode needs {self.section}.secret_token: {self.secret_words}")
        return self


class TelegramSettings(ChannelSettings):
    """How to reach Telegram: the cloud Bot API or a local Bot API server."""

    section = "telegram"
    secret_rule = SECRET_TOKEN_RE
    secret_words = "1-256 characters of A-Z a-z 0-9 _ -"

    username: str = ""
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    port: int = Field(default=8443, ge=1, le=65535)
    url_path: str = "telegram"
    # Telegram's Bot API is about 200 ms from Vietnam, and a chat is in hand until its reply is there:
    # at 08:00 (200 principals, interactive_bench --rtt 0.2) 32 chats and 32 connections answered 98
    # updates a second, p50 2.0 s; 64 and 64 answer 191, p50 1.0 s (Telegram's one a second a chat).
    # 96 chats answered no more, and in the 150-principal burst met 280 429s to 64's 221 (32: 128).
    concurrent_chats: int = Field(default=64, ge=1, le=512)
    connections: int = Field(default=64, ge=1, le=256)


class ZaloSettings(ChannelSettings):
    """How to reach Zalo's Bot Platform (zalo-bot-api.md): token, host, polling or webhook, budget."""

    section = "zalo"
    secret_rule = ZALO_SECRET_RE
    secret_words = "8-256 visible ASCII characters, no spaces"

    base_url: str = "https://bot-api.zaloplatforms.com"
    port: int = Field(default=8444, ge=1, le=65535)
    url_path: str = "zalo"
    monthly_budget: int = Field(default=3000, ge=0, le=10_000_000)
    deliver_to: Prefer | None = None  # deprecated: [delivery] prefer

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local test server)")
        return value.rstrip("/")


class DeliverySettings(Section):
    """Where messages to a person with accounts on several channels go."""

    prefer: Prefer = "last_used"


class RegistrationSettings(Section):
    """Invite codes and the throttle on wrong ones."""

    invite_days: int = Field(default=14, ge=1, le=365)
    max_wrong_codes: int = Field(default=5, ge=1, le=100)
    wrong_code_window_minutes: int = Field(default=15, ge=1, le=1440)


class MediaSettings(Section):
    """Files: how large a file the bot downloads (Telegram's cloud Bot API serves at most 20 MB)."""

    max_download_mb: float = Field(default=20, gt=0, le=2000)


class PrivacySettings(Section):
    """Personal data: how long the photos and videos of a closed month are kept (0: for good)."""

    media_keep_months: int = Field(default=0, ge=0, le=600)


class PeriodicDeadline(Section):
    """A named periodic report deadline, e.g. the six-month report due on 20 June."""

    key: str = Field(pattern=r"^[a-z0-9_]{1,16}$")
    name: str = Field(min_length=1, max_length=100)
    due: str = Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$", description="MM-DD")


HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
MMDD = r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


class PauseWindow(Section):
    """Days with no reminders or escalations at all, e.g. the Tết holiday (both dates included)."""

    name: str = Field(min_length=1, max_length=100)
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> PauseWindow:
        if self.end < self.start:
            raise ValueError(f"pause {self.name!r} ends ({self.end}) before it starts ({self.start})")
        return self


class ScheduleSettings(Section):
    """Deadlines, the reminder ladders, escalation, quiet hours and pauses."""

    monthly_deadline_day: int = Field(default=15, ge=1, le=31)
    periodic: tuple[PeriodicDeadline, ...] = (
        PeriodicDeadline(key="6thang", name="Báo cáo 6 tháng", due="06-20"),
        PeriodicDeadline(key="nam", name="Báo cáo năm", due="12-01"),
    )
    reminder_at: str = Field(default="08:00", pattern=HHMM)
    article_reminders: tuple[int, ...] = (5, 2, 1, 0)
    report_reminders: tuple[int, ...] = (14, 7, 3, 1)
    escalate_after_days: tuple[int, ...] = (1,)
    escalate_at: str = Field(default="08:00", pattern=HHMM)
    quiet_hours: tuple[str, ...] = ("20:00-07:00",)
    pauses: tuple[PauseWindow, ...] = ()
    sweep_minutes: int = Field(default=5, ge=1, le=60)
    # The officers' daily digest: when, and on which weekdays (0 = Monday ... 6 = Sunday).
    digest_at: str = Field(default="16:30", pattern=HHMM)
    digest_days: tuple[int, ...] = (0, 1, 2, 3, 4)
    # The first day of semester II ("MM-DD"): each province sets it in its school calendar.
    semester_two_starts: str = Field(default="01-16", pattern=MMDD)

    @field_validator("periodic")
    @classmethod
    def _unique_keys(cls, value: tuple[PeriodicDeadline, ...]) -> tuple[PeriodicDeadline, ...]:
        keys = [p.key for p in value]
        if len(keys) != len(set(keys)):
            raise ValueError("each periodic deadline needs its own key")
        return value

    @field_validator("article_reminders", "report_reminders")
    @classmethod
    def _ladder(cls, value: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        most = 28 if info.field_name == "article_reminders" else 120
        if any(not 0 <= d <= most for d in value):
            raise ValueError(f"days before the deadline must be between 0 and {most}")
        if len(set(value)) != len(value):
            raise ValueError("each day may appear once")
        return tuple(sorted(value, reverse=True))

    @field_validator("escalate_after_days")
    @classmethod
    def _escalation(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= d <= 28 for d in value) or len(set(value)) != len(value):
            raise ValueError("days after the deadline must be distinct, between 1 and 28")
        return tuple(sorted(value))

    @field_validator("semester_two_starts")
    @classmethod
    def _semester_two(cls, value: str) -> str:
        month, day = (int(x) for x in value.split("-"))
        if month not in (12, 1, 2, 3):
            raise ValueError("semester II starts between December and March")
        if day > monthrange(2023, month)[1]:
            raise ValueError(f"{value} is not a day of the year")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for window in value:
            parts = window.split("-")
            if len(parts) != 2 or not all(re.match(HHMM, p) for p in parts):
                raise ValueError(f"{window!r} is not a window like 20:00-07:00")
            if parts[0] == parts[1]:
                raise ValueError(f"{window!r} starts and ends at the same time")
        # Overlapping windows are merged; together they must leave some time to send in.
        if sum(end - start for start, end in quiet_spans(value)) >= DAY_MINUTES:
            raise ValueError("the quiet hours cover the whole day: nothing could ever be sent")
        return value

    @model_validator(mode="after")
    def _sendable_hours(self) -> ScheduleSettings:
        spans = quiet_spans(self.quiet_hours)
        for name in ("reminder_at", "escalate_at"):
            moment = minutes_of(getattr(self, name))
            if any(start <= moment < end for start, end in spans):
                raise ValueError(
                    f"{name} = {getattr(self, name)} falls in the quiet hours {self.quiet_hours}"
                )
        return self


class OutboxSettings(Section):
    """How the outbox sends: rate limits per bot, retries, leases."""

    rate: float = Field(default=25.0, gt=0, le=1000)
    burst: int = Field(default=2, ge=1, le=100)
    per_chat_seconds: float = Field(default=1.0, ge=0, le=60)
    reply_burst: int = Field(default=3, ge=1, le=20)
    reply_wait_seconds: float = Field(default=30.0, ge=0, le=600)
    concurrency: int = Field(default=4, ge=1, le=64)
    batch: int = Field(default=50, ge=1, le=1000)
    lease_seconds: int = Field(default=60, ge=5, le=3600)
    sender_lease_seconds: int = Field(default=10, ge=3, le=3600)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_seconds: float = Field(default=2.0, gt=0, le=600)
    backoff_cap_seconds: float = Field(default=300.0, gt=0, le=86400)
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    janitor_seconds: int = Field(default=30, ge=1, le=3600)
    keep_days: int = Field(default=90, ge=1, le=3650)

    @model_validator(mode="after")
    def _claims_outlive_the_sender(self) -> OutboxSettings:
        if self.sender_lease_seconds > self.lease_seconds:
            raise ValueError(
                f"sender_lease_seconds = {self.sender_lease_seconds} must not exceed lease_seconds = "
                f"{self.lease_seconds}: the sender renews its claims as often as its own lease"
            )
        return self


class RankingSettings(Section):
    """The communications score of /ranking and the year's sheet: points per unit of each part."""

    article_on_time: Weight = 2
    article_approved: Weight = 1
    article_published: Weight = 1
    nomination: Weight = 2
    report_on_time: Weight = 3

    @model_validator(mode="after")
    def _something_counts(self) -> RankingSettings:
        if not any(getattr(self, name) for name in type(self).model_fields):
            raise ValueError("at least one ranking weight must be above 0")
        return self


class LogSettings(Section):
    """How the log is written: plain lines, or one JSON object a line with the ids it concerns."""

    format: Literal["plain", "json"] = "plain"


class BackupSettings(Section):
    """The nightly backup the clock makes (`schoolbot backup` by hand needs none of this)."""

    folder: str = ""  # empty: no nightly backup
    at: str = Field(default="02:00", pattern=HHMM)
    keep: int = Field(default=7, ge=1, le=365)


class IncidentSettings(Section):
    """How long an incident may wait: unacknowledged before the leaders hear of it, open before it is
    named in the leaders' /status and the digest."""

    ack_minutes: int = Field(default=30, ge=1, le=10080)
    open_days: int = Field(default=7, ge=1, le=365)


class Settings(BaseSettings):
    """Every setting schoolbot reads; see config.example.toml for each key."""

    model_config = SettingsConfigDict(
        env_prefix="SCHOOLBOT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    # Where everything is kept: the database, the files (and for how long), the nightly backup.
    database_url: str = "sqlite:///data/schoolbot.db"
    database_threads: int = Field(default=3, ge=1, le=64)
    media_dir: Path = Path("data/media")
    media: MediaSettings = MediaSettings()
    privacy: PrivacySettings = PrivacySettings()
    backup: BackupSettings = BackupSettings()

    # The platforms, and how messages reach people on them.
    telegram: TelegramSettings = TelegramSettings()
    zalo: ZaloSettings = ZaloSettings()
    delivery: DeliverySettings = DeliverySettings()
    outbox: OutboxSettings = OutboxSettings()

    # The office: its language and time zone, then its year (registration, deadlines and reminders,
    # incidents, the leaders' ranking).
    locale: Literal["vi", "en"] = "vi"
    timezone: str = "Asia/Ho_Chi_Minh"
    registration: RegistrationSettings = RegistrationSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    incident: IncidentSettings = IncidentSettings()
    ranking: RankingSettings = RankingSettings()

    # How the bot writes its log.
    log: LogSettings = LogSettings()

    @property
    def prefer(self) -> Prefer:
        """delivery.prefer; the deprecated zalo.deliver_to when only that one is given."""
        if "prefer" in self.delivery.model_fields_set or self.zalo.deliver_to is None:
            return self.delivery.prefer
        return self.zalo.deliver_to

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

    @model_validator(mode="after")
    def _one_port_each(self) -> Settings:
        tg, zl = self.telegram, self.zalo
        both_hooks = tg.mode == zl.mode == "webhook"
        if both_hooks and tg.port == zl.port and tg.listen == zl.listen:
            raise ValueError("zalo.port: must differ from telegram.port when both run a webhook")
        return self

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
