"""Walking the monthly article through the console with real files."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Chat
from tests.media.samples import jpeg, mp4, write
from tests.support import answer_steps

# The steps asked in turn; the contact only while the school has sent no article (then it is known);
# the text last, so that a long one's later parts join it on the review screen.
ARTICLE_STEPS = (
    "theme",
    "title",
    "photo_wide",
    "photo_speaker",
    "photo_closeup",
    "when",
    "what",
    "how",
    "contact",
    "body",
)
PLACE = "Sân trường PTDTBT THCS Pú Nhi"
WHAT = "Học sinh thi kể chuyện theo sách; toàn trường, 320 học sinh"
BODY = "Sáng 5/11, trường tổ chức ngày hội đọc sách cho toàn thể học sinh."


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
        "when": lambda: chat.send(f"{when}, {PLACE}"),
        "what": lambda: chat.send(WHAT),
        "how": lambda: chat.send("Sôi nổi, 12 giải thưởng"),
        "body": lambda: chat.send(BODY),
        "contact": lambda: _contact(chat),
    }
    await chat.send("/article")
    await answer_steps(ARTICLE_STEPS, answers, stop_before)


async def _contact(chat: Chat) -> None:
    if "Số điện thoại hoặc email" in chat.last.text:  # asked only until an article gave it
        await chat.send("0912 345 678")
