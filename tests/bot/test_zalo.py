"""The Zalo channel: the adapter against httpx.MockTransport, the flows against a loopback fake Zalo API."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import select
from typer.testing import CliRunner

from bot.app import App
from bot.channels import base as channel_base
from bot.channels.base import Gate
from bot.channels.zalo import (
    CHANNEL,
    MAX_TEXT,
    BudgetExhausted,
    MonthlyBudget,
    NetworkError,
    PhotoTooLarge,
    RateLimited,
    Timing,
    TokenRejected,
    Unavailable,
    ZaloAPI,
    ZaloChannel,
    ZaloError,
    download,
    render_parts,
    to_incoming,
    unwrap,
    update_key,
    verify_secret,
)
from bot.cli import app as cli
from bot.config import Settings, ZaloSettings, load_settings
from bot.outbox import REPLY
from bot.run import attached
from handlers.calendar import FrozenClock
from handlers.types import Choice, Kind, Reply, numbered
from storage import queries as q
from storage.errors import ConfigError, FetchError
from storage.models import (
    Inbox,
    Incident,
    IncidentAck,
    MediaFile,
    ProcessedUpdate,
    Received,
    Submission,
    User,
)
from storage.models import Outbox as OutboxRow
from storage.text import label_key
from tests.bot.test_telegram import free_port, invite
from tests.bot.test_telegram import running as running_telegram
from tests.conftest import Chat
from tests.fakes.telegram_api import TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram_api import FakeBotAPI, TgUser
from tests.fakes.zalo_api import (
    TOKEN,
    FakeZaloAPI,
    ZaloUser,
    event,
    image_event,
    sticker_event,
    text_event,
    unsupported_event,
    wrapped,
)
from tests.handlers.article_helpers import photo_files, write_article
from tests.media.samples import jpeg
from tests.support import frozen, outbox_rows, until

PRINCIPAL = ZaloUser("a1b2c3d4e5f600000001", "Lò Thị Lan")
OFFICER = ZaloUser("a1b2c3d4e5f600000002", "Nguyễn Văn Minh")
LEADER = ZaloUser("a1b2c3d4e5f600000003", "Trần Văn Hùng")
SECRET = "zalo-webhook-Secret_42"
SCHOOL = "Trường PTDTBT THCS Pú Nhi"
DRIVE = "https://drive.google.com/drive/folders/1AbCdEfGh"
FAST = Timing(
    poll_timeout=1.0,
    typing_after=60.0,
    send_retries=(0.01, 0.02),
    backoff_base=0.01,
    backoff_max=0.05,
    replay_gap=0.02,
    fetch_timeout=0.4,
    bootstrap_retries=1,
    drain_timeout=5.0,
)
NUMBERED = re.compile(r"^\s*(\d+)\. (.+)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; nothing here may leave 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(name="api")
def api_fixture() -> Iterator[FakeZaloAPI]:
    """The fake Zalo Bot API on a free 127.0.0.1 port for the test's duration."""
    with FakeZaloAPI() as api:
        yield api


@pytest.fixture(name="settings")
def settings_fixture(tmp_path: Path, database_url: str, api: FakeZaloAPI) -> Settings:
    """Default settings whose Zalo endpoint is the fake (overrides conftest's)."""
    return load_settings(
        None,
        database_url=database_url,
        media_dir=str(tmp_path / "media"),
        zalo=api.settings(),
    )


def with_zalo(app: App, **changes: Any) -> App:
    """The app with other [zalo] (and [media]) settings."""
    media = changes.pop("media", None)
    config = app.settings.zalo.model_copy(update=changes)
    update: dict[str, Any] = {"zalo": config}
    if media is not None:
        update["media"] = app.settings.media.model_copy(update=media)
    settings = app.settings.model_copy(update=update)
    return replace(app, settings=settings, dispatcher=replace(app.dispatcher, settings=settings))


class Zl:
    """The running channel plus the fake: push updates, wait until handled, read what was sent."""

    def __init__(self, api: FakeZaloAPI, channel: ZaloChannel, app: App) -> None:
        self.api = api
        self.channel = channel
        self.app = app

    async def push(self, *updates: dict[str, Any]) -> None:
        """Queue updates for getUpdates and wait until the bot has handled them all."""
        target = self.channel.handled + len(updates)
        self.api.push(*updates)
        await until(lambda: self.channel.handled >= target, f"{len(updates)} update(s) handled")

    async def push_for(self, user: ZaloUser, update: dict[str, Any]) -> str:
        """Any update from `user`; the text the bot sent them in answer (parts joined)."""
        before = len(self.api.texts_to(user.id))
        await self.push(update)
        return "\n".join(self.api.texts_to(user.id)[before:])

    async def send(self, user: ZaloUser, text: str) -> str:
        """A text message from `user`; the text sent back."""
        return await self.push_for(user, text_event(user, text))

    async def photo(self, user: ZaloUser, name: str, content: bytes, **how: Any) -> str:
        """An image sent from `user`, served by the fake at a URL."""
        field_name = how.pop("field_name", "photo_url")
        url = self.api.add_file(name, content, **how)
        return await self.push_for(user, image_event(user, url, field_name=field_name))

    def number(self, user: ZaloUser, label: str) -> str:
        """The number shown in front of a choice in the latest message to `user` that has numbers."""
        for text in reversed(self.api.texts_to(user.id)):
            lines: list[tuple[str, str]] = NUMBERED.findall(text)
            if not lines:
                continue
            exact = [n for n, shown in lines if label_key(shown) == label_key(label)]
            near = [n for n, shown in lines if label_key(label) in label_key(shown)]
            assert exact or near, f"no choice {label!r} in {lines}"
            return (exact or near)[0]
        raise AssertionError(f"no numbered choices sent to {user.display_name}")

    async def pick(self, user: ZaloUser, label: str) -> str:
        """Answer a choice by its number, as a person reading the screen does."""
        return await self.send(user, self.number(user, label))

    def t(self, key: str, lang: str = "vi", channel: str = CHANNEL, **fields: Any) -> str:
        """A sentence from the locale files as a Zalo user reads it (channel="": the plain one)."""
        return self.app.catalog.translator(lang, channel)(key, **fields)

    def user(self, zalo_user: ZaloUser) -> User | None:
        """The stored account of a Zalo user."""
        with self.app.db.session() as s:
            return q.get_user(s, CHANNEL, zalo_user.id)

    async def register(self, user: ZaloUser, role: str, school: str = "", office: str = "") -> None:
        """Register `user` with a fresh invite code sent as `/start CODE`."""
        code = invite(self.app, role, school=school, office=office)
        answer = await self.send(user, f"/start {code}")
        assert answer.startswith(self.t(f"reg.ok.{role}")), answer
        await self.profile(user, role)

    async def profile(self, user: ZaloUser, role: str) -> str:
        """Answer the profile asked after registering: the Zalo name, a position, no phone; what came back."""
        await self.send(user, user.display_name)
        if role == "principal":
            await self.pick(user, self.t("profile.positions.principal"))
        await self.send(user, "Bỏ qua")  # a typed-answer step: choices by their words
        saved = await self.pick(user, self.t("btn.send"))
        assert saved.startswith(self.t("profile.saved", label="")[:10]), saved
        return saved


@asynccontextmanager
async def running(app: App, api: FakeZaloAPI, **timing: Any) -> AsyncIterator[Zl]:
    """The channel started against the fake, stopped afterwards."""
    async with attached(app, ZaloChannel(app, timing=replace(FAST, **timing))) as channel:
        yield Zl(api, channel, app)


@pytest.fixture(name="zl")
async def zl_fixture(demo: App, api: FakeZaloAPI) -> AsyncIterator[Zl]:
    """The demo district with the Zalo channel polling the fake."""
    async with running(demo, api) as zl:
        yield zl


def draft_state(app: App, user: ZaloUser, form: str) -> tuple[Any, ...] | None:
    """(step, mode, answers, version) of a Zalo user's draft."""
    with app.db.session() as s:
        account = q.get_user(s, CHANNEL, user.id)
        assert account is not None and account.id is not None
        draft = q.get_draft(s, account.id, form)
    return None if draft is None else (draft.step, draft.mode, dict(draft.answers), draft.version)


