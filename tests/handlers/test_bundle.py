"""The month's press bundle: a ZIP opened by the test and checked folder by folder."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from handlers.types import Incoming, Kind
from storage.models import MediaFile, School, Submission
from tests.handlers.article_helpers import photo_files, write_article
from tests.handlers.test_nomination import nominate

SCHOOL = "Trường PTDTBT THCS Pú Nhi"


@pytest.fixture(name="files")
def files_fixture(tmp_path: Path) -> dict[str, Path]:
    return photo_files(tmp_path)


async def approved_month(demo, chat_as, files, tmp_path) -> None:
    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Sửa: Ảnh, video")  # videos are added from the review screen
    await principal.press("Sửa: Video")
    await principal.send(f"/file {files['clip']}")
    await principal.send("https://drive.google.com/drive/folders/xyz")
    await principal.press("Xong")
    await principal.press("Gửi")
    await nominate(principal, tmp_path, role="Học sinh", name="Nguyễn Văn An", consent="Chưa có", photos=1)
    await principal.press("Gửi")
    for n, number in enumerate((1, 2)):
        await demo.dispatcher.handle(
            Incoming(
                "console", "officer", "officer", Kind.CHOICE, choice=f"rv:a:{number}:1", update_id=f"a{n}"
            )
        )


async def test_the_bundle_folder_by_folder(demo, chat_as, files, tmp_path) -> None:
    await approved_month(demo, chat_as, files, tmp_path)
    officer = chat_as("officer")
    replies = await officer.send("/bundle 11/2026")
    assert "Tư liệu tháng 11/2026: 2 mục" in replies[0].text
    zip_path = Path(replies[0].file_path)
    assert zip_path.is_file()
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        article = f"{SCHOOL}_Ngày hội đọc sách"
        assert f"{article}/Ngày hội đọc sách.docx" in names and f"{article}/Ngày hội đọc sách.txt" in names
        photos = sorted(n for n in names if n.startswith(article + "/0"))
        assert photos == [
            f"{article}/01_Ảnh toàn cảnh.jpg",
            f"{article}/02_Ảnh người phát biểu.jpg",
            f"{article}/03_Ảnh cận cảnh.jpg",
        ]
        assert archive.read(photos[0]) == files["wide"].read_bytes()
        assert f"{article}/video_01.mp4" in names
        assert "drive.google.com" in archive.read(f"{article}/video_02.txt").decode()
        text = archive.read(f"{article}/Ngày hội đọc sách.txt").decode()
        assert "Học sinh thi kể chuyện theo sách" in text and "05/11/2026" in text

        nomination = next(n.split("/")[0] for n in names if "Đề xuất" in n)
        assert nomination == f"{SCHOOL}_Đề xuất N.V.A"  # no trailing dot: Windows refuses one
        inside = [n for n in names if n.startswith(nomination + "/")]
        assert all(n.endswith((".txt", ".docx")) for n in inside)  # no photos without consent
        nomination_text = archive.read(next(n for n in inside if n.endswith(".txt"))).decode()
        assert "Nguyễn Văn An" not in nomination_text and "N.V.A." in nomination_text
        from docx import Document

        doc = Document(io.BytesIO(archive.read(f"{article}/Ngày hội đọc sách.docx")))
        assert doc.paragraphs[0].text == "Ngày hội đọc sách"

        book = load_workbook(io.BytesIO(archive.read("index.xlsx")))
        sheet = book.active
        assert sheet.freeze_panes == "A2"
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0][:3] == ("STT", "Loại", "Trường") and len(rows) == 3
        assert rows[1][4] == "Ngày hội đọc sách" and rows[1][8] == 3 and rows[1][9] == 2
        assert all(not str(c).startswith("=") for r in rows for c in r if c is not None)


async def test_the_bundle_reads_the_month_as_status_does(demo, chat_as, files, tmp_path) -> None:
    await approved_month(demo, chat_as, files, tmp_path)
    officer = chat_as("officer")
    for typed in ("tháng 11", "Tháng mười một", "T11/2026", "2026-11", "11", ""):
        replies = await officer.send(f"/bundle {typed}".strip())
        assert "Tư liệu tháng 11/2026: 2 mục" in replies[0].text, typed
    for typed in ("tháng mười ba", "13/2026", "Trường Xyz"):
        assert "Tháng chưa đúng" in (await officer.send(f"/bundle {typed}"))[0].text, typed


async def test_a_school_or_title_that_looks_like_a_formula_is_text_in_the_index(
    demo, chat_as, files, tmp_path
) -> None:
    await approved_month(demo, chat_as, files, tmp_path)
    with demo.db.session() as s:
        school = s.exec(select(School).where(School.name == SCHOOL)).one()
        school.name = '=HYPERLINK("http://x") Pú Nhi'
        article = s.exec(select(Submission).where(Submission.kind == "article")).one()
        article.answers = {**article.answers, "title": "@Ngày hội đọc sách"}
        s.add_all([school, article])
    replies = await chat_as("officer").send("/bundle 11/2026")
    with zipfile.ZipFile(replies[0].file_path) as archive:
        sheet = load_workbook(io.BytesIO(archive.read("index.xlsx"))).active
    article_row, nomination_row = sheet[2], sheet[3]
    assert article_row[2].value == '=HYPERLINK("http://x") Pú Nhi'  # as typed: no apostrophe added
    assert article_row[4].value == "@Ngày hội đọc sách"
    assert nomination_row[2].value == '=HYPERLINK("http://x") Pú Nhi'
    for cell in (article_row[2], article_row[4], nomination_row[2]):
        assert cell.data_type == "s" and cell.quotePrefix, cell.coordinate


async def test_a_missing_file_is_listed_and_the_bundle_still_made(demo, chat_as, files, tmp_path) -> None:
    await approved_month(demo, chat_as, files, tmp_path)
    with demo.db.session() as s:
        wide = s.exec(select(MediaFile).where(MediaFile.width == 2000)).first()
    (Path(demo.settings.media_dir) / wide.path).unlink()
    replies = await chat_as("officer").send("/bundle 11/2026")
    assert "Thiếu 1 tệp" in replies[0].text
    with zipfile.ZipFile(replies[0].file_path) as archive:
        rows = list(load_workbook(io.BytesIO(archive.read("index.xlsx"))).active.iter_rows(values_only=True))
        assert "thiếu tệp Ảnh toàn cảnh" in rows[1][10]
        assert not any(n.endswith("01_Ảnh toàn cảnh.jpg") for n in archive.namelist())


async def test_nothing_approved_means_no_zip(demo, chat_as, files) -> None:
    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")  # sent, not approved
    replies = await chat_as("officer").send("/bundle 11/2026")
    assert "chưa có bài nào đã duyệt" in replies[0].text and not replies[0].file_path
    assert not list(Path(demo.settings.media_dir).glob("bundles/*.zip"))
    bad = await chat_as("officer").send("/bundle tháng mười ba")
    assert "Tháng chưa đúng" in bad[0].text
    refused = await principal.send("/bundle")
    assert "không dành cho" in refused[0].text


async def test_another_district_gets_nothing_of_this_one(demo, chat_as, files, tmp_path) -> None:
    from tests.handlers.helpers import add_district, add_user

    await approved_month(demo, chat_as, files, tmp_path)
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Anh Khác")
    replies = await chat_as("other_officer").send("/bundle 11/2026")
    assert "chưa có bài nào" in replies[0].text
    with demo.db.session() as s:
        assert len(s.exec(select(Submission).where(Submission.status == "approved")).all()) == 2


async def test_the_bundle_from_the_command_line(demo, chat_as, files, tmp_path, settings) -> None:
    from typer.testing import CliRunner

    from bot.cli import app as cli

    await approved_month(demo, chat_as, files, tmp_path)
    env = {"SCHOOLBOT_DATABASE_URL": settings.database_url, "SCHOOLBOT_MEDIA_DIR": str(settings.media_dir)}
    out = tmp_path / "tu-lieu.zip"
    args = [
        "export",
        "bundle",
        "--office",
        "PGD-DEMO",
        "--month",
        "2026-11",
        "--out",
        str(out),
        "--config",
        str(tmp_path / "x.toml"),
    ]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "2 item(s)" in result.output
    with zipfile.ZipFile(out) as archive:
        assert "index.xlsx" in archive.namelist()
    empty = CliRunner().invoke(cli, [*args[:5], "2026-10", *args[6:]], env=env)
    assert empty.exit_code == 1 and not (tmp_path / "none.zip").exists()
    unknown = CliRunner().invoke(cli, ["export", "bundle", "--office", "NOPE", "--out", str(out)], env=env)
    assert unknown.exit_code == 1 and "no office" in unknown.output
