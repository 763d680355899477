"""The month's press bundle and a report's signed files: ZIPs opened by the test, folder by folder."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from docx import Document
from docx.text.paragraph import Paragraph
from openpyxl import load_workbook
from sqlmodel import col, select

from bot.app import App
from bot.config import Settings
from handlers.press import PATH_LIMIT, utf16_len
from handlers.types import Incoming, Kind
from storage.models import MediaFile, School, Submission
from tests.conftest import Chat
from tests.handlers.article_helpers import BODY, PLACE, WHAT, photo_files, write_article
from tests.handlers.test_nomination import nominate
from tests.handlers.test_report import fill_report
from tests.media.samples import write

SCHOOL = "Trường PTDTBT THCS Pú Nhi"
FOLDER = "THCS Pú Nhi_Ngày hội đọc sách"
ZIP_NAME = "Phòng GD&ĐT Điện Biên Đông (demo)_2026-11.zip"


@pytest.fixture(name="files")
def files_fixture(tmp_path: Path) -> dict[str, Path]:
    return photo_files(tmp_path)


def noisy_files(folder: Path) -> dict[str, Path]:
    """Photos with a band of noise (about 130 kB each: JPEG cannot shrink noise), and the sample clip."""
    from PIL import Image

    out = dict(photo_files(folder))
    for n, key in enumerate(("wide", "speaker", "closeup")):
        img = Image.new("RGB", (1280, 960), "gray")
        img.paste(Image.frombytes("RGB", (1280, 200), os.urandom(1280 * 200 * 3)), (0, 0))
        path = folder / f"noise-{n}.jpg"
        img.save(path, "JPEG", quality=50)
        out[key] = path
    return out


def index_rows(archive: zipfile.ZipFile) -> list[tuple[Any, ...]]:
    """The rows of a bundle's index (the spreadsheet listing its folders)."""
    sheet = load_workbook(io.BytesIO(archive.read("Danh mục.xlsx"))).active
    assert sheet is not None
    return list(sheet.iter_rows(values_only=True))


def style_name(paragraph: Paragraph) -> str | None:
    """The name of a paragraph's style (python-docx leaves it untyped)."""
    assert paragraph.style is not None
    name: str | None = paragraph.style.name
    return name


async def approve_all(demo: App) -> None:
    """The officer approves every item waiting, by its button value."""
    with demo.db.session() as s:
        ids = [r.id for r in s.exec(select(Submission).where(Submission.status == "submitted"))]
    for n, number in enumerate(ids):
        await demo.dispatcher.handle(
            Incoming(
                "console",
                "officer",
                "officer",
                Kind.CHOICE,
                choice=f"rv:a:{number}:1",
                update_id=f"a{number}{n}",
            )
        )


