"""/announce to 500 schools over the real python-telegram-bot stack, against the fake Bot API's limits.

A province officer (at the console) writes the announcement; the outbox sends one message to each person of
each school (500 principals and 50 communication staff), each once, within the limits; 350 people press
"received" and the officer's view of the announcement counts them and names the schools yet to confirm.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlmodel import select

from bot.app import open_app
from bot.channels.telegram import TelegramChannel
from bot.run import attached
from handlers.calendar import FrozenClock
from storage.models import AnnouncementReceipt, User
from tests.bot.test_outbox_telegram import WINDOW, settings_for
from tests.bot.test_telegram import Tg
from tests.conftest import Chat
from tests.fakes.district import seed_wave
from tests.fakes.telegram_api import FakeBotAPI, FloodLimits, TgUser, callback_update
from tests.support import outbox_rows, outbox_statuses, until

SCHOOLS = 500
SECOND = 50  # schools with a second person (the communication staff), the last fifty
STAFF_CHAT = 6_000_000
TEXT = "Đề nghị các trường cập nhật trang thông tin điện tử trước ngày 20/11/2026."


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing leaves 127.0.0.1; PTB reports retry_after as a timedelta (no deprecation warning)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture(name="api")
def api_fixture() -> Iterator[FakeBotAPI]:
    with FakeBotAPI(limits=FloodLimits(window=WINDOW)) as api:
        yield api


async def test_an_announcement_to_500_schools_is_sent_once_to_each_person_and_confirmations_counted(
    tmp_path: Path, database_url: str, api: FakeBotAPI
) -> None:
    settings = settings_for(tmp_path, api, database_url)
    clock = FrozenClock(datetime(2026, 11, 10, 9, 0))
    with open_app(settings, clock) as app:
        seeded = seed_wave(app.db, SCHOOLS, clock.now())
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
            assert len(outbox_rows(app, kind="announce")) == SCHOOLS + SECOND

            app.outbox.start_sender("wave")
            await until(lambda: outbox_statuses(app)["sent"] == SCHOOLS + SECOND, "every message sent", 120)
            await app.outbox.stop_sender()

            recipients = [str(c) for c in seeded.chats] + [str(c) for _, c in staff]
            got = collections.Counter(chat for _, chat in api.flood.accepted)
            assert {chat: got[chat] for chat in recipients} == dict.fromkeys(recipients, 1)  # each once
            assert api.flood.refused == 0  # paced under the platform's limits
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
