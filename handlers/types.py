"""The channel-neutral vocabulary: what comes in, what goes out, and the context a handler gets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handlers.calendar import Clock
    from handlers.config import Settings
    from handlers.i18n import Catalog, Translator
    from storage.db import Database
    from storage.media import MediaStore
    from storage.models import User


class Kind(StrEnum):
    """What an incoming message is."""

    TEXT = "text"
    COMMAND = "command"
    CHOICE = "choice"
    MEDIA = "media"
    STICKER = "sticker"
    LOCATION = "location"
    VOICE = "voice"
    CONTACT = "contact"
    EDITED = "edited"  # a text message the user changed after sending it (Telegram's edited_message)
    OTHER = "other"
    UNSUPPORTED = "unsupported"  # a file or video the platform did not pass on to the bot (Zalo)


@dataclass(frozen=True)
class Media:
    """A file the user sent: a platform reference plus what is known of it."""

    kind: str  # photo | document | video | audio | animation
    file_id: str
    file_unique_id: str = ""
    mime_type: str = ""
    file_name: str = ""
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    size: int | None = None
    local_path: str = ""  # the console channel sends files from disk


@dataclass(frozen=True)
class Incoming:
    """One update from any channel, in the bot's own terms."""

    channel: str
    user_id: str
    chat_id: str
    kind: Kind
    display_name: str = ""
    text: str = ""
    command: str = ""
    args: str = ""
    choice: str = ""
    media: tuple[Media, ...] = ()
    update_id: str = ""
    language: str = ""
    message_id: str = ""  # the platform's id of the message (an edit names the message it changes)


@dataclass(frozen=True)
class Choice:
    """A button on Telegram; a numbered line on the console and Zalo."""

    label: str
    value: str


@dataclass(frozen=True)
class Attachment:
    """A file shown with a reply: sent again by its platform reference when the channel is the same,
    otherwise uploaded from the stored copy."""

    kind: str  # photo | video | document
    caption: str
    file_id: str = ""
    channel: str = ""
    path: str = ""


@dataclass(frozen=True)
class Reply:
    """Something to show: text, optional choices (rows of buttons), optional recipient.

    `to` is None for the user who wrote; otherwise the id of another user (an alert).
    """

    text: str
    choices: tuple[tuple[Choice, ...], ...] = ()
    to: int | None = None
    file_path: str = ""
    photo_path: str = ""
    commands_for: str | None = None  # after sending, set this chat's command menu for this role
    expects_text: bool = False  # a typed answer is expected: digits are answers, not choice numbers
    attachments: tuple[Attachment, ...] = ()
    # An edit of a message the outbox sent before: that row's id (in the payload); at delivery the
    # outbox gives the channel the platform's id of that message (`edit_ref`), or "" when it has none
    # (not sent yet, or a channel that cannot edit): then the reply goes as a new message.
    edit_of: int = 0
    edit_ref: str = ""
    # A reply to the writer, as the outbox holds it on standby until the channel has sent it (its
    # row's id, set by the dispatcher in the update's transaction; 0: none). Not in the payload.
    standby: int = 0

    def to_payload(self) -> dict[str, Any]:
        """A JSON-able form, for messages kept for later and outbox rows (a reply handed to the outbox
        still sets the chat's command menu when it goes)."""
        return {
            "edit_of": self.edit_of,
            "text": self.text,
            "choices": [[[c.label, c.value] for c in row] for row in self.choices],
            "expects_text": self.expects_text,
            "photo_path": self.photo_path,
            "file_path": self.file_path,
            "attachments": [[a.kind, a.caption, a.file_id, a.channel, a.path] for a in self.attachments],
            "commands_for": self.commands_for,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Reply:
        """The reply a payload was made from."""
        rows_ = tuple(tuple(Choice(label, value) for label, value in row) for row in data.get("choices", []))
        files = tuple(Attachment(*item) for item in data.get("attachments", []))
        return cls(
            text=str(data.get("text", "")),
            choices=rows_,
            expects_text=bool(data.get("expects_text")),
            photo_path=str(data.get("photo_path", "")),
            file_path=str(data.get("file_path", "")),
            attachments=files,
            edit_of=int(data.get("edit_of") or 0),
            commands_for=data.get("commands_for") or None,
        )

    def flat_choices(self) -> list[Choice]:
        """All choices in reading order."""
        return [c for row in self.choices for c in row]


def rows(*choices: Choice, per_row: int = 1) -> tuple[tuple[Choice, ...], ...]:
    """Lay choices out in rows of `per_row`."""
    return tuple(tuple(choices[i : i + per_row]) for i in range(0, len(choices), per_row))


@dataclass(frozen=True)
class Context:
    """Everything a handler may touch, built per update by the runtime."""

    db: Database
    clock: Clock
    t: Translator
    settings: Settings
    user: User | None
    channel: str
    catalog: Catalog
    extras: dict[str, Any] = field(default_factory=dict)
    fetch: Fetcher | None = None  # downloads a file the user sent, on this channel
    upload_limit: int | None = None  # bytes of a file this channel can send (None: no limit)
    media: MediaStore | None = None
    queued: list[int] = field(default_factory=list)  # outbox rows this update wrote (handlers.notify)

    def t_for(self, user: User) -> Translator:
        """A translator in another user's language, on their channel (for alerts)."""
        return self.catalog.translator(user.locale or self.settings.locale, user.channel)


def numbered(replies: list[Reply]) -> dict[str, str]:
    """Choice numbers as a channel without buttons shows them: "1" -> value, across the batch.

    A reply that expects typed text gets no numbers (a typed "3" is an answer there); its choices
    are answered by their label instead.
    """
    out: dict[str, str] = {}
    n = 0
    for reply in replies:
        if reply.to is not None or reply.expects_text:
            continue
        for choice in reply.flat_choices():
            n += 1
            out[str(n)] = choice.value
    return out


# Downloads a file's bytes; raises storage.errors.TooLarge or FetchError.
Fetcher = Callable[[Media], Awaitable[bytes]]
Handler = Callable[[Incoming, Context], Awaitable[list[Reply]]]