async def approved_month(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
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
    await approve_all(demo)


async def test_the_bundle_folder_by_folder(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
    await approved_month(demo, chat_as, files, tmp_path)
    officer = chat_as("officer")
    replies = await officer.send("/bundle 11/2026")
    assert "Tư liệu tháng 11/2026: 2 mục" in replies[0].text and len(replies) == 1
    zip_path = Path(replies[0].file_path)
    assert zip_path.name == ZIP_NAME
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert f"{FOLDER}/Bài viết.docx" in names
        photos = sorted(n for n in names if n.startswith(FOLDER + "/0"))
        assert photos == [
            f"{FOLDER}/01 Ảnh toàn cảnh.jpg",
            f"{FOLDER}/02 Ảnh người phát biểu.jpg",
            f"{FOLDER}/03 Ảnh cận cảnh.jpg",
        ]
        assert archive.read(photos[0]) == files["wide"].read_bytes()  # the original, untouched
        assert f"{FOLDER}/Video 01.mp4" in names
        links = archive.read(f"{FOLDER}/Ghi chú và liên kết.txt").decode("utf-8-sig")
        assert "Video 02: xem tại thư mục chia sẻ https://drive.google.com/drive/folders/xyz" in links

        nomination = next(n.split("/")[0] for n in names if "Đề xuất" in n)
        assert nomination == "THCS Pú Nhi_Đề xuất N.V.A"  # no trailing dot: Windows refuses one
        inside = [n for n in names if n.startswith(nomination + "/")]
        assert inside == [f"{nomination}/Bài viết.docx"]  # no photos without consent
        text = "\n".join(p.text for p in Document(io.BytesIO(archive.read(inside[0]))).paragraphs)
        assert "Nguyễn Văn An" not in text and "N.V.A." in text

        for info in archive.infolist():
            assert utf16_len(info.filename) <= PATH_LIMIT, info.filename
            assert info.flag_bits & 0x800, info.filename  # Vietnamese names marked UTF-8 for Windows
            assert "Trường" not in info.filename and info.filename.count("Pú Nhi") <= 1

        book = load_workbook(io.BytesIO(archive.read("Danh mục.xlsx")))
        sheet = book.active
        assert sheet is not None
        assert sheet.freeze_panes == "A2"
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0][:3] == ("STT", "Loại", "Trường") and len(rows) == 3
        assert rows[1][4] == "Ngày hội đọc sách" and rows[1][7] == FOLDER
        assert rows[1][8] == 3 and rows[1][9] == 2 and rows[1][11] == "1"
        assert all(not str(c).startswith("=") for r in rows for c in r if c is not None)


async def test_the_article_is_laid_out_as_it_would_be_published(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
    await approved_month(demo, chat_as, files, tmp_path)
    replies = await chat_as("officer").send("/bundle tháng 11")
    with zipfile.ZipFile(replies[0].file_path) as archive:
        doc = Document(io.BytesIO(archive.read(f"{FOLDER}/Bài viết.docx")))
    paragraphs = [p for p in doc.paragraphs if p.text]
    texts = [p.text for p in paragraphs]
    assert texts[0] == "Ngày hội đọc sách" and style_name(paragraphs[0]) == "Heading 1"  # the title first
    lead = f"Ngày 05/11/2026, tại {PLACE}: {WHAT}."
    assert texts[1] == lead and all(r.bold for r in paragraphs[1].runs)
    assert BODY in texts
    captions = [p.text for p in paragraphs if style_name(p) == "Caption"]
    assert captions == [
        f"{role}: {WHAT}" for role in ("Ảnh toàn cảnh", "Ảnh người phát biểu", "Ảnh cận cảnh")
    ]
    section = doc.sections[0]
    assert section.page_width is not None and section.left_margin is not None
    assert section.right_margin is not None
    column = section.page_width - section.left_margin - section.right_margin
    assert len(doc.inline_shapes) == 3 and all(s.width == column for s in doc.inline_shapes)
    assert texts[-2:] == ["Tác giả: Cô Lò Thị Lan", f"Nguồn: {SCHOOL}"]
    assert any("Video 02: xem tại thư mục chia sẻ" in t for t in texts)


async def test_the_bundle_reads_the_month_as_status_does(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
    await approved_month(demo, chat_as, files, tmp_path)
    officer = chat_as("officer")
    status = await officer.send("/status tháng 11")
    assert "Tháng 11/2026" in status[0].text
    for typed in ("tháng 11", "Tháng mười một", "T11/2026", ""):
        replies = await officer.send(f"/bundle {typed}".strip())
        assert "Tư liệu tháng 11/2026: 2 mục" in replies[0].text, typed
    for typed in ("tháng mười ba", "13/2026", "Trường Xyz"):
        assert "Tháng chưa đúng" in (await officer.send(f"/bundle {typed}"))[0].text, typed
    assert len(list(Path(demo.settings.media_dir).glob("bundles/*/*.zip"))) == 1  # earlier ones cleared


async def test_a_school_or_title_that_looks_like_a_formula_is_text_in_the_index(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
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
        sheet = load_workbook(io.BytesIO(archive.read("Danh mục.xlsx"))).active
        assert sheet is not None
    article_row, nomination_row = sheet[2], sheet[3]
    assert article_row[2].value == '=HYPERLINK("http://x") Pú Nhi'  # as typed: no apostrophe added
    assert article_row[4].value == "@Ngày hội đọc sách"
    assert nomination_row[2].value == '=HYPERLINK("http://x") Pú Nhi'
    for cell in (article_row[2], article_row[4], nomination_row[2]):
        assert cell.data_type == "s" and cell.quotePrefix, cell.coordinate


async def test_a_missing_file_is_listed_and_the_bundle_still_made(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
    await approved_month(demo, chat_as, files, tmp_path)
    with demo.db.session() as s:
        wide = s.exec(select(MediaFile).where(MediaFile.width == 2000)).first()
    assert wide is not None
    (Path(demo.settings.media_dir) / wide.path).unlink()
    replies = await chat_as("officer").send("/bundle 11/2026")
    assert "Thiếu 1 tệp" in replies[0].text
    with zipfile.ZipFile(replies[0].file_path) as archive:
        rows = index_rows(archive)
        assert "thiếu tệp Ảnh toàn cảnh" in rows[1][10]
        assert not any("Ảnh toàn cảnh" in n for n in archive.namelist())
        doc = Document(io.BytesIO(archive.read(f"{FOLDER}/Bài viết.docx")))
        assert len(doc.inline_shapes) == 2


async def test_nothing_approved_means_no_zip(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    principal = chat_as("principal")
    await write_article(principal, files)
    await principal.press("Gửi")  # sent, not approved
    replies = await chat_as("officer").send("/bundle 11/2026")
    assert replies[0].text == "Tháng 11/2026 chưa có bài nào đã duyệt." and not replies[0].file_path
    empty_month = await chat_as("officer").send("/bundle 10/2026")  # a month with nothing at all
    assert "chưa có bài nào đã duyệt" in empty_month[0].text and not empty_month[0].file_path
    assert not list(Path(demo.settings.media_dir).glob("bundles/**/*.zip"))
    bad = await chat_as("officer").send("/bundle tháng mười ba")
    assert "Tháng chưa đúng" in bad[0].text
    refused = await principal.send("/bundle")
    assert "không dành cho" in refused[0].text
    with demo.db.session() as s:
        assert s.exec(select(Submission)).one().status == "submitted"


async def test_an_officer_outside_the_scope_gets_nothing_of_it(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
    from tests.handlers.helpers import add_district, add_user

    await approved_month(demo, chat_as, files, tmp_path)
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Anh Khác")
    add_user(demo, "preschool_officer", "officer", "PGD-DEMO", "Chị Mầm Non", levels="MN")
    for officer in ("other_officer", "preschool_officer"):
        replies = await chat_as(officer).send("/bundle 11/2026")
        assert "chưa có bài nào" in replies[0].text and not replies[0].file_path, officer
        report = await chat_as(officer).send("/bundle report năm 2026")
        assert "chưa có trường nào nộp" in report[0].text and not report[0].file_path, officer
    with demo.db.session() as s:
        assert len(s.exec(select(Submission).where(Submission.status == "approved")).all()) == 2


async def big_month(demo: App, chat_as: Callable[[str], Chat], tmp_path: Path) -> None:
    """An article with three noisy photos (about 0.8 MB with its document) and a nomination with two."""
    principal = chat_as("principal")
    noisy = noisy_files(tmp_path)
    await write_article(principal, noisy)
    await principal.press("Gửi")
    await nominate(principal, tmp_path, role="Giáo viên", photos=2)
    await principal.press("Gửi")
    await approve_all(demo)


def entries(paths: list[Path]) -> dict[str, tuple[int, int]]:
    """Every file in these ZIPs but the index: name -> (size, CRC); each file in one ZIP only."""
    seen: dict[str, tuple[int, int]] = {}
    for path in paths:
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None
            for info in archive.infolist():
                if info.filename != "Danh mục.xlsx":
                    assert info.filename not in seen, info.filename
                    made_again = info.filename.endswith(".docx")  # a document is written anew each time
                    seen[info.filename] = (info.file_size, 0 if made_again else info.CRC)
    return seen


async def test_a_month_over_the_upload_limit_comes_in_parts_that_hold_every_file(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    await big_month(demo, chat_as, tmp_path)
    officer = chat_as("officer")
    whole = await officer.send("/bundle 11/2026")  # the console has no limit: one ZIP
    assert len(whole) == 1
    everything = entries([Path(whole[0].file_path)])
    total = Path(whole[0].file_path).stat().st_size
    assert total > 700_000 and len(everything) == 7  # a document and 3 photos; a document and 2

    limit = 600_000
    demo.dispatcher.upload_limits["console"] = limit
    replies = await officer.send("/bundle 11/2026")
    parts = [Path(r.file_path) for r in replies if r.file_path]
    assert len(parts) >= 2 and "được gửi thành" in replies[0].text and "0,6 MB" in replies[0].text
    assert [p.name for p in parts] == [
        ZIP_NAME.replace(".zip", f"_phần {n} trên {len(parts)}.zip") for n in range(1, len(parts) + 1)
    ]
    assert all(p.stat().st_size < limit for p in parts)
    assert entries(parts) == everything  # together: every file, once, unchanged
    for part in parts:  # each part opens alone, with the index saying where each folder is
        with zipfile.ZipFile(part) as archive:
            rows = index_rows(archive)
            assert rows[0][11] == "Phần" and all(r[11] for r in rows[1:])


async def test_a_file_larger_than_a_part_is_named_not_lost(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    await big_month(demo, chat_as, tmp_path)
    demo.dispatcher.upload_limits["console"] = 300_000  # the article's document (0.34 MB) fits no part
    replies = await chat_as("officer").send("/bundle 11/2026")
    parts = [Path(r.file_path) for r in replies if r.file_path]
    assert all(p.stat().st_size < 300_000 for p in parts)
    assert "tệp vượt giới hạn tải lên nên không có trong tệp ZIP" in replies[-1].text
    held = entries(parts)
    article = next(n.split("/")[0] for n in held if "Ngày hội" in n)
    with zipfile.ZipFile(next(p for p in parts if f"{article}/Ghi chú và liên kết.txt" in entries([p]))) as z:
        notes = z.read(f"{article}/Ghi chú và liên kết.txt").decode("utf-8-sig")
    assert "Bài viết.docx (0,3 MB) vượt giới hạn tải lên" in notes
    assert f"{article}/01 Ảnh toàn cảnh.jpg" in held  # the photos themselves still came


# ---- a periodic report's signed files ----------------------------------------------------------


async def send_yearly_report(
    chat: Chat, tmp_path: Path, pdf: bytes = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n"
) -> bytes:
    await fill_report(chat, "Báo cáo năm", stop_at_document=True)
    await chat.send(f"/file {write(tmp_path, 'bao-cao-ky.pdf', pdf)}")
    sent = await chat.press("Gửi")
    assert "Đã gửi Báo cáo năm" in sent[0].text
    return pdf


async def test_a_reports_signed_files_in_one_zip_named_by_school(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    pdf = await send_yearly_report(chat_as("principal"), tmp_path)
    add_report(demo, "TH-THITRAN", {"document": {"link": "https://drive.google.com/file/d/x"}}, late=True)
    add_report(demo, "MN-HOABAN", {}, status="draft")  # not sent: not counted
    officer = chat_as("officer")
    for typed in ("report năm 2026", "report Báo cáo năm", "báo cáo năm 2026", "report nam-2026"):
        replies = await officer.send(f"/bundle {typed}")
        assert replies[0].text.startswith("Báo cáo năm 2026: 2 trường đã nộp, 1 tệp đã ký"), typed
    path = Path(replies[0].file_path)
    assert path.name == "Phòng GD&ĐT Điện Biên Đông (demo)_Báo cáo năm 2026.zip"
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["Danh mục.xlsx", "THCS Pú Nhi.pdf"]
        assert archive.read("THCS Pú Nhi.pdf") == pdf
        rows = index_rows(archive)
    assert len(rows) == 6  # every school of the district, sent or not
    by_school = {r[1]: r for r in rows[1:]}
    assert by_school[SCHOOL][3:] == ("Đúng hạn", "THCS Pú Nhi.pdf")
    assert by_school["Trường Mầm non Hoa Ban"][3:] == ("Chưa nộp", None)
    assert by_school["Trường Tiểu học Thị Trấn"][3:] == ("Nộp muộn", "https://drive.google.com/file/d/x")


def add_report(
    demo: App, school_code: str, answers: dict[str, Any], late: bool = False, status: str = "submitted"
) -> None:
    """A yearly report of another school, as stored (its principal is not in the demo)."""
    from tests.handlers.helpers import add_submission

    with demo.db.session() as s:
        fields = {"period": "nam-2026", "status": status, "late": late}
        add_submission(s, school_code, "report", answers, demo.clock.now(), f"r-{school_code}", **fields)


async def test_a_report_nobody_sent_or_nobody_knows(demo: App, chat_as: Callable[[str], Chat]) -> None:
    officer = chat_as("officer")
    replies = await officer.send("/bundle report năm 2026")
    assert replies[0].text == "Báo cáo năm 2026: chưa có trường nào nộp." and not replies[0].file_path
    for typed in ("report", "report quý 3", "báo cáo"):
        replies = await officer.send(f"/bundle {typed}")
        assert "Chưa rõ báo cáo nào" in replies[0].text and "Báo cáo 6 tháng, Báo cáo năm" in replies[0].text
    assert not list(Path(demo.settings.media_dir).glob("bundles/**/*.zip"))


async def test_the_bundle_from_the_command_line(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path, settings: Settings
) -> None:
    from typer.testing import CliRunner

    from bot.cli import app as cli

    await approved_month(demo, chat_as, files, tmp_path)
    env = {"SCHOOLBOT_DATABASE_URL": settings.database_url, "SCHOOLBOT_MEDIA_DIR": str(settings.media_dir)}
    out = tmp_path / "tu-lieu.zip"
    (tmp_path / "x.toml").touch()  # every setting from the environment
    config = ["--config", str(tmp_path / "x.toml")]
    args = ["export", "bundle", "--office", "PGD-DEMO", "--month", "2026-11", "--out", str(out), *config]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "2 item(s)" in result.output
    with zipfile.ZipFile(out) as archive:
        assert "Danh mục.xlsx" in archive.namelist() and f"{FOLDER}/Bài viết.docx" in archive.namelist()
    empty = CliRunner().invoke(cli, [*args[:5], "2026-10", *args[6:]], env=env)
    assert empty.exit_code == 1 and "chưa có bài nào đã duyệt" in empty.output
    unknown = CliRunner().invoke(cli, ["export", "bundle", "--office", "NOPE", "--out", str(out)], env=env)
    assert unknown.exit_code == 1 and "no office" in unknown.output

    split = CliRunner().invoke(cli, [*args, "--part-mb", "0.1"], env=env)  # the month is about 0.18 MB
    assert split.exit_code == 0, split.output
    parts = sorted(tmp_path.glob("tu-lieu_phần *.zip"))
    assert len(parts) >= 2 and f"{len(parts)} parts" in split.output
    assert all(p.stat().st_size < 0.1 * 1_048_576 for p in parts)
    assert entries(parts) == entries([out])


async def test_a_reports_files_from_the_command_line(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path, settings: Settings
) -> None:
    from typer.testing import CliRunner

    from bot.cli import app as cli

    pdf = await send_yearly_report(chat_as("principal"), tmp_path)
    env = {"SCHOOLBOT_DATABASE_URL": settings.database_url, "SCHOOLBOT_MEDIA_DIR": str(settings.media_dir)}
    out = tmp_path / "bao-cao.zip"
    (tmp_path / "x.toml").touch()  # every setting from the environment
    args = [
        "export",
        "bundle",
        "--office",
        "PGD-DEMO",
        "--out",
        str(out),
        "--config",
        str(tmp_path / "x.toml"),
    ]
    result = CliRunner().invoke(cli, [*args, "--report", "nam-2026"], env=env)
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as archive:
        assert archive.read("THCS Pú Nhi.pdf") == pdf
    for bad, why in (("quy-2026", "no such report"), ("6thang-2026", "chưa có trường nào nộp")):
        result = CliRunner().invoke(cli, [*args, "--report", bad], env=env)
        assert result.exit_code == 1 and why in result.output, bad
    both = CliRunner().invoke(cli, [*args, "--report", "nam-2026", "--month", "2026-11"], env=env)
    assert both.exit_code == 2


def test_a_months_nominations_are_counted_by_the_offices_day_not_utcs(demo: App) -> None:
    """A nomination sent at 03:00 on 1 December in the office's zone (UTC+7: 20:00 on 30 November in
    UTC) belongs to December's bundle, and one sent at 23:30 on 30 November to November's."""
    from zoneinfo import ZoneInfo

    from handlers.bundle import month_rows
    from handlers.calendar import Period
    from tests.handlers.helpers import add_submission

    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    approved = {"status": "approved"}
    with demo.db.session() as s:
        late_nov = add_submission(
            s, "THCS-PUNHI", "nomination", {}, datetime(2026, 11, 30, 23, 30, tzinfo=tz), "t-nov", **approved
        )
        early_dec = add_submission(
            s, "THCS-PUNHI", "nomination", {}, datetime(2026, 12, 1, 3, 0, tzinfo=tz), "t-dec", **approved
        )
        ids = select(col(School.id)).where(
            col(School.id) == late_nov.school_id
        )  # the school, as a scope gives it
        nov = {sub.id for sub, _ in month_rows(s, ids, Period(2026, 11), False, tz)}
        dec = {sub.id for sub, _ in month_rows(s, ids, Period(2026, 12), False, tz)}
    assert late_nov.id in nov and early_dec.id not in nov
    assert early_dec.id in dec and late_nov.id not in dec


async def test_a_video_that_never_downloaded_is_a_note_without_any_file_reference(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
    """The clip's file is not on the server (its download failed: too large for the platform): the
    folder's notes say so, by the video's role and number and the name the sender's phone gave it,
    or by role and number alone when it gave none; never a stored path or a platform's file id."""
    await approved_month(demo, chat_as, files, tmp_path)
    with demo.db.session() as s:
        [clip] = [m for m in s.exec(select(MediaFile)).all() if m.file_name.endswith(".mp4")]
        (Path(demo.settings.media_dir) / clip.path).unlink()

    async def notes() -> str:
        replies = await chat_as("officer").send("/bundle 11/2026")
        with zipfile.ZipFile(replies[0].file_path) as archive:
            assert f"{FOLDER}/Video 01.mp4" not in archive.namelist()
            text = archive.read(f"{FOLDER}/Ghi chú và liên kết.txt").decode("utf-8-sig")
        assert clip.file_id not in text and clip.path not in text
        return next(n for n in text.splitlines() if n.startswith("Video 01"))

    assert (await notes()).startswith(f'Video 01 ("{clip.file_name}") quá lớn nên chưa tải về được')
    with demo.db.session() as s:  # a video the phone sent without a name
        article = s.exec(select(Submission).where(Submission.kind == "article")).one()
        article.answers = {
            **article.answers,
            "videos": [{**v, "name": ""} for v in article.answers["videos"]],
        }
        s.add(article)
    assert (await notes()).startswith("Video 01 quá lớn nên chưa tải về được")
