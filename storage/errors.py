"""The one exception tree; a user's mistake is a reply, never one of these."""

from __future__ import annotations


class SchoolbotError(Exception):
    """The root of everything schoolbot raises on purpose."""


class ConfigError(SchoolbotError):
    """A setting is wrong; the message names the key, the value and the rule."""


class StaleDraft(SchoolbotError):
    """A draft changed under us (another worker, a double tap); the caller re-reads it."""


class ImportRejected(SchoolbotError):
    """An import file (organisation, plan) has bad rows; nothing was imported."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(problems)} bad row(s)")
        self.problems = problems


class ChannelError(SchoolbotError):
    """A platform refused or failed a call."""


class RetryAfter(ChannelError):
    """The platform asked us to wait."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds} s")
        self.retry_after = seconds


class Blocked(ChannelError):
    """The user blocked the bot; do not send again."""


class FetchError(ChannelError):
    """A file could not be downloaded from the platform (network, expired reference)."""


class TooLarge(FetchError):
    """A file is larger than the platform lets the bot download."""
