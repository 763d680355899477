"""The organisation import: CSV and XLSX in, every problem reported with its row, nothing half-written."""

from __future__ import annotations

import io
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import col, select

from bot.app import App
from storage import queries as q
from storage.db import Database
from storage.models import Office, School
from storage.orgimport import COLUMNS, import_file
from storage.text import fold
from tests.storage.helpers import assert_header_refused, reason, refused, rows_of, write, write_xlsx

HEADER = ",".join(COLUMNS)
PROVINCE = "SGD-DB,Sở GD&ĐT Điện Biên,province,"
DISTRICT = "PGD-DBD,Phòng GD&ĐT huyện Điện Biên Đông,district,SGD-DB"
GOOD = [
    HEADER,
    f"{PROVINCE},,,",
    f"{PROVINCE},THPT-DBD,Trường THPT Điện Biên Đông,THPT",
    f"{DISTRICT},THCS-PUNHI,Trường PTDTBT THCS Pú Nhi,THCS",
    f"{DISTRICT},MN-HOABAN,Trường Mầm non Hoa Ban,mn",
    f'{DISTRICT},THTHCS-NAMAI,"Trường TH&THCS Na Mai", th & thcs ',
    f"{DISTRICT},TH-THITRAN,Trường Tiểu học  Thị Trấn,TH",
]


