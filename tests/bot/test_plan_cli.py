"""`schoolbot plan import` through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select

from storage import queries as q
from storage.db import Database
from storage.models import PlanTheme
from storage.plan import themes_for
from tests.conftest import CliEnv

DATA = Path(__file__).resolve().parent.parent / "data"
ORGANISATION = DATA / "organisation_example.csv"
PLAN = DATA / "plan_example.csv"


class Env(CliEnv):
    """A database in the test's folder, reached through SCHOOLBOT_DATABASE_URL, and no config file."""

    def themes(self) -> list[tuple[str, str]]:
        db = Database(self.url)
        try:
            with db.session() as s:
                return [(t.period, t.theme) for t in s.exec(select(PlanTheme).order_by(col(PlanTheme.id)))]
        finally:
            db.dispose()


@pytest.fixture(name="env")
def env_fixture(tmp_path: Path, migrated: Path) -> Env:
    """The example organisation imported through the CLI."""
    env = Env(tmp_path, migrated)
    result = env.cli("schools", "import", str(ORGANISATION))
    assert result.exit_code == 0, result.output
    return env


def test_plan_import_prints_a_summary_and_is_idempotent(env: Env) -> None:
    first = env.cli("plan", "import", str(PLAN))
    second = env.cli("plan", "import", str(PLAN))

    assert first.exit_code == 0, first.output
    assert first.stdout == "7 themes (7 new, 0 updated, 0 unchanged) for 2 offices\n"
    assert first.stderr == ""
    assert second.exit_code == 0
    assert second.stdout == "7 themes (0 new, 0 updated, 7 unchanged) for 2 offices\n"
    assert len(env.themes()) == 7
    db = Database(env.url)
    try:
        with db.session() as s:
            school = q.school_by_code(s, "THCS-PUNHI")
            assert school is not None
            shown = [t.theme for t in themes_for(s, school.office_id, "2026-11")]
    finally:
        db.dispose()
    assert len(shown) == 4
    assert shown[0].startswith("SGK lớp 8") and shown[2].startswith("Truyền thông tôn sư trọng đạo")


def test_plan_import_refuses_a_bad_file_with_every_row(env: Env, tmp_path: Path) -> None:
    lines = PLAN.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("Quý 4/2026", "Quý 5/2026")
    lines[5] = lines[5].replace("PGD-DBD", "PGD-KHONG")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = env.cli("plan", "import", str(bad))

    assert result.exit_code == 1
    assert result.stdout == ""
    err = result.stderr.splitlines()
    assert err[0] == "row 3: period 'Quý 5/2026': there is no quarter 5"
    assert err[1].startswith("row 6: office PGD-KHONG is not in the database")
    assert err[-1] == "2 problem(s); nothing was imported."
    assert env.themes() == []


def test_plan_import_before_the_offices_exist(tmp_path: Path, migrated: Path) -> None:
    env = Env(tmp_path, migrated)

    result = env.cli("plan", "import", str(PLAN))

    assert result.exit_code == 1
    assert result.stderr.count("is not in the database") == 7
    assert result.stderr.endswith("7 problem(s); nothing was imported.\n")


def test_plan_import_of_a_missing_file(tmp_path: Path) -> None:
    result = Env(tmp_path).cli("plan", "import", str(tmp_path / "nowhere.csv"))

    assert result.exit_code == 1
    assert result.stderr.startswith("nowhere.csv: ")
    assert "Traceback" not in result.output


def test_plan_import_of_a_wrong_header(env: Env, tmp_path: Path) -> None:
    bad = tmp_path / "header.csv"
    bad.write_text("office_code,theme\nPGD-DBD,Chuyển đổi số\n", encoding="utf-8")

    result = env.cli("plan", "import", str(bad))

    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "row 1: missing column(s) in the header: period"
