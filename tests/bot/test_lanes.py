"""Two lanes to Telegram, over the real python-telegram-bot stack against the loopback fake Bot API.

Replies to the person writing go at once (only the per-chat rule holds them), wait out a 429 and go
again; what still cannot go becomes an outbox row. The outbox's wave is paced under the overall
ceiling and yields to replies. The fake's limits run on a quarter-second window, as in
test_outbox_telegram.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.app import App, open_app
from bot.channels.telegram import TelegramChannel
from bot.config import Settings
from bot.outbox import REPLY
from bot.run import attached
from handlers import reminders
from handlers.calendar import FrozenClock
from storage.models import Inbox, User
from tests.bot.test_outbox_telegram import WINDOW
from tests.bot.test_outbox_telegram import _loopback_only as _loopback_only  # nothing leaves 127.0.0.1
from tests.bot.test_outbox_telegram import settings_for as wave_settings
from tests.fakes.district import seed_wave
from tests.fakes.telegram_api import TOKEN, FakeBotAPI, FloodLimits, TgUser, text_update
from tests.support import outbox_rows, outbox_statuses, until

WAIT = 60.0
CLOCK = datetime(2026, 11, 10, 8, 0)


def settings_for(root: Path, api: FakeBotAPI, database_url: str = "", **outbox: Any) -> Settings:
    """The wave tests' settings (the window's proportions), one quick message per chat."""
    return wave_settings(root, api, database_url, **{"reply_burst": 1, **outbox})


@asynccontextmanager
async def running(app: App) -> AsyncIterator[TelegramChannel]:
    """The Telegram channel with its two lanes, as `schoolbot run` has it; the sender stops with it
    (also when a test fails, so that no send outlives the test's event loop)."""
    async with attached(app, TelegramChannel(app, poll_timeout=0.5, typing_after=60.0)) as channel:
        try:
            yield channel
        finally:
            await app.outbox.stop_sender()


def texts_to(api: FakeBotAPI, user: TgUser) -> list[str]:
    return [str(m["text"]) for m in api.sent_to(user.id)]


@pytest.fixture(name="api")
def api_fixture() -> Iterator[FakeBotAPI]:
    # 10 messages per window overall (40/s), one per chat: a burst of 30 chats meets 429s.
    with FakeBotAPI(limits=FloodLimits(overall=10, per_chat=1, window=WINDOW)) as api:
        yield api


async def test_a_burst_of_replies_meeting_429s_all_arrive_in_order(
    tmp_path: Path, database_url: str, api: FakeBotAPI
) -> None:
    """30 people each send three messages at once: Telegram refuses many with 429, every reply still
    arrives, each chat's in the order asked, and none is handed to the outbox."""
    people = [TgUser(7000 + n, f"Người {n}", "Thử") for n in range(30)]
    with open_app(settings_for(tmp_path, api, database_url), FrozenClock(CLOCK)) as app:
        t = app.catalog.translator("vi")
        expected = [t("help.guest"), t("whoami.none"), t("help.guest")]
        async with running(app) as channel:
            api.push_update(*[text_update(p, text) for p in people for text in ("/help", "/whoami", "/help")])
            await until(lambda: channel.handled >= 90, "90 updates handled", WAIT)
            await until(lambda: all(len(api.sent_to(p.id)) >= 3 for p in people), "every reply", WAIT)
        assert outbox_rows(app) == []
        assert channel.lanes.retried > 0
    assert api.flood is not None and api.gate.refused > 0  # the 429s were met...
    for person in people:  # ...and waited out: all arrived, once each, in order
        assert texts_to(api, person) == expected


async def test_replies_beyond_the_connections_wait_their_turn_and_all_arrive(
    tmp_path: Path, database_url: str
) -> None:
    """Twelve people write at once to a slow Telegram over two connections: at most two requests are
    in flight at a time (the rest wait in front of the pool, telegram.connections), and every reply
    arrives."""
    people = [TgUser(7100 + n, f"Người {n}", "Thử") for n in range(12)]
    with FakeBotAPI() as api:
        api.slow("sendMessage", 0.05)
        settings = settings_for(tmp_path, api, database_url)
        settings = settings.model_copy(
            update={"telegram": settings.telegram.model_copy(update={"connections": 2})}
        )
        with open_app(settings, FrozenClock(CLOCK)) as app:
            t = app.catalog.translator("vi")
            async with running(app) as channel:
                api.push_update(*[text_update(p, "/help") for p in people])
                await until(lambda: all(api.sent_to(p.id) for p in people), "every reply", WAIT)
                await until(lambda: channel.handled == 12, "each update counted once its reply went", WAIT)
        assert 1 <= api.peak_requests <= 2
        assert all(texts_to(api, p) == [t("help.guest")] for p in people)


async def test_a_reply_that_cannot_go_becomes_an_outbox_row_and_is_sent_later(
    tmp_path: Path, database_url: str, api: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Telegram keeps answering 429 for longer than outbox.reply_wait_seconds: the reply becomes an
    outbox row (one warning says so), which the sender delivers once Telegram takes messages again."""
    caplog.set_level(logging.INFO)
    person = TgUser(7100, "Lan", "Lò Thị")
    settings = settings_for(tmp_path, api, database_url, reply_wait_seconds=0.6)
    with open_app(settings, FrozenClock(CLOCK)) as app:
        t = app.catalog.translator("vi")
        async with running(app) as channel:
            too_many = {"retry_after": 0.2}
            api.fail("sendMessage", 429, "Too Many Requests: retry after 0.2", parameters=too_many)
            api.push_update(text_update(person, "/help"))
            await until(lambda: channel.handled >= 1, "the update handled", WAIT)
            await until(lambda: bool(outbox_rows(app, kind=REPLY)), "the reply handed to the outbox", WAIT)
            assert texts_to(api, person) == []
            [row] = outbox_rows(app, kind=REPLY)
            assert (row.status, row.payload["text"]) == ("pending", t("help.guest"))
            api.clear_failures()
            app.outbox.start_sender("lanes")
            await until(lambda: outbox_statuses(app)["sent"] == 1, "the reply sent by the outbox", WAIT)
            await app.outbox.stop_sender()
        assert texts_to(api, person) == [t("help.guest")]
    handed = [r for r in caplog.records if "handed to the outbox" in r.getMessage()]
    assert len(handed) == 1 and handed[0].levelno == logging.WARNING


async def test_a_reply_to_a_chat_that_blocked_the_bot_is_reported_not_dropped(
    tmp_path: Path, database_url: str, api: FakeBotAPI
) -> None:
    """The chat blocked the bot mid-conversation: the user is marked, the reply becomes an outbox row,
    and the sender records it as blocked and keeps it for when they write again."""
    person = TgUser(7200, "Hoa", "Phạm Thị")
    with open_app(settings_for(tmp_path, api, database_url), FrozenClock(CLOCK)) as app:
        t = app.catalog.translator("vi")
        async with running(app) as channel:
            api.block(person.id)
            api.push_update(text_update(person, "/help"))
            await until(lambda: channel.handled >= 1, "the update handled", WAIT)
            await until(lambda: bool(outbox_rows(app, kind=REPLY)), "the reply handed to the outbox", WAIT)
            app.outbox.start_sender("lanes")
            await until(lambda: outbox_statuses(app)["blocked"] == 1, "the outbox's verdict", WAIT)
            await app.outbox.stop_sender()
        with app.db.session() as s:
            user = s.exec(select(User).where(User.external_id == str(person.id))).one()
            kept = s.exec(select(Inbox).where(Inbox.user_id == user.id)).all()
        assert user.blocked
        assert [k.payload["text"] for k in kept] == [t("help.guest")]


async def test_replies_overtake_a_wave(tmp_path: Path, database_url: str, api: FakeBotAPI) -> None:
    """With a reminder wave queued and sending, people chatting get every answer while most of the
    wave still waits: their replies are not queued behind it, and the wave still finishes."""
    schools = 400
    clock = FrozenClock(CLOCK)
    people = [TgUser(7300 + n, f"Người {n}", "Thử") for n in range(10)]
    # The wave paced at 80 % of the fake's ceiling (10 a window), as the outbox is against Telegram's.
    with open_app(settings_for(tmp_path, api, database_url, rate=8 / WINDOW), clock) as app:
        seed_wave(app.db, schools, clock.now())
        assert reminders.sweep(app.db, clock, app.settings, app.catalog).created == schools
        async with running(app) as channel:
            app.outbox.start_sender("wave")
            await until(lambda: outbox_statuses(app)["sent"] >= 20, "the wave under way", WAIT)
            api.push_update(*[text_update(p, text) for p in people for text in ("/help", "/whoami")])
            await until(lambda: channel.handled >= 20, "the chats handled", WAIT)
            await until(lambda: all(len(api.sent_to(p.id)) == 2 for p in people), "every reply", WAIT)
            during = outbox_statuses(app)
            # A 429 the jitter of a loaded machine causes halves the wave's pace: it may take minutes.
            await until(lambda: outbox_statuses(app)["sent"] == schools, "the wave finished", 3 * WAIT)
            await app.outbox.stop_sender()
        assert during["sent"] < schools // 2  # the chats were answered early in the wave
        assert outbox_rows(app, kind=REPLY) == []


async def test_the_token_never_appears_when_the_platform_echoes_urls(
    tmp_path: Path,
    database_url: str,
    api: FakeBotAPI,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A 500 whose description quotes the request URL (token included): the reply goes to the outbox,
    and neither the logs, the output nor the stored error carries the token."""
    caplog.set_level(logging.DEBUG)
    person = TgUser(7400, "Minh", "Nguyễn Văn")
    echoed = f"Internal Server Error at {api.url('/bot')}{TOKEN}/sendMessage"
    settings = settings_for(tmp_path, api, database_url, reply_wait_seconds=1.0)
    with open_app(settings, FrozenClock(CLOCK)) as app:
        async with running(app) as channel:
            api.fail("sendMessage", 500, echoed)
            api.push_update(text_update(person, "/help"))
            await until(lambda: channel.handled >= 1, "the update handled", WAIT)
            await until(lambda: bool(outbox_rows(app, kind=REPLY)), "the reply handed to the outbox", WAIT)
            app.outbox.start_sender("lanes")
            await until(lambda: outbox_rows(app, kind=REPLY)[0].attempts >= 1, "the outbox's attempt", WAIT)
            await app.outbox.stop_sender()
        [row] = outbox_rows(app, kind=REPLY)
    secret = TOKEN.partition(":")[2]
    out = capsys.readouterr()
    for text in (caplog.text, out.out, out.err, row.last_error):
        assert TOKEN not in text and secret not in text
    assert "<token>" in row.last_error
