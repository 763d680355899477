"""The Telegram channel, driving the real python-telegram-bot stack against a loopback fake Bot API."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import select
from telegram import Message, Update

from bot.app import App
from bot.channels.telegram import TelegramChannel, split_text, to_incoming
from bot.channels.telegram.wire import chat_of, keyboard, keyboard_json, parse_update
from bot.config import Settings, TelegramSettings, load_settings
from bot.outbox import REPLY
from bot.run import attached
from bot.workers import Began
from handlers.types import Choice, Kind, Reply
from storage import queries as q
from storage.errors import ConfigError
from storage.models import Draft, Incident, Office, Outbox, ProcessedUpdate, School, User
from storage.queries import InviteTarget
from storage.text import fold
from tests.fakes.telegram_api import (
    BOT_USERNAME,
    TOKEN,
    FakeBotAPI,
    TgUser,
    callback_update,
    edited_update,
    message_update,
    text_update,
)
from tests.support import add_principals, outbox_rows, outbox_statuses, until

PRINCIPAL = TgUser(1001, "Lan", "Lò Thị")
DISTRICT_OFFICER = TgUser(2001, "Minh", "Nguyễn Văn")
DISTRICT_LEADER = TgUser(2002, "Hùng", "Trần Văn")
PROVINCE_OFFICER = TgUser(3001, "Hoa", "Phạm Thị")
PROVINCE_LEADER = TgUser(3002, "Nam", "Đỗ Văn", language_code="en")
OTHER_OFFICER = TgUser(4001, "Tuấn", "Lê Anh")

SECRET = "s3cret-Token_for-tests"
SCHOOL = "Trường PTDTBT THCS Pú Nhi"


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; nothing here may leave 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(name="api")
def api_fixture() -> Iterator[FakeBotAPI]:
    """The fake Bot API, listening on a free 127.0.0.1 port for the test's duration."""
    with FakeBotAPI() as api:
        yield api


# The fake answers at once and limits nothing; a scripted user answers faster than any person, so the
# per-chat pace of replies (1 s apart after a burst, tests/bot/test_lanes.py) would only make these
# walks wait. The tests of pacing set their own.
UNPACED = {"per_chat_seconds": 0}


@pytest.fixture(name="settings")
def settings_fixture(tmp_path: Path, database_url: str, api: FakeBotAPI) -> Settings:
    """Default settings whose Telegram endpoints are the fake (overrides conftest's)."""
    return load_settings(
        None,
        database_url=database_url,
        media_dir=str(tmp_path / "media"),
        telegram=api.settings(),
        outbox=UNPACED,
    )


class Tg:
    """The running channel plus the fake: push updates, wait until handled, read what was sent."""

    def __init__(self, api: FakeBotAPI, channel: TelegramChannel, app: App) -> None:
        self.api = api
        self.channel = channel
        self.app = app

    async def push(self, *updates: dict[str, Any]) -> None:
        """Queue updates (one getUpdates batch) and wait until the bot has handled them all."""
        target = self.channel.handled + len(updates)
        self.api.push_update(*updates)
        await until(lambda: self.channel.handled >= target, f"{len(updates)} update(s) handled")

    async def send(self, user: TgUser, text: str) -> list[dict[str, Any]]:
        """A text message from `user`; the messages the bot sent to them in answer."""
        return await self._new_for(user, text_update(user, text))

    async def press(self, user: TgUser, data: str) -> list[dict[str, Any]]:
        """A button press from `user`; the messages the bot sent to them in answer."""
        return await self._new_for(user, callback_update(user, data))

    async def push_for(self, user: TgUser, update: dict[str, Any]) -> list[dict[str, Any]]:
        """Any update from `user`; the messages the bot sent to them in answer."""
        return await self._new_for(user, update)

    async def _new_for(self, user: TgUser, update: dict[str, Any]) -> list[dict[str, Any]]:
        before = len(self.api.sent_to(user.id))
        await self.push(update)
        return self.api.sent_to(user.id)[before:]

    def button(self, user: TgUser, label: str = "", data: Callable[[str], bool] | None = None) -> str:
        """The callback data of a button in the latest message to `user` that has buttons."""
        with_buttons = [m for m in self.api.sent_to(user.id) if m.get("reply_markup")]
        assert with_buttons, f"no keyboard sent to {user.first_name}"
        for row in with_buttons[-1]["reply_markup"]["inline_keyboard"]:
            for button in row:
                if (label and fold(label) in fold(button["text"])) or (
                    data and data(button["callback_data"])
                ):
                    return str(button["callback_data"])
        raise AssertionError(f"no button {label!r} in {with_buttons[-1]['reply_markup']}")

    def user(self, tg_user: TgUser) -> User | None:
        """The stored account of a Telegram user."""
        with self.app.db.session() as s:
            return q.get_user(s, "telegram", str(tg_user.id))

    def t(self, key: str, lang: str = "vi", **fields: Any) -> str:
        """A sentence from the locale files."""
        return self.app.catalog.translator(lang)(key, **fields)

    async def register(self, user: TgUser, role: str, school: str = "", office: str = "") -> None:
        """Register `user` with a fresh invite, through the deep link `/start CODE`."""
        code = invite(self.app, role, school=school, office=office)
        replies = await self.send(user, f"/start {code}")
        assert replies[0]["text"] == self.t(f"reg.ok.{role}", user.language_code)
        await self.profile(user, role)

    async def profile(self, user: TgUser, role: str) -> list[dict[str, Any]]:
        """Answer the profile asked after registering: the Telegram name, a position, no phone, send."""
        await self.send(user, user.full_name)
        if role == "principal":
            await self.press(user, self.button(user, data=lambda d: d.endswith(":a:principal")))
        await self.press(user, self.button(user, data=lambda d: d.endswith(":s:")))
        saved = await self.press(user, self.button(user, data=lambda d: d.endswith(":g:")))
        assert saved[0]["text"].startswith(self.t("profile.saved", user.language_code, label="")[:10])
        return saved


