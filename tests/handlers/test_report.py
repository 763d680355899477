"""Periodic reports through the console: figures pre-filled from the rows, one per deadline, late ones."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bot.app import App
from handlers.calendar import FrozenClock
from storage.models import Submission, User
from tests.conftest import Chat
from tests.handlers.helpers import add_submission, the_draft
from tests.media.samples import jpeg, write

DRIVE = "https://drive.google.com/file/d/1AbCdEf/view?usp=sharing"


def docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return out.getvalue()


@pytest.fixture(name="joined_in_january")
def joined_in_january_fixture(demo: App) -> App:
    """The demo school as if its principal had joined the bot in January (so June's report is owed)."""
    with demo.db.session() as s:
        for user in s.exec(select(User).where(User.role == "principal")):
            user.created_at = datetime(2026, 1, 5, tzinfo=UTC)
            s.add(user)
    return demo


def add_rows(app: App, when: datetime) -> None:
    """Articles, nominations and incidents of the demo school, as if sent at `when`."""
    rows = [
        ("article", {"title": "a"}, "submitted", False),
        ("article", {"title": "b"}, "approved", True),
        ("article", {"title": "c"}, "published", False),
        ("nomination", {"purpose": "press"}, "submitted", False),
        ("nomination", {"purpose": "both"}, "submitted", False),
        ("nomination", {"purpose": "commendation"}, "submitted", False),
        ("incident", {}, "submitted", False),
    ]
    with app.db.session() as s:
        for n, (kind, answers, status, late) in enumerate(rows):
            token = f"t{when.isoformat()}{n}"
            add_submission(s, "THCS-PUNHI", kind, answers, when, token, status=status, late=late)


async def test_figures_are_prefilled_from_the_rows_and_can_be_corrected(
    demo: App, joined_in_january: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    add_rows(demo, datetime(2026, 3, 2, 9, tzinfo=demo.clock.tz))  # inside Dec 2025 – Dec 2026
    add_rows(demo, datetime(2025, 11, 2, 9, tzinfo=demo.clock.tz))  # before: not counted
    chat = chat_as("principal")
    replies = await chat.send("/report")
    screen = replies[-1].text
    assert "Gợi ý: Báo cáo năm – hạn 01/12/2026 (chưa nộp)" in screen
    assert any(
        "Báo cáo 6 tháng – hạn 20/06/2026 (quá hạn, chưa nộp)" in c.label for c in replies[-1].flat_choices()
    )
    await chat.press("Dùng gợi ý")
    await chat.send("4")
    await chat.send("Đã có 3 bài được đăng trên báo điện tử của tỉnh.")
    await chat.press("Bỏ qua")
    pdf = write(tmp_path, "bao-cao.pdf", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n")
    review = await chat.send(f"/file {pdf}")
    text = review[-1].text
    for line in (
        "Bài viết đã gửi: 3",
        "Bài đúng hạn: 2",
        "Bài đã duyệt: 2",
        "Bài đã đăng: 1",
        "Đề xuất giới thiệu báo chí: 2",
        "Đề xuất khen thưởng: 2",
        "Sự cố đã báo: 1",
        "Tin, bài trên báo chí, PT-TH: 4",
        "Tệp báo cáo: Tệp bao-cao.pdf",
    ):
        assert line in text, line
    await chat.press("Sửa: Số liệu")  # the figures are one section of the review screen
    await chat.press("Sửa: Bài đã đăng")
    before = the_draft(demo, "principal", "report").answers
    bad = await chat.send("-2")
    assert "không được âm" in bad[0].text
    bad = await chat.send("hai")
    assert "con số" in bad[0].text
    assert the_draft(demo, "principal", "report").answers == before
    review = await chat.send("2")
    assert "Bài đã đăng: 2" in review[-1].text and "Bài viết đã gửi: 3" in review[-1].text
    sent = await chat.press("Gửi")
    assert "Đã gửi Báo cáo năm (hạn 01/12/2026) – đúng hạn" in sent[0].text
    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "report")).one()
    assert row.period == "nam-2026" and not row.late
    assert (
        row.answers["articles_published"],
        row.answers["articles_sent"],
        row.answers["press_coverage"],
    ) == (2, 3, 4)
    assert row.answers["document"]["doctype"] == "pdf"


async def test_one_report_per_deadline(
    demo: App, joined_in_january: App, chat_as: Callable[[str], Chat]
) -> None:
    chat = chat_as("principal")
    await fill_report(chat, "Báo cáo năm")
    await chat.press("Gửi")
    again = await chat.send("/report")
    labels = [c.label for c in again[-1].flat_choices()]
    assert any("Báo cáo năm – hạn 01/12/2026 (đã nộp)" in label for label in labels)
    await chat.press("Báo cáo năm")
    await chat.send("0")
    await chat.send("Nội dung")
    await chat.press("Bỏ qua")
    await chat.press("Bỏ qua")
    refused = await chat.press("Gửi")
    assert "đã được gửi" in refused[0].text and any(
        "Sửa báo cáo" in c.label for c in refused[0].flat_choices()
    )
    with demo.db.session() as s:
        assert len(s.exec(select(Submission).where(Submission.kind == "report")).all()) == 1
    await fill_report(chat, "Báo cáo 6 tháng")
    await chat.press("Gửi")
    done = await chat.send("/report")
    assert "đã được gửi đủ" in done[0].text


async def test_a_deadline_that_passed_before_the_school_joined_is_not_owed(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    """The demo school joined on 10 November: June's six-month report is neither offered nor owed."""
    chat = chat_as("principal")
    replies = await chat.send("/report")
    labels = [c.label for c in replies[-1].flat_choices()]
    assert any("Báo cáo năm – hạn 01/12/2026" in label for label in labels)
    assert not any("6 tháng" in label for label in labels)
    status = await chat.send("/mystatus")
    assert "Còn nợ" not in status[0].text and "Báo cáo năm, hạn 01/12/2026" in status[0].text


async def test_a_late_report_after_20_june(
    demo: App, chat_as: Callable[[str], Chat], clock: FrozenClock
) -> None:
    clock.set(datetime(2027, 6, 25, 9))
    chat = chat_as("principal")
    await fill_report(chat, "Báo cáo 6 tháng – hạn 20/06/2027")
    replies = await chat.press("Gửi")
    assert "Nộp muộn" in replies[0].text
    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "report")).one()
    assert row.period == "6thang-2027" and row.late
    status = await chat.send("/mystatus")
    assert "Còn nợ" not in status[0].text