# ---- start-up and registration --------------------------------------------------------------------


async def test_start_checks_the_token_and_deep_link_code_registers(zl: Zl) -> None:
    assert [c.method for c in zl.api.calls[:2]] == ["getMe", "deleteWebhook"]
    assert zl.channel.me["account_name"] == "Bot Schoolbot Test"
    assert zl.app.dispatcher.senders[CHANNEL] == zl.channel.send_to_user
    code = invite(zl.app, "principal", school="THCS-PUNHI")

    answer = await zl.send(PRINCIPAL, f"/start {code}")

    assert answer.startswith(zl.t("reg.ok.principal") + "\n\n" + zl.t("profile.intro"))
    saved = await zl.profile(PRINCIPAL, "principal")
    assert saved.startswith(zl.t("profile.saved", label="Lò Thị Lan (Hiệu trưởng)"))
    assert SCHOOL in saved and f"  {zl.number(PRINCIPAL, 'Bài viết tháng')}. 📝 Bài viết tháng" in saved
    user = zl.user(PRINCIPAL)
    assert user is not None and (user.role, user.chat_id) == ("principal", PRINCIPAL.id)
    assert (user.display_name, user.full_name, user.position) == (
        PRINCIPAL.display_name,
        "Lò Thị Lan",
        "principal",
    )
    assert zl.api.calls_to("sendMessage")[-1] == {"chat_id": PRINCIPAL.id, "text": saved}


async def test_a_pasted_code_registers_and_menu_items_answer_by_number_or_words(zl: Zl) -> None:
    hello = await zl.send(OFFICER, "/start")
    assert hello == zl.t("reg.welcome") + "\n\n" + zl.t("reg.how")
    code = invite(zl.app, "officer", office="PGD-DEMO")

    answer = await zl.send(OFFICER, f"  {code.lower()} ")

    assert answer.startswith(zl.t("reg.ok.officer"))
    await zl.profile(OFFICER, "officer")
    listed = await zl.pick(OFFICER, "Sự cố gần đây")
    assert listed == zl.t("incident.none")
    await zl.send(OFFICER, "/menu")
    by_words = await zl.send(OFFICER, "su co gan day")  # the label, typed without diacritics
    assert by_words == zl.t("incident.none")


# ---- the monthly article -------------------------------------------------------------------------


async def test_a_whole_monthly_article_with_three_photos_by_url_and_a_video_link(zl: Zl) -> None:
    p = PRINCIPAL
    await zl.register(p, "principal", school="THCS-PUNHI")
    started = await zl.send(p, "/article")
    assert zl.t("flow.started", title=zl.t("article.title_form")) in started
    await zl.pick(p, "Hoạt động tiêu biểu của nhà trường")
    asked = await zl.send(p, "Ngày hội đọc sách")
    assert zl.t("article.photo_wide") in asked and "dạng Tệp" not in asked  # no Telegram advice
    assert zl.t("article.photo_wide") != zl.t("article.photo_wide", channel="")

    wide = jpeg(2000, 1500, "red", taken="2026:11:05 08:30:00", gps=True)
    got = await zl.photo(p, "toan canh.jpg", wide)
    assert zl.t("media.compressed_note") in got and "Ảnh 2/3" in got
    got = await zl.photo(p, "phat-bieu.jpg", jpeg(1600, 1200, "blue"), field_name="photo")  # the docs' field
    assert "Ảnh 3/3" in got
    got = await zl.photo(p, "can-canh.jpg", jpeg(1280, 960, "green"))
    assert zl.t("article.steps.when_where") in got
    await zl.pick(p, "Dùng gợi ý")  # the date and the place the wide shot was taken
    await zl.send(p, "Học sinh thi kể chuyện theo sách; toàn trường, 320 học sinh")
    await zl.send(p, "Sôi nổi, 12 giải thưởng")
    await zl.send(p, "0912 345 678")  # the contact: asked once, the school's first article
    review = await zl.send(p, "Sáng 5/11, trường tổ chức ngày hội đọc sách cho toàn thể học sinh.")
    assert review.startswith(zl.t("form.review", title=zl.t("article.title_form")))
    await zl.pick(p, "Sửa: Ảnh, video")  # videos are offered on the review screen
    at_videos = await zl.pick(p, "Sửa: Video")
    assert zl.t("article.videos") in at_videos and "Google Drive" in at_videos
    assert zl.t("article.videos", channel="") not in at_videos  # "send an mp4" is Telegram's advice

    video = await zl.push_for(p, unsupported_event(p))  # what Zalo sends for a video
    assert video.startswith(zl.t("media.not_passed")) and zl.t("article.videos") in video
    linked = await zl.send(p, DRIVE)
    assert zl.t("media.link_added") in linked
    review = await zl.send(p, "Xong")  # a typed-answer step: its choices are answered by their words
    assert review.startswith(zl.t("form.review", title=zl.t("article.title_form")))
    sent = await zl.pick(p, "Gửi")

    assert sent.startswith(zl.t("article.sent", period="11/2026", due="15/11/2026"))
    with zl.app.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "article")).one()
        files = s.exec(select(MediaFile)).all()
    assert row.answers["videos"] == [{"link": DRIVE}]
    assert row.answers["when"] == "2026-11-05" and row.answers["body"].startswith("Sáng 5/11")
    assert [row.answers[k]["width"] for k in ("photo_wide", "photo_speaker", "photo_closeup")] == [
        2000,
        1600,
        1280,
    ]
    assert len(files) == 3
    for f in files:
        assert f.channel == "zalo" and f.file_id.startswith(zl.api.base_url + "/files/")
        assert f.sha256 and f.mime_type == "image/jpeg" and f.path.endswith(".jpg")
        assert (Path(zl.app.settings.media_dir) / f.path).is_file()
    assert [zl.api.fetches(n) for n in ("toan canh.jpg", "phat-bieu.jpg", "can-canh.jpg")] == [1, 1, 1]
    assert all(len(m["text"]) <= MAX_TEXT for m in zl.api.calls_to("sendMessage"))


async def test_the_first_photo_step_gives_zalo_advice_on_zalo_and_telegram_advice_on_telegram(
    demo: App, api: FakeZaloAPI
) -> None:
    """Two principals of one school, one on each channel, at the same step: each reads their channel's words."""
    on_telegram = TgUser(1001, "Hoa", "Lò Thị")
    with FakeBotAPI() as tg_api:
        telegram = demo.settings.telegram.model_copy(
            update={**tg_api.settings(), "token": SecretStr(TELEGRAM_TOKEN)}
        )
        settings = demo.settings.model_copy(update={"telegram": telegram})
        app = replace(demo, settings=settings, dispatcher=replace(demo.dispatcher, settings=settings))
        async with running(app, api) as zl, running_telegram(app, tg_api) as tg:
            await zl.register(PRINCIPAL, "principal", school="THCS-PUNHI")
            await tg.register(on_telegram, "principal", school="THCS-PUNHI")
            await zl.send(PRINCIPAL, "/article")
            await zl.pick(PRINCIPAL, "Hoạt động tiêu biểu của nhà trường")
            await tg.send(on_telegram, "/article")
            await tg.press(on_telegram, tg.button(on_telegram, "Hoạt động tiêu biểu"))

            on_zalo = await zl.send(PRINCIPAL, "Ngày hội đọc sách")
            asked = await tg.send(on_telegram, "Ngày hội đọc sách")

    zalo_words, telegram_words = zl.t("article.photo_wide"), zl.t("article.photo_wide", channel="")
    assert zalo_words != telegram_words and "dạng Tệp" in telegram_words
    assert zalo_words in on_zalo and telegram_words not in on_zalo
    on_telegram_text = "\n".join(m.get("text", "") for m in asked)
    assert telegram_words in on_telegram_text and zalo_words not in on_telegram_text


