"""Nominations and reports over Telegram: a teacher with photos, a late report with a document."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime

from sqlmodel import select

from storage.models import Submission
from tests.bot.test_telegram import PRINCIPAL, Tg, api_fixture, settings_fixture, tg_fixture  # noqa: F401
from tests.bot.test_telegram_article import document, photo_sizes, texts
from tests.fakes.telegram_api import message_update
from tests.media.samples import jpeg
from tests.support import frozen


async def test_a_teacher_nominated_with_photos_over_telegram(tg: Tg) -> None:
    await tg.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    await tg.send(PRINCIPAL, "/nominate")
    await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Giáo viên"))
    await tg.send(PRINCIPAL, "Nguyễn Thị Hoa")
    await tg.send(PRINCIPAL, "Mười năm dạy học ở điểm trường bản Pú Nhi.")
    got = await tg.push_for(
        PRINCIPAL, message_update(PRINCIPAL, photo=photo_sizes(tg.api, jpeg(1600, 1200), 1600, 1200))
    )
    assert "Đã nhận 1 ảnh (tổng 1/10)" in texts(got)
    await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Xong"))
    await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Bỏ qua"))
    await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Giới thiệu với báo chí"))
    await tg.send(PRINCIPAL, "Lò Thị Lan")
    bad = await tg.send(PRINCIPAL, "số máy bàn")
    assert "Số điện thoại chưa đúng" in texts(bad)
    review = await tg.send(PRINCIPAL, "0912.345.678")
    assert "Điện thoại: 0912345678" in texts(review)
    sent = await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Gửi"))
    assert "Đã gửi Đề xuất điển hình: Nguyễn Thị Hoa" in texts(sent)
    with tg.app.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "nomination")).one()
    assert row.answers["photos"][0]["kind"] == "photo" and row.answers["purpose"] == "press"


async def test_a_late_report_with_a_docx_over_telegram(tg: Tg) -> None:
    frozen(tg.app).set(datetime(2027, 6, 25, 9))
    await tg.register(PRINCIPAL, "principal", school="THCS-PUNHI")
    await tg.send(PRINCIPAL, "/report")
    await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Báo cáo 6 tháng"))
    await tg.send(PRINCIPAL, "1")
    await tg.send(PRINCIPAL, "Đẩy mạnh truyền thông về tuyển sinh lớp 10.")
    await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Bỏ qua"))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    mime = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    review = await tg.push_for(
        PRINCIPAL, message_update(PRINCIPAL, document=document(tg.api, out.getvalue(), "bao-cao.docx", mime))
    )
    assert "Tệp báo cáo: Tệp bao-cao.docx" in texts(review)
    sent = await tg.press(PRINCIPAL, tg.button(PRINCIPAL, "Gửi"))
    assert "Nộp muộn" in texts(sent)
    with tg.app.db.session() as s:
        row = s.exec(select(Submission).where(Submission.kind == "report")).one()
    assert row.late and row.period == "6thang-2027" and row.answers["document"]["doctype"] == "docx"
