"""The Telegram channel: `api` (PTB at the edge: errors, rate limit), `wire` (updates and replies in
the bot's terms), `channel` (the running bot)."""

from __future__ import annotations

from bot.channels.telegram.api import channel_error
from bot.channels.telegram.channel import UPLOAD_LIMIT, PerChat, TelegramChannel
from bot.channels.telegram.wire import CHANNEL, split_text, to_incoming

__all__ = [
    "CHANNEL",
    "UPLOAD_LIMIT",
    "PerChat",
    "TelegramChannel",
    "channel_error",
    "split_text",
    "to_incoming",
]