async def test_a_report_finished_on_zalo_with_a_link_that_the_officer_sees_in_review(zl: Zl) -> None:
    p, link = PRINCIPAL, "https://drive.google.com/file/d/1BaoCaoNam2026/view"
    await zl.register(p, "principal", school="THCS-PUNHI")
    await zl.send(p, "/report")
    await zl.pick(p, "Báo cáo năm")
    await zl.send(p, "3")  # news items in the press: a typed number
    await zl.send(p, "Các hoạt động truyền thông diễn ra đều đặn.")
    asked = await zl.send(p, "Bỏ qua")  # no difficulties (a typed-answer step: choices by their words)
    assert zl.t("report.document") in asked and "Google Drive" in asked
    assert zl.t("report.document", channel="") not in asked
    before = draft_state(zl.app, p, "report")

    pdf = await zl.push_for(p, unsupported_event(p))  # what Zalo sends for a PDF: nothing usable
    assert pdf.startswith(zl.t("media.not_passed") + "\n\n") and zl.t("report.document") in pdf
    photo = await zl.photo(p, "bao-cao.jpg", jpeg(1600, 1200, "white"))
    assert photo.startswith(zl.t("media.document_is_photo"))
    words = await zl.send(p, "gửi sau")
    assert words.startswith(zl.t("media.need_document"))
    assert draft_state(zl.app, p, "report") == before

    review = await zl.send(p, link)
    assert review.startswith(zl.t("media.link_added"))
    assert f"Tệp báo cáo: đường link {link}" in review
    sent = await zl.pick(p, "Gửi")
    assert sent.startswith(zl.t("report.sent", name="Báo cáo năm", due="01/12/2026"))
    with zl.app.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "report")).one()
    assert row.answers["document"] == {"link": link}

    officer = Chat(zl.app, "officer")  # the demo officer, on the console
    queue = await officer.send("/review")
    assert "Báo cáo định kỳ" in queue[0].text
    opened = await officer.press(f"Mở #{row.id}")
    assert f"• Tệp báo cáo: đường link {link}" in opened[0].text and opened[0].attachments == ()


async def test_an_officer_on_zalo_reads_which_files_a_submission_has_never_where_they_are(
    zl: Zl, tmp_path: Path
) -> None:
    """Zalo cannot carry the photos: the officer reads their roles and where to see them, and never a
    path on the server or a Telegram file reference."""
    principal = Chat(zl.app, "principal")  # the demo principal, on the console
    await write_article(principal, photo_files(tmp_path))
    await principal.press("Gửi")
    await zl.register(OFFICER, "officer", office="PGD-DEMO")
    await zl.send(OFFICER, "/review")
    opened = await zl.pick(OFFICER, "Mở #1")
    assert "Ngày hội đọc sách" in opened
    names = "Ảnh toàn cảnh 1, Ảnh người phát biểu 1, Ảnh cận cảnh 1"  # by role and number
    assert zl.t("zalo.files_named", names=names) in opened
    assert zl.t("zalo.no_files") in opened
    media_dir = str(Path(zl.app.settings.media_dir).resolve())
    sent = "\n".join(zl.api.texts_to(OFFICER.id))
    assert media_dir not in sent and str(zl.app.settings.media_dir) not in sent and ".jpg" not in sent


# ---- the incident alert ----------------------------------------------------------------------------


async def fill_incident(zl: Zl, p: ZaloUser) -> str:
    """The principal files an incident, answering every choice by its number."""
    await zl.send(p, "/incident")
    await zl.send(p, "Một tài khoản Facebook đăng tin sai sự thật về bữa ăn bán trú của trường.")
    await zl.pick(p, "Hôm nay")
    await zl.send(p, "7h15")
    await zl.send(p, "Nhóm Facebook của xã Pú Nhi")
    await zl.pick(p, "Facebook")
    await zl.pick(p, "Zalo")
    await zl.pick(p, "Xong")
    await zl.pick(p, "Xong")  # no links
    await zl.pick(p, "Xong")  # no screenshots
    await zl.send(p, "Đã gặp phụ huynh đăng tin và đề nghị gỡ bài.")
    await zl.pick(p, "Rất nghiêm trọng")
    review = await zl.send(p, "0912 345 678")
    assert review.startswith(zl.t("form.review", title=zl.t("incident.title")))
    return await zl.pick(p, "Gửi")


async def test_an_incident_alert_reaches_an_officer_on_zalo_who_acknowledges_by_number(zl: Zl) -> None:
    await zl.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    await zl.register(OFFICER, "officer", office="PGD-DEMO")
    await zl.register(LEADER, "leader", office="SGD-DEMO")
    before = len(zl.api.texts_to(OFFICER.id))

    sent = await fill_incident(zl, PRINCIPAL)

    with zl.app.db.session() as s:
        incident = s.exec(select(Incident)).one()
    # two Zalo staff, plus the demo's console officer and leader (kept in their inbox)
    assert sent.startswith(zl.t("incident.sent", number=incident.id, count=4, names="|").split("|")[0])
    for staff in (OFFICER, LEADER):
        alert = zl.api.texts_to(staff.id)[-1]
        assert alert.startswith(
            zl.t("incident.alert", number=incident.id, school=SCHOOL, by=PRINCIPAL.display_name)
        )
        assert "  1. " + zl.t("btn.ack") + "\n" in alert
        assert alert.endswith("  2. " + zl.t("incident.case.open", number=incident.id))
    assert len(zl.api.texts_to(OFFICER.id)) == before + 1

    leader_before = len(zl.api.texts_to(LEADER.id))
    acked = await zl.send(OFFICER, "1")

    assert acked.startswith(zl.t("incident.ack_done", number=incident.id) + "\n\n📂 ")  # then the case
    told = zl.api.texts_to(PRINCIPAL.id)[-1]
    assert told == zl.t(
        "incident.acked", number=incident.id, name=OFFICER.display_name, role=zl.t("role.officer")
    )
    with zl.app.db.session() as s:
        assert len(s.exec(select(IncidentAck)).all()) == 1
    # Zalo cannot edit a sent message: the leader gets the alert again, naming who holds the case,
    # with no acknowledge choice.
    await until(lambda: len(zl.api.texts_to(LEADER.id)) > leader_before, "the leader told who holds it")
    held = zl.api.texts_to(LEADER.id)[-1]
    assert held.startswith("🚨") and f"Đã tiếp nhận: {OFFICER.display_name}" in held
    assert zl.t("btn.ack") not in held


async def test_an_update_stored_before_a_crash_is_handled_once_at_the_next_start(
    demo: App, api: FakeZaloAPI
) -> None:
    """An update stored (the `received` table) by a process that died before handling it: the next
    start handles it first, once; Zalo giving it back later is dropped."""
    help_ = text_event(PRINCIPAL, "/help")
    key = f"zalo:{update_key(help_)}"
    with demo.db.session() as s:
        q.store_received(s, "zalo", [q.Arrival(key, PRINCIPAL.id, help_)], demo.clock.now())
    async with running(demo, api) as zl:
        await until(lambda: len(api.texts_to(PRINCIPAL.id)) == 1, "the stored update answered")
        await until(lambda: zl.channel.handled == 1, "its handling counted")  # before send() counts
        api.push(help_)  # nothing is acknowledged on Zalo: it may come back
        await zl.send(PRINCIPAL, "/whoami")
    assert api.texts_to(PRINCIPAL.id) == [zl.t("help.guest"), zl.t("whoami.none")]
    with demo.db.session() as s:
        assert s.exec(select(Received)).all() == [] and s.get(ProcessedUpdate, key) is not None


# ---- webhook mode -------------------------------------------------------------------------------------


