"""Walking the monthly article through the console with real files."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Chat
from tests.media.samples import jpeg, mp4, write
from tests.support import answer_steps

ARTICLE_STEPS = (
    "theme",
    "title",
    "photo_wide",
    "photo_speaker",
    "photo_closeup",
    "photos_extra",
    "what",
    "where",
    "when",
    "who",
    "how",
    "body",
    "link",
    "videos",
    "author",
    "contact",
)


def photo_files(folder: Path) -> dict[str, Path]:
    """Three good photos (the wide one with EXIF date and GPS), a small one, a fake and two clips."""
    return {
        "wide": write(
            folder, "toan-canh.jpg", jpeg(2000, 1500, "red", taken="2026:11:05 08:30:00", gps=True)
        ),
        "speaker": write(folder, "phat-bieu.jpg", jpeg(1600, 1200, "blue")),
        "closeup": write(folder, "can-canh.jpg", jpeg(1280, 960, "green")),
        "extra": write(folder, "them.jpg", jpeg(1400, 1400, "yellow")),
        "small": write(folder, "nho.jpg", jpeg(800, 600, "gray")),
        "fake": write(folder, "gia.jpg", b"this is not a jpeg at all"),
        "clip": write(folder, "canh-quay.mp4", mp4(1920, 1080, 45)),
        "long": write(folder, "dai.mp4", mp4(1920, 1080, 130)),
    }


async def write_article(
    chat: Chat, files: dict[str, Path], stop_before: str | None = None, when: str = "05/11/2026"
) -> None:
    """Answer every article step in order (or up to `stop_before`), ending on the review screen."""
    answers = {
        "theme": lambda: chat.press("Hoạt động tiêu biểu"),
        "title": lambda: chat.send("Ngày hội đọc sách"),
        "photo_wide": lambda: chat.send(f"/file {files['wide']}"),
        "photo_speaker": lambda: chat.send(f"/file {files['speaker']}"),
        "photo_closeup": lambda: chat.send(f"/file {files['closeup']}"),
        "photos_extra": lambda: chat.press("Xong"),
        "what": lambda: chat.send("Học sinh thi kể chuyện theo sách"),
        "where": lambda: chat.send("Sân trường PTDTBT THCS Pú Nhi"),
        "when": lambda: chat.send(when),
        "who": lambda: chat.send("Toàn trường, 320 học sinh"),
        "how": lambda: chat.send("Sôi nổi, 12 giải thưởng"),
        "body": lambda: _body(chat),
        "link": lambda: chat.press("Bỏ qua"),
        "videos": lambda: chat.press("Xong"),
        "author": lambda: chat.send("Cô Lò Thị Lan"),
        "contact": lambda: chat.send("0912 345 678"),
    }
    await chat.send("/article")
    if "Bài mới" in chat.last.text or any("Bài mới" in c.label for c in chat.last.flat_choices()):
        await chat.press("Bài mới")
    await answer_steps(ARTICLE_STEPS, answers, stop_before)


async def _body(chat: Chat) -> None:
    await chat.send("Sáng 5/11, trường tổ chức ngày hội đọc sách cho toàn thể học sinh.")
    await chat.press("Xong")
