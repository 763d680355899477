"""Zalo's wire format <-> the bot's vocabulary: an update (wrapped or flat) as an `Incoming`, replies
as numbered plain texts under 2,000 characters. Details and uncertainties: docs/zalo-bot-api.md."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from bot.channels.base import split_text
from bot.channels.console import render as render_numbered
from handlers.types import Incoming, Kind, Media, Reply

CHANNEL = "zalo"
MAX_TEXT = 2000  # sendMessage text: 1-2,000 characters (counted here in UTF-16 units, the stricter)
SECRET_HEADER = "X-Bot-Api-Secret-Token"

TEXT = "message.text.received"
IMAGE = "message.image.received"
STICKER = "message.sticker.received"
UNSUPPORTED = "message.unsupported.received"  # video, files, contact cards, protected senders
VOICE = "message.voice.received"  # seen in newer SDKs only
LINK = "message.link.received"  # seen in newer SDKs only: a rich link card
REACTION = "message.reaction.received"  # seen in newer SDKs only: nothing to answer
EVENTS = frozenset({TEXT, IMAGE, STICKER, UNSUPPORTED, VOICE, LINK, REACTION})


def unwrap(body: Any) -> dict[str, Any] | None:
    """The update in a webhook body or a getUpdates result, wrapped or flat; None without event_name."""
    if isinstance(body, dict) and body.get("ok") is True and isinstance(body.get("result"), dict):
        body = body["result"]
    if isinstance(body, dict) and isinstance(body.get("event_name"), str) and body["event_name"]:
        return body
    return None


def update_key(update: dict[str, Any]) -> str:
    """`event_name:message_id`, the dedupe key (a hash of the message when it has no id)."""
    event = str(update.get("event_name", ""))
    message = update.get("message")
    ident = message.get("message_id") if isinstance(message, dict) else None
    if isinstance(ident, str | int) and not isinstance(ident, bool) and str(ident):
        key = f"{event}:{ident}"
    else:
        canonical = json.dumps(message or update, sort_keys=True, ensure_ascii=False, default=str)
        key = f"{event}:h{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"
    if len(key) > 80:  # the database keeps at most 96 characters, with "zalo:" in front
        key = f"{event[:30]}:h{hashlib.sha256(key.encode()).hexdigest()[:40]}"
    return key


def to_incoming(update: dict[str, Any]) -> Incoming | None:
    """A private chat's message as an Incoming; None for anything we do not answer."""
    update = unwrap(update) or {}
    event, message = update.get("event_name"), update.get("message")
    if not isinstance(message, dict):
        return None
    sender, chat = field_dict(message, "from"), field_dict(message, "chat")
    if sender.get("is_bot") is True or str(chat.get("chat_type") or "PRIVATE").upper() != "PRIVATE":
        return None  # groups are in beta at Zalo; the bot answers private chats only
    user_id = str(sender.get("id") or chat.get("id") or "")
    if not user_id:
        return None
    who = {
        "channel": CHANNEL,
        "user_id": user_id,
        "chat_id": str(chat.get("id") or user_id),
        "display_name": display_name(sender),
        "update_id": update_key(update),
    }
    return _by_event(str(event), message, who)


def field_dict(data: dict[str, Any], key: str) -> dict[str, Any]:
    """`data[key]` when it is an object, else {}."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def field_str(data: dict[str, Any], key: str) -> str:
    """`data[key]` when it is a string, else ""."""
    value = data.get(key)
    return value if isinstance(value, str) else ""


def display_name(sender: dict[str, Any]) -> str:
    """`display_name`, then the older `name` or `first_name`."""
    for field in ("display_name", "name", "first_name"):
        value = sender.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    return ""


def _by_event(event: str, message: dict[str, Any], who: dict[str, Any]) -> Incoming | None:
    text = field_str(message, "text")
    if event == TEXT:
        return command_or_text(who, text)
    if event == IMAGE:
        url = photo_url(message)
        caption = field_str(message, "caption")
        if not url:
            return Incoming(**who, kind=Kind.OTHER, text=caption)
        return Incoming(**who, kind=Kind.MEDIA, media=(photo_media(url),), text=caption)
    if event == STICKER:
        return Incoming(**who, kind=Kind.STICKER)
    if event == VOICE:
        return Incoming(**who, kind=Kind.VOICE)
    if event == LINK:  # a link card: its text or URL is what the user meant to send
        link = text or field_str(message, "url")
        return Incoming(**who, kind=Kind.TEXT, text=link) if link else Incoming(**who, kind=Kind.OTHER)
    if event == UNSUPPORTED:  # a file, a video: Zalo keeps it from bots, and the user should hear so
        return Incoming(**who, kind=Kind.UNSUPPORTED)
    return None  # reactions, and events nobody has documented yet


def command_or_text(who: dict[str, Any], text: str) -> Incoming:
    """`/cmd args` is a command (`/start CODE` too); anything else is text (a pasted code as well)."""
    stripped = text.strip()
    if stripped.startswith("/") and len(stripped) > 1 and (stripped[1].isalnum() or stripped[1] == "_"):
        head, *rest = stripped[1:].split(maxsplit=1)
        return Incoming(
            **who, kind=Kind.COMMAND, command=head, args=rest[0].strip() if rest else "", text=text
        )
    return Incoming(**who, kind=Kind.TEXT, text=text)


def photo_url(message: dict[str, Any]) -> str:
    """The image's URL: `photo_url` in real traffic, `photo` in the docs."""
    for field in ("photo_url", "photo"):
        value = message.get(field)
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return value
    return ""


def photo_media(url: str) -> Media:
    """A photo known only by its URL (no file id, no size until it is downloaded)."""
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    return Media(kind="photo", file_id=url, file_name=name[:200])


def chat_of(update: dict[str, Any]) -> str:
    """The chat an update belongs to (its sender's, in a private chat)."""
    message = field_dict(update, "message")
    chat, sender = field_dict(message, "chat"), field_dict(message, "from")
    return str(chat.get("id") or sender.get("id") or "")


def render_parts(replies: Sequence[Reply]) -> list[str]:
    """Replies as Zalo messages: one text with numbered choices, cut under 2,000 at line breaks.

    The numbers are the console's, which are the dispatcher's (`handlers.types.numbered`). Sending
    a batch as one text spends one message of the monthly budget instead of one per reply.
    """
    return split_text(render_numbered(list(replies)), MAX_TEXT)
