"""Telegram's wire format <-> the bot's vocabulary: a PTB `Update` as an `Incoming`, a `Reply`'s
choices as an inline keyboard, long texts cut under Telegram's limit."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from functools import lru_cache
from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram import User as TgUser
from telegram.constants import ChatType

from bot.channels.base import split_text as split_parts
from handlers.types import Incoming, Kind, Media, Reply

CHANNEL = "telegram"
MAX_TEXT = 4096  # telegram.constants.MessageLimit.MAX_TEXT_LENGTH
MAX_ALBUM = 10  # telegram.constants.MediaGroupLimit.MAX_MEDIA_LENGTH
MAX_CALLBACK_BYTES = 64  # telegram.constants.InlineKeyboardButtonLimit.MAX_CALLBACK_DATA
# Keyboards kept built. The menus repeat for everyone; a form's buttons carry their draft's id and
# version (handlers/forms/engine.py `button`), so each is new and would only fill a larger cache: 1,024
# of them held about 2.5 MB under the interactive bench's 200 principals.
KEYBOARDS_KEPT = 64
LANGUAGES = ("vi", "en")

log = logging.getLogger("schoolbot.telegram")


PRESSED_ON = ("message_id", "date", "chat")  # what the bot reads of the message a pressed button is on


def parse_update(payload: dict[str, Any], bot: Any) -> Update:
    """PTB's Update of the platform's JSON (as stored), with only the id, date and chat of the message a
    pressed button sits on: PTB would build that whole message (its text, sender, entities and
    keyboard) for each press, and the bot reads its chat alone. The date is kept: PTB tells by it a
    message Telegram no longer shows."""
    query = payload.get("callback_query")
    message = query.get("message") if isinstance(query, dict) else None
    if isinstance(query, dict) and isinstance(message, dict):
        kept = {key: message[key] for key in PRESSED_ON if key in message}
        payload = {**payload, "callback_query": {**query, "message": kept}}
    return Update.de_json(payload, bot)


def to_incoming(update: Update) -> Incoming | None:
    """A private chat's message or button press as an Incoming; None for anything we ignore."""
    query = update.callback_query
    if query is not None:
        chat = query.message.chat if query.message is not None else None
        if chat is not None and chat.type != ChatType.PRIVATE:
            return None
        chat_id = chat.id if chat is not None else query.from_user.id
        return Incoming(**_who(update, query.from_user, chat_id), kind=Kind.CHOICE, choice=query.data or "")
    edited = update.edited_message  # a text the user changed: the answer it gave follows
    if edited is not None and edited.from_user is not None and edited.chat.type == ChatType.PRIVATE:
        if edited.text is None:
            return None  # an edited caption changes no answer
        who = _who(update, edited.from_user, edited.chat.id)
        return Incoming(**who, kind=Kind.EDITED, text=edited.text, message_id=str(edited.message_id))
    message = update.message  # channel posts are not answered
    if message is None or message.from_user is None or message.chat.type != ChatType.PRIVATE:
        return None
    who = {**_who(update, message.from_user, message.chat.id), "message_id": str(message.message_id)}
    if message.text is not None:
        return _text(who, message.text)
    return _content(who, message)


def _who(update: Update, user: TgUser, chat_id: int) -> dict[str, Any]:
    return {
        "channel": CHANNEL,
        "user_id": str(user.id),
        "chat_id": str(chat_id),
        "display_name": user.full_name,
        "update_id": str(update.update_id),
        "language": language_of(user.language_code),
    }


def language_of(code: str | None) -> str:
    """Telegram's IETF language tag as one of ours ("vi", "en"), or "" for any other."""
    lang = (code or "").split("-")[0].lower()
    return lang if lang in LANGUAGES else ""


def _text(who: dict[str, Any], text: str) -> Incoming:
    """`/cmd@botname args` is a command (a deep link `/start CODE` too); anything else is text."""
    if text.startswith("/") and len(text) > 1 and (text[1].isalnum() or text[1] == "_"):
        head, *rest = text[1:].split(maxsplit=1)
        command = head.split("@", 1)[0]
        return Incoming(
            **who, kind=Kind.COMMAND, command=command, args=rest[0].strip() if rest else "", text=text
        )
    return Incoming(**who, kind=Kind.TEXT, text=text)


def _content(who: dict[str, Any], message: Message) -> Incoming:
    """Media, stickers, places, voice, contacts; anything else is OTHER."""
    caption = message.caption or ""
    media = media_of(message)
    if media is not None and media.kind in ("photo", "document", "video", "animation"):
        return Incoming(**who, kind=Kind.MEDIA, media=(media,), text=caption)
    if message.sticker is not None:
        return Incoming(**who, kind=Kind.STICKER, text=message.sticker.emoji or "")
    if message.location is not None or message.venue is not None:
        return Incoming(**who, kind=Kind.LOCATION)
    if media is not None:  # voice, audio, video note
        return Incoming(**who, kind=Kind.VOICE, media=(media,), text=caption)
    if message.contact is not None:
        return Incoming(**who, kind=Kind.CONTACT)
    return Incoming(**who, kind=Kind.OTHER, text=caption)


