"""Faults at the peak, over the real python-telegram-bot stack against the loopback fake Bot API: a 429
storm, a platform answering 5xx, a chat that blocked the bot mid-conversation. The bot keeps answering
the others, loses nothing and logs one clear line per fault, never the token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bot.app import open_app
from handlers.calendar import FrozenClock
from tests.bot.test_lanes import running, settings_for, texts_to
from tests.bot.test_outbox_telegram import WINDOW
from tests.bot.test_outbox_telegram import _loopback_only as _loopback_only  # nothing leaves 127.0.0.1
from tests.fakes.district import seed_wave
from tests.fakes.telegram_api import FakeBotAPI, FloodLimits, TgUser, text_update
from tests.support import outbox_rows, until

WAIT = 60.0
CLOCK = datetime(2026, 11, 10, 8, 0)
PRINCIPALS = 150


@pytest.fixture(name="api")
def api_fixture() -> Iterator[FakeBotAPI]:
    # Telegram's limits on a quarter-second window: 30 messages per window overall, one per chat.
    with FakeBotAPI(limits=FloodLimits(window=WINDOW)) as api:
        yield api


async def test_150_principals_at_once_meeting_429s_all_get_every_reply_in_order(
    tmp_path: Path, database_url: str, api: FakeBotAPI
) -> None:
    """150 principals send /mystatus and then /help within the same instant (the 08:00 tap): the fake
    answers 429 with retry_after as Telegram does, and every reply still arrives, each chat's in the
    order asked, none twice, none handed to the outbox."""
    clock = FrozenClock(CLOCK)
    with open_app(settings_for(tmp_path, api, database_url), clock) as app:
        seeded = seed_wave(app.db, PRINCIPALS, clock.now())
        people = [TgUser(chat, f"Hiệu trưởng {i}") for i, chat in enumerate(seeded.chats)]
        t = app.catalog.translator("vi")
        async with running(app) as channel:
            api.push_update(*[text_update(p, c) for c in ("/mystatus", "/help") for p in people])
            await until(lambda: channel.handled >= 2 * PRINCIPALS, "every update handled", WAIT)
            await until(
                lambda: all(texts_to(api, p)[-1:] == [t("help.principal")] for p in people),
                "every last reply",
                WAIT,
            )
        assert outbox_rows(app) == []
        assert channel.lanes.retried > 0
    assert api.flood is not None and api.flood.refused > 0  # the 429s were met and waited out
    shape = [len(texts_to(api, p)) for p in people]
    assert set(shape) == {shape[0]} and shape[0] >= 2  # every /mystatus answered whole, nothing twice
    for i, person in enumerate(people):
        *status, last = texts_to(api, person)
        assert f"{i:05d}" in status[0]  # this principal's own school, before the /help that followed
        assert t("help.principal") not in status and last == t("help.principal")


def caplog_lines(caplog: pytest.LogCaptureFixture, *words: str) -> list[logging.LogRecord]:
    """The records whose message holds every one of `words`."""
    return [r for r in caplog.records if all(w in r.getMessage() for w in words)]
