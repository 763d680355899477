"""`schoolbot demo` and `schoolbot chat` through the real command line, with input piped in."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from bot.cli import app as cli


def empty(folder: Path) -> str:
    """An empty settings file: every setting comes from the environment."""
    path = folder / "empty.toml"
    path.touch()
    return str(path)


def run(args: list[str], lines: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(cli, args, input="\n".join(lines) + "\n", env=env)


def test_demo_alert_reaches_the_officer_when_they_next_open_the_chat(tmp_path: Path) -> None:
    env = {"SCHOOLBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    lines = [
        "/incident",
        "Bài đăng sai sự thật về học phí",
        "00:00 hôm nay",
        "Cổng trường",
        "1",
        "7",
        "1",  # no links: Xong
        "1",  # no screenshots: Xong
        "Đã báo cáo Phòng",
        "3",
        "0912 345 678",
        "1",
    ]
    principal = run(["demo", "--config", empty(tmp_path)], lines, env)
    assert principal.exit_code == 0, principal.output
    first = principal.output.splitlines()[0]  # the demo's first words are Vietnamese, from the locale
    assert first.startswith("Bản dùng thử: đang dùng tài khoản principal.") and "you are" not in first
    assert "Bước 1/9" in principal.output and "Đã gửi báo cáo sự cố #1" in principal.output

    officer = run(["demo", "--user", "officer", "--config", empty(tmp_path)], ["1"], env)
    assert officer.exit_code == 0, officer.output
    alert_at = officer.output.index("SỰ CỐ TRUYỀN THÔNG #1")
    assert "Rất nghiêm trọng" in officer.output
    assert officer.output.index("Đã ghi nhận") > alert_at  # "1" acknowledged the alert shown first

    again = run(["chat", "--user", "officer", "--config", empty(tmp_path)], [], env)
    assert again.exit_code == 0 and "SỰ CỐ TRUYỀN THÔNG" not in again.output  # shown once


def test_chat_as_an_unregistered_user_explains_registration(tmp_path: Path) -> None:
    env = {"SCHOOLBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = run(["chat", "--user", "someone", "--config", empty(tmp_path)], ["xin chào"], env)
    assert result.exit_code == 0
    assert "chưa đăng ký" in result.output


def test_db_upgrade_reports_the_revision(tmp_path: Path) -> None:
    env = {"SCHOOLBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'u.db'}"}
    result = CliRunner().invoke(cli, ["db", "upgrade", "--config", empty(tmp_path)], env=env)
    from alembic.script import ScriptDirectory

    from storage.migrate import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert result.exit_code == 0 and f"revision {head}" in result.output