async def test_webhook_mode_checks_the_secret_and_takes_both_body_shapes(demo: App, api: FakeZaloAPI) -> None:
    port = free_port()
    app = with_zalo(
        demo,
        mode="webhook",
        webhook_url="https://bot.example.test",
        port=port,
        secret_token=SecretStr(SECRET),
    )
    hook = f"http://127.0.0.1:{port}/zalo"
    api.webhook_target = hook

    async with running(app, api) as zl, httpx.AsyncClient(trust_env=False) as client:
        assert api.calls_to("setWebhook") == [
            {"url": "https://bot.example.test/zalo", "secret_token": SECRET}
        ]
        help_ = text_event(PRINCIPAL, "/help")
        refused = [
            *await asyncio.to_thread(api.push_webhook, help_, secret="wrong-secret-123"),
            *await asyncio.to_thread(api.push_webhook, help_, secret=""),
            (
                await client.post(hook, json=wrapped(help_), headers={"X-Bot-Api-Secret-Token": SECRET[:-1]})
            ).status_code,
        ]
        assert refused == [403, 403, 403]
        assert zl.channel.handled == 0

        ok = await asyncio.to_thread(api.push_webhook, help_, times=2)  # wrapped, delivered twice
        await until(lambda: zl.channel.handled == 1, "the wrapped update handled")
        flat = await asyncio.to_thread(api.push_webhook, text_event(PRINCIPAL, "/whoami"), wrap=False)
        await until(lambda: zl.channel.handled == 2, "the flat update handled")
        headers = {"X-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
        malformed = await client.post(hook, content=b"{not json", headers=headers)
        no_event = await client.post(hook, json={"ok": True, "result": {"message": {}}}, headers=headers)
        unknown = await client.post(hook, json=event(PRINCIPAL, "message.location.received"), headers=headers)
        empty = await client.post(hook, json=unsupported_event(), headers=headers)
        health = await client.get(f"http://127.0.0.1:{port}/health")

    assert ok == [200, 200] and flat == [200]
    assert (malformed.status_code, no_event.status_code) == (400, 400)
    assert (unknown.status_code, unknown.json()) == (200, {"message": "Success"})
    assert empty.status_code == 200 and health.json() == {"ok": True}
    assert zl.channel.handled == 2  # the repeat, the unknown event and the empty one were dropped
    assert api.texts_to(PRINCIPAL.id) == [zl.t("help.guest"), zl.t("whoami.none")]
    assert api.calls_to("getUpdates") == []
    with demo.db.session() as s:
        keys = set(s.exec(select(ProcessedUpdate.key)))
    assert f"zalo:message.text.received:{help_['message']['message_id']}" in keys and len(keys) == 2


def test_webhook_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"zalo.*https://"):
        load_settings(None, zalo={"mode": "webhook", "webhook_url": "http://x.vn", "secret_token": SECRET})
    with pytest.raises(ConfigError, match="8-256") as short:
        load_settings(None, zalo={"mode": "webhook", "webhook_url": "https://x.vn", "secret_token": "short"})
    assert "short" not in str(short.value)
    with pytest.raises(ConfigError, match=r"zalo\.port"):
        hook = {"mode": "webhook", "webhook_url": "https://x.vn", "port": 8443}
        load_settings(None, telegram={**hook, "secret_token": "abc"}, zalo={**hook, "secret_token": SECRET})
    with pytest.raises(ConfigError, match=r"zalo\.base_url"):
        load_settings(None, zalo={"base_url": "bot-api.zapps.me"})
    assert ZaloSettings().monthly_budget == 3000 and ZaloSettings().base_url.startswith("https://bot-api.")


# ---- bad input and faults ---------------------------------------------------------------------------


async def to_photo_step(zl: Zl) -> None:
    await zl.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    await zl.send(PRINCIPAL, "/article")
    await zl.pick(PRINCIPAL, "Hoạt động tiêu biểu của nhà trường")


async def test_a_slow_photo_holds_up_only_its_own_chat(demo: App, api: FakeZaloAPI) -> None:
    """Chats are handled side by side: while a principal's photo is still downloading, an officer's
    answer comes at once; the principal's next message waits its turn and is answered after the photo."""
    async with running(demo, api, fetch_timeout=10.0) as zl:
        await to_photo_step(zl)
        await zl.send(PRINCIPAL, "Ngày hội đọc sách")  # the title: now at the first photo
        await zl.register(OFFICER, "officer", office="PGD-DEMO")
        before = len(api.texts_to(PRINCIPAL.id))
        url = api.add_file("cham.jpg", jpeg(2000, 1500, "red"), delay=1.5)
        api.push(image_event(PRINCIPAL, url), text_event(PRINCIPAL, "/whoami"))
        asked = await zl.send(OFFICER, "/whoami")
        assert asked.startswith("Tài khoản: Chuyên viên") and len(api.texts_to(PRINCIPAL.id)) == before
        await until(lambda: len(api.texts_to(PRINCIPAL.id)) >= before + 2, "the principal's answers")
        answers = "\n".join(api.texts_to(PRINCIPAL.id)[before:])
        assert "Ảnh 2/3" in answers and answers.index("Ảnh 2/3") < answers.index("Tài khoản: Hiệu trưởng")
        await until(lambda: not zl.channel._turns.last, "no chat's turn kept once it is idle")


async def test_a_sticker_or_voice_message_at_a_text_step_changes_nothing(zl: Zl) -> None:
    await to_photo_step(zl)  # now at the title, a text step
    before = draft_state(zl.app, PRINCIPAL, "article")
    assert before is not None and before[0] == "title"

    for update in (sticker_event(PRINCIPAL), event(PRINCIPAL, "message.voice.received")):
        answer = await zl.push_for(PRINCIPAL, update)

        assert answer.startswith(zl.t("error.need_text")) and zl.t("article.title") in answer
        assert draft_state(zl.app, PRINCIPAL, "article") == before


async def test_a_file_sent_on_zalo_is_told_plainly_wherever_it_comes(zl: Zl) -> None:
    """Zalo passes no file or video to a bot: the user is told so and what to send instead, at a text
    step, at a photo step and outside any form; nothing changes."""
    await zl.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    outside = await zl.push_for(PRINCIPAL, unsupported_event(PRINCIPAL))
    assert outside.startswith("Zalo chưa cho phép gửi tệp cho bot; vui lòng gửi đường link")
    assert zl.t("menu.not_understood") not in outside and zl.t("menu.article") not in outside  # no menu

    await zl.send(PRINCIPAL, "/article")
    await zl.pick(PRINCIPAL, "Hoạt động tiêu biểu của nhà trường")
    at_title = draft_state(zl.app, PRINCIPAL, "article")
    file_at_title = await zl.push_for(PRINCIPAL, unsupported_event(PRINCIPAL))
    said, _, step = file_at_title.partition("\n\n")
    assert (
        said
        == "Zalo chưa cho phép gửi tệp cho bot; thầy/cô vui lòng gửi đường link tới tệp hoặc video (Google Drive, OneDrive…)."
    )
    assert zl.t("article.title") in step and draft_state(zl.app, PRINCIPAL, "article") == at_title

    await zl.send(PRINCIPAL, "Ngày hội đọc sách")  # now at the wide shot
    at_photo = draft_state(zl.app, PRINCIPAL, "article")
    file_at_photo = await zl.push_for(PRINCIPAL, unsupported_event(PRINCIPAL))  # the photo sent as a file
    assert file_at_photo.startswith(zl.t("media.not_passed_photo")) and "không gửi dạng tệp" in file_at_photo
    assert zl.t("article.photo_wide") in file_at_photo
    assert draft_state(zl.app, PRINCIPAL, "article") == at_photo
    assert zl.t("media.not_passed_photo", channel="") != zl.t("media.not_passed_photo")  # Zalo's own words


