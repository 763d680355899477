"""A model, activity or solution nominated with /nominate (issue #15 item 8): the form, its results with
figures, counted and exported beside the people."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from docx import Document
from openpyxl import load_workbook
from sqlmodel import select

from bot.app import App
from handlers.types import Incoming, Kind
from storage.models import Submission
from tests.conftest import Chat
from tests.handlers.helpers import draft_of
from tests.media.samples import jpeg, write

TITLE = "Thư viện xanh dưới tán cây"
RESULTS = "45 học sinh mượn sách mỗi tuần; số sách đọc tăng 20% so với năm trước."


def draft(app: App) -> tuple[str, str, dict[str, Any], int]:
    d = draft_of(app, "principal", "nomination")
    assert d is not None
    return (d.step, d.mode, dict(d.answers), d.version)


async def nominate_model(chat: Chat, tmp_path: Path, stop_before: str | None = None) -> None:
    """Walk the model's steps, with one photo; ends on the review screen."""
    photo = write(tmp_path, "thu-vien.jpg", jpeg(1600, 1200, "green"))
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("nominee", lambda: chat.press("Mô hình, giải pháp, cách làm hay")),
        ("title", lambda: chat.send(TITLE)),
        ("change", lambda: chat.send("Sách đặt ở sân trường, học sinh tự mượn, tự trả, không cần thẻ.")),
        ("results", lambda: chat.send(RESULTS)),
        ("since", lambda: chat.send("tháng 9/2024")),
        ("photos", lambda: chat.send(f"/file {photo}")),
        ("photos_done", lambda: chat.press("Xong")),
        ("contact_name", lambda: chat.send("Lò Thị Lan")),
        ("contact_phone", lambda: chat.send("0912345678")),
    ]
    await chat.send("/nominate")
    for key, action in steps:
        if key == stop_before:
            return
        await action()


async def test_a_model_walked_counted_and_exported(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    principal = chat_as("principal")
    await principal.send("/nominate")
    assert "1/8" in principal.last.text
    await principal.press("Mô hình, giải pháp, cách làm hay")
    assert (
        "2/8" in principal.last.text and "Tên mô hình" in principal.last.text
    )  # the same count as a person's
    await principal.send("/cancel")
    await principal.press("Có")
    await nominate_model(principal, tmp_path)
    review = principal.last.text
    assert "Đơn vị thực hiện: Trường PTDTBT THCS Pú Nhi" in review  # known: the school, not asked
    assert RESULTS in review and "tháng 9/2024" in review
    pdf = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n"
    await principal.press("Sửa: Việc làm, minh chứng")
    await principal.press("Sửa: Tài liệu")  # the model's document, added from the review screen
    await principal.send(f"/file {write(tmp_path, 'mo-ta-mo-hinh.pdf', pdf)}")
    sent = await principal.press("Gửi")
    assert f"Đã gửi đề xuất mô hình, giải pháp: {TITLE}" in sent[0].text
    with demo.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "nomination")).one()
    assert row.answers["kind"] == "model" and row.answers["results"] == RESULTS
    assert row.answers["publishable"] is True and len(row.answers["photos"]) == 1

    status = await principal.send("/mystatus")
    assert "Đề xuất điển hình: 0 trong học kỳ này" in status[0].text  # the people
    assert "Mô hình, giải pháp, cách làm hay: 1 trong học kỳ này, 1 trong năm học." in status[0].text

    officer = chat_as("officer")
    listing = await officer.send("/nominations")
    assert f"Mô hình: {TITLE}" in listing[0].text and "45 học sinh" in listing[0].text
    await officer.send("/review")
    opened = await officer.press(f"Mở #{row.id}")
    assert "Điểm mới" in opened[0].text and RESULTS in opened[0].text
    assert [a.kind for a in opened[0].attachments] == ["photo", "document"]  # the photo, the document
    await demo.dispatcher.handle(
        Incoming("console", "officer", "officer", Kind.CHOICE, choice=f"rv:a:{row.id}:1", update_id="ok")
    )
    bundle = await officer.send("/bundle 11/2026")
    with zipfile.ZipFile(bundle[0].file_path) as archive:
        names = archive.namelist()
        inside = [n for n in names if TITLE in n.split("/")[0]]
        document = next(n for n in inside if n.endswith(".docx"))
        text = "\n".join(p.text for p in Document(io.BytesIO(archive.read(document))).paragraphs)
        assert "Kết quả: 45 học sinh" in text and "Áp dụng từ: tháng 9/2024" in text
        assert any(n.endswith(".jpg") for n in inside)
        [attached] = [n for n in inside if n.endswith("/Tài liệu kèm theo.pdf")]
        assert archive.read(attached) == pdf  # the school's document as it sent it

    leader = chat_as("leader")
    card = await leader.send("/status pu nhi")
    assert "Trong đó 1 mô hình, giải pháp." in "\n".join(r.text for r in card)
    export = await leader.send("/export 11/2026")
    book = load_workbook(io.BytesIO(Path(export[0].file_path).read_bytes()))
    rows = [r for sheet in book for r in sheet.iter_rows(values_only=True) if TITLE in r]
    assert len(rows) == 1 and "Mô hình, giải pháp" in rows[0]
    assert any("Kết quả: 45 học sinh" in str(c) for c in rows[0])


async def test_a_model_without_results_is_asked_again(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    principal = chat_as("principal")
    await nominate_model(principal, tmp_path, stop_before="results")
    before = draft(demo)
    for answer in ("Chưa có số liệu", "Rất tốt, học sinh thích"):
        replies = await principal.send(answer)
        assert "Đề nghị nêu kết quả bằng số liệu" in replies[0].text
        assert "các thông tin khác vẫn được giữ nguyên" in replies[0].text
        assert draft(demo) == before  # nothing lost, nothing taken
    replies = await principal.send(RESULTS)
    assert "được áp dụng từ khi nào" in replies[-1].text
    assert draft(demo)[2]["title"] == TITLE
