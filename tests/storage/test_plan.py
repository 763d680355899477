"""The plan import and the month's themes: CSV and XLSX in, every problem with its row, nothing half-written."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot.app import App
from storage import queries as q
from storage.db import Database
from storage.models import PlanTheme
from storage.orgimport import import_file
from storage.plan import import_plan, normal_period, quarter_of, themes_for
from tests.storage.helpers import assert_header_refused, reason, refused, rows_of, write, write_xlsx

DATA = Path(__file__).resolve().parent.parent / "data"
HEADER = "office_code,period,theme,notes"
ORGANISATION = [
    "office_code,office_name,office_kind,parent_office_code,school_code,school_name,level",
    "SGD-DB,Sở GD&ĐT Điện Biên,province,,,,",
    "PGD-DBD,Phòng GD&ĐT huyện Điện Biên Đông,district,SGD-DB,THCS-PUNHI,Trường PTDTBT THCS Pú Nhi,THCS",
    "PGD-MN,Phòng GD&ĐT huyện Mường Nhé,district,SGD-DB,TH-MN,Trường Tiểu học Mường Nhé,TH",
    "SGD-HN,Sở GD&ĐT Hà Nội,province,,,,",
]

# Themes from the seeds' appendices (Kinh Môn by quarter, Pu Nhi by month), moved to school year 2026-2027.
TON_SU = "Truyền thông tôn sư trọng đạo; tôn vinh nhà giáo dạy giỏi tiêu biểu"
PHO_CAP = "Thực hiện công tác phổ cập giáo dục các cấp học"
DUOI_NUOC = "Tuyên truyền về giáo dục bơi, phòng chống đuối nước cho học sinh"
SGK = "SGK lớp 8: bộ sách giáo khoa được sử dụng trong nhà trường"
VAN_HOA = "Truyền thông về giáo dục văn hoá dân tộc Mông, Thái cho học sinh"
CNTT = "Ứng dụng CNTT trong quản lý và dạy học: học bạ điện tử"
GOOD = [
    HEADER,  # 1
    f'SGD-DB,Quý 4/2026,"{TON_SU}","Website của Sở; đài phát thanh, truyền hình tỉnh"',  # 2
    f"SGD-DB,Quý 4/2026,{PHO_CAP},",  # 3
    f'SGD-DB,Q1/2027,"{DUOI_NUOC}",Qua hoạt động ngoài giờ lên lớp',  # 4
    f'PGD-DBD,T11/2026,{SGK},"Hình thức: bài viết, ảnh. Phụ trách: Đ.c Lê"',  # 5
    f'PGD-DBD,T11/2026,"{VAN_HOA}",Phụ trách: Đ.c Tú',  # 6
    f"PGD-DBD,2026-12,{CNTT},Phụ trách: Đ.c Lê",  # 7
]


@pytest.fixture(name="org")
def org_fixture(app: App, tmp_path: Path) -> App:
    """The app with two provinces, two districts under Điện Biên and a school in each district."""
    import_file(app.db, write(tmp_path, ORGANISATION, name="org.csv"))
    return app


def office_id(db: Database, code: str) -> int:
    with db.session() as s:
        office = q.office_by_code(s, code)
        assert office is not None and office.id is not None
        return office.id


def stored(db: Database) -> list[tuple[Any, ...]]:
    """Every stored theme, to prove a refused import wrote nothing."""
    with db.session() as s:
        return [
            (t.id, t.office_id, t.period, t.theme, t.notes)
            for t in s.exec(select(PlanTheme).order_by(col(PlanTheme.id)))
        ]


def month(db: Database, code: str, period_key: str) -> list[str]:
    """The themes a principal under office `code` is shown for a month."""
    office = office_id(db, code)
    with db.session() as s:
        return [t.theme for t in themes_for(s, office, period_key)]


def rejected(db: Database, path: Path) -> list[tuple[int, str]]:
    """The problems of a file that must be refused, checking that nothing changed."""
    return refused(db, path, import_plan, stored)


# ---- import -------------------------------------------------------------------------------


@pytest.mark.parametrize("bom", [False, True])
def test_csv_with_and_without_bom(org: App, tmp_path: Path, bom: bool) -> None:
    summary = import_plan(org.db, write(tmp_path, GOOD, bom=bom))

    assert summary == "6 themes (6 new, 0 updated, 0 unchanged) for 2 offices"
    province, district = office_id(org.db, "SGD-DB"), office_id(org.db, "PGD-DBD")
    assert [row[1:] for row in stored(org.db)] == [
        (province, "2026-Q4", TON_SU, "Website của Sở; đài phát thanh, truyền hình tỉnh"),
        (province, "2026-Q4", PHO_CAP, ""),
        (province, "2027-Q1", DUOI_NUOC, "Qua hoạt động ngoài giờ lên lớp"),
        (district, "2026-11", SGK, "Hình thức: bài viết, ảnh. Phụ trách: Đ.c Lê"),
        (district, "2026-11", VAN_HOA, "Phụ trách: Đ.c Tú"),
        (district, "2026-12", CNTT, "Phụ trách: Đ.c Lê"),
    ]


def test_the_example_file_imports(org: App) -> None:
    summary = import_plan(org.db, DATA / "plan_example.csv")

    assert summary == "7 themes (7 new, 0 updated, 0 unchanged) for 2 offices"


PERIODS = [
    ("2026-11", "2026-11"),
    ("2026-1", "2026-01"),
    ("11/2026", "2026-11"),
    ("2/2027", "2027-02"),
    ("11-2026", "2026-11"),
    ("T11/2026", "2026-11"),
    ("t 11 / 2026", "2026-11"),
    ("Tháng 11/2026", "2026-11"),
    ("THANG 11/2026", "2026-11"),
    ("Tháng 11 năm 2026", "2026-11"),
    ("2026-11-01", "2026-11"),  # a date cell Excel made of "11/2026"
    ("2026-Q4", "2026-Q4"),
    ("2026q4", "2026-Q4"),
    ("Q4/2026", "2026-Q4"),
    ("q4-2026", "2026-Q4"),
    ("Quý 4/2026", "2026-Q4"),
    ("QUÝ 4/2026", "2026-Q4"),
    ("Quy 4/2026", "2026-Q4"),
    ("quý IV/2026", "2026-Q4"),
    ("Quý I/2027", "2027-Q1"),
    ("Quý III năm 2027", "2027-Q3"),
    (unicodedata.normalize("NFD", "Quý 2/2027"), "2027-Q2"),
]


def test_every_period_format(org: App, tmp_path: Path) -> None:
    lines = [HEADER] + [f"PGD-DBD,{given},Chủ đề {i},{given}" for i, (given, _) in enumerate(PERIODS)]

    import_plan(org.db, write(tmp_path, lines))

    got = {theme: period for _, _, period, theme, _ in stored(org.db)}
    assert got == {f"Chủ đề {i}": period for i, (_, period) in enumerate(PERIODS)}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-13", "there is no month 13"),
        ("13/2026", "there is no month 13"),
        ("T0/2026", "there is no month 0"),
        ("2026-Q5", "there is no quarter 5"),
        ("Q5/2026", "there is no quarter 5"),
        ("Quý 0/2026", "there is no quarter 0"),
        ("11/1999", "the year 1999 is not between 2000 and 2100"),
        ("2026-11-15", "is not a month"),
        ("11/26", "is not a month"),
        ("Quý V/2026", "is not a month"),
        ("học kỳ I", "is not a month"),
        ("", "period is empty"),
    ],
)
def test_bad_periods(given: str, expected: str) -> None:
    period, problem = normal_period(given)

    assert period is None
    assert expected in problem


def test_xlsx(org: App, tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        ["Theme", "Office Code", "PERIOD"],  # any order and case; no notes column
        [TON_SU, "sgd-db", "Quý IV/2026"],
        [],  # a blank row between blocks is skipped
        [SGK, "PGD-DBD", datetime(2026, 11, 1)],  # Excel turned "11/2026" into a date
        [CNTT, "PGD-DBD", "T12/2026"],
    ]
    path = write_xlsx(tmp_path, rows)

    assert import_plan(org.db, path) == "3 themes (3 new, 0 updated, 0 unchanged) for 2 offices"
    assert [(period, theme, notes) for _, _, period, theme, notes in stored(org.db)] == [
        ("2026-Q4", TON_SU, ""),
        ("2026-11", SGK, ""),
        ("2026-12", CNTT, ""),
    ]
    assert import_plan(org.db, path) == "3 themes (0 new, 0 updated, 3 unchanged) for 2 offices"


def test_xlsx_problems_carry_spreadsheet_row_numbers(org: App, tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        HEADER.split(","),
        ["SGD-DB", "Quý 4/2026", TON_SU, None],
        [],
        [],
        ["PGD-DBD", "Quý 5/2026", SGK, "Đ.c Lê"],
    ]

    problems = rejected(org.db, write_xlsx(tmp_path, rows))

    assert rows_of(problems) == [5]
    assert "there is no quarter 5" in problems[0][1]


def test_semicolon_csv_and_text_is_cleaned(org: App, tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "- Tuyên truyền  về  phòng chống\nđuối nước")
    lines = ["office_code;period;theme;notes", f'PGD-DBD;T6/2027;"{nfd}";" Đ.c Tú\n\n  Đ.c  Lê "']

    import_plan(org.db, write(tmp_path, lines))

    [(_, _, _, theme, notes)] = stored(org.db)
    assert theme == "Tuyên truyền về phòng chống đuối nước"  # NFC, one line, the bullet gone
    assert unicodedata.is_normalized("NFC", theme)
    assert notes == "Đ.c Tú\nĐ.c Lê"


def test_an_exact_duplicate_row_is_one_theme(org: App, tmp_path: Path) -> None:
    lines = [*GOOD, GOOD[5], GOOD[5].replace("T11/2026", "2026-11")]

    assert import_plan(org.db, write(tmp_path, lines)) == (
        "6 themes (6 new, 0 updated, 0 unchanged) for 2 offices"
    )


def test_the_same_theme_in_other_periods_or_offices_is_another_theme(org: App, tmp_path: Path) -> None:
    lines = [HEADER, f"PGD-DBD,T11/2026,{SGK},", f"PGD-DBD,T12/2026,{SGK},", f"PGD-MN,T11/2026,{SGK},"]

    assert import_plan(org.db, write(tmp_path, lines)).startswith("3 themes (3 new")


# ---- re-import ----------------------------------------------------------------------------


def test_reimport_changes_nothing(org: App, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    import_plan(org.db, path)
    before = stored(org.db)

    again = import_plan(org.db, path)

    assert again == "6 themes (0 new, 0 updated, 6 unchanged) for 2 offices"
    assert stored(org.db) == before


def test_changed_notes_update_and_themes_left_out_stay(org: App, tmp_path: Path) -> None:
    import_plan(org.db, write(tmp_path, GOOD))
    before = {row[3]: row for row in stored(org.db)}
    later = [
        HEADER,
        GOOD[4].replace("Đ.c Lê", "Đ.c Hà"),  # other notes
        f'PGD-DBD,11/2026,"{VAN_HOA.upper()}",Phụ trách: Đ.c Tú',  # spelt in capitals now
        "PGD-DBD,T1/2027,Chế độ chính sách đối với học sinh dân tộc thiểu số,",  # new
    ]

    summary = import_plan(org.db, write(tmp_path, later, name="later.csv"))

    assert summary == "3 themes (1 new, 2 updated, 0 unchanged) for 1 office"
    after = {row[0]: row for row in stored(org.db)}
    assert len(after) == 7  # nothing deleted
    assert after[before[SGK][0]][4] == "Hình thức: bài viết, ảnh. Phụ trách: Đ.c Hà"
    assert after[before[VAN_HOA][0]][3] == VAN_HOA.upper()  # the same row, respelt
    for theme in (TON_SU, PHO_CAP, DUOI_NUOC, CNTT):
        assert after[before[theme][0]] == before[theme]


# ---- the month's themes -------------------------------------------------------------------


def test_quarter_themes_appear_in_each_of_its_months(org: App, tmp_path: Path) -> None:
    import_plan(org.db, write(tmp_path, GOOD))

    for key in ("2026-10", "2026-11", "2026-12"):
        assert month(org.db, "SGD-DB", key) == [TON_SU, PHO_CAP], key
    assert month(org.db, "SGD-DB", "2026-09") == []
    assert month(org.db, "SGD-DB", "2027-01") == [DUOI_NUOC]
    assert month(org.db, "SGD-DB", "2025-11") == []  # another year's quarter


def test_a_district_month_shows_its_own_themes_then_the_provinces(org: App, tmp_path: Path) -> None:
    lines = [
        *GOOD,
        "PGD-MN,T11/2026,Ngày hội đọc sách ở trường Tiểu học Mường Nhé,",  # a sibling district
        "SGD-HN,Quý 4/2026,Hội khỏe Phù Đổng thành phố,",  # another province
        f"PGD-DBD,Quý 4/2026,{PHO_CAP.upper()},",  # the district repeats a province theme
    ]
    import_plan(org.db, write(tmp_path, lines))

    assert month(org.db, "PGD-DBD", "2026-11") == [SGK, VAN_HOA, PHO_CAP.upper(), TON_SU]
    assert month(org.db, "PGD-DBD", "2026-12") == [CNTT, PHO_CAP.upper(), TON_SU]
    assert month(org.db, "PGD-MN", "2026-11") == [
        "Ngày hội đọc sách ở trường Tiểu học Mường Nhé",
        TON_SU,
        PHO_CAP,
    ]
    assert month(org.db, "SGD-HN", "2026-11") == ["Hội khỏe Phù Đổng thành phố"]


def test_the_schools_office_gives_a_principal_the_months_themes(org: App, tmp_path: Path) -> None:
    import_plan(org.db, DATA / "plan_example.csv")

    with org.db.session() as s:
        school = q.school_by_code(s, "THCS-PUNHI")
        assert school is not None
        themes = themes_for(s, school.office_id, "2026-11")
        assert [(t.theme[:20], t.notes[:10]) for t in themes] == [
            ("SGK lớp 8: bộ sách g", "Hình thức:"),
            ("Truyền thông về giáo", "Hình thức:"),
            ("Truyền thông tôn sư ", "Website củ"),
            ("Thực hiện công tác p", "Website củ"),
        ]


def test_themes_for_an_office_without_a_plan(org: App) -> None:
    assert month(org.db, "PGD-DBD", "2026-11") == []
    with org.db.session() as s:
        assert themes_for(s, 9999, "2026-11") == []


@pytest.mark.parametrize("key", ["2026-Q4", "2026-13", "11/2026", ""])
def test_themes_for_wants_a_month_key(org: App, key: str) -> None:
    office = office_id(org.db, "PGD-DBD")
    with org.db.session() as s, pytest.raises(ValueError):
        themes_for(s, office, key)


def test_quarter_of() -> None:
    assert [quarter_of(f"2026-{m:02d}") for m in range(1, 13)] == [
        *["2026-Q1"] * 3,
        *["2026-Q2"] * 3,
        *["2026-Q3"] * 3,
        *["2026-Q4"] * 3,
    ]


# ---- refusal ------------------------------------------------------------------------------


def test_every_bad_row_is_reported_and_nothing_is_written(org: App, tmp_path: Path) -> None:
    import_plan(org.db, write(tmp_path, GOOD[:3], name="first.csv"))
    long_theme = "Tuyên truyền " * 25  # 325 characters, 324 once trimmed
    lines = [
        HEADER,  # 1
        f"PGD-XYZ,T11/2026,{SGK},",  # 2 unknown office
        f"PGD-DBD,2026-13,{SGK},",  # 3 no month 13
        f"PGD-DBD,Q5/2026,{SGK},",  # 4 no quarter 5
        "PGD-DBD,T11/2026,,Đ.c Lê",  # 5 empty theme
        f"PGD-DBD,T11/2026,{long_theme},",  # 6 theme too long
        f"PGD-DBD,T11/2026,{CNTT},Phụ trách: Đ.c Lê",  # 7 fine
        f"PGD-DBD,2026-11,{CNTT},Phụ trách: Đ.c Tú",  # 8 the same theme with other notes
        "",  # 9 blank: skipped, still counted
        f"PGD-DBD,11/2026,{CNTT.lower()},Phụ trách: Đ.c Lê",  # 10 the same theme spelt otherwise
        f"PGD-DBD,T12/2026,{SGK},{'x' * 1001}",  # 11 notes too long
        f",T12/2026,{SGK},",  # 12 no office
        f"PGD-DBD,,{SGK},",  # 13 no period
        f'PGD-DBD,T12/2026,"{VAN_HOA}",,extra',  # 14 a value beyond the header
        "sgd-hn,Học kỳ I,,",  # 15 several problems on one row
    ]

    problems = rejected(org.db, write(tmp_path, lines))

    assert rows_of(problems) == sorted(rows_of(problems))
    assert set(rows_of(problems)) == {2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15}
    assert "office PGD-XYZ is not in the database" in reason(problems, 2)
    assert "period '2026-13': there is no month 13" in reason(problems, 3)
    assert "period 'Q5/2026': there is no quarter 5" in reason(problems, 4)
    assert "theme is empty" in reason(problems, 5)
    assert "theme is 324 characters long; at most 300" in reason(problems, 6)
    assert f"theme {CNTT!r} for PGD-DBD 2026-11 is also on row 7 with other notes" in reason(problems, 8)
    assert "the same theme as row 7 for PGD-DBD 2026-11, spelt differently" in reason(problems, 10)
    assert "notes are 1001 characters long; at most 1000" in reason(problems, 11)
    assert "office_code is empty" in reason(problems, 12)
    assert "period is empty" in reason(problems, 13)
    assert "beyond the 4 columns" in reason(problems, 14)
    assert "period 'Học kỳ I' is not a month" in reason(problems, 15)
    assert "theme is empty" in reason(problems, 15)
    assert "office SGD-HN" not in reason(problems, 15)  # a stored office, whatever the case


def test_a_theme_of_300_characters_is_accepted(org: App, tmp_path: Path) -> None:
    theme = ("Tuyên truyền " * 25)[:300]
    assert import_plan(org.db, write(tmp_path, [HEADER, f"PGD-DBD,T11/2026,{theme},"])).startswith("1 theme ")
    assert len(stored(org.db)[0][3]) == 300


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("office_code,theme,notes", "missing column(s) in the header: period"),
        ("office,period,theme", "unknown column(s) in the header: office"),
        ("office_code,period,chủ đề", "missing column(s) in the header: theme"),
        ("office_code,period,theme,theme", "column theme appears twice"),
        ("office_code,period,theme,responsible", "unknown column(s) in the header: responsible"),
    ],
)
def test_a_wrong_header_is_row_1(org: App, tmp_path: Path, header: str, expected: str) -> None:
    problems = rejected(org.db, write(tmp_path, [header, f"PGD-DBD,T11/2026,{SGK},"]))

    assert_header_refused(problems, expected, HEADER)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("header.csv", (HEADER + "\r\n").encode(), "no data rows"),
        ("plan.pdf", b"%PDF-1.4 ...", "not a CSV or XLSX file"),
        ("plan.xlsx", b"office_code,period\r\n", "not a valid XLSX file"),
    ],
)
def test_files_that_are_not_plan_files(
    org: App, tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    problems = rejected(org.db, path)

    assert rows_of(problems) == [0]
    assert expected in problems[0][1]
