"""`schoolbot outbox` and `schoolbot remind` through the real command line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot.demo import seed_demo
from storage import migrate
from storage import queries as q
from storage.db import Database
from storage.models import Outbox
from tests.conftest import CliEnv


class Env(CliEnv):
    """The demo district in a database in the test's folder."""

    def __init__(self, root: Path, migrated: Path) -> None:
        super().__init__(root, migrated)
        self.db = Database(self.url)
        migrate.upgrade(self.db)
        with self.db.session() as s:
            seed_demo(s, datetime.fromisoformat("2026-11-01T08:00:00+07:00"))

    def rows(self) -> list[Outbox]:
        with self.db.session() as s:
            return list(s.exec(select(Outbox)))


@pytest.fixture(name="env")
def env_fixture(tmp_path: Path, migrated: Path) -> Any:
    env = Env(tmp_path, migrated)
    yield env
    env.db.dispose()


def test_remind_dry_run_at_a_time_prints_who_and_what_and_makes_nothing(env: Env) -> None:
    result = env.cli("remind", "--dry-run", "--at", "2026-11-10T08:00")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "At 2026-11-10 08:00 (Asia/Ho_Chi_Minh):"
    assert lines[1].startswith(
        "  article-remind 2026-11 d5 -> Cô Lò Thị Lan (console:principal), Trường PTDTBT THCS Pú Nhi: "
        "⏰ Nhắc nộp Bài viết tháng 11/2026"
    )
    assert "1 message(s) would be queued; 0 already in the outbox." in lines
    assert "4 school(s) owing article:2026-11 have no registered user to remind." in lines
    assert env.rows() == []


def test_remind_dry_run_shows_escalations_and_quiet_hours(env: Env) -> None:
    morning = env.cli("remind", "--dry-run", "--at", "2026-11-16T08:30:00+07:00")
    assert "article-late 2026-11 e1 -> Anh Nguyễn Văn Minh (console:officer)" in morning.stdout
    assert "article-late 2026-11 e1 -> Ông Trần Văn Hùng (console:leader)" in morning.stdout
    # The escalation names the schools, as the officer will read them.
    lines = morning.stdout.splitlines()
    start = next(
        n for n, line in enumerate(lines) if "article-late 2026-11 e1 -> Anh Nguyễn Văn Minh" in line
    )
    assert "0/5 trường đã nộp; chưa nộp 1, chưa đăng ký 4." in lines[start]
    assert lines[start + 1 : start + 4] == [
        "      Chưa nộp (1):",
        "      • Trường PTDTBT THCS Pú Nhi",
        "      Chưa đăng ký dùng bot (4):",
    ]
    assert "      • Trường TH&THCS Na Mai" in lines[start + 4 : start + 8]
    night = env.cli("remind", "--dry-run", "--at", "2026-11-10T22:00")
    assert night.exit_code == 0
    assert "nothing: quiet hours" in night.stdout


def test_a_real_sweep_then_the_outbox_view(env: Env) -> None:
    with env.db.session() as s:  # as if the bot had queued, sent and failed some messages
        user = q.get_user(s, "console", "principal")
        assert user is not None
    from bot.app import open_app
    from bot.config import load_settings
    from handlers import reminders
    from handlers.calendar import FrozenClock

    settings = load_settings(None, database_url=env.url)
    with open_app(settings, FrozenClock(datetime(2026, 11, 16, 8, 0))) as app:
        reminders.sweep(app.db, app.clock, settings, app.catalog)
        with app.db.session() as s:
            [first, second] = list(s.exec(select(Outbox).order_by(col(Outbox.id))))
            q.outbox_sent(s, first.id or 0, app.clock.now())
            dead = s.get(Outbox, second.id)
            assert dead is not None
            dead.status = "dead"
            dead.last_error = "ChannelError: BadRequest: Chat not found"
    view = env.cli("outbox")
    assert view.exit_code == 0, view.output
    assert "dead       article-late              1" in view.stdout
    assert "sent       article-late              1" in view.stdout
    assert "sender lease: nobody" in view.stdout
    assert "Chat not found" in view.stdout and "last 1 error(s):" in view.stdout
    again = env.cli("outbox", "--requeue-dead", "--errors", "0")
    assert again.stdout.startswith("1 dead message(s) back in the queue")
    assert "pending    article-late              1" in again.stdout


def test_remind_sweeps_now_without_dry_run(env: Env) -> None:
    result = env.cli("remind")
    assert result.exit_code == 0, result.output
    assert "new message(s) queued" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("remind", "--at", "2026-11-10T08:00"), "--at only goes with --dry-run"),
        (("remind", "--dry-run", "--at", "10/11/2026 8h"), "not an ISO time"),
    ],
)
def test_bad_remind_arguments_exit_2_with_a_message(env: Env, args: tuple[str, ...], message: str) -> None:
    result = env.cli(*args)
    assert result.exit_code == 2 and message in result.stderr
    assert env.rows() == []


def test_outbox_shows_what_is_left_of_the_zalo_budget(env: Env) -> None:
    from zoneinfo import ZoneInfo

    from storage import queries as q

    month = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%Y-%m")
    with env.db.session() as s:
        q.add_usage(s, "zalo", month, 2_990)
    result = env.cli("outbox")
    assert result.exit_code == 0, result.output
    assert f"zalo budget {month}: 2990 of 3000 sent, 10 left" in result.output