def invite(app: App, role: str, school: str = "", office: str = "") -> str:
    """A single-use code for a school (principal) or an office (officer, leader)."""
    with app.db.session() as s:
        school_row = q.school_by_code(s, school) if school else None
        office_row = q.office_by_code(s, office) if office else None
        target = InviteTarget(
            role=role,
            school_id=school_row.id if school_row else None,
            office_id=office_row.id if office_row else None,
        )
        return q.create_invites(s, target, 1, app.clock.now(), 14)[0].code


@asynccontextmanager
async def running(app: App, api: FakeBotAPI, **options: Any) -> AsyncIterator[Tg]:
    """The channel started against the fake, stopped afterwards (short polls: quick to stop)."""
    options = {"poll_timeout": 1.0, "typing_after": 60.0, **options}
    async with attached(app, TelegramChannel(app, **options)) as channel:
        yield Tg(api, channel, app)


@pytest.fixture(name="tg")
async def tg_fixture(demo: App, api: FakeBotAPI) -> AsyncIterator[Tg]:
    """The demo district with the Telegram channel polling the fake."""
    async with running(demo, api) as tg:
        yield tg


def draft_of(app: App, tg_user: TgUser) -> Draft | None:
    """The user's incident draft row, as stored."""
    with app.db.session() as s:
        user = q.get_user(s, "telegram", str(tg_user.id))
        assert user is not None and user.id is not None
        return q.get_draft(s, user.id, "incident")


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- start-up and registration ------------------------------------------------------------------


async def test_default_commands_are_set_at_start_in_both_languages(tg: Tg) -> None:
    calls = tg.api.calls_to("setMyCommands")
    default = [c for c in calls if "language_code" not in c]
    english = [c for c in calls if c.get("language_code") == "en"]
    assert len(default) == 1 and len(english) == 1
    assert "scope" not in default[0]  # the default scope: anyone who has not registered
    names = [c["command"] for c in default[0]["commands"]]
    assert names == [c.name for c in tg.app.router.menu_for(None)]
    assert "incident" not in names
    assert default[0]["commands"][0]["description"] == tg.t("cmd.start")
    assert english[0]["commands"][0]["description"] == tg.t("cmd.start", "en")


async def test_deep_link_registers_and_sets_the_chat_menu(tg: Tg) -> None:
    code = invite(tg.app, "principal", school="THCS-PUNHI")

    replies = await tg.send(PRINCIPAL, f"/start {code}")

    assert replies[0]["text"] == tg.t("reg.ok.principal")
    assert replies[1]["text"].startswith(tg.t("profile.intro"))
    saved = await tg.profile(PRINCIPAL, "principal")
    assert saved[0]["text"] == tg.t("profile.saved", label="Lan Lò Thị (Hiệu trưởng)")
    home = saved[1]
    assert "Trường PTDTBT THCS Pú Nhi" in home["text"]
    buttons = [b for row in home["reply_markup"]["inline_keyboard"] for b in row]
    assert {"text": tg.t("menu.incident"), "callback_data": "m:incident"} in buttons
    user = tg.user(PRINCIPAL)
    assert user is not None and user.role == "principal" and user.chat_id == str(PRINCIPAL.id)
    assert user.display_name == PRINCIPAL.full_name
    chat_menus = [c for c in tg.api.calls_to("setMyCommands") if c.get("scope", {}).get("type") == "chat"]
    assert len(chat_menus) == 1
    assert chat_menus[0]["scope"]["chat_id"] == PRINCIPAL.id
    names = {c["command"] for c in chat_menus[0]["commands"]}
    assert {"incident", "incidents", "menu", "cancel"} <= names
    incident = next(c for c in chat_menus[0]["commands"] if c["command"] == "incident")
    assert incident["description"] == tg.t("cmd.incident")


async def test_a_registration_reply_handed_to_the_outbox_still_sets_the_chat_menu(
    demo: App, api: FakeBotAPI
) -> None:
    """Telegram fails every message for longer than the reply may wait: the welcome goes to the outbox,
    and when the outbox sends it later the chat's command menu is set then, as it would have been."""
    outbox = demo.settings.outbox.model_copy(update={"reply_wait_seconds": 0.3})
    app = replace(demo, settings=demo.settings.model_copy(update={"outbox": outbox}))
    code = invite(app, "principal", school="THCS-PUNHI")
    async with running(app, api) as tg:
        api.fail("sendMessage", 500)
        api.push_update(text_update(PRINCIPAL, f"/start {code}"))
        await until(lambda: bool(outbox_rows(app, kind=REPLY, status="pending")), "the replies handed over")
        assert not api.sent_to(PRINCIPAL.id) and not [
            c for c in api.calls_to("setMyCommands") if "scope" in c
        ]
        api.clear_failures()
        app.outbox.start_sender("tests")
        await until(lambda: outbox_statuses(app)["pending"] == 0, "the outbox sent them")
        await until(lambda: any("scope" in c for c in api.calls_to("setMyCommands")), "the chat's menu")
        await app.outbox.stop_sender()

    assert api.sent_to(PRINCIPAL.id)[0]["text"] == tg.t("reg.ok.principal")
    [menu] = [c for c in api.calls_to("setMyCommands") if c.get("scope", {}).get("type") == "chat"]
    assert menu["scope"]["chat_id"] == PRINCIPAL.id
    assert "incident" in {c["command"] for c in menu["commands"]}


