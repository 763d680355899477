"""The Zalo channel: `api` (the HTTP API and its errors), `wire` (updates and replies in the bot's
terms), `budget` (the monthly message budget), `channel` (the running bot)."""

from __future__ import annotations

from bot.channels.base import verify_secret
from bot.channels.zalo.api import (
    NetworkError,
    NetworkTimeout,
    PhotoTooLarge,
    RateLimited,
    TokenRejected,
    Unavailable,
    ZaloAPI,
    ZaloError,
    ZaloGone,
    ZaloRejected,
    download,
    error_for,
    transient,
)
from bot.channels.zalo.budget import BudgetExhausted, DbBudgetStore, MemoryBudgetStore, MonthlyBudget
from bot.channels.zalo.channel import Timing, ZaloChannel
from bot.channels.zalo.wire import (
    CHANNEL,
    MAX_TEXT,
    render_parts,
    to_incoming,
    unwrap,
    update_key,
)

__all__ = [
    "CHANNEL",
    "MAX_TEXT",
    "BudgetExhausted",
    "DbBudgetStore",
    "MemoryBudgetStore",
    "MonthlyBudget",
    "NetworkError",
    "NetworkTimeout",
    "PhotoTooLarge",
    "RateLimited",
    "Timing",
    "TokenRejected",
    "Unavailable",
    "ZaloAPI",
    "ZaloChannel",
    "ZaloError",
    "ZaloGone",
    "ZaloRejected",
    "download",
    "error_for",
    "render_parts",
    "to_incoming",
    "transient",
    "unwrap",
    "update_key",
    "verify_secret",
]