async def test_photo_urls_that_are_no_image_too_large_or_too_slow(demo: App, api: FakeZaloAPI) -> None:
    app = with_zalo(demo, media={"max_download_mb": 1})
    async with running(app, api) as zl:
        await to_photo_step(zl)
        await zl.send(PRINCIPAL, "Ngày hội đọc sách")
        at_photo = draft_state(app, PRINCIPAL, "article")

        page = await zl.photo(
            PRINCIPAL, "login.html", b"<html>please log in</html>", content_type="text/html"
        )
        assert zl.t("media.not_image", name="login.html") in page
        huge = await zl.photo(PRINCIPAL, "huge.jpg", b"\xff\xd8" + bytes(1_500_000))
        assert zl.t("media.too_large", mb=1, limit=1) in huge
        chunked = await zl.photo(PRINCIPAL, "huge2.jpg", b"\xff\xd8" + bytes(1_500_000), declare_length=False)
        assert zl.t("media.too_large", mb=1, limit=1) in chunked
        small = await zl.photo(PRINCIPAL, "small.jpg", jpeg(800, 600))
        assert "Ảnh quá nhỏ (800×600)" in small
        assert draft_state(app, PRINCIPAL, "article") == at_photo

        slow = await zl.photo(PRINCIPAL, "slow.jpg", jpeg(2000, 1500), delay=1.0)

    assert zl.t("media.kept_by_reference") in slow and "Ảnh 2/3" in slow  # the handler keeps the URL
    assert zl.t("media.kept_by_reference", channel="") not in slow
    with app.db.session() as s:
        kept = s.exec(select(MediaFile)).one()
    assert kept.note == "kept_by_reference" and kept.path == "" and kept.file_id.endswith("/files/slow.jpg")
    assert api.fetches("huge.jpg") == 1  # refused by its declared size, never fetched again


@pytest.mark.parametrize("idle_code", [True, False])
async def test_idle_polls_answered_408_are_normal(
    demo: App, api: FakeZaloAPI, caplog: pytest.LogCaptureFixture, idle_code: bool
) -> None:
    api.idle_code = idle_code
    caplog.set_level(logging.INFO, logger="schoolbot.zalo")
    async with running(demo, api) as zl:
        await until(lambda: api.statuses("getUpdates").count(408) >= 2, "two idle polls", timeout=8)
        answer = await zl.send(PRINCIPAL, "/help")

    assert answer == zl.t("help.guest")
    assert api.calls_to("getUpdates")[0] == {"timeout": "1"}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_getupdates_429_and_5xx_back_off_then_poll_again(
    zl: Zl, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    zl.api.fail("getUpdates", 429, "Quota exceeded", times=2)
    await until(lambda: zl.api.statuses("getUpdates").count(429) == 2, "two 429s")
    zl.api.fail("getUpdates", 502, "Bad Gateway", times=2)
    await until(lambda: zl.api.statuses("getUpdates").count(502) == 2, "two 502s")

    answer = await zl.send(PRINCIPAL, "/help")

    assert answer == zl.t("help.guest")
    statuses = zl.api.statuses("getUpdates")
    assert statuses.count(429) == 2 and statuses.count(502) == 2
    # One line when a fault begins and one when it is over, not one per failed poll: the four failures
    # are one fault, or two if a poll went through between the 429s and the 502s.
    begun = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("Zalo getUpdates is failing")
    ]
    over = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("Zalo getUpdates answers again")
    ]
    assert 1 <= len(begun) == len(over) <= 2
    assert sum(int(line.split("(")[1].split()[0]) for line in over) == 4


async def test_updates_zalo_hands_out_again_are_handled_once(zl: Zl) -> None:
    zl.api.replay = True
    update = text_event(PRINCIPAL, "/help")

    await zl.push(update)
    await until(lambda: len(zl.api.calls_to("getUpdates")) >= 6, "Zalo replaying the update")

    assert zl.api.texts_to(PRINCIPAL.id) == [zl.t("help.guest")]
    assert zl.channel.handled == 1


async def sent_later(zl: Zl) -> None:
    """Zalo works again: the outbox's sender delivers the reply that was handed to it."""
    zl.api.clear_failures()
    zl.app.outbox.start_sender()
    try:
        await until(lambda: outbox_rows(zl.app, kind=REPLY)[0].status == "sent", "the reply sent later")
    finally:
        await zl.app.outbox.stop_sender()


async def test_a_failed_send_is_retried_and_then_handed_to_the_outbox(zl: Zl) -> None:
    zl.api.fail("sendMessage", 429, "Quota exceeded", times=1)
    assert await zl.send(PRINCIPAL, "/help") == zl.t("help.guest")
    zl.api.fail("sendMessage", 503, "Service Unavailable", times=1)
    assert await zl.send(PRINCIPAL, "/help") == zl.t("help.guest")
    assert zl.api.statuses("sendMessage") == [429, 200, 503, 200]

    zl.api.fail("sendMessage", 500)  # down for longer than the retries
    assert await zl.send(PRINCIPAL, "/whoami") == ""
    [row] = outbox_rows(zl.app, kind=REPLY)  # not dropped: an outbox row, which the sender delivers later
    assert (row.status, row.payload["text"]) == ("pending", zl.t("whoami.none"))
    await sent_later(zl)
    assert zl.api.texts_to(PRINCIPAL.id)[-1] == zl.t("whoami.none")
    assert await zl.send(PRINCIPAL, "/help") == zl.t("help.guest")


async def test_a_429_that_says_how_long_is_waited_out(zl: Zl) -> None:
    """Zalo's 429 with retry_after: the reply waits and goes again, past the ordinary retries."""
    too_many = {"ok": False, "error_code": 429, "description": "slow", "parameters": {"retry_after": 0.05}}
    zl.api.fail("sendMessage", 429, "slow", times=4, body=too_many)
    assert await zl.send(PRINCIPAL, "/help") == zl.t("help.guest")
    assert zl.api.statuses("sendMessage") == [429, 429, 429, 429, 200]
    assert outbox_rows(zl.app, kind=REPLY) == []


async def test_numbers_on_replies_sent_later_answer_what_they_show(zl: Zl) -> None:
    await zl.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    zl.api.fail("sendMessage", 502)
    assert await zl.send(PRINCIPAL, "/menu") == ""  # the menu could not be sent: an outbox row
    await sent_later(zl)

    assert zl.api.texts_to(PRINCIPAL.id)[-1].startswith(zl.t("menu.title", binding="|").split("|")[0])
    assert zl.number(PRINCIPAL, "Bài viết tháng") == "1"
    started = await zl.send(PRINCIPAL, "1")
    assert zl.t("flow.started", title=zl.t("article.title_form")) in started


