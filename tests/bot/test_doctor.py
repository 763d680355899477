"""`schoolbot doctor`: one line per check against a good setup (fake Telegram) and a broken one, each
failure with its fix, exit 1, and never a token."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app as cli
from storage import migrate
from tests.bot.test_run_process import free_port, toml
from tests.bot.test_telegram import _loopback_only  # noqa: F401 (fixture)
from tests.fakes.telegram_api import TOKEN, FakeBotAPI
from tests.fakes.zalo_api import TOKEN as ZALO_TOKEN
from tests.fakes.zalo_api import FakeZaloAPI


def config_file(root: Path, database_url: str, media: Path, *sections: str) -> Path:
    """A config file with these settings and [sections] lines."""
    path = root / "config.toml"
    lines = [f"database_url = {toml(database_url)}", f"media_dir = {toml(str(media))}", *sections]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def telegram(base_url: str) -> list[str]:
    return ["[telegram]", f"token = {toml(TOKEN)}", f"base_url = {toml(base_url)}"]


def doctor(config: Path) -> tuple[int, dict[str, str]]:
    """Run `schoolbot doctor`: its exit code and its lines by check name."""
    done = CliRunner().invoke(cli, ["doctor", "--config", str(config)])
    assert "Traceback" not in done.output and TOKEN.partition(":")[2] not in done.output
    assert ZALO_TOKEN.partition(":")[2] not in done.output
    lines = {}
    for line in done.output.splitlines():
        mark, _, rest = line.partition("  ")
        name, _, _ = rest.strip().partition(":")
        if mark.strip() in ("ok", "FAIL"):
            lines[name] = line
    return done.exit_code, lines


def test_a_good_setup_passes_every_check(tmp_path: Path, database_url: str) -> None:
    with FakeBotAPI() as api, FakeZaloAPI() as zalo:
        zalo_lines = ["[zalo]", f"token = {toml(ZALO_TOKEN)}", f"base_url = {toml(zalo.base_url)}"]
        config = config_file(tmp_path, database_url, tmp_path / "media", *telegram(api.base_url), *zalo_lines)
        code, lines = doctor(config)
        asked = [c.method for c in api.calls] + [c.method for c in zalo.calls]

    assert code == 0, lines
    assert set(lines) == {"config", "telegram", "zalo", "database", "media", "clock", "chart font"}
    assert all(line.startswith("ok    ") for line in lines.values()), lines
    assert "@" in lines["telegram"] and "schema" in lines["database"] and "MB free" in lines["media"]
    assert "Asia/Ho_Chi_Minh" in lines["clock"] and "within 30 s of 127.0.0.1's clock" in lines["clock"]
    assert asked == ["getMe", "getMe"]  # nothing else asked or changed on either platform


def test_a_broken_setup_says_what_fails_and_how_to_fix_it(tmp_path: Path) -> None:
    """A rejected token, a database that does not answer, a media folder that is a file, Zalo unreachable."""
    (tmp_path / "plain-file").write_text("not a folder")
    media = tmp_path / "plain-file" / "media"
    port = free_port()
    nowhere = f"postgresql+psycopg://bot:pa55word-x@127.0.0.1:{port}/schoolbot"
    dead = f"http://127.0.0.1:{free_port()}"
    zalo_lines = ["[zalo]", f"token = {toml(ZALO_TOKEN)}", f"base_url = {toml(dead)}"]
    with FakeBotAPI(token="654321:another-token-entirely") as api:
        code, lines = doctor(config_file(tmp_path, nowhere, media, *telegram(api.base_url), *zalo_lines))

    assert code == 1
    assert lines["telegram"] == (
        "FAIL  telegram: telegram.token = ***: Telegram rejected this bot token; fix: copy it from @BotFather"
    )
    assert (
        lines["zalo"].startswith(f"FAIL  zalo: cannot reach {dead}")
        and "fix: check zalo.base_url" in lines["zalo"]
    )
    assert lines["database"].startswith(
        f"FAIL  database: postgresql+psycopg://bot:***@127.0.0.1:{port}/schoolbot: "
    )
    assert lines["database"].endswith("fix: check database_url and that the server is running")
    assert "pa55word-x" not in "".join(lines.values())
    assert lines["media"].startswith(f"FAIL  media: cannot write {media}") and "fix: make" in lines["media"]
    assert lines["config"].startswith("ok") and lines["chart font"].startswith("ok")


def test_no_token_and_a_bad_config_are_failures(tmp_path: Path, database_url: str) -> None:
    code, lines = doctor(config_file(tmp_path, database_url, tmp_path / "media"))
    assert code == 1 and lines["channels"].startswith("FAIL  channels: no channel has a token; fix:")

    bad = tmp_path / "bad.toml"
    bad.write_text("[outbox]\nrate = -5\n", encoding="utf-8")
    code, lines = doctor(bad)
    assert code == 1 and list(lines) == ["config"]
    assert lines["config"].startswith("FAIL  config: invalid configuration: outbox.rate = -5")


def test_a_database_of_a_newer_schema_fails_and_a_missing_sqlite_file_is_fine(
    tmp_path: Path, database_url: str
) -> None:
    with FakeBotAPI() as api:
        missing = f"sqlite:///{tmp_path / 'new' / 'schoolbot.db'}"
        code, lines = doctor(config_file(tmp_path, missing, tmp_path / "media", *telegram(api.base_url)))
        assert code == 0 and lines["database"].endswith(": none yet, the first start makes it")
        assert not (tmp_path / "new").exists()  # the doctor made nothing

        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
        conn.commit()
        conn.close()
        code, lines = doctor(config_file(tmp_path, database_url, tmp_path / "media", *telegram(api.base_url)))

    assert code == 1
    assert lines["database"].endswith(
        "is newer than this schoolbot's (" + migrate.head() + "); fix: run the schoolbot version that made it"
    )
