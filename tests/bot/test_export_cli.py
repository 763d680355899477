"""`schoolbot export status` through the real command line: the workbook, and every refusal."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from bot.cli import app as cli
from handlers.calendar import Period
from storage import queries as q
from storage.db import Database
from storage.models import Submission
from tests.conftest import CliEnv
from tests.handlers.helpers import add_principal

DATA = Path(__file__).resolve().parent.parent / "data"
ORGANISATION = DATA / "organisation_example.csv"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class Env(CliEnv):
    """A database in the test's folder, reached through SCHOOLBOT_DATABASE_URL, and no config file."""


# The command runs on the wall clock, so the data is placed relative to it: last month, fully known.
LAST = Period.of(datetime.now(TZ)).shift(-1)


@pytest.fixture(name="env")
def env_fixture(tmp_path: Path, migrated: Path) -> Env:
    """The example organisation, two registered schools and last month's articles."""
    env = Env(tmp_path, migrated)
    result = env.cli("schools", "import", str(ORGANISATION))
    assert result.exit_code == 0, result.output
    joined = datetime(LAST.year - 1, LAST.month, 1, 9, tzinfo=TZ)
    sent = datetime(LAST.year, LAST.month, 3, 10, tzinfo=TZ)
    db = Database(env.url)
    try:
        with db.session() as s:
            for code, late in (("MN-HOABAN", False), ("THCS-PUNHI", None)):
                school = q.school_by_code(s, code)
                assert school is not None
                user = add_principal(s, school, code, joined)
                if late is None:
                    continue
                assert school.id is not None and user.id is not None
                s.add(
                    Submission(
                        kind="article",
                        school_id=school.id,
                        user_id=user.id,
                        period=LAST.key,
                        status="approved",
                        answers={},
                        token=code,
                        late=late,
                        submitted_at=sent,
                        created_at=sent,
                        updated_at=sent,
                    )
                )
    finally:
        db.dispose()
    return env


def test_export_status_writes_the_workbook(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "ra" / "tinh-hinh.xlsx"

    result = env.cli("export", "status", "--office", "PGD-DBD", "--month", LAST.key, "--out", str(out))

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}: {LAST.key}, 4 schools (7 sheets)\n"
    book = load_workbook(out)
    assert book.sheetnames[:4] == [
        f"Tháng {LAST.month:02d}-{LAST.year}",
        book.sheetnames[1],
        "Đề xuất điển hình",
        "Sự cố",
    ]
    assert book.sheetnames[1].startswith("Năm học ")
    # A sheet per periodic report deadline of the school year ("Báo cáo năm 2026", "Báo cáo 6 tháng 2027").
    # Then who uses the bot ("Đăng ký").
    assert len(book.sheetnames) == 7 and all(n.startswith("Báo cáo ") for n in book.sheetnames[4:6])
    assert book.sheetnames[6] == "Đăng ký"
    rows = {r[1]: r for r in book.worksheets[0].iter_rows(min_row=3, values_only=True)}
    assert set(rows) == {"MN-HOABAN", "TH-THITRAN", "THCS-PUNHI", "THTHCS-NAMAI"}  # not the province's THPT
    assert rows["MN-HOABAN"][6:9] == ("Đúng hạn", datetime(LAST.year, LAST.month, 3), 1)
    assert rows["THCS-PUNHI"][6] == "Chưa nộp"
    assert rows["TH-THITRAN"][6] == "Chưa đăng ký"
    for ws in book.worksheets:
        assert ws.freeze_panes == "A3"


def test_the_province_includes_its_districts(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "so.xlsx"

    result = env.cli("export", "status", "--office", "SGD-DB", "--month", LAST.key, "--out", str(out))

    assert result.exit_code == 0, result.output
    codes = {r[1] for r in load_workbook(out).worksheets[0].iter_rows(min_row=3, values_only=True)}
    assert "THPT-DBD" in codes and "MN-HOABAN" in codes and len(codes) == 5


def test_this_month_is_the_default(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "now.xlsx"

    result = env.cli("export", "status", "--office", "PGD-DBD", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{out}: {LAST.shift(1).key}, 4 schools")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("--office", "PGD-KHONG", "--month", LAST.key),
            1,
            "--office 'PGD-KHONG': no office has this code\n",
        ),
        (("--office", "PGD-DBD", "--month", "13/2026"), 2, "--month '13/2026': expected YYYY-MM, such as "),
        (("--office", "PGD-DBD", "--month", "2026-13"), 2, "--month '2026-13': expected YYYY-MM"),
        (
            ("--office", "PGD-DBD", "--month", LAST.shift(2).key),
            1,
            f"--month {LAST.shift(2).key} has not come yet",
        ),
    ],
)
def test_refusals_name_the_option(
    env: Env, tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    out = tmp_path / "x.xlsx"

    result = env.cli("export", "status", *args, "--out", str(out))

    assert result.exit_code == code
    assert result.stderr.startswith(message) and "Traceback" not in result.output
    assert not out.exists()


def test_an_office_without_schools(tmp_path: Path, migrated: Path) -> None:
    env = Env(tmp_path, migrated)
    csv = tmp_path / "org.csv"
    csv.write_text(
        "office_code,office_name,office_kind,parent_office_code,school_code,school_name,level\n"
        "SGD-X,Sở GD&ĐT X,province,,,,\n",
        encoding="utf-8",
    )
    assert env.cli("schools", "import", str(csv)).exit_code == 0

    result = env.cli("export", "status", "--office", "SGD-X", "--out", str(tmp_path / "x.xlsx"))

    assert result.exit_code == 1
    assert result.stderr == "SGD-X has no schools yet (schoolbot schools import)\n"


def test_export_is_a_group_that_lists_status(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export", "--help"])

    assert result.exit_code == 0
    assert "status" in result.stdout