async def test_a_revoked_token_stops_the_channel_and_says_so(
    zl: Zl, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await zl.send(PRINCIPAL, "/help")
    zl.api.revoke()

    await until(zl.channel.failed.is_set, "the channel to notice")
    polls = len(zl.api.calls_to("getUpdates"))
    await asyncio.sleep(0.2)

    assert len(zl.api.calls_to("getUpdates")) == polls  # no more polling
    errors = [
        r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "schoolbot.zalo"
    ]
    assert len(errors) == 1 and "revoked" in errors[0] and "zalo.token" in errors[0]
    assert TOKEN not in caplog.text and TOKEN.partition(":")[2] not in caplog.text
    with pytest.raises(Exception, match="token was rejected"):
        user = zl.user(PRINCIPAL)
        assert user is not None
        await zl.channel.send_to_user(user, [Reply("x")])


async def test_a_wrong_token_at_start_is_a_config_error_that_does_not_quote_it(
    demo: App, api: FakeZaloAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "999999:WRONG-zalo-token-value"
    app = with_zalo(demo, token=SecretStr(wrong))

    with pytest.raises(ConfigError) as raised:
        async with running(app, api):
            pass

    assert "zalo.token" in str(raised.value) and wrong not in str(raised.value)
    assert wrong not in caplog.text and wrong.partition(":")[2] not in caplog.text
    assert CHANNEL not in demo.dispatcher.senders and CHANNEL not in demo.dispatcher.fetchers
    assert [(c.method, c.status) for c in api.calls] == [("getMe", 401)]


async def test_the_token_never_reaches_the_logs(
    demo: App, api: FakeZaloAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    api.fail("getUpdates", 502, times=1)
    api.fail("sendChatAction", 500)
    async with running(demo, api, typing_after=0) as zl:
        await zl.register(PRINCIPAL, "principal", school="THCS-PUNHI")
        api.fail("sendMessage", 500, times=3)
        await zl.send(PRINCIPAL, "/help")

    assert "HTTP Request: POST" in caplog.text and "Zalo getUpdates is failing" in caplog.text
    assert "zalo is failing (" in caplog.text and "replies handed to the outbox" in caplog.text
    assert TOKEN not in caplog.text and TOKEN.partition(":")[2] not in caplog.text


# ---- the monthly budget -------------------------------------------------------------------------------


async def test_alerts_wait_as_deferred_rows_once_the_monthly_budget_is_spent(
    zl: Zl, caplog: pytest.LogCaptureFixture
) -> None:
    await zl.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    await zl.register(OFFICER, "officer", office="PGD-DEMO")
    spent = zl.channel.budget.used
    # One message per answer (the texts of a batch are joined): the code, then the profile's name,
    # position (a school's person only), phone skipped and send.
    assert spent == 9
    # The incident form costs the principal thirteen answers before the alert goes out.
    zl.channel.budget = MonthlyBudget(spent + 13, zl.app.clock, used=spent)
    before = len(zl.api.texts_to(OFFICER.id))

    sent = await fill_incident(zl, PRINCIPAL)

    assert sent.startswith(zl.t("incident.sent", number=1, count=3, names="|").split("|")[0])
    assert len(zl.api.texts_to(OFFICER.id)) == before  # not sent...
    with zl.app.db.session() as s:
        officer = q.get_user(s, CHANNEL, OFFICER.id)
        assert officer is not None
        row = s.exec(select(OutboxRow).where(OutboxRow.user_id == officer.id)).one()
        kept = s.exec(select(Inbox).where(Inbox.user_id == officer.id)).all()
    assert (row.status, row.attempts, kept) == ("pending", 0, [])  # ...but deferred, not failed
    assert row.payload["text"].startswith("🚨")
    assert zl.channel.budget.remaining == 0 and f"budget of {spent + 13} messages is used up" in caplog.text
    with pytest.raises(BudgetExhausted) as raised:
        await zl.channel.send_to_user(officer, [Reply("x")])
    december = datetime(2026, 12, 1, tzinfo=zl.app.clock.tz)
    assert raised.value.retry_after == (december - zl.app.clock.now()).total_seconds()

    frozen(zl.app).advance(days=25)  # December: a new budget
    await zl.channel.send_to_user(officer, [Reply.from_payload(row.payload)])

    assert "  1. " + zl.t("btn.ack") + "\n" in zl.api.texts_to(OFFICER.id)[-1]
    assert zl.channel.budget.status() == {
        "month": "2026-12",
        "limit": spent + 13,
        "used": 1,
        "remaining": spent + 12,
    }


async def test_zalo_refusing_sends_over_its_quota_is_a_retry_after_for_the_outbox(zl: Zl) -> None:
    await zl.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    await zl.register(OFFICER, "officer", office="PGD-DEMO")
    with zl.app.db.session() as s:
        officer = q.get_user(s, CHANNEL, OFFICER.id)
    assert officer is not None
    answered = len(zl.api.statuses("sendMessage"))  # registering and the profile
    zl.api.quota = answered

    with pytest.raises(RateLimited):
        await zl.channel.send_to_user(officer, [Reply("Cảnh báo")])

    assert zl.api.statuses("sendMessage") == [200] * answered + [429]  # one try: the outbox owns retries


async def test_a_reminder_wave_stops_at_the_monthly_budget_and_the_rest_wait(
    demo: App, api: FakeZaloAPI
) -> None:
    now = demo.clock.now()
    with demo.db.session() as s:
        school = q.school_by_code(s, "THCS-PUNHI")
        assert school is not None
        users = [
            User(
                channel=CHANNEL,
                external_id=f"{i:020x}",
                chat_id=f"{i:020x}",
                role="principal",
                school_id=school.id,
                office_id=school.office_id,
                created_at=now,
            )
            for i in range(1, 6)
        ]
        s.add_all(users)
        s.flush()
        rows = [
            q.pending_row(
                u,
                "article-remind",
                "2026-11",
                "d5",
                Reply(f"Nhắc nộp Bài viết tháng ({n})").to_payload(),
                now,
                school_id=school.id,
                priority=10,
                quiet=True,
            )
            for n, u in enumerate(users, 1)
        ]
        q.enqueue(s, rows)

    async with running(demo, api) as zl:
        zl.channel.budget = MonthlyBudget(3, demo.clock)
        demo.outbox.start_sender()
        try:
            await until(lambda: demo.outbox.stats.retry_after >= 1, "the budget to stop the wave")
        finally:
            await demo.outbox.stop_sender()

    assert len(api.calls_to("sendMessage", ok_only=True)) == 3
    with demo.db.session() as s:
        states = sorted(
            (r.status, r.attempts if r.status == "pending" else None) for r in s.exec(select(OutboxRow))
        )
    assert states == [("pending", 0), ("pending", 0), ("sent", None), ("sent", None), ("sent", None)]


async def test_two_alerts_in_flight_together_cannot_both_take_the_last_message_of_the_budget(zl: Zl) -> None:
    await zl.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    await zl.register(OFFICER, "officer", office="PGD-DEMO")
    principal, officer = zl.user(PRINCIPAL), zl.user(OFFICER)
    assert principal is not None and officer is not None
    zl.channel.budget = MonthlyBudget(1, zl.app.clock)
    before = len(zl.api.calls_to("sendMessage"))

    results = await asyncio.gather(  # the outbox's concurrent sends: both start before either is answered
        zl.channel.send_to_user(principal, [Reply("Nhắc nộp (1)")]),
        zl.channel.send_to_user(officer, [Reply("Nhắc nộp (2)")]),
        return_exceptions=True,
    )

    assert results[0] is None and isinstance(results[1], BudgetExhausted)
    assert len(zl.api.calls_to("sendMessage")) == before + 1
    assert (zl.channel.budget.used, zl.channel.budget.remaining) == (1, 0)


async def test_an_alert_that_fails_to_go_gives_its_message_back_to_the_budget(zl: Zl) -> None:
    await zl.register(OFFICER, "officer", office="PGD-DEMO")
    officer = zl.user(OFFICER)
    assert officer is not None
    zl.channel.budget = MonthlyBudget(1, zl.app.clock)
    zl.api.fail("sendMessage", 500, times=1)

    with pytest.raises(ZaloError):
        await zl.channel.send_to_user(officer, [Reply("Cảnh báo")])

    assert zl.channel.budget.used == 0  # not sent, not counted
    await zl.channel.send_to_user(officer, [Reply("Cảnh báo")])
    assert zl.channel.budget.used == 1 and zl.api.texts_to(OFFICER.id)[-1] == "Cảnh báo"


def test_the_budget_counts_by_month_in_the_office_time_zone() -> None:
    clock = FrozenClock(datetime(2026, 11, 30, 23, 0))
    budget = MonthlyBudget(3, clock)
    budget.spend(2)
    assert (budget.used, budget.remaining, budget.allows(1), budget.allows(2)) == (2, 1, True, False)
    assert budget.seconds_until_reset() == 3600
    budget.spend()
    assert budget.remaining == 0
    clock.advance(hours=1)
    assert (budget.month(), budget.used, budget.remaining) == ("2026-12", 0, 3)
    unlimited = MonthlyBudget(None, clock)
    unlimited.spend(10_000)
    assert unlimited.allows(1) and unlimited.remaining is None


# ---- rendering -----------------------------------------------------------------------------------------


async def test_long_replies_are_cut_under_2000_at_line_breaks_with_the_numbers(zl: Zl) -> None:
    line = "Dòng thông báo khá dài để thử việc chia tin nhắn theo giới hạn 2.000 ký tự của Zalo. "
    text = "\n".join(f"{i}. {line}" for i in range(60))
    reply = Reply(text, ((Choice("Đồng ý", "m:menu"), Choice("Huỷ", "m:cancel")),))

    await zl.channel.send_text(PRINCIPAL.id, render_parts([reply]))

    parts = zl.api.texts_to(PRINCIPAL.id)
    assert len(parts) > 2 and all(len(p) <= MAX_TEXT for p in parts)
    assert "\n".join(parts) == text + "\n  1. Đồng ý\n  2. Huỷ"
    assert all(not p.startswith("\n") for p in parts)


def test_choices_are_numbered_as_the_dispatcher_numbers_them() -> None:
    replies = [
        Reply("Một", ((Choice("A", "a"),),)),
        Reply("Gõ câu trả lời", ((Choice("✔️ Xong", "d"), Choice("✖️ Huỷ", "x")),), expects_text=True),
        Reply("Hai", ((Choice("B", "b"), Choice("C", "c")),)),
    ]

    (text,) = render_parts(replies)

    shown = {n: label for n, label in NUMBERED.findall(text)}
    assert shown == {"1": "A", "2": "B", "3": "C"}
    assert {n: v for n, v in numbered(replies).items()} == {"1": "a", "2": "b", "3": "c"}
    assert "  [✔️ Xong · ✖️ Huỷ]" in text


# ---- updates in (pure) ----------------------------------------------------------------------------------


def test_text_commands_and_pasted_codes() -> None:
    start = to_incoming(text_event(PRINCIPAL, "/start AB12CD34"))
    assert start is not None and (start.kind, start.command, start.args) == (
        Kind.COMMAND,
        "start",
        "AB12CD34",
    )
    assert (start.channel, start.user_id, start.chat_id, start.display_name) == (
        "zalo",
        PRINCIPAL.id,
        PRINCIPAL.id,
        "Lò Thị Lan",
    )
    code = to_incoming(text_event(PRINCIPAL, "ab12cd34"))
    assert code is not None and (code.kind, code.text) == (Kind.TEXT, "ab12cd34")
    slash = to_incoming(text_event(PRINCIPAL, "/ không phải lệnh"))
    assert slash is not None and slash.kind == Kind.TEXT


def test_both_body_shapes_and_both_photo_fields() -> None:
    flat = image_event(PRINCIPAL, "https://cdn.example.test/a/b%20c.jpg?sig=1", caption="Lễ khai giảng")
    docs = image_event(PRINCIPAL, "https://cdn.example.test/x.jpg", field_name="photo")
    for update in (flat, wrapped(flat)):
        got = to_incoming(update)
        assert got is not None and got.kind == Kind.MEDIA and got.text == "Lễ khai giảng"
        assert got.media[0].kind == "photo" and got.media[0].file_name == "b c.jpg"
        assert got.media[0].file_id == "https://cdn.example.test/a/b%20c.jpg?sig=1"
    got = to_incoming(docs)
    assert got is not None and got.media[0].file_id == "https://cdn.example.test/x.jpg"
    no_url = to_incoming(event(PRINCIPAL, "message.image.received", photo_url="file:///etc/passwd"))
    assert no_url is not None and no_url.kind == Kind.OTHER


@pytest.mark.parametrize(
    ("update", "kind"),
    [
        (sticker_event(PRINCIPAL), Kind.STICKER),
        (unsupported_event(PRINCIPAL), Kind.UNSUPPORTED),
        (event(PRINCIPAL, "message.voice.received"), Kind.VOICE),
        (event(PRINCIPAL, "message.link.received", text=DRIVE), Kind.TEXT),
        (event(PRINCIPAL, "message.link.received"), Kind.OTHER),
    ],
)
def test_other_events(update: dict[str, Any], kind: Kind) -> None:
    got = to_incoming(update)
    assert got is not None and got.kind == kind


def test_what_is_not_answered() -> None:
    group = event(PRINCIPAL, "message.text.received", text="chào")
    group["message"]["chat"] = {"id": "g1", "chat_type": "GROUP"}
    from_bot = text_event(PRINCIPAL, "chào")
    from_bot["message"]["from"]["is_bot"] = True
    update: dict[str, Any]
    for update in (
        group,
        from_bot,
        unsupported_event(),
        event(PRINCIPAL, "message.reaction.received"),
        event(PRINCIPAL, "message.location.received"),
        {"message": {}},
    ):
        assert to_incoming(update) is None
    assert unwrap({"ok": True, "result": {"message": {}}}) is None and unwrap([1]) is None


def test_names_and_dedupe_keys() -> None:
    old = text_event(PRINCIPAL, "x")
    old["message"]["from"] = {"id": PRINCIPAL.id, "name": "Lan"}
    got = to_incoming(old)
    assert got is not None and got.display_name == "Lan"
    assert update_key(old) == f"message.text.received:{old['message']['message_id']}"
    no_id = text_event(PRINCIPAL, "y")
    del no_id["message"]["message_id"]
    assert (
        update_key(no_id)
        == update_key(json.loads(json.dumps(no_id)))
        != update_key(text_event(PRINCIPAL, "z"))
    )
    long_id = text_event(PRINCIPAL, "y")
    long_id["message"]["message_id"] = "f" * 200
    assert len("zalo:" + update_key(long_id)) <= 96


def test_the_secret_is_compared_exactly() -> None:
    assert verify_secret(SECRET, SECRET)
    assert (
        not verify_secret(SECRET + "x", SECRET)
        and not verify_secret("", SECRET)
        and not verify_secret("", "")
    )
    assert not verify_secret("ký tự", SECRET)


# ---- the adapter against httpx.MockTransport -------------------------------------------------------------


def mock_api(handler: Callable[[httpx.Request], httpx.Response]) -> ZaloAPI:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ZaloAPI("https://bot-api.example.test", TOKEN, client)


async def test_calls_post_json_to_the_token_url_and_return_result() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True, "result": {"message_id": "m1", "date": 1}})

    api = mock_api(handler)
    result = await api.call("sendMessage", {"chat_id": "c1", "text": "Chào"})
    await api.client.aclose()

    assert result == {"message_id": "m1", "date": 1}
    assert str(seen[0].url) == f"https://bot-api.example.test/bot{TOKEN}/sendMessage"
    assert json.loads(seen[0].content) == {"chat_id": "c1", "text": "Chào"}


async def test_calls_beyond_the_connections_wait_at_the_gate_and_a_wait_too_long_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ten calls at once over two connections: at most two reach Zalo at a time, all are answered; a
    call that cannot get a connection within POOL_WAIT fails as a time-out (transient), not a hang."""
    busy, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal busy, peak
        busy += 1
        peak = max(peak, busy)
        await asyncio.sleep(0.02 if b"slow" not in request.content else 0.5)
        busy -= 1
        return httpx.Response(200, json={"ok": True, "result": {"message_id": "m", "date": 1}})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    api = ZaloAPI("https://bot-api.example.test", TOKEN, client, gate=Gate(2))
    answers = await asyncio.gather(*(api.call("sendMessage", {"chat_id": f"c{n}"}) for n in range(10)))
    assert len(answers) == 10 and 1 <= peak <= 2

    monkeypatch.setattr(channel_base, "POOL_WAIT", 0.05)
    narrow = ZaloAPI("https://bot-api.example.test", TOKEN, client, gate=Gate(1))
    results = await asyncio.gather(
        narrow.call("sendMessage", {"chat_id": "c1", "text": "slow"}),
        narrow.call("sendMessage", {"chat_id": "c2", "text": "next"}),
        return_exceptions=True,
    )
    await client.aclose()
    assert isinstance(results[0], dict)
    from bot.channels.zalo import transient as is_transient

    assert isinstance(results[1], NetworkError) and is_transient(results[1])


@pytest.mark.parametrize(
    ("status", "body", "error", "transient"),
    [
        (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, TokenRejected, False),
        (200, {"ok": False, "error_code": 401, "description": "Unauthorized"}, TokenRejected, False),
        (429, {"ok": False, "error_code": 429, "description": "Quota exceeded"}, RateLimited, True),
        (500, {"ok": False, "error_code": 500, "description": "Internal"}, Unavailable, True),
        (502, "<html>Bad Gateway</html>", Unavailable, True),
        (408, {"ok": False, "description": "Request timeout"}, Unavailable, True),
        (400, {"ok": False, "error_code": 400, "description": "text too long"}, ZaloError, False),
        (403, {"ok": False, "error_code": 403, "description": "internal"}, ZaloError, False),
        (200, {"result": 1}, ZaloError, False),
    ],
)
async def test_errors_map_to_exceptions(status: int, body: Any, error: type, transient: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    api = mock_api(handler)
    with pytest.raises(error) as raised:
        await api.call("sendMessage", {"chat_id": "c", "text": "t"})
    await api.client.aclose()

    from bot.channels.zalo import transient as is_transient

    assert is_transient(raised.value) is transient
    assert TOKEN not in str(raised.value)


async def test_429_with_retry_after_and_network_errors() -> None:
    def limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            json={"ok": False, "error_code": 429, "description": "slow", "parameters": {"retry_after": 7}},
        )

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    api = mock_api(limited)
    with pytest.raises(RateLimited) as raised:
        await api.call("sendMessage")
    assert raised.value.retry_after == 7
    await api.client.aclose()
    api = mock_api(refused)
    with pytest.raises(NetworkError) as failed:
        await api.call("getMe")
    await api.client.aclose()
    assert TOKEN not in str(failed.value) and "<token>" in str(failed.value)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(408, json={"ok": False, "error_code": 408, "description": "Request timeout"}), []),
        (httpx.Response(408, json={"ok": False, "description": "Request timeout"}), []),
        (httpx.Response(200, json={"ok": False, "error_code": 408, "description": "timeout"}), []),
        (
            httpx.Response(200, json={"ok": True, "result": {"event_name": "e", "message": {}}}),
            [{"event_name": "e", "message": {}}],
        ),
        (httpx.Response(200, json={"ok": True, "result": [{"event_name": "e"}, 3]}), [{"event_name": "e"}]),
        (httpx.Response(200, json={"ok": True, "result": None}), []),
    ],
)
async def test_get_updates_shapes(answer: httpx.Response, expected: list[Any]) -> None:
    sent: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return answer

    api = mock_api(handler)
    got = await api.get_updates(25)
    await api.client.aclose()

    assert got == expected and sent == [{"timeout": "25"}]


async def test_a_long_poll_that_times_out_on_our_side_is_no_update() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    api = mock_api(handler)
    assert await api.get_updates(1) == []
    await api.client.aclose()


async def test_download_limits_size_type_and_time() -> None:
    good = jpeg(1600, 1200)

    async def chunks(parts: list[bytes]) -> Any:
        for part in parts:
            yield part

    async def drip() -> Any:
        yield b"\xff\xd8"
        await asyncio.sleep(5)
        yield b"never"

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/ok.jpg":
            return httpx.Response(200, content=good, headers={"Content-Type": "image/jpeg; q=1"})
        if path == "/declared.jpg":
            return httpx.Response(200, content=b"x" * 10, headers={"Content-Length": "50000000"})
        if path == "/chunked.jpg":
            return httpx.Response(200, content=chunks([b"x" * 600, b"x" * 600]))
        if path == "/slow.jpg":
            return httpx.Response(200, content=drip())
        if path == "/timeout.jpg":
            raise httpx.ConnectTimeout("timed out", request=request)
        return httpx.Response(404, text="gone")

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    base = "https://cdn.example.test"
    data, mime = await download(client, f"{base}/ok.jpg", 1_000_000, 1.0)
    assert (data, mime) == (good, "image/jpeg")
    with pytest.raises(PhotoTooLarge) as declared:
        await download(client, f"{base}/declared.jpg", 1000, 1.0)
    assert declared.value.size == 50_000_000
    with pytest.raises(PhotoTooLarge) as chunked:
        await download(client, f"{base}/chunked.jpg", 1000, 1.0)
    assert chunked.value.size == 1200
    for name in ("slow.jpg", "timeout.jpg", "gone.jpg"):
        with pytest.raises(FetchError) as failed:
            await download(client, f"{base}/{name}", 1000, 0.2)
        assert not isinstance(failed.value, PhotoTooLarge)
    with pytest.raises(FetchError):
        await download(client, "ftp://cdn.example.test/a.jpg", 1000, 1.0)
    await client.aclose()


async def test_start_retries_a_failing_getme_then_polls(demo: App) -> None:
    calls: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        method = request.url.path.rsplit("/", 1)[-1]
        calls.append(method)
        if method == "getMe" and calls.count("getMe") == 1:
            return httpx.Response(502, text="Bad Gateway")
        if method == "getUpdates":
            await asyncio.sleep(0.05)
            return httpx.Response(
                408, json={"ok": False, "error_code": 408, "description": "Request timeout"}
            )
        return httpx.Response(200, json={"ok": True, "result": {"id": "b1", "account_name": "Bot X"}})

    channel = ZaloChannel(demo, timing=FAST, transport=httpx.MockTransport(handler))
    async with channel:
        await until(lambda: "getUpdates" in calls, "polling")

    assert calls[:3] == ["getMe", "getMe", "deleteWebhook"] and channel.me["account_name"] == "Bot X"
    assert CHANNEL not in demo.dispatcher.senders


async def test_a_rejected_token_at_start_through_the_mock_transport(demo: App) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"ok": False, "error_code": 401, "description": "Unauthorized"})

    with pytest.raises(ConfigError, match=r"zalo.token = \*\*\*"):
        async with ZaloChannel(demo, timing=FAST, transport=httpx.MockTransport(handler)):
            pass


# ---- the command line ---------------------------------------------------------------------------------------


def test_run_needs_the_token_of_the_channel_it_runs(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "db.sqlite"}"\n')
    runner = CliRunner()

    zalo = runner.invoke(cli, ["run", "--channel", "zalo", "--config", str(config)])
    both = runner.invoke(cli, ["run", "--channel", "all", "--config", str(config)])
    wrong = runner.invoke(cli, ["run", "--channel", "pigeon", "--config", str(config)])

    assert zalo.exit_code == 2 and "zalo.token is empty" in zalo.output
    assert both.exit_code == 2 and "token is empty" in both.output
    assert wrong.exit_code == 2


def test_run_channel_zalo_ends_plainly_when_the_token_is_revoked(tmp_path: Path, api: FakeZaloAPI) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path / "db.sqlite"}"\nmedia_dir = "{tmp_path / "media"}"\n'
        f'[zalo]\ntoken = "{TOKEN}"\nbase_url = "{api.base_url}"\n'
    )

    def revoke_once_polling() -> None:
        deadline = time.monotonic() + 20
        while not api.calls_to("deleteWebhook") and time.monotonic() < deadline:
            time.sleep(0.02)
        api.revoke()

    revoker = threading.Thread(target=revoke_once_polling)
    revoker.start()
    result = CliRunner().invoke(cli, ["run", "--channel", "zalo", "--config", str(config)])
    revoker.join()

    assert result.exit_code == 2, result.output
    assert "zalo.token = ***: Zalo rejected the bot token while running" in result.output
    assert TOKEN not in result.output and [c.method for c in api.calls[:2]] == ["getMe", "deleteWebhook"]


async def test_a_nomination_over_zalo_with_a_photo_by_url(zl: Zl) -> None:
    p = PRINCIPAL
    await zl.register(p, "principal", school="THCS-PUNHI")
    await zl.send(p, "/nominate")
    await zl.pick(p, "Giáo viên")
    await zl.send(p, "Nguyễn Thị Hoa")
    await zl.send(p, "Mười năm dạy học ở điểm trường bản Pú Nhi.")
    got = await zl.photo(p, "minh-chung.jpg", jpeg(1600, 1200, "orange"))
    assert "Đã nhận 1 ảnh (tổng 1/10)" in got
    await zl.pick(p, "Xong")
    await zl.send(p, "Bỏ qua")
    await zl.pick(p, "Cả hai")
    await zl.send(p, "Lò Thị Lan")
    refused = await zl.send(p, "12345")
    assert "Số điện thoại chưa đúng" in refused
    review = await zl.send(p, "0912 345 678")
    assert "Điện thoại: 0912345678" in review
    sent = await zl.pick(p, "Gửi")
    assert "Đã gửi Đề xuất điển hình: Nguyễn Thị Hoa" in sent
    with zl.app.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "nomination")).one()
    assert row.answers["photos"][0]["sha256"] and row.answers["purpose"] == "both"
