"""One monthly article walked over the console, Telegram and Zalo: the same submission stored on each.

Each channel is driven as its people use it (the console with `/file` and numbers, Telegram with
documents and buttons against the fake Bot API, Zalo with photos by URL and numbered choices against
the fake Zalo API); what lands in the database must not depend on which one it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlmodel import col, select

from bot.app import App
from bot.config import Settings, load_settings
from storage.models import MediaFile, School, Submission, User
from tests.bot import test_telegram, test_zalo
from tests.bot.test_telegram_article import document, texts
from tests.conftest import Chat
from tests.fakes.telegram_api import FakeBotAPI, TgUser, message_update
from tests.fakes.zalo_api import FakeZaloAPI, ZaloUser
from tests.media.samples import jpeg, write

CHANNELS = ("console", "telegram", "zalo")
PLATFORM_FIELDS = {"file_id", "unique", "kind"}  # how the platform refers to a photo, and how it came
SIZES = {"photo_wide": (2000, 1500), "photo_speaker": (1600, 1200), "photo_closeup": (1280, 960)}
PHOTOS = {  # role -> (file name, content): the same bytes on every channel
    "photo_wide": ("toan-canh.jpg", jpeg(*SIZES["photo_wide"], "red", taken="2026:11:05 08:30:00", gps=True)),
    "photo_speaker": ("phat-bieu.jpg", jpeg(*SIZES["photo_speaker"], "blue")),
    "photo_closeup": ("can-canh.jpg", jpeg(*SIZES["photo_closeup"], "green")),
}
TEXTS = {  # step -> what the principal types
    "title": "Ngày hội đọc sách",
    "when": "05/11/2026, Sân trường PTDTBT THCS Pú Nhi",  # when and where: one answer
    "what": "Học sinh thi kể chuyện theo sách; toàn trường, 320 học sinh",  # what and who: one answer
    "how": "Sôi nổi, 12 giải thưởng",
    "contact": "0912 345 678",
    "body": "Sáng 5/11, trường tổ chức ngày hội đọc sách cho toàn thể học sinh.",
}


STORED: dict[str, Any] = {  # the submission's answers, whichever channel it came through
    "period": "2026-11",
    "period_text": "Tháng 11/2026",
    "theme": "s:activity",
    "theme_text": "Hoạt động tiêu biểu của nhà trường",
    **{step: TEXTS[step] for step in ("title", "what", "how", "body", "contact")},
    "when": "2026-11-05",
    "where": "Sân trường PTDTBT THCS Pú Nhi",
    **{
        role: {
            "media_id": n,
            "sha256": hashlib.sha256(data).hexdigest(),
            "name": name,
            "mime": "image/jpeg",
            "size": len(data),
            "width": SIZES[role][0],
            "height": SIZES[role][1],
            "duration": None,
            "note": "",
        }
        for n, (role, (name, data)) in enumerate(PHOTOS.items(), start=1)
    },
}


class Walker(Protocol):
    """A principal of THCS-PUNHI on one channel; each call returns the text the bot answered."""

    async def say(self, text: str) -> str:
        """Type a message."""
        ...

    async def pick(self, label: str) -> str:
        """Answer a shown choice the channel's way."""
        ...

    async def photo(self, name: str, content: bytes) -> str:
        """Send a photo as an original file, the way the bot asks for it on this channel."""
        ...


class OnConsole:
    """The demo principal at a terminal: `/file PATH` for photos, choices by number."""

    def __init__(self, app: App, folder: Path) -> None:
        self.chat = Chat(app, "principal", "Cô Lò Thị Lan")
        self.folder = folder

    async def say(self, text: str) -> str:
        return "\n".join(r.text for r in await self.chat.send(text))

    async def pick(self, label: str) -> str:
        return "\n".join(r.text for r in await self.chat.press(label))

    async def photo(self, name: str, content: bytes) -> str:
        return await self.say(f"/file {write(self.folder, name, content)}")


class OnTelegram:
    """A principal registered by deep link: photos as documents (originals), choices as buttons."""

    user = TgUser(1101, "Lan", "Lò Thị")

    def __init__(self, tg: test_telegram.Tg) -> None:
        self.tg = tg

    async def say(self, text: str) -> str:
        return texts(await self.tg.send(self.user, text))

    async def pick(self, label: str) -> str:
        return texts(await self.tg.press(self.user, self.tg.button(self.user, label)))

    async def photo(self, name: str, content: bytes) -> str:
        update = message_update(self.user, document=document(self.tg.api, content, name))
        return texts(await self.tg.push_for(self.user, update))


