"""`schoolbot run` starts every channel that has a token; `--channel` narrows it to one."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app as cli
from tests.bot.test_run_process import WAIT, bot_process, terminated, toml
from tests.fakes.zalo_api import TOKEN, FakeZaloAPI, ZaloUser, text_event
from tests.support import until

USER = ZaloUser("a1b2c3d4e5f600000077", "Lò Văn Páo")


def zalo_only(root: Path, database_url: str, api: FakeZaloAPI) -> Path:
    """A config with a Zalo token and no Telegram one."""
    path = root / "config.toml"
    lines = [
        f"database_url = {toml(database_url)}",
        f"media_dir = {toml(str(root / 'media'))}",
        "[zalo]",
        f"token = {toml(TOKEN)}",
        f"base_url = {toml(api.base_url)}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_a_zalo_only_setup_starts_with_no_channel_named(tmp_path: Path, database_url: str) -> None:
    """Only Zalo has a token: `schoolbot run` (no --channel) runs Zalo, answers on it, never asks for a
    Telegram token, and stops cleanly on SIGTERM."""
    with FakeZaloAPI() as api:
        config = zalo_only(tmp_path, database_url, api)
        log = tmp_path / "run.log"
        with bot_process(config, log) as proc:
            await until(lambda: bool(api.calls_to("deleteWebhook")), "Zalo polling", WAIT)
            api.push(text_event(USER, "/start"))
            await until(lambda: bool(api.calls_to("sendMessage", ok_only=True)), "the answer on Zalo", WAIT)
            code = terminated(proc)
        output = log.read_text(encoding="utf-8")
        answered = api.calls_to("sendMessage", ok_only=True)
    assert code == 0, output
    assert "telegram.token" not in output and "Traceback" not in output and TOKEN not in output
    assert answered[0]["chat_id"] == USER.id


def test_no_token_at_all_is_one_plain_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config.write_text(f"database_url = {toml(url)}\n", encoding="utf-8")

    done = CliRunner().invoke(cli, ["run", "--config", str(config)])

    assert done.exit_code == 2
    assert done.output.strip().startswith("no channel has a token: set telegram.token or zalo.token")


def test_channel_narrows_to_the_one_named(tmp_path: Path) -> None:
    """With only a Zalo token, `--channel telegram` is refused for Telegram's missing token (not started)."""
    config = tmp_path / "c.toml"
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config.write_text(f"database_url = {toml(url)}\n[zalo]\ntoken = {toml(TOKEN)}\n", encoding="utf-8")

    done = CliRunner().invoke(cli, ["run", "--channel", "telegram", "--config", str(config)])

    assert done.exit_code == 2 and "telegram.token is empty" in done.output
