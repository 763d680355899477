"""Settings: TOML plus SCHOOLBOT_* overrides, validated at start with messages naming key, value, rule."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.config import Settings, load_settings
from storage.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_without_a_file() -> None:
    s = load_settings(Path("/nonexistent/config.toml"))
    assert s.database_url == "sqlite:///data/schoolbot.db"
    assert s.locale == "vi" and s.timezone == "Asia/Ho_Chi_Minh"
    assert s.telegram.mode == "polling"


def test_the_example_config_parses_and_matches_the_defaults() -> None:
    assert (ROOT / "config.example.toml").is_file()
    example = load_settings(ROOT / "config.example.toml")
    assert example == Settings()


def test_environment_overrides_the_file_and_nested_keys_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('locale = "en"\n[telegram]\nbase_url = "http://127.0.0.1:9/bot"\nport = 8000\n')
    monkeypatch.setenv("SCHOOLBOT_TELEGRAM__PORT", "9001")
    monkeypatch.setenv("SCHOOLBOT_TELEGRAM__TOKEN", "123:ABC")
    s = load_settings(path)
    assert s.locale == "en"
    assert s.telegram.port == 9001
    assert s.telegram.base_url == "http://127.0.0.1:9/bot"
    assert s.telegram.token.get_secret_value() == "123:ABC"


@pytest.mark.parametrize(
    ("content", "names"),
    [
        ('locale = "fr"', ["locale", "'fr'"]),
        ('timezone = "Mars/Olympus"', ["timezone", "Mars/Olympus", "IANA"]),
        ("[telegram]\nport = 70000", ["telegram.port", "70000", "65535"]),
        ('[telegram]\nmode = "pigeon"', ["telegram.mode", "pigeon", "polling"]),
        ('database_url = "mysql://x"', ["database_url", "mysql://x", "sqlite"]),
        ("unknown_key = 1", ["unknown_key", "not permitted"]),
        ("database_threads = 0", ["database_threads", "0", "1"]),
        ("database_threads = 65", ["database_threads", "65", "64"]),
        ('[telegram]\nmode = "webhook"\nwebhook_url = "http://plain"', ["webhook_url", "https://"]),
        (
            '[telegram]\nmode = "webhook"\nwebhook_url = "https://x.vn"\nsecret_token = "bad token!"',
            ["secret_token", "A-Z a-z 0-9 _ -"],
        ),
    ],
)
def test_a_wrong_value_names_key_value_and_rule(tmp_path: Path, content: str, names: list[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    for name in names:
        assert name in str(caught.value)


def test_secrets_never_appear_in_errors_or_reprs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHOOLBOT_TELEGRAM__TOKEN", "999:SUPERSECRET")
    monkeypatch.setenv("SCHOOLBOT_TELEGRAM__PORT", "not-a-port")
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    assert "SUPERSECRET" not in str(caught.value)
    monkeypatch.delenv("SCHOOLBOT_TELEGRAM__PORT")
    monkeypatch.setenv("SCHOOLBOT_TELEGRAM__SECRET_TOKEN", "hush hush")
    with pytest.raises(ConfigError) as caught:
        load_settings(None, telegram={"mode": "webhook", "webhook_url": "https://x.vn"})
    assert "hush" not in str(caught.value)
    monkeypatch.delenv("SCHOOLBOT_TELEGRAM__SECRET_TOKEN")
    s = load_settings(None)
    assert "SUPERSECRET" not in repr(s) and "SUPERSECRET" not in str(s.model_dump())


def test_broken_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("locale = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)


def test_the_cli_exits_with_the_message_and_no_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[telegram]\ntoken = "42:TOPSECRET"\nport = "abc"\n')
    with caplog.at_level(logging.DEBUG):
        result = CliRunner().invoke(cli, ["db", "upgrade", "--config", str(path)])
    assert result.exit_code == 2
    assert "telegram.port" in result.output
    assert "Traceback" not in result.output
    assert "TOPSECRET" not in result.output and "TOPSECRET" not in caplog.text


@pytest.mark.parametrize(
    "command",
    [["run"], ["db", "upgrade"], ["demo"], ["privacy", "export", "--person", "1", "--out", "x.zip"]],
)
def test_a_settings_file_named_but_missing_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """A mistyped --config used to run on the defaults (the demo quietly, `run` saying only that no
    channel has a token); now it names the file, exits 2 and touches nothing."""
    monkeypatch.chdir(tmp_path)  # the defaults' database and media folder would be made here
    missing = tmp_path / "confg.toml"
    result = CliRunner().invoke(cli, [*command, "--config", str(missing)])
    assert result.exit_code == 2
    assert f"{missing}: no such settings file" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # no database, no media folder made


def test_the_default_settings_file_may_be_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --config, config.toml is read only if it is there: the environment can carry it all."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCHOOLBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "no such settings file" not in result.output
    assert (tmp_path / "env.db").exists()


def test_delivery_prefer_and_the_old_zalo_deliver_to(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[delivery]\nprefer = "zalo"\n')
    assert load_settings(path).prefer == "zalo"
    assert load_settings(None).prefer == "last_used"

    caplog.set_level(logging.WARNING, logger="schoolbot.config")
    path.write_text('[zalo]\ndeliver_to = "both"\n')
    assert load_settings(path).prefer == "both"  # an old config file still works...
    assert (
        "zalo.deliver_to is deprecated" in caplog.text and "[delivery] prefer" in caplog.text
    )  # ...and says so

    path.write_text('[zalo]\ndeliver_to = "both"\n[delivery]\nprefer = "telegram"\n')
    assert load_settings(path).prefer == "telegram"  # the new key wins

    path.write_text('[delivery]\nprefer = "email"\n')
    with pytest.raises(ConfigError, match=r"delivery\.prefer"):
        load_settings(path)