class OnZalo:
    """A principal registered with a code: photos by URL, choices by number or (on typed steps) words."""

    user = ZaloUser("a1b2c3d4e5f600000101", "Lò Thị Lan")

    def __init__(self, zl: test_zalo.Zl) -> None:
        self.zl = zl

    async def say(self, text: str) -> str:
        return await self.zl.send(self.user, text)

    async def pick(self, label: str) -> str:
        if test_zalo.NUMBERED.search(self.zl.api.texts_to(self.user.id)[-1]):
            return await self.zl.pick(self.user, label)
        return await self.say(label)  # a typed-answer step lists its choices without numbers

    async def photo(self, name: str, content: bytes) -> str:
        return await self.zl.photo(self.user, name, content)


@pytest.fixture(name="channel", params=CHANNELS)
def channel_fixture(request: pytest.FixtureRequest) -> str:
    """The channel this run walks the article over."""
    return str(request.param)


@pytest.fixture(name="platform")
def platform_fixture(channel: str) -> Iterator[FakeBotAPI | FakeZaloAPI | None]:
    """The channel's fake platform on 127.0.0.1 (none for the console)."""
    with ExitStack() as stack:
        if channel == "telegram":
            yield stack.enter_context(FakeBotAPI())
        elif channel == "zalo":
            yield stack.enter_context(FakeZaloAPI())
        else:
            yield None


@pytest.fixture(name="settings")
def settings_fixture(tmp_path: Path, database_url: str, platform: Any) -> Settings:
    """Default settings with only this run's channel pointed at its fake (overrides conftest's)."""
    extra: dict[str, Any] = {}
    if isinstance(platform, FakeBotAPI):
        extra["telegram"] = platform.settings()
        extra["outbox"] = test_telegram.UNPACED
    elif isinstance(platform, FakeZaloAPI):
        extra["zalo"] = platform.settings()
    return load_settings(None, database_url=database_url, media_dir=str(tmp_path / "media"), **extra)


@pytest.fixture(name="walker")
async def walker_fixture(demo: App, platform: Any, tmp_path: Path) -> AsyncIterator[Walker]:
    """A registered principal of THCS-PUNHI on this run's channel, the channel running."""
    if isinstance(platform, FakeBotAPI):
        async with test_telegram.running(demo, platform) as tg:
            await tg.register(OnTelegram.user, "principal", school="THCS-PUNHI")
            yield OnTelegram(tg)
    elif isinstance(platform, FakeZaloAPI):
        async with test_zalo.running(demo, platform) as zl:
            await zl.register(OnZalo.user, "principal", school="THCS-PUNHI")
            yield OnZalo(zl)
    else:
        yield OnConsole(demo, tmp_path)


async def walk_article(walker: Walker) -> str:
    """The whole monthly article, step by step; the answer to "Gửi".

    The author is the principal's own name (the profile's), not asked; the contact is asked once,
    this being the school's first article; extra photos, videos and a link are left to the review.
    """
    await walker.say("/article")
    await walker.pick("Hoạt động tiêu biểu")
    await walker.say(TEXTS["title"])
    for name, content in PHOTOS.values():
        await walker.photo(name, content)
    for step in ("when", "what", "how", "contact"):
        await walker.say(TEXTS[step])
    review = await walker.say(TEXTS["body"])
    assert "Xem lại Bài viết tháng" in review
    return await walker.pick("Gửi")


def content(answers: dict[str, Any]) -> dict[str, Any]:
    """The answers without the form's bookkeeping (keys with "_") and the photos' platform references."""
    kept = {k: v for k, v in answers.items() if not k.startswith("_")}
    for role in PHOTOS:
        kept[role] = {k: v for k, v in kept[role].items() if k not in PLATFORM_FIELDS}
    return kept


async def test_the_same_article_is_stored_the_same_on_every_channel(
    walker: Walker, demo: App, channel: str
) -> None:
    sent = await walk_article(walker)

    assert "Đã gửi Bài viết tháng 11/2026 – đúng hạn" in sent
    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "article")).one()
        files = s.exec(select(MediaFile).order_by(col(MediaFile.id))).all()
        sender, school = s.get(User, row.user_id), s.get(School, row.school_id)
    assert sender is not None and sender.channel == channel and sender.role == "principal"
    assert school is not None and school.code == "THCS-PUNHI"
    assert (row.period, row.status, row.late, row.version) == ("2026-11", "submitted", False, 1)
    assert content(row.answers) == {**STORED, "author": sender.display_name}  # the author: from the profile
    assert sender.display_name in ("Cô Lò Thị Lan", "Lan Lò Thị", "Lò Thị Lan")
    assert [(f.channel, f.sha256) for f in files] == [(channel, STORED[role]["sha256"]) for role in PHOTOS]
    for f, (_, data) in zip(files, PHOTOS.values(), strict=True):  # the bytes sent, under the media dir
        assert (Path(demo.settings.media_dir) / f.path).read_bytes() == data