def media_of(message: Message) -> Media | None:
    """The file a message carries: the largest size of a photo, or the one document/video/audio."""
    if message.photo:
        size = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return Media(
            "photo",
            size.file_id,
            size.file_unique_id,
            width=size.width,
            height=size.height,
            size=size.file_size,
        )
    for kind in ("animation", "document", "video", "voice", "audio", "video_note"):
        # an animation also fills `document`, so it is looked at first
        item = getattr(message, kind)
        if item is not None:
            fields = item.to_dict()  # plain ints: reading `.duration` warns in PTB 22
            return Media(
                kind,
                item.file_id,
                item.file_unique_id,
                mime_type=fields.get("mime_type", ""),
                file_name=fields.get("file_name", ""),
                width=fields.get("width", fields.get("length")),
                height=fields.get("height", fields.get("length")),
                duration=fields.get("duration"),
                size=fields.get("file_size"),
            )
    return None


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Parts of at most `limit` UTF-16 units (a Telegram message by default), cut at line breaks."""
    return split_parts(text, limit)


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """The reply's choices as inline buttons; data over 64 bytes is logged and left out."""
    return markup_of(rows_of(reply))


def keyboard_json(reply: Reply) -> str | None:
    """`keyboard`, as the Bot API's reply_markup parameter (JSON)."""
    return json_of(rows_of(reply))


def rows_of(reply: Reply) -> tuple[tuple[tuple[str, str], ...], ...]:
    """The reply's choices as (label, data) rows: the keyboards' cache key."""
    return tuple(tuple((c.label, c.value) for c in row) for row in reply.choices)


@lru_cache(maxsize=KEYBOARDS_KEPT)
def json_of(rows: tuple[tuple[tuple[str, str], ...], ...]) -> str | None:
    """`markup_of`'s keyboard as the JSON PTB would make of it, written directly: a form's buttons carry
    its draft's version, so most keyboards are shown once and PTB's objects would be built for one
    message each."""
    kept = sendable(rows)
    if not kept:
        return None
    buttons = [[{"text": label, "callback_data": value} for label, value in row] for row in kept]
    return json.dumps({"inline_keyboard": buttons})


@lru_cache(maxsize=KEYBOARDS_KEPT)
def markup_of(rows: tuple[tuple[tuple[str, str], ...], ...]) -> InlineKeyboardMarkup | None:
    """The inline keyboard of these (label, data) rows, built once while it is among the last
    KEYBOARDS_KEPT used (a menu is shown to everyone; PTB's objects are immutable, so one can go with
    every message)."""
    kept = sendable(rows)
    built = [[InlineKeyboardButton(label, callback_data=value) for label, value in row] for row in kept]
    return InlineKeyboardMarkup(built) if built else None


def sendable(rows: tuple[tuple[tuple[str, str], ...], ...]) -> list[list[tuple[str, str]]]:
    """The rows without the buttons whose data Telegram refuses (over 64 bytes: logged), nor the rows
    left empty."""
    kept = []
    for row in rows:
        buttons = []
        for label, value in row:
            size = len(value.encode("utf-8"))
            if not 1 <= size <= MAX_CALLBACK_BYTES:
                log.error("button %r left out: callback data is %d bytes", label, size)
                continue
            buttons.append((label, value))
        if buttons:
            kept.append(buttons)
    return kept


def chat_ref(chat_id: str | int) -> int | str:
    """A numeric chat id as an int (as Telegram sends it), anything else as given."""
    text = str(chat_id)
    return int(text) if text.lstrip("-").isdigit() else text


def album_part(update: object) -> bool:
    """Whether an update is one file of an album (several photos or videos sent together)."""
    if not isinstance(update, Update) or update.message is None or not update.message.media_group_id:
        return False
    incoming = to_incoming(update)
    return incoming is not None and incoming.kind == Kind.MEDIA


def chat_of(payload: dict[str, Any]) -> str:
    """The chat an update (the platform's JSON) belongs to, as PTB's `Update.effective_chat` finds it
    for the kinds the bot asks for (ALLOWED_UPDATES); "" for any other, or a malformed one. Read from
    the JSON, so that an update is stored without being parsed (it is, once, when handled)."""
    for kind in ("message", "edited_message", "my_chat_member"):
        part = payload.get(kind)
        if isinstance(part, dict):
            return _chat_id(part)
    query = payload.get("callback_query")
    message = query.get("message") if isinstance(query, dict) else None
    return _chat_id(message) if isinstance(message, dict) else ""


def _chat_id(part: dict[str, Any]) -> str:
    chat = part.get("chat")
    found = chat.get("id") if isinstance(chat, dict) else None
    return str(found) if isinstance(found, int) else ""


def album_group(payload: dict[str, Any]) -> str | None:
    """The album a stored update (the platform's JSON) belongs to, if it is one of an album's files."""
    message = payload.get("message")
    group = message.get("media_group_id") if isinstance(message, dict) else None
    return str(group) if group else None


def album_of(parts: list[Incoming]) -> Incoming:
    """An album's parts as one message with all their files (the first part's text and ids)."""
    return replace(parts[0], media=tuple(m for p in parts for m in p.media))
