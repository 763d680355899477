"""The press bundle's names: short forms as offices write them, folders Windows opens, each unique."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.press import (
    PATH_LIMIT,
    activity_name,
    cut_words,
    folder_name,
    office_short_name,
    school_short_name,
    utf16_len,
)
from storage.media import FORBIDDEN
from storage.text import fold


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("Trường PTDTBT THCS Pú Nhi", "THCS Pú Nhi"),
        ("Trường PTDTBT TH Sín Chải", "TH Sín Chải"),
        ("Trường PTDTBT TH&THCS Tìa Dình", "TH&THCS Tìa Dình"),
        ("Trường Phổ thông Dân tộc Bán trú Tiểu học Pa Ham", "TH Pa Ham"),
        ("Trường PT DTNT THPT huyện Mường Nhé", "THPT huyện Mường Nhé"),
        ("Trường PTDTNT tỉnh Điện Biên", "PTDTNT tỉnh Điện Biên"),  # no level after it: it stays
        ("Trường Phổ thông Dân tộc Nội trú tỉnh Điện Biên", "PTDTNT tỉnh Điện Biên"),
        ("Trường Mầm non Hoa Ban", "MN Hoa Ban"),
        ("Trường Tiểu học Thị Trấn", "TH Thị Trấn"),
        ("Trường Tiểu học số 1 Thị Trấn", "TH số 1 Thị Trấn"),
        ("Trường THCS Thị Trấn Điện Biên Đông", "THCS Thị Trấn Điện Biên Đông"),
        ("Trường TH&THCS Na Mai", "TH&THCS Na Mai"),
        ("Trường Tiểu học và Trung học cơ sở Na Mai", "TH&THCS Na Mai"),
        ("Trường TH và THCS Na Mai", "TH&THCS Na Mai"),
        ("Trường Trung học phổ thông Mường Chà", "THPT Mường Chà"),
        ("trường  thcs   Pú Nhi", "THCS Pú Nhi"),  # spacing and case as typed
        ("THCS Pú Nhi", "THCS Pú Nhi"),  # already short
        ("Trung tâm GDNN-GDTX huyện Điện Biên Đông", "Trung tâm GDNN-GDTX huyện Điện Biên Đông"),
        ("Trường THCS", "Trường THCS"),  # nothing but the words: kept whole
        ("Trường Thạch Thành", "Thạch Thành"),  # "Th…" is not the level TH
    ],
)
def test_a_school_is_named_by_its_usual_short_form(name: str, short: str) -> None:
    assert school_short_name(name) == short


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("Phòng Giáo dục và Đào tạo huyện Điện Biên Đông", "Phòng GD&ĐT Điện Biên Đông"),
        ("Phòng GD&ĐT huyện Điện Biên Đông (demo)", "Phòng GD&ĐT Điện Biên Đông (demo)"),
        ("Phòng GDĐT thành phố Điện Biên Phủ", "Phòng GD&ĐT Điện Biên Phủ"),
        ("Sở Giáo dục và Đào tạo tỉnh Điện Biên", "Sở GD&ĐT Điện Biên"),
        ("Phòng GD&ĐT huyện", "Phòng GD&ĐT huyện"),  # nothing after the place word: kept
    ],
)
def test_an_office_is_named_by_its_short_form(name: str, short: str) -> None:
    assert office_short_name(name) == short


SCHOOL = "Trường PTDTBT THCS Pú Nhi"
TITLES = [
    "Trường PTDTBT THCS Pú Nhi tổ chức Lễ kỷ niệm 44 năm ngày Nhà giáo Việt Nam 20/11",
    "Trường THCS Pú Nhi long trọng tổ chức Lễ khai giảng năm học 2026-2027",
    "THCS Pú Nhi: Ngày hội đọc sách",
    "Học sinh trường thcs pu nhi tham gia Hội khỏe Phù Đổng cấp huyện năm 2026, đạt 12 giải",
    "Ngày hội đọc sách",
    "Tổ chức",  # only the verb: kept, not emptied
]


def test_the_activity_never_repeats_the_school() -> None:
    forms = (SCHOOL, school_short_name(SCHOOL))
    assert activity_name(TITLES[0], forms) == "Lễ kỷ niệm 44 năm ngày Nhà giáo Việt Nam 20-11"
    assert activity_name(TITLES[1], forms) == "Lễ khai giảng năm học 2026-2027"
    assert activity_name(TITLES[2], forms) == "Ngày hội đọc sách"
    assert activity_name(TITLES[3], forms).startswith("Học sinh tham gia Hội khỏe Phù Đổng")
    assert activity_name(TITLES[4], forms) == "Ngày hội đọc sách"
    assert activity_name(TITLES[5], forms) == "Tổ chức"


def test_folder_names_fit_windows_stay_unique_and_name_the_school_once() -> None:
    used: set[str] = set()
    longest_file = utf16_len("03 Ảnh người phát biểu.jpg")
    short = school_short_name(SCHOOL)
    names = []
    for title in [*TITLES, *TITLES, "x" * 300, "Lễ " + "rất " * 80 + "dài", TITLES[4].upper()]:
        activity = activity_name(title, (SCHOOL, short))
        names.append(folder_name(short, activity, used, longest_file))
    assert len({n.casefold() for n in names}) == len(names)  # Windows does not tell case apart
    for name in names:
        assert utf16_len(name) + 1 + longest_file <= PATH_LIMIT, name
        assert fold(name).count("pu nhi") == 1, name
        assert name.startswith("THCS Pú Nhi_") or name == "THCS Pú Nhi", name
        assert not FORBIDDEN.search(name) and name == name.strip(" .")
    assert names[0] == "THCS Pú Nhi_Lễ kỷ niệm 44 năm ngày Nhà giáo Việt Nam 20-11"
    assert names[len(TITLES)] == names[0] + " (2)"
    assert names[-1] == "THCS Pú Nhi_NGÀY HỘI ĐỌC SÁCH (5)"  # the 5th "Ngày hội đọc sách"


def test_a_long_title_is_cut_at_a_word() -> None:
    cut = cut_words("Lễ kỷ niệm 44 năm ngày Nhà giáo Việt Nam", 20)
    assert cut == "Lễ kỷ niệm 44 năm" and utf16_len(cut) <= 20
    assert cut_words("Khaigiangnamhocmoi", 8) == "Khaigian"  # one long word: cut in it
    assert utf16_len(cut_words("Ngày hội 📚📚📚📚 đọc sách", 12)) <= 12  # emoji count double on Windows


def test_a_photo_is_embedded_upright_and_no_wider_than_the_page_needs(tmp_path: Path) -> None:
    from PIL import Image

    from handlers.press import PHOTO_WIDTH, embedded_photo

    small = tmp_path / "small.jpg"
    Image.new("RGB", (1000, 750), "red").save(small, "JPEG")
    assert embedded_photo(small).getvalue() == small.read_bytes()  # already fits: the original bytes

    turned = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # taken with the phone upright: stored sideways, to be turned a quarter
    Image.new("RGB", (4000, 3000), "blue").save(turned, "JPEG", exif=exif)
    with Image.open(embedded_photo(turned)) as img:
        assert img.format == "JPEG" and img.width == PHOTO_WIDTH and img.height > img.width  # portrait

    png = tmp_path / "wide.png"
    Image.new("RGBA", (3000, 1000), "green").save(png)
    with Image.open(embedded_photo(png)) as img:
        assert img.format == "JPEG" and img.width == PHOTO_WIDTH and abs(img.height - PHOTO_WIDTH / 3) <= 1