async def test_pasted_code_registers(tg: Tg) -> None:
    code = invite(tg.app, "officer", office="PGD-DEMO")

    hello = await tg.send(DISTRICT_OFFICER, "/start")
    assert [m["text"] for m in hello] == [tg.t("reg.welcome"), tg.t("reg.how")]
    replies = await tg.send(DISTRICT_OFFICER, code.lower())

    assert replies[0]["text"] == tg.t("reg.ok.officer")
    user = tg.user(DISTRICT_OFFICER)
    assert user is not None and user.role == "officer"


async def test_english_speaker_gets_english_menu(tg: Tg) -> None:
    code = invite(tg.app, "leader", office="SGD-DEMO")

    replies = await tg.send(PROVINCE_LEADER, f"/start {code}")

    assert replies[0]["text"] == tg.t("reg.ok.leader", "en")
    chat_menu = [c for c in tg.api.calls_to("setMyCommands") if "scope" in c][-1]
    described = {c["command"]: c["description"] for c in chat_menu["commands"]}
    assert described["incidents"] == tg.t("cmd.incidents", "en")


async def test_failing_set_commands_at_start_is_logged_and_the_bot_still_answers(
    demo: App, api: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    api.fail("setMyCommands", status=500, description="Internal Server Error")
    caplog.set_level(logging.WARNING, logger="schoolbot.telegram")

    async with running(demo, api) as tg:
        replies = await tg.send(PRINCIPAL, "/help")

    assert replies[0]["text"] == tg.t("help.guest")
    warnings = [r for r in caplog.records if r.name == "schoolbot.telegram" and r.levelno == logging.WARNING]
    assert any("default commands" in r.getMessage() for r in warnings)


# ---- the incident alert --------------------------------------------------------------------------


def add_other_district(app: App) -> None:
    """A second district under the same province, with one school."""
    with app.db.session() as s:
        province = q.office_by_code(s, "SGD-DEMO")
        assert province is not None
        other = Office(code="PGD-KHAC", name="Phòng GD&ĐT huyện Khác", kind="district", parent_id=province.id)
        s.add(other)
        s.flush()
        s.add(
            School(
                code="TH-KHAC",
                name="Trường Tiểu học Khác",
                name_folded=fold("Trường Tiểu học Khác"),
                level="TH",
                office_id=other.id or 0,
            )
        )


async def fill_incident(tg: Tg) -> list[dict[str, Any]]:
    """The principal files an incident, pressing buttons wherever the form offers them."""
    p = PRINCIPAL
    started = await tg.send(p, "/incident")
    assert started[0]["text"] == tg.t("flow.started", title=tg.t("incident.title"))
    await tg.send(p, "Một tài khoản Facebook đăng tin sai sự thật về bữa ăn bán trú của trường.")
    await tg.press(p, tg.button(p, tg.t("btn.today")))
    await tg.send(p, "7h15")  # the time of day, after the day
    await tg.send(p, "Nhóm Facebook của xã Pú Nhi")
    await tg.press(p, tg.button(p, tg.t("incident.network.facebook")))
    await tg.press(p, tg.button(p, tg.t("incident.network.zalo")))
    draft = draft_of(tg.app, p)
    assert draft is not None and draft.answers.get("networks") == ["facebook", "zalo"]
    await tg.press(p, tg.button(p, tg.t("btn.done")))
    await tg.send(p, "https://facebook.com/groups/punhi/posts/1 https://baomoi.vn/tin-1.html")
    await tg.press(p, tg.button(p, tg.t("btn.done")))  # the links
    await tg.press(p, tg.button(p, tg.t("btn.done")))  # no screenshots
    await tg.send(p, "Đã gặp phụ huynh đăng tin và đề nghị gỡ bài; đã báo chính quyền xã.")
    await tg.press(p, tg.button(p, tg.t("incident.level.high")))
    review = await tg.send(p, "+84 912 345 678")  # the callback phone (the profile has none)
    assert review[-1]["text"].startswith(tg.t("form.review", title=tg.t("incident.title")))
    return await tg.press(p, tg.button(p, tg.t("btn.send")))


async def test_incident_alert_reaches_district_and_province_staff_and_the_ack_comes_back(tg: Tg) -> None:
    add_other_district(tg.app)
    await tg.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    await tg.register(DISTRICT_OFFICER, "officer", office="PGD-DEMO")
    await tg.register(DISTRICT_LEADER, "leader", office="PGD-DEMO")
    await tg.register(PROVINCE_OFFICER, "officer", office="SGD-DEMO")
    await tg.register(PROVINCE_LEADER, "leader", office="SGD-DEMO")
    await tg.register(OTHER_OFFICER, "officer", office="PGD-KHAC")
    await tg.send(PROVINCE_LEADER, "/language en")  # alerts follow the saved language
    before = {u.id: len(tg.api.sent_to(u.id)) for u in (DISTRICT_OFFICER, OTHER_OFFICER)}

    sent = await fill_incident(tg)

    with tg.app.db.session() as s:
        incident = s.exec(select(Incident)).one()
    # 4 officers and leaders on Telegram, plus the demo's 2 console users (kept in their inbox)
    assert sent[0]["text"].startswith(
        tg.t("incident.sent", number=incident.id, count=6, names="|").split("|")[0]
    )
    for staff in (DISTRICT_OFFICER, DISTRICT_LEADER, PROVINCE_OFFICER, PROVINCE_LEADER):
        alert = tg.api.sent_to(staff.id)[-1]
        lang = staff.language_code
        by = tg.t(
            "profile.label",
            lang,
            name=PRINCIPAL.full_name,
            position=tg.t("profile.positions.principal", lang),
        )
        headline = tg.t("incident.alert", lang, number=incident.id, school=SCHOOL, by=by)
        assert alert["text"].startswith(headline + "\n")
        assert alert["reply_markup"]["inline_keyboard"][0] == [
            {"text": tg.t("btn.ack", lang), "callback_data": f"k:{incident.id}"}
        ]
        assert "07:15 10/11/2026" in alert["text"] and "0912345678" in alert["text"]
        assert "https://baomoi.vn/tin-1.html" in alert["text"]
    assert len(tg.api.sent_to(OTHER_OFFICER.id)) == before[OTHER_OFFICER.id]
    others = (DISTRICT_LEADER, PROVINCE_OFFICER, PROVINCE_LEADER)
    sent_before = {u.id: len(tg.api.sent_to(u.id)) for u in others}

    acked = await tg.press(DISTRICT_OFFICER, f"k:{incident.id}")

    assert acked[0]["text"] == tg.t("incident.ack_done", number=incident.id)
    told = tg.api.sent_to(PRINCIPAL.id)[-1]["text"]
    assert told == tg.t(
        "incident.acked", number=incident.id, name=DISTRICT_OFFICER.full_name, role=tg.t("role.officer")
    )
    # The others' alerts are edited in place: who holds it, and no acknowledge button any more.
    await until(lambda: len(tg.api.calls_to("editMessageText", ok_only=True)) == 3, "the alerts edited")
    edits = {str(e["chat_id"]): e for e in tg.api.calls_to("editMessageText", ok_only=True)}
    with tg.app.db.session() as s:
        rows = s.exec(select(Outbox).where(Outbox.kind == "alert", Outbox.channel == "telegram")).all()
        refs = {r.chat_id: r.ref for r in rows}
    for staff in others:
        edit = edits[str(staff.id)]
        assert str(edit["message_id"]) == refs[str(staff.id)] != ""
        assert DISTRICT_OFFICER.full_name in edit["text"] and edit["text"].startswith("🚨")
        buttons = [b["callback_data"] for row in edit["reply_markup"]["inline_keyboard"] for b in row]
        assert buttons == [f"ic:o:{incident.id}"]
        assert len(tg.api.sent_to(staff.id)) == sent_before[staff.id]  # edited, nothing new sent
    for markup in tg.api.keyboards():
        for row in markup["inline_keyboard"]:
            for button in row:
                assert 1 <= len(button["callback_data"].encode("utf-8")) <= 64, button


async def test_the_case_conversation_reaches_each_side_once(tg: Tg) -> None:
    guidance = "Đề nghị nhà trường đăng thông tin chính thức trên trang thông tin điện tử."
    update = "Nhà trường đã đăng thông tin chính thức; phụ huynh đã gỡ bài."
    await tg.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    await tg.register(DISTRICT_OFFICER, "officer", office="PGD-DEMO")
    await fill_incident(tg)
    o, p = DISTRICT_OFFICER, PRINCIPAL
    await tg.press(o, "k:1")
    await tg.press(o, tg.button(o, tg.t("incident.case.btn.working")))
    await tg.press(o, tg.button(o, tg.t("incident.case.btn.reply")))
    await tg.send(o, guidance)
    sent = await tg.press(o, tg.button(o, tg.t("btn.send")))
    assert sent[0]["text"] == tg.t("incident.case.sent_office", number=1)

    def told(user: TgUser, text: str) -> int:
        return sum(m["text"].startswith("💬") and text in m["text"] for m in tg.api.sent_to(user.id))

    await until(lambda: told(p, guidance) == 1, "the guidance delivered")
    await tg.press(p, tg.button(p, tg.t("incident.case.btn.update")))  # on the guidance itself
    await tg.send(p, update)
    await tg.press(p, tg.button(p, tg.t("btn.done")))  # no links
    await tg.press(p, tg.button(p, tg.t("btn.done")))  # no photos
    answer = await tg.press(p, tg.button(p, tg.t("btn.send")))
    assert answer[0]["text"] == tg.t("incident.case.sent_school", number=1)
    await until(lambda: told(o, update) == 1, "the update delivered to the holder")
    assert told(p, guidance) == 1 and told(o, update) == 1 and told(p, update) == 0
    with tg.app.db.session() as s:
        rows = s.exec(select(Outbox).where(Outbox.kind == "case")).all()
    # the guidance to both of the school's accounts (this one and the demo's console principal), the
    # update to the officer who holds the case only
    assert sorted((r.step, r.status) for r in rows) == [("m1", "sent"), ("m1", "sent"), ("m2", "sent")]
    assert all(r.priority == 0 and not r.quiet for r in rows)  # the alert lane: quiet hours hold none


async def test_a_redelivered_update_is_processed_once(tg: Tg) -> None:
    update = text_update(PRINCIPAL, "/help")
    update["update_id"] = tg.api.next_update_id()

    await tg.push(update, dict(update))  # one batch: Telegram sends the same update twice

    assert len(tg.api.sent_to(PRINCIPAL.id)) == 1


async def test_stale_forged_and_non_text_input_leave_the_draft_unchanged(tg: Tg) -> None:
    p = PRINCIPAL
    await tg.register(p, "principal", school="THCS-PUNHI")
    presses = len(tg.api.calls_to("answerCallbackQuery"))  # the profile's
    await tg.send(p, "/incident")
    await tg.send(p, "Bài đăng sai sự thật về nhà trường.")
    old_today = tg.button(p, tg.t("btn.today"))
    await tg.press(p, old_today)
    await tg.send(p, "8:00")  # now at "where", a text step
    draft = draft_of(tg.app, p)
    assert draft is not None and draft.step == "where"
    tries: list[tuple[str, dict[str, Any]]] = [
        ("stale button", callback_update(p, old_today)),
        ("forged button", callback_update(p, "f:999:1:g:")),
        ("garbage button", callback_update(p, "zzz")),
        ("sticker", message_update(p, sticker=sticker())),
        ("location", message_update(p, location={"latitude": 21.3, "longitude": 103.2})),
        ("voice", message_update(p, voice={"file_id": "v1", "file_unique_id": "uv1", "duration": 3})),
    ]
    for what, update in tries:
        answered = await tg.push_for(p, update)

        assert 1 <= len(answered) <= 2, what
        assert len(answered[0]["text"]) < 400, what
        after = draft_of(tg.app, p)
        assert after is not None
        assert (after.step, after.version, after.answers) == (draft.step, draft.version, draft.answers), what
    assert len(tg.api.calls_to("answerCallbackQuery")) == presses + 4  # today + three bad presses


def sticker() -> dict[str, Any]:
    """A regular sticker object."""
    return {
        "file_id": "st1",
        "file_unique_id": "ust1",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": "👍",
    }


# ---- webhook --------------------------------------------------------------------------------------


def on_webhook(demo: App, api: FakeBotAPI) -> tuple[App, str]:
    """The demo app set to take Telegram's updates by webhook on a free port; the hook's local URL."""
    port = free_port()
    config = TelegramSettings(
        **api.settings(),
        mode="webhook",
        webhook_url="https://bot.example.test",
        listen="127.0.0.1",
        port=port,
        url_path="tg",
        secret_token=SecretStr(SECRET),
    )
    return replace(
        demo, settings=demo.settings.model_copy(update={"telegram": config})
    ), f"http://127.0.0.1:{port}/tg"


async def test_webhook_needs_the_secret_header(demo: App, api: FakeBotAPI) -> None:
    app, hook = on_webhook(demo, api)

    async with running(app, api) as tg, httpx.AsyncClient(trust_env=False) as client:
        assert api.calls_to("setWebhook")[-1]["url"] == "https://bot.example.test/tg"
        assert api.calls_to("setWebhook")[-1]["secret_token"] == SECRET
        good = text_update(PRINCIPAL, "/help") | {"update_id": api.next_update_id()}
        wrong = text_update(PRINCIPAL, "/whoami") | {"update_id": api.next_update_id()}
        missing = text_update(PRINCIPAL, "/menu") | {"update_id": api.next_update_id()}

        bad_answers = [
            await client.post(hook, json=wrong, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}),
            await client.post(hook, json=missing),
        ]
        handled = tg.channel.handled
        ok = await client.post(hook, json=good, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        await until(lambda: tg.channel.handled > handled, "the good update handled")
        again = await client.post(hook, json=good, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        await until(lambda: tg.channel.handled > handled + 1, "the redelivery handled")

    assert [r.status_code for r in bad_answers] == [403, 403]
    assert (ok.status_code, again.status_code) == (200, 200)
    assert [m["text"] for m in api.sent_to(PRINCIPAL.id)] == [tg.t("help.guest")]
    with demo.db.session() as s:
        keys = set(s.exec(select(ProcessedUpdate.key)))
    assert keys == {f"telegram:{good['update_id']}"}


async def test_a_press_posted_to_the_webhook_is_answered_in_the_webhook_answer(
    demo: App, api: FakeBotAPI
) -> None:
    app, hook = on_webhook(demo, api)
    with demo.db.session() as s:
        school = q.school_by_code(s, "THCS-PUNHI")
        assert school is not None
        place = (school.id, school.office_id)
    add_principals(demo, 1, [place], first=PRINCIPAL.id)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with running(app, api) as tg, httpx.AsyncClient(trust_env=False) as client:
        opened = await client.post(
            hook,
            json=text_update(PRINCIPAL, "/menu") | {"update_id": api.next_update_id()},
            headers=headers,
        )
        await until(lambda: tg.channel.handled >= 1, "the command handled")
        buttons = [b for row in api.keyboards()[-1]["inline_keyboard"] for b in row]
        shown = len(api.sent_to(PRINCIPAL.id))
        press = callback_update(PRINCIPAL, buttons[0]["callback_data"]) | {"update_id": api.next_update_id()}
        answer = await client.post(hook, json=press, headers=headers)
        await until(lambda: tg.channel.handled >= 2, "the press handled")
        await until(lambda: len(api.sent_to(PRINCIPAL.id)) > shown, "the press's reply")

    assert opened.json() == {}  # a message: nothing to run
    assert answer.json() == {
        "method": "answerCallbackQuery",
        "callback_query_id": press["callback_query"]["id"],
    }
    assert api.calls_to("answerCallbackQuery") == []  # answered there once, not again by a request of its own


# ---- delivery ---------------------------------------------------------------------------------------


async def test_typing_indicator_on_a_slow_reply(demo: App, api: FakeBotAPI) -> None:
    async with running(demo, api, typing_after=0) as tg:
        await tg.send(PRINCIPAL, "/help")

    actions = api.calls_to("sendChatAction")
    assert actions and actions[0] == {"chat_id": str(PRINCIPAL.id), "action": "typing"}


async def test_typing_counts_from_the_update_s_own_work_not_its_wait_in_line(
    demo: App, api: FakeBotAPI
) -> None:
    # At the peak an update waits behind hundreds of others: an indicator for each would be one request
    # more an update, lengthening the line. "typing..." shows once the update's own work runs long.
    async with running(demo, api, typing_after=0.05, typing_every=0.05) as tg:
        began, done = Began(), asyncio.Event()

        async def work() -> list[Reply]:
            await done.wait()
            return []

        waiting = asyncio.ensure_future(tg.channel.with_typing(str(PRINCIPAL.id), work(), began))
        for _ in range(40):  # eight times the indicator's delay, still in line
            await asyncio.sleep(0.01)
        assert api.calls_to("sendChatAction") == []
        began.mark()  # its own work begins, and runs on
        await until(lambda: len(api.calls_to("sendChatAction")) >= 2, "typing, then typing again")
        done.set()
        assert await waiting == []
    assert api.calls_to("sendChatAction")[0] == {"chat_id": str(PRINCIPAL.id), "action": "typing"}


async def test_an_officer_who_blocked_the_bot_is_marked_when_an_alert_is_sent(tg: Tg) -> None:
    await tg.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    await tg.register(DISTRICT_OFFICER, "officer", office="PGD-DEMO")
    await tg.register(DISTRICT_LEADER, "leader", office="PGD-DEMO")
    tg.api.block(DISTRICT_OFFICER.id)

    sent = await fill_incident(tg)

    assert sent[0]["text"].startswith(tg.t("incident.sent", number=1, count=4, names="|").split("|")[0])
    officer, leader = tg.user(DISTRICT_OFFICER), tg.user(DISTRICT_LEADER)
    assert officer is not None and officer.blocked
    assert leader is not None and not leader.blocked
    assert (
        tg.api.sent_to(DISTRICT_LEADER.id)[-1]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        == "k:1"
    )
    # The alert waits in the inbox; writing again unblocks and delivers it.
    tg.api.unblock(DISTRICT_OFFICER.id)
    replies = await tg.send(DISTRICT_OFFICER, "/whoami")
    assert replies[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "k:1"
    officer = tg.user(DISTRICT_OFFICER)
    assert officer is not None and not officer.blocked


async def test_blocking_the_bot_marks_the_user(tg: Tg) -> None:
    await tg.register(DISTRICT_OFFICER, "officer", office="PGD-DEMO")
    kicked = {
        "my_chat_member": {
            "chat": DISTRICT_OFFICER.private_chat(),
            "from": DISTRICT_OFFICER.as_json(),
            "date": 1,
            "old_chat_member": {"status": "member", "user": tg.api.me},
            "new_chat_member": {"status": "kicked", "user": tg.api.me, "until_date": 0},
        }
    }

    await tg.push(kicked)

    officer = tg.user(DISTRICT_OFFICER)
    assert officer is not None and officer.blocked


async def test_long_text_is_split_at_line_breaks_with_buttons_on_the_last_part(tg: Tg) -> None:
    line = "Dòng thông báo khá dài để thử việc chia tin nhắn theo giới hạn của Telegram. " * 2
    text = "\n".join(f"{i}. {line}" for i in range(60))
    reply = Reply(text, ((Choice("OK", "m:menu"),),))

    await tg.channel.render(PRINCIPAL.id, [reply], "vi")

    parts = tg.api.sent_to(PRINCIPAL.id)
    assert len(parts) == len(split_text(text)) > 1
    assert all(len(p["text"]) <= 4096 for p in parts)
    assert "\n".join(p["text"] for p in parts) == text
    assert [("reply_markup" in p) for p in parts] == [False] * (len(parts) - 1) + [True]


async def test_a_reply_with_a_photo_sends_the_file(tg: Tg, tmp_path: Path) -> None:
    photo = tmp_path / "anh.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    await tg.channel.render(PRINCIPAL.id, [Reply("Ảnh mẫu:", photo_path=str(photo))], "vi")

    assert tg.api.sent_to(PRINCIPAL.id)[-1]["text"] == "Ảnh mẫu:"
    sent = tg.api.calls_to("sendPhoto", ok_only=True)
    assert len(sent) == 1 and sent[0]["chat_id"] == str(PRINCIPAL.id)
    assert sent[0]["photo"]["size"] == photo.stat().st_size


async def test_the_token_never_reaches_the_logs(
    demo: App, api: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for noisy in ("httpx", "telegram.ext.ExtBot"):  # other tests may have quietened these (bot.cli)
        caplog.set_level(logging.DEBUG, logger=noisy)
    api.fail("setMyCommands", status=500)
    api.fail("sendChatAction", status=502, description="Bad Gateway")

    async with running(demo, api, typing_after=0) as tg:
        await tg.register(PRINCIPAL, "principal", school="THCS-PUNHI")
        await tg.register(DISTRICT_OFFICER, "officer", office="PGD-DEMO")
        api.block(DISTRICT_OFFICER.id)
        await fill_incident(tg)

    assert "blocked the bot" in caplog.text
    assert "could not set" in caplog.text
    assert "/bot<token>" in caplog.text  # PTB did log its URL, which holds the token...
    assert TOKEN not in caplog.text  # ...without the token
    assert TOKEN.partition(":")[2] not in caplog.text


async def test_a_rejected_token_is_a_config_error_that_does_not_quote_it(
    demo: App, api: FakeBotAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "999999:WRONG-token-value-xyz"
    config = demo.settings.telegram.model_copy(update={"token": SecretStr(wrong)})
    app = replace(demo, settings=demo.settings.model_copy(update={"telegram": config}))

    with pytest.raises(ConfigError) as raised:
        async with running(app, api):
            pass

    assert "telegram.token" in str(raised.value) and wrong not in str(raised.value)
    assert wrong not in caplog.text and wrong.partition(":")[2] not in caplog.text
    assert "telegram" not in demo.dispatcher.senders
    assert [c.status for c in api.calls] == [401]


# ---- keyboards ------------------------------------------------------------------------------------


def test_buttons_with_data_over_64_bytes_are_left_out_and_keyboards_are_built_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    long = "x" * 65
    reply = Reply("Chọn", ((Choice("Có", "f:yes"), Choice("Quá dài", long)), (Choice("Chỉ dài", long),)))

    markup = keyboard(reply)
    again = keyboard(Reply("Chọn lại", reply.choices))

    assert markup is not None
    assert [[b.callback_data for b in row] for row in markup.inline_keyboard] == [["f:yes"]]
    assert again is markup  # the same choices, the same (immutable) keyboard
    assert "callback data is 65 bytes" in caplog.text
    assert keyboard(Reply("Không nút")) is None
    assert keyboard(Reply("Chỉ nút dài", ((Choice("Dài", long),),))) is None
    # The JSON sent with a message is what PTB makes of the same keyboard (written without its objects).
    assert keyboard_json(reply) is not None
    assert json.loads(keyboard_json(reply) or "") == markup.to_dict()
    assert keyboard_json(Reply("Chỉ nút dài", ((Choice("Dài", long),),))) is None


# ---- to_incoming -----------------------------------------------------------------------------------


def parse(update: dict[str, Any]) -> Update:
    """A real PTB Update from Bot API JSON."""
    return Update.de_json({"update_id": 7, **update}, None)


def test_a_press_is_parsed_without_the_body_of_the_message_it_was_on() -> None:
    press = {"update_id": 8, **callback_update(PRINCIPAL, "f:3:2:a:1", message_id=41)}
    shown = press["callback_query"]["message"]
    shown["reply_markup"] = {"inline_keyboard": [[{"text": "Có", "callback_data": "f:3:2:a:1"}]]}
    shown["entities"] = [{"type": "bold", "offset": 0, "length": 3}]
    stored = copy.deepcopy(press)

    slim, whole = parse_update(press, None), Update.de_json(copy.deepcopy(press), None)

    assert press == stored  # the stored JSON is left whole
    assert to_incoming(slim) == to_incoming(whole)
    assert slim.effective_chat is not None and slim.effective_chat.id == PRINCIPAL.id
    message = slim.callback_query.message if slim.callback_query else None
    assert isinstance(message, Message) and message.message_id == 41
    assert message.reply_markup is None and message.text is None  # not built for a press
    shown["date"] = 0  # an old message Telegram no longer shows: parsed as PTB parses the whole one
    old, whole_old = parse_update(press, None).callback_query, Update.de_json(press, None).callback_query
    assert old is not None and whole_old is not None
    assert type(old.message) is type(whole_old.message)
    assert to_incoming(parse_update(press, None)) == to_incoming(Update.de_json(press, None))


def test_an_updates_chat_is_read_from_its_json_as_ptb_finds_it() -> None:
    """Updates are stored unparsed: the chat read from the JSON is PTB's effective chat, for every kind
    the bot asks for; anything else, or a malformed update, has none (and is handled on its own)."""
    group = {"id": -100123, "type": "supergroup", "title": "Tổ văn phòng"}
    inline_press = callback_update(PRINCIPAL, "k:1")
    del inline_press["callback_query"]["message"]
    inline_press["callback_query"]["inline_message_id"] = "im1"
    member = {
        "chat": DISTRICT_OFFICER.private_chat(),
        "from": DISTRICT_OFFICER.as_json(),
        "date": 1,
        "old_chat_member": {"status": "member", "user": {"id": 9, "is_bot": True, "first_name": "B"}},
        "new_chat_member": {
            "status": "kicked",
            "user": {"id": 9, "is_bot": True, "first_name": "B"},
            "until_date": 0,
        },
    }
    updates = [
        text_update(PRINCIPAL, "xin chào"),
        message_update(PRINCIPAL, chat=group, text="trong nhóm"),
        edited_update(text_update(PRINCIPAL, "cũ"), "mới"),
        callback_update(DISTRICT_OFFICER, "f:1:2:a:x"),
        inline_press,
        {"my_chat_member": member},
        {"inline_query": {"id": "q1", "from": PRINCIPAL.as_json(), "query": "", "offset": ""}},
    ]
    for update in updates:
        chat = parse(update).effective_chat
        assert chat_of({"update_id": 7, **update}) == (str(chat.id) if chat is not None else "")
    assert [chat_of(u) for u in updates[:4]] == ["1001", "-100123", "1001", "2001"]
    malformed: dict[str, Any]
    for malformed in ({"message": "hi"}, {"message": {"chat": {"id": "x"}}}, {"callback_query": []}, {}):
        assert chat_of({"update_id": 8, **malformed}) == ""


def test_commands_with_bot_name_and_deep_link_arguments() -> None:
    got = to_incoming(parse(text_update(PRINCIPAL, f"/Start@{BOT_USERNAME} AB12CD34")))

    assert got is not None
    assert (got.kind, got.command, got.args) == (Kind.COMMAND, "Start", "AB12CD34")
    assert (got.channel, got.user_id, got.chat_id, got.update_id) == ("telegram", "1001", "1001", "7")
    assert (got.display_name, got.language) == ("Lan Lò Thị", "vi")


def test_plain_text_and_language() -> None:
    got = to_incoming(parse(text_update(replace(PRINCIPAL, language_code="fr"), "xin chào")))

    assert got is not None and (got.kind, got.text, got.language) == (Kind.TEXT, "xin chào", "")


def test_button_press_is_a_choice() -> None:
    got = to_incoming(parse(callback_update(PRINCIPAL, "f:1:2:a:x")))

    assert got is not None and (got.kind, got.choice, got.chat_id) == (Kind.CHOICE, "f:1:2:a:x", "1001")


def test_photo_takes_the_largest_size() -> None:
    sizes = [
        {"file_id": "s", "file_unique_id": "us", "width": 90, "height": 60, "file_size": 1000},
        {"file_id": "l", "file_unique_id": "ul", "width": 1280, "height": 853, "file_size": 90000},
        {"file_id": "m", "file_unique_id": "um", "width": 320, "height": 213, "file_size": 9000},
    ]
    got = to_incoming(parse(message_update(PRINCIPAL, photo=sizes, caption="Lễ khai giảng")))

    assert got is not None and got.kind == Kind.MEDIA and got.text == "Lễ khai giảng"
    media = got.media[0]
    assert (media.kind, media.file_id, media.file_unique_id) == ("photo", "l", "ul")
    assert (media.width, media.height, media.size) == (1280, 853, 90000)


def test_document_and_video_metadata() -> None:
    doc = {
        "file_id": "d",
        "file_unique_id": "ud",
        "file_name": "anh.jpg",
        "mime_type": "image/jpeg",
        "file_size": 5,
    }
    video = {
        "file_id": "v",
        "file_unique_id": "uv",
        "width": 1920,
        "height": 1080,
        "duration": 45,
        "mime_type": "video/mp4",
        "file_size": 9,
    }
    got_doc = to_incoming(parse(message_update(PRINCIPAL, document=doc)))
    got_video = to_incoming(parse(message_update(PRINCIPAL, video=video)))

    assert got_doc is not None and got_video is not None
    d, v = got_doc.media[0], got_video.media[0]
    assert (d.kind, d.mime_type, d.file_name, d.size) == ("document", "image/jpeg", "anh.jpg", 5)
    assert (v.kind, v.width, v.height, v.duration, v.mime_type, v.size) == (
        "video",
        1920,
        1080,
        45,
        "video/mp4",
        9,
    )


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"sticker": sticker()}, Kind.STICKER),
        ({"location": {"latitude": 1.0, "longitude": 2.0}}, Kind.LOCATION),
        (
            {
                "venue": {
                    "location": {"latitude": 1.0, "longitude": 2.0},
                    "title": "Trường",
                    "address": "Xã",
                },
                "location": {"latitude": 1.0, "longitude": 2.0},
            },
            Kind.LOCATION,
        ),
        ({"voice": {"file_id": "v", "file_unique_id": "uv", "duration": 2}}, Kind.VOICE),
        ({"audio": {"file_id": "a", "file_unique_id": "ua", "duration": 2}}, Kind.VOICE),
        ({"video_note": {"file_id": "n", "file_unique_id": "un", "length": 240, "duration": 2}}, Kind.VOICE),
        ({"contact": {"phone_number": "0912345678", "first_name": "Lan"}}, Kind.CONTACT),
        ({"dice": {"emoji": "🎲", "value": 3}}, Kind.OTHER),
    ],
)
def test_other_message_kinds(fields: dict[str, Any], kind: Kind) -> None:
    got = to_incoming(parse(message_update(PRINCIPAL, **fields)))

    assert got is not None and got.kind == kind


def test_an_edited_text_names_its_message_and_groups_are_ignored() -> None:
    sent = text_update(PRINCIPAL, "sưa")["message"]
    edited = {"edited_message": sent | {"text": "sửa", "edit_date": 2}}
    photo = {"file_id": "P1", "file_unique_id": "PU1", "width": 90, "height": 60}
    caption = {
        "edited_message": {k: v for k, v in sent.items() if k != "text"}
        | {"photo": [photo], "caption": "ảnh"}
    }
    group = message_update(PRINCIPAL, chat={"id": -100, "type": "group", "title": "Tổ"}, text="chào")
    group_edit = {"edited_message": group["message"] | {"edit_date": 2}}

    got = to_incoming(parse(edited))
    assert got is not None and (got.kind, got.text, got.message_id) == (
        Kind.EDITED,
        "sửa",
        str(sent["message_id"]),
    )
    first = to_incoming(parse({"message": sent}))
    assert first is not None and first.message_id == str(sent["message_id"])  # answers keep their ids
    assert to_incoming(parse(caption)) is None  # an edited caption answers nothing
    assert to_incoming(parse(group)) is None
    assert to_incoming(parse(group_edit)) is None


def test_split_text_keeps_short_text_whole_and_cuts_a_very_long_line() -> None:
    assert split_text("ngắn") == ["ngắn"]
    parts = split_text("a " * 5000)
    assert len(parts) == 3 and all(len(p) <= 4096 for p in parts)