async def test_a_document_is_checked_by_content(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    chat = chat_as("principal")
    await fill_report(chat, "Báo cáo năm", stop_at_document=True)
    before = the_draft(demo, "principal", "report").answers
    fake = write(tmp_path, "bao-cao.pdf", "Đây không phải PDF".encode())
    replies = await chat.send(f"/file {fake}")
    assert "không phải PDF hay DOCX" in replies[0].text
    jpg = write(tmp_path, "bao-cao.docx", b"\xff\xd8\xff\xe0jpeg")
    replies = await chat.send(f"/file {jpg}")
    assert "không phải PDF hay DOCX" in replies[0].text
    replies = await chat.send("báo cáo đây")
    assert "PDF hoặc DOCX" in replies[0].text
    assert the_draft(demo, "principal", "report").answers == before
    good = write(tmp_path, "Bao cao nam.docx", docx())
    replies = await chat.send(f"/file {good}")
    assert "Tệp Bao cao nam.docx" in replies[-1].text


async def test_a_link_to_the_document_is_taken_and_shown_whole(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    chat = chat_as("principal")
    await fill_report(chat, "Báo cáo năm", stop_at_document=True)
    assert "hoặc gửi đường link tới tệp" in chat.last.text  # the prompt offers both

    review = await chat.send(f"  {DRIVE} ")

    assert review[-1].text.startswith("Đã nhận đường link.")
    assert f"• Tệp báo cáo: đường link {DRIVE}" in review[-1].text
    await chat.press("Gửi")
    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "report")).one()
    assert row.answers["document"] == {"link": DRIVE}
    officer = chat_as("officer")
    await officer.send("/review")
    opened = await officer.press(f"Mở #{row.id}")
    assert f"• Tệp báo cáo: đường link {DRIVE}" in opened[0].text and opened[0].attachments == ()


@pytest.mark.parametrize(
    ("sent", "answer"),
    [
        (
            "Tuần sau trường sẽ gửi bản có chữ ký",
            "Vui lòng gửi tệp PDF hoặc DOCX (dạng Tệp), hoặc đường link tới tệp",
        ),
        ("javascript:alert(document.cookie)", "Đường link chưa đúng. Đường link phải bắt đầu bằng http://"),
        ("ftp://truong.edu.vn/bao-cao.pdf", "Đường link chưa đúng. Đường link phải bắt đầu bằng http://"),
        ("drive.google.com/file/d/1AbCdEf", "Đường link chưa đúng. Đường link phải bắt đầu bằng http://"),
        ("https://[drive.google.com/x", "Đường link chưa đúng."),  # urlparse raises on it
        ("https://drive.google.com/" + "a" * 2100, "Đường link quá dài (2125 ký tự, tối đa 2000)."),
        ("PHOTO", "Đây là ảnh, không phải tệp báo cáo."),
    ],
    ids=["words", "javascript", "ftp", "no-scheme", "broken-host", "too-long", "photo"],
)
async def test_bad_answers_at_the_document_step_change_nothing(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path, sent: str, answer: str
) -> None:
    chat = chat_as("principal")
    await fill_report(chat, "Báo cáo năm", stop_at_document=True)
    before = the_draft(demo, "principal", "report")
    if sent == "PHOTO":  # a real JPEG, sent as a file
        sent = f"/file {write(tmp_path, 'anh-bao-cao.jpg', jpeg(1600, 1200))}"

    replies = await chat.send(sent)

    said, _, screen = replies[0].text.partition("\n\n")
    assert said.startswith(answer) and len(said) <= 160, said
    assert "Đính kèm báo cáo có chữ ký" in screen  # the same step, asked again
    after = the_draft(demo, "principal", "report")
    assert (after.step, after.mode, after.answers, after.version) == (
        before.step,
        before.mode,
        before.answers,
        before.version,
    )


async def test_a_deadline_the_office_does_not_have(demo: App, chat_as: Callable[[str], Chat]) -> None:
    from handlers.types import Incoming, Kind

    chat = chat_as("principal")
    await chat.send("/report")
    draft = the_draft(demo, "principal", "report")
    forged = f"f:{draft.id}:{draft.version}:a:hocky1-2026"
    replies = await demo.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.CHOICE, choice=forged, update_id="x")
    )
    assert "Vui lòng chọn một mục" in replies[0].text
    assert the_draft(demo, "principal", "report").answers == draft.answers


async def fill_report(chat: Chat, which: str, stop_at_document: bool = False) -> None:
    await chat.send("/report")
    await chat.press(which)
    await chat.send("2")
    await chat.send("Các hoạt động truyền thông diễn ra đều đặn.")
    await chat.press("Bỏ qua")
    if not stop_at_document:
        await chat.press("Bỏ qua")
