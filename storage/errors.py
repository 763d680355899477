"""The one exception tree; a user's mistake is a reply, never one of these.

It sits at the bottom of the layers so that every layer can raise and catch the same classes. Each
channel translates its platform's exceptions into the ChannelError subclasses below at its edge
(`raise ... from exc`), and the outbox sorts them with `isinstance` alone:

    ChannelError        try again later (a network error, a 5xx, anything unknown)
      RetryAfter        the platform asked us to wait `retry_after` seconds
      Blocked           the user blocked the bot: never again
      Gone              the chat no longer exists (chat or user not found, account deactivated)
      Rejected          this message can never be sent as it is (another bad request)
      TimedOut          no answer in time: the message may have arrived
      FetchError        a file could not be downloaded
        TooLarge        ... because it is larger than the bot may download
"""

from __future__ import annotations


class SchoolbotError(Exception):
    """The root of everything schoolbot raises on purpose."""


class ConfigError(SchoolbotError):
    """A setting is wrong; the message names the key, the value and the rule."""


class StartFailed(SchoolbotError):
    """The bot could not start: a platform or the database cannot be reached, a folder cannot be written.
    The message is one plain line that names what to fix, never a secret."""


class StaleDraft(SchoolbotError):
    """A draft changed under us (another worker, a double tap); the caller re-reads it."""


class Redelivered(SchoolbotError):
    """An update was handled meanwhile by another worker; this handling of it is undone."""


class ImportRejected(SchoolbotError):
    """An import file (organisation, plan) has bad rows; nothing was imported."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(problems)} bad row(s)")
        self.problems = problems


class BackupFailed(SchoolbotError):
    """A backup could not be written, or a backup cannot be restored here; one plain line, and
    nothing was left half-written (no partial archive, no half-restored data)."""


class ChannelError(SchoolbotError):
    """A platform refused or failed a call."""


class RetryAfter(ChannelError):
    """The platform asked us to wait."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds} s")
        self.retry_after = seconds


class Blocked(ChannelError):
    """The user blocked the bot; do not send again."""


class Gone(ChannelError):
    """The chat no longer exists (chat not found, user deactivated); do not send again."""


class Rejected(ChannelError):
    """The platform refused this message for good (a bad request other than a missing chat)."""


class TimedOut(ChannelError):
    """The call timed out: the platform may have acted on it (a resend may duplicate)."""


class FetchError(ChannelError):
    """A file could not be downloaded from the platform (network, expired reference)."""


class TooLarge(FetchError):
    """A file is larger than the platform lets the bot download."""
