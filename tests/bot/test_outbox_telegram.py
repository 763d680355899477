"""The outbox over the real python-telegram-bot stack, against a fake Bot API that enforces the limits.

The fake answers 429 with `retry_after` as soon as more than 30 messages go out in a window or more than
one goes to a chat in a window. The waves here run the limits on a quarter-second window (120 msg/s
overall, 4/s per chat) with the sender at the same proportions as in production (25/30 of the overall
limit, one message per chat per window), so they take seconds instead of minutes. The restart test runs
200 schools; `bench/restart_bench.py` runs the same scenario at 2,000 and `bench/outbox_bench.py` a
10,000-recipient wave under the real one-second limits.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlmodel import col, select

from bot.app import App, open_app
from bot.channels.telegram import TelegramChannel
from bot.config import Settings, load_settings
from bot.outbox import OutboxSender
from bot.run import attached
from handlers import reminders
from handlers.calendar import FrozenClock
from handlers.types import Reply
from storage.models import AnnouncementReceipt, Outbox, User
from tests.bot.test_telegram import Tg
from tests.conftest import Chat
from tests.fakes.district import seed_wave
from tests.fakes.telegram_api import FakeBotAPI, FloodLimits, TgUser, callback_update, text_update
from tests.support import outbox_rows, outbox_statuses, sqlite_url, until

WINDOW = 0.25  # the fake's limits run four times faster than Telegram's
SCHOOLS = 200  # the benchmark runs 2,000
WAIT = 60.0  # seconds a wait may take before the test fails


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing leaves 127.0.0.1; PTB reports retry_after as a timedelta (no deprecation warning)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


def settings_for(root: Path, api: FakeBotAPI, database_url: str = "", **outbox: Any) -> Settings:
    """Settings on the fake at the window's proportions; a new database in `root` unless one is given."""
    return load_settings(
        None,
        database_url=database_url or sqlite_url(root / "wave.db"),
        media_dir=str(root / "media"),
        telegram=api.settings(),
        outbox={
            "rate": 25 / WINDOW,  # 100/s against 120/s, as 25/s against Telegram's 30/s
            "per_chat_seconds": WINDOW,
            "concurrency": 4,
            "batch": 100,
            "poll_seconds": 0.05,
            "backoff_seconds": 0.01,
            "backoff_cap_seconds": 0.05,
            **outbox,
        },
    )


@asynccontextmanager
async def channel_up(app: App) -> AsyncIterator[TelegramChannel]:
    """The Telegram channel on the fake; its rate limiter (the lanes) off, so the fake sees the outbox's pace."""
    async with attached(
        app, TelegramChannel(app, rate_limit=False, poll_timeout=0.5, typing_after=60.0)
    ) as channel:
        yield channel


@pytest.fixture(name="api")
def api_fixture() -> Iterator[FakeBotAPI]:
    with FakeBotAPI(limits=FloodLimits(window=WINDOW)) as api:
        yield api