def zipped(name: str, content: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


def snapshot(db: Database) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every office and school row, to prove a rejected import wrote nothing."""
    with db.session() as s:
        offices = [
            (o.id, o.code, o.name, o.kind, o.parent_id)
            for o in s.exec(select(Office).order_by(col(Office.id)))
        ]
        schools = [
            (x.id, x.code, x.name, x.name_folded, x.level, x.office_id)
            for x in s.exec(select(School).order_by(col(School.id)))
        ]
    return offices, schools


def rejected(db: Database, path: Path) -> list[tuple[int, str]]:
    """The problems of a file that must be refused, checking that nothing changed."""
    return refused(db, path, import_file, snapshot)


# ---- success ------------------------------------------------------------------------------


@pytest.mark.parametrize("bom", [False, True])
def test_csv_with_and_without_bom(app: App, tmp_path: Path, bom: bool) -> None:
    summary = import_file(app.db, write(tmp_path, GOOD, bom=bom))

    assert summary == "2 offices (2 new, 0 updated, 0 unchanged), 5 schools (5 new, 0 updated, 0 unchanged)"
    with app.db.session() as s:
        province = q.office_by_code(s, "SGD-DB")
        district = q.office_by_code(s, "PGD-DBD")
        assert province is not None and district is not None
        assert (province.name, province.kind, province.parent_id) == ("Sở GD&ĐT Điện Biên", "province", None)
        assert (district.kind, district.parent_id) == ("district", province.id)
        punhi = q.school_by_code(s, "THCS-PUNHI")
        assert punhi is not None
        assert (punhi.name, punhi.level, punhi.office_id) == (
            "Trường PTDTBT THCS Pú Nhi",
            "THCS",
            district.id,
        )
        assert punhi.name_folded == "truong ptdtbt thcs pu nhi"
        thpt = q.school_by_code(s, "THPT-DBD")
        assert thpt is not None and thpt.office_id == province.id  # upper secondary reports to the province
        namai = q.school_by_code(s, "THTHCS-NAMAI")
        assert namai is not None and namai.level == "TH&THCS"
        mn = q.school_by_code(s, "MN-HOABAN")
        assert mn is not None and mn.level == "MN"
        thitran = q.school_by_code(s, "TH-THITRAN")
        assert thitran is not None and thitran.name == "Trường Tiểu học Thị Trấn"  # spaces collapsed


def test_reimport_changes_nothing(app: App, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    import_file(app.db, path)
    before = snapshot(app.db)

    again = import_file(app.db, path)

    assert again == "2 offices (0 new, 0 updated, 2 unchanged), 5 schools (0 new, 0 updated, 5 unchanged)"
    assert snapshot(app.db) == before


def test_a_changed_name_updates_the_row(app: App, tmp_path: Path) -> None:
    import_file(app.db, write(tmp_path, GOOD))
    with app.db.session() as s:
        old = q.school_by_code(s, "THCS-PUNHI")
        assert old is not None
    changed = [
        line.replace("Trường PTDTBT THCS Pú Nhi", "Trường Phổ thông DTBT THCS Pú Nhi")
        .replace("Sở GD&ĐT Điện Biên", "Sở Giáo dục và Đào tạo Điện Biên")
        .replace("TH-THITRAN,Trường Tiểu học  Thị Trấn,TH", "TH-THITRAN,Trường Tiểu học Thị Trấn,TH&THCS")
        for line in GOOD
    ]

    summary = import_file(app.db, write(tmp_path, changed, name="changed.csv"))

    assert summary == "2 offices (0 new, 1 updated, 1 unchanged), 5 schools (0 new, 2 updated, 3 unchanged)"
    with app.db.session() as s:
        school = q.school_by_code(s, "THCS-PUNHI")
        assert school is not None
        assert school.id == old.id
        assert school.name == "Trường Phổ thông DTBT THCS Pú Nhi"
        assert school.name_folded == "truong pho thong dtbt thcs pu nhi"
        thitran = q.school_by_code(s, "TH-THITRAN")
        assert thitran is not None and thitran.level == "TH&THCS"
        province = q.office_by_code(s, "SGD-DB")
        assert province is not None and province.name == "Sở Giáo dục và Đào tạo Điện Biên"
        assert len(list(s.exec(select(School)))) == 5


def test_a_later_file_can_add_districts_under_a_stored_province(app: App, tmp_path: Path) -> None:
    import_file(app.db, write(tmp_path, GOOD[:3]))

    summary = import_file(
        app.db,
        write(tmp_path, [HEADER, "PGD-MN,Phòng GD&ĐT huyện Mường Nhé,district,sgd-db,MN-X,MN X,MN"], "b.csv"),
    )

    assert summary == "1 office (1 new, 0 updated, 0 unchanged), 1 school (1 new, 0 updated, 0 unchanged)"
    with app.db.session() as s:
        province, district = q.office_by_code(s, "SGD-DB"), q.office_by_code(s, "PGD-MN")
        assert province is not None and district is not None and district.parent_id == province.id


def test_an_office_without_schools_is_imported(app: App, tmp_path: Path) -> None:
    summary = import_file(app.db, write(tmp_path, [HEADER, f"{PROVINCE},,,", f"{DISTRICT},,,"]))

    assert summary == "2 offices (2 new, 0 updated, 0 unchanged), 0 schools (0 new, 0 updated, 0 unchanged)"


def test_xlsx(app: App, tmp_path: Path) -> None:
    rows: list[list[Any] | None] = [
        list(COLUMNS),
        ["SGD-DB", "Sở GD&ĐT Điện Biên", "province", None, None, None, None],
        None,  # a blank row between blocks is skipped
        [
            "PGD-DBD",
            "Phòng GD&ĐT huyện Điện Biên Đông",
            "District",
            "SGD-DB",
            11001,
            "Trường THCS Pú Nhi",
            "THCS",
        ],
        ["PGD-DBD", "Phòng GD&ĐT huyện Điện Biên Đông", "District", "SGD-DB", "TH-A", "Trường TH A", "TH"],
    ]
    path = write_xlsx(tmp_path, [r or [] for r in rows])

    assert import_file(app.db, path) == (
        "2 offices (2 new, 0 updated, 0 unchanged), 2 schools (2 new, 0 updated, 0 unchanged)"
    )
    with app.db.session() as s:
        school = q.school_by_code(s, "11001")  # a numeric cell is its digits, not 11001.0
        assert school is not None and school.name == "Trường THCS Pú Nhi"
    assert import_file(app.db, path).endswith("2 schools (0 new, 0 updated, 2 unchanged)")


def test_xlsx_problems_carry_spreadsheet_row_numbers(app: App, tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        list(COLUMNS),
        ["SGD-DB", "Sở GD&ĐT Điện Biên", "province", None, None, None, None],
        [],
        [],
        ["PGD-DBD", "Phòng GD&ĐT", "district", "SGD-DB", "THCS-X", "Trường THCS X", "THCS-X"],
    ]

    problems = rejected(app.db, write_xlsx(tmp_path, rows))

    assert rows_of(problems) == [5]
    assert "level 'THCS-X'" in problems[0][1]


def test_semicolon_csv_from_a_vietnamese_excel(app: App, tmp_path: Path) -> None:
    lines = [line.replace(",", ";") for line in [HEADER, f"{PROVINCE},,,"]]
    lines.append("SGD-DB;Sở GD&ĐT Điện Biên;province;;THPT-A;Trường THPT A, B;THPT")

    assert import_file(app.db, write(tmp_path, lines)).startswith("1 office (1 new")
    with app.db.session() as s:
        school = q.school_by_code(s, "THPT-A")
        assert school is not None and school.name == "Trường THPT A, B"


def test_header_columns_in_any_order_and_case(app: App, tmp_path: Path) -> None:
    lines = [
        "Level,School Name,school_code,OFFICE_CODE,office_name,office_kind,parent_office_code",
        "THCS,Trường THCS Pú Nhi,THCS-PUNHI,SGD-DB,Sở GD&ĐT Điện Biên,province,",
    ]

    import_file(app.db, write(tmp_path, lines))

    with app.db.session() as s:
        school = q.school_by_code(s, "THCS-PUNHI")
        assert school is not None and school.level == "THCS"


def test_names_are_stored_nfc_and_found_without_accents(app: App, tmp_path: Path) -> None:
    nfd = [unicodedata.normalize("NFD", line) for line in GOOD]
    assert nfd[3] != GOOD[3]

    import_file(app.db, write(tmp_path, nfd))

    with app.db.session() as s:
        school = q.school_by_code(s, "THCS-PUNHI")
        assert school is not None
        assert school.name == "Trường PTDTBT THCS Pú Nhi"
        assert unicodedata.is_normalized("NFC", school.name)
        office = q.office_by_code(s, "PGD-DBD")
        assert office is not None and unicodedata.is_normalized("NFC", office.name)
        for query in (
            "thcs pu nhi",
            "THCS PÚ NHI",
            "Pú Nhi",
            unicodedata.normalize("NFD", "THCS Pú Nhi"),
            "  pu   nhi ",
        ):
            assert [x.code for x in q.find_schools(s, query)] == ["THCS-PUNHI"], query
        assert [x.code for x in q.find_schools(s, "dien bien dong")] == ["THPT-DBD"]
        assert {x.code for x in q.find_schools(s, "truong")} == {
            "THPT-DBD",
            "THCS-PUNHI",
            "MN-HOABAN",
            "THTHCS-NAMAI",
            "TH-THITRAN",
        }


def test_a_thousand_schools_load_with_few_queries(app: App, tmp_path: Path) -> None:
    lines = [HEADER, f"{PROVINCE},,,"]
    for d in range(20):
        district = f"PGD-{d:02},Phòng GD&ĐT số {d},district,SGD-DB"
        lines += [f"{district},S{d:02}-{n:03},Trường Tiểu học số {n} huyện {d},TH" for n in range(60)]
    path = write(tmp_path, lines)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    event.listen(app.db.engine, "before_cursor_execute", count)
    try:
        first = import_file(app.db, path)
        selects_first = statements.count("SELECT")
        statements.clear()
        second = import_file(app.db, path)
    finally:
        event.remove(app.db.engine, "before_cursor_execute", count)

    assert (
        first
        == "21 offices (21 new, 0 updated, 0 unchanged), 1200 schools (1200 new, 0 updated, 0 unchanged)"
    )
    assert second.endswith("1200 schools (0 new, 0 updated, 1200 unchanged)")
    assert selects_first <= 5  # the offices once, the schools in chunks: never one query per row
    assert statements.count("SELECT") <= 5
    assert "INSERT" not in statements and "UPDATE" not in statements
    with app.db.session() as s:
        assert len(list(s.exec(select(School.id)))) == 1200


# ---- refusal ------------------------------------------------------------------------------


def test_every_bad_row_is_reported_and_nothing_is_written(app: App, tmp_path: Path) -> None:
    lines = [
        HEADER,  # 1
        f"{PROVINCE},,,",  # 2
        "SGD-X,Sở X,city,,,,",  # 3 bad kind
        "PGD-A,Phòng A,district,NOPE,,,",  # 4 unknown parent
        f"{DISTRICT},THCS-B,Trường THCS B,THCS&XYZ",  # 5 bad level
        f"{DISTRICT},THCS-C,,THCS",  # 6 school name missing
        "SGD-DB,Sở Giáo dục Điện Biên,province,,,,",  # 7 the province again, another name
        f"{DISTRICT},TH-D,Trường TH D,TH",  # 8 fine
        f"{DISTRICT},TH-D,Trường TH D,THCS",  # 9 same school, another level
        "",  # 10 blank: skipped, still counted
        "PGD-E,Phòng E,district,PGD-DBD,,,",  # 11 parent is a district
        "SGD-F,Sở F,province,SGD-DB,,,",  # 12 a province with a parent
        ",Phòng G,district,,,,",  # 13 no office code
        f"{DISTRICT},TH-H,Trường TH H,TH,extra",  # 14 a value beyond the header
        f"{DISTRICT},TH D,Trường TH D,TH",  # 15 a space in a code
        f"{DISTRICT},,,TH",  # 16 level without a school
        f"{DISTRICT},TH-I,Trường TH I,",  # 17 school without a level
        "PGD-DBD,Phòng GD&ĐT huyện Điện Biên Đông,province,,,,",  # 18 the district as a province
        f'{DISTRICT},TH-J,"Trường TH\nJ",TH',  # 19 a quoted line break is one spreadsheet row
        f"{DISTRICT},TH-K,Trường TH K,THCS&THCS",  # 20 a level twice
        "PGD-L,Phòng L,district,PGD-L,,,",  # 21 its own parent
    ]
    problems = rejected(app.db, write(tmp_path, lines))

    assert rows_of(problems) == sorted(rows_of(problems))
    assert set(rows_of(problems)) == {3, 4, 5, 6, 7, 9, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21}
    assert "office_kind is 'city'" in reason(problems, 3)
    assert "parent office NOPE is not in the file or the database" in reason(problems, 4)
    assert "level 'THCS&XYZ'" in reason(problems, 5)
    assert "school_name is empty" in reason(problems, 6)
    assert "office SGD-DB differs from row 2" in reason(problems, 7)
    assert "name 'Sở Giáo dục Điện Biên'" in reason(problems, 7)
    assert "school TH-D is also on row 8" in reason(problems, 9)
    assert "level THCS (was TH)" in reason(problems, 9)
    assert "parent office PGD-DBD is a district" in reason(problems, 11)
    assert "a province office cannot have a parent" in reason(problems, 12)
    assert "office_code is empty" in reason(problems, 13)
    assert "beyond the 7 columns" in reason(problems, 14)
    assert "school_code 'TH D' is not a valid code" in reason(problems, 15)
    assert "school_code is empty" in reason(problems, 16) and "school_name is empty" in reason(problems, 16)
    assert "level is empty" in reason(problems, 17)
    assert "office PGD-DBD differs from row 5" in reason(problems, 18)
    assert "kind province (was district)" in reason(problems, 18)
    assert "level 'THCS&THCS'" in reason(problems, 20)
    assert "its own parent" in reason(problems, 21)


def test_a_refused_file_leaves_stored_rows_untouched(app: App, tmp_path: Path) -> None:
    import_file(app.db, write(tmp_path, GOOD))
    bad = [line.replace("Pú Nhi", "Pú Nhi mới") for line in GOOD] + [f"{DISTRICT},TH-Z,Trường TH Z,XX"]

    problems = rejected(app.db, write(tmp_path, bad, name="bad.csv"))

    assert problems == [(8, problems[0][1])]
    with app.db.session() as s:
        school = q.school_by_code(s, "THCS-PUNHI")
        assert school is not None and school.name == "Trường PTDTBT THCS Pú Nhi"


def test_a_province_with_districts_under_it_cannot_become_a_district(app: App, tmp_path: Path) -> None:
    import_file(app.db, write(tmp_path, GOOD))
    other = [HEADER, "SGD-HN,Sở GD&ĐT Hà Nội,province,,,,", "SGD-DB,Sở GD&ĐT Điện Biên,district,SGD-HN,,,"]

    problems = rejected(app.db, write(tmp_path, other, name="demote.csv"))

    assert rows_of(problems) == [3]
    assert "office SGD-DB cannot become a district: office PGD-DBD" in problems[0][1]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("office_code,office_name,office_kind,school_code,school_name,level", "missing column(s)"),
        (HEADER + ",notes", "unknown column(s) in the header: notes"),
        (HEADER.replace("level", "office_code"), "column office_code appears twice"),
        ("mã đơn vị,tên đơn vị", "unknown column(s)"),
    ],
)
def test_a_wrong_header_is_row_1(app: App, tmp_path: Path, header: str, expected: str) -> None:
    problems = rejected(app.db, write(tmp_path, [header, f"{PROVINCE},,,"]))

    assert_header_refused(problems, expected, HEADER)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("blank.csv", b"\xef\xbb\xbf\r\n\r\n", "the file is empty"),
        ("header.csv", (HEADER + "\r\n").encode(), "no data rows"),
        ("org.pdf", b"%PDF-1.4 ...", "not a CSV or XLSX file"),
        ("org.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "old Excel .xls"),
        ("org.xlsx", b"office_code,office_name\r\n", "not a valid XLSX file"),
        ("org.docx", b"PK\x03\x04" + b"\x00" * 64, "not a CSV or XLSX file"),
        ("org.csv", b"PK\x03\x04" + b"\x00" * 64, "not a CSV or XLSX file"),
        ("broken.xlsx", b"PK\x03\x04" + b"\x00" * 64, "not a valid XLSX file"),
        ("renamed.xlsx", zipped("word/document.xml", "<w/>"), "not a valid XLSX file"),
        ("nul.csv", (HEADER + "\r\n").encode() + b"SGD\x00,x\r\n", "NUL bytes"),
    ],
)
def test_files_that_are_not_organisation_files(
    app: App, tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    problems = rejected(app.db, path)

    assert len(problems) == 1
    assert expected in problems[0][1]


def test_a_missing_file(app: App, tmp_path: Path) -> None:
    problems = rejected(app.db, tmp_path / "nowhere.csv")

    assert problems == [(0, f"{tmp_path / 'nowhere.csv'} does not exist or is not a file")]


def test_non_utf8_bytes_name_their_row(app: App, tmp_path: Path) -> None:
    lines = [HEADER, f"{PROVINCE},,,", "SGD-DB,Sở GD&ĐT Điện Biên,province,,TH-A,Trường Tiểu học A,TH"]
    path = tmp_path / "windows.csv"
    path.write_bytes("\r\n".join(lines[:2]).encode() + b"\r\n" + lines[2].encode("cp1258", errors="replace"))

    problems = rejected(app.db, path)

    assert problems == [(3, problems[0][1])]
    assert "not UTF-8" in problems[0][1] and "CSV UTF-8" in problems[0][1]


def test_an_empty_xlsx(app: App, tmp_path: Path) -> None:
    problems = rejected(app.db, write_xlsx(tmp_path, []))

    assert problems == [(0, "the file is empty")]


def test_fold_matches_the_stored_folded_name(app: App, tmp_path: Path) -> None:
    import_file(app.db, write(tmp_path, GOOD))
    with app.db.session() as s:
        for school in s.exec(select(School)):
            assert school.name_folded == fold(school.name)