async def test_schools_each_reminded_once_through_two_restarts(
    tmp_path: Path, database_url: str, api: FakeBotAPI
) -> None:
    """The wave at 200 schools in claims of 10 (2,000 in claims of 100 in the benchmark): both crashes
    fall mid-wave, between claims as at the larger size.

    `bench/restart_bench.py` runs the same scenario at 2,000 schools (about 40 s).
    """
    await restart_wave(settings_for(tmp_path, api, database_url, batch=SCHOOLS // 20), api, SCHOOLS)


async def settled(api: FakeBotAPI) -> None:
    """Until the killed sender's last requests have reached the fake (on a loaded machine they can
    arrive well after the kill) and a window and a half has passed since: the restart takes a moment,
    and Telegram's window moves on meanwhile. Without it the dead sender's late sends and the new
    sender's first ones fell in one window of the fake: a 429 the bot did not cause."""
    seen = -1
    while seen != (seen := len(api.calls_to("sendMessage"))):
        await asyncio.sleep(WINDOW * 1.5)


async def restart_wave(settings: Settings, api: FakeBotAPI, schools: int) -> int:
    """A sender killed a third and two thirds of the way through a wave, then a new process finishes it.

    Asserts that every school was reminded, duplicates stay within what was in flight at the kills, no
    429 came back and the officers' alerts were paced; returns the messages in flight at the kills.
    """
    clock = FrozenClock(datetime(2026, 11, 10, 8, 0))
    lease = settings.outbox.lease_seconds
    in_flight_at_crashes = 0
    officers: list[str] = []

    with open_app(settings, clock) as app:
        seeded = seed_wave(app.db, schools, clock.now())
        with app.db.session() as s:  # three officers who will also get alerts during the wave
            for n in range(3):
                user = User(
                    channel="telegram",
                    external_id=str(900 + n),
                    chat_id=str(900 + n),
                    role="officer",
                    office_id=seeded.district_ids[0],
                    created_at=clock.now(),
                )
                s.add(user)
                s.flush()
                officers.append(str(user.id))
        assert reminders.sweep(app.db, clock, settings, app.catalog).created == schools

    async def alerts(app: App, tag: str) -> None:
        """Two alerts to each officer at once: the sender must space them a window apart."""
        for n, officer in enumerate(officers):
            replies = [Reply(f"SỰ CỐ {tag}1"), Reply(f"SỰ CỐ {tag}2")]
            await app.outbox.deliver_now(
                app.outbox.enqueue_direct(f"test:{tag}:{n}", {int(officer): replies})
            )

    # 1. The first process: killed as a task a third of the way through.
    with open_app(settings, clock) as app:
        async with channel_up(app):
            sender = app.outbox.start_sender("process-1")
            await alerts(app, "a")
            await until(lambda: len(api.gate.accepted) >= schools // 3, "a third of the wave", WAIT)
            assert len(api.gate.accepted) < schools  # the crash falls mid-wave
            in_flight_at_crashes += len(sender.inflight)
            sender.kill()
            app.outbox.sender = None
            await settled(api)  # a restart takes a moment; the fake's windows move on
            # 2. A new sender task in the same process: the old claims come back once their lease runs out.
            clock.advance(seconds=lease + 1)
            sender = app.outbox.start_sender("process-1-again")
            await alerts(app, "b")
            await until(lambda: len(api.gate.accepted) >= 2 * schools // 3, "two thirds of the wave", WAIT)
            assert len(api.gate.accepted) < schools  # and so does the second
            in_flight_at_crashes += len(sender.inflight)
            sender.kill()  # and then the whole process goes: nothing is cleaned up
            app.outbox.sender = None
    await settled(api)

    # 3. A new process on the same database.
    clock.advance(seconds=lease + 1)
    with open_app(settings, clock) as app:
        async with channel_up(app):
            app.outbox.start_sender("process-2")
            await alerts(app, "c")
            await until(lambda: outbox_statuses(app)["sent"] == schools + 18, "every message sent", 2 * WAIT)
            await app.outbox.stop_sender()
        assert outbox_statuses(app) == {"sent": schools + 18}

    got = collections.Counter(chat for _, chat in api.gate.accepted)
    assert api.gate.refused == 0  # not one 429 at the configured rate, across the restarts
    assert {str(c) for c in seeded.chats} <= set(got)  # every school reminded: nothing lost
    duplicates = sum(n - 1 for chat, n in got.items() if chat not in {"900", "901", "902"})
    assert duplicates <= in_flight_at_crashes <= 2 * settings.outbox.concurrency
    assert [got[str(900 + n)] for n in range(3)] == [6, 6, 6]  # each officer: two alerts a round, paced
    texts = [  # a request cut off by a crash can reach the fake without its fields
        c.params["text"]
        for c in api.calls
        if c.method == "sendMessage" and c.params.get("chat_id") == str(seeded.chats[0])
    ]
    assert texts and texts[0].startswith("⏰ Nhắc nộp Bài viết tháng 11/2026")
    return in_flight_at_crashes


async def test_platform_faults_over_the_wire(tmp_path: Path, database_url: str, api: FakeBotAPI) -> None:
    settings = settings_for(tmp_path, api, database_url)
    clock = FrozenClock(datetime(2026, 11, 10, 8, 0))
    with open_app(settings, clock) as app:
        seeded = seed_wave(app.db, 40, clock.now())
        reminders.sweep(app.db, clock, settings, app.catalog)
        blocked, gone = seeded.chats[5], seeded.chats[6]
        api.block(blocked)
        api.forget_chat(gone)
        api.fail(
            "sendMessage", 429, "Too Many Requests: retry after 0.3", times=1, parameters={"retry_after": 0.3}
        )
        async with channel_up(app):
            sender: OutboxSender = app.outbox.start_sender("faults")
            await until(lambda: app.outbox.stats.retry_after == 1, "the 429", WAIT)
            api.fail("sendMessage", 500, "Internal Server Error", times=6)
            for _ in range(200):
                counts = outbox_statuses(app)
                if counts["sent"] == 38 and counts["blocked"] == 1 and counts["dead"] == 1:
                    break
                clock.advance(seconds=30)  # the backoff passes
                sender.poke()
                await asyncio.sleep(0.02)
            await app.outbox.stop_sender()
        assert outbox_statuses(app) == {"sent": 38, "blocked": 1, "dead": 1}
        with app.db.session() as s:
            users = {u.chat_id: u for u in s.exec(select(User).where(User.channel == "telegram"))}
            retried = s.exec(select(Outbox).where(col(Outbox.attempts) > 0)).all()
        assert users[str(blocked)].blocked and users[str(gone)].blocked
        assert len(retried) >= 1 and all(
            r.status == "sent" for r in retried if r.chat_id not in {str(blocked), str(gone)}
        )
        assert app.outbox.stats.transient >= 6 and app.outbox.stats.retry_after == 1
    sent = collections.Counter(chat for _, chat in api.gate.accepted)
    assert all(sent[str(c)] == 1 for c in seeded.chats if c not in (blocked, gone))  # none lost, none twice
    assert str(blocked) not in sent and str(gone) not in sent
    assert api.gate.refused == 0


async def test_with_ptbs_own_limiter_a_429_reaches_the_outbox_and_a_reply_is_retried(
    tmp_path: Path, database_url: str, api: FakeBotAPI
) -> None:
    """The production set-up (the lanes on): an outbox send that meets a 429 is not retried inside
    PTB, so the outbox learns of it, pauses and sends the row again itself; a reply to someone writing
    waits the 429 out and goes again, so they still get their answer."""
    settings = settings_for(tmp_path, api, database_url)
    clock = FrozenClock(datetime(2026, 11, 10, 8, 0))
    with open_app(settings, clock) as app:
        seeded = seed_wave(app.db, 1, clock.now())
        assert reminders.sweep(app.db, clock, settings, app.catalog).created == 1
        async with attached(app, TelegramChannel(app, poll_timeout=0.5, typing_after=60.0)):
            too_many = {"retry_after": 0.2}
            api.fail("sendMessage", 429, "Too Many Requests: retry after 0.2", times=1, parameters=too_many)
            app.outbox.start_sender("limited")
            await until(lambda: outbox_statuses(app)["sent"] == 1, "the reminder sent", WAIT)
            await app.outbox.stop_sender()
            assert app.outbox.stats.retry_after == 1  # the outbox saw the 429 and owned the retry
            api.fail("sendMessage", 429, "Too Many Requests: retry after 0.2", times=1, parameters=too_many)
            api.push_update(text_update(TgUser(5555, "Ai", "Đó"), "xin chào"))
            await until(lambda: bool(api.sent_to(5555)), "the reply after PTB's own retry", WAIT)
            # The outbox now leaves that chat its gap, so no reminder follows right on the reply's heels.
            await until(lambda: "5555" in app.outbox.pace("telegram").chat_free, "the chat's gap noted", WAIT)
    refused = [c for c in api.calls if c.method == "sendMessage" and c.status == 429]
    assert len(refused) == 2
    assert collections.Counter(chat for _, chat in api.gate.accepted)[str(seeded.chats[0])] == 1


ANNOUNCED = 500
SECOND = 50  # schools with a second person (the communication staff), the last fifty
STAFF_CHAT = 6_000_000
TEXT = "Đề nghị các trường cập nhật trang thông tin điện tử trước ngày 20/11/2026."


async def test_an_announcement_to_500_schools_is_sent_once_to_each_person_and_confirmations_counted(
    tmp_path: Path, database_url: str, api: FakeBotAPI
) -> None:
    """/announce from a province officer (at the console) to 500 schools, 550 people: one message to
    each, within the fake's limits; 350 press "received" and the officer's view counts them and names
    the schools yet to confirm."""
    settings = settings_for(tmp_path, api, database_url)
    clock = FrozenClock(datetime(2026, 11, 10, 9, 0))
    with open_app(settings, clock) as app:
        seeded = seed_wave(app.db, ANNOUNCED, clock.now())
        staff = list(zip(seeded.school_ids[-SECOND:], range(STAFF_CHAT, STAFF_CHAT + SECOND), strict=True))
        with app.db.session() as s:
            s.add(
                User(
                    channel="console",
                    external_id="officer",
                    chat_id="officer",
                    display_name="Chuyên viên Sở",
                    role="officer",
                    office_id=seeded.province_id,
                    created_at=clock.now(),
                )
            )
            s.execute(
                insert(User),
                [
                    {
                        "channel": "telegram",
                        "external_id": str(chat),
                        "chat_id": str(chat),
                        "display_name": f"Cán bộ truyền thông {chat}",
                        "role": "principal",
                        "school_id": school_id,
                        "locale": "vi",
                        "blocked": False,
                        "menu": {},
                        "created_at": clock.now(),
                    }
                    for school_id, chat in staff
                ],
            )
        channel = TelegramChannel(app, rate_limit=False, poll_timeout=0.5, typing_after=60.0)
        async with attached(app, channel):
            tg = Tg(api, channel, app)
            officer = Chat(app, "officer", "Chuyên viên Sở")
            await officer.send("/announce")
            await officer.press("Soạn thông báo mới")
            await officer.send(TEXT)
            await officer.press("Bỏ qua")
            await officer.press("Tất cả các trường")
            assert "Sẽ gửi đến 500 trường (550 người nhận)" in officer.last.text
            sent = await officer.press("📤 Gửi")
            assert "500 trường (550 người nhận)" in sent[0].text
            assert len(outbox_rows(app, kind="announce")) == ANNOUNCED + SECOND

            app.outbox.start_sender("wave")
            await until(lambda: outbox_statuses(app)["sent"] == ANNOUNCED + SECOND, "every message sent", 120)
            await app.outbox.stop_sender()

            recipients = [str(c) for c in seeded.chats] + [str(c) for _, c in staff]
            got = collections.Counter(chat for _, chat in api.gate.accepted)
            assert {chat: got[chat] for chat in recipients} == dict.fromkeys(recipients, 1)  # each once
            assert api.gate.refused == 0  # paced under the platform's limits
            message = api.sent_to(seeded.chats[0])[-1]
            assert message["text"].startswith("📢 THÔNG BÁO CỦA Sở GD&ĐT Thử tải")
            assert TEXT in message["text"]
            assert message["reply_markup"]["inline_keyboard"] == [
                [{"text": "✅ Đã nhận", "callback_data": "ar:1"}]
            ]

            pressing = [TgUser(c, f"P{c}") for c in seeded.chats[:300]] + [
                TgUser(c, f"S{c}") for _, c in staff
            ]
            for start in range(0, len(pressing), 25):
                await tg.push(*(callback_update(u, "ar:1") for u in pressing[start : start + 25]))
            await tg.push(callback_update(pressing[0], "ar:1"))  # a second press counts once

            with app.db.session() as s:
                confirmed = [r for r in s.exec(select(AnnouncementReceipt)) if r.confirmed_at is not None]
            assert len(confirmed) == 350
            await officer.send("/announce")
            view = await officer.press("Xem thông báo #1")
            text = view[0].text
            assert "Đã gửi: 550 tin" in text
            assert "Đã nhận: 350/500 trường (350/550 người)" in text  # the last 50 schools by their staff
            assert "150 trường chưa bấm Đã nhận" in text
            assert "Trường Tiểu học Thử Tải 00300" in text and "Trường Tiểu học Thử Tải 00299" not in text
            assert "và 90 trường khác" in text  # 60 named
