"""The admin commands through the real CLI: `schools import` and `invites`, with a local getMe server."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from bot.cli import app
from storage import queries as q
from storage.db import Database
from storage.models import Invite, Office, School
from tests.support import migrated_copy

DATA = Path(__file__).resolve().parent.parent / "data"
EXAMPLE = DATA / "organisation_example.csv"
TOKEN = "123456789:AAH-secret_Token-value"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the test's config counts: no SCHOOLBOT_* from the shell, no proxy for 127.0.0.1."""
    for name in list(os.environ):
        if name.startswith("SCHOOLBOT_") or name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name)


@dataclass
class Env:
    """A config file and its database in the test's folder."""

    root: Path
    telegram: dict[str, str] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'x.db'}"

    @property
    def config(self) -> Path:
        path = self.root / "config.toml"
        lines = [f'database_url = "{self.db_url}"', "", "[telegram]"]
        lines += [f'{key} = "{value}"' for key, value in self.telegram.items()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def cli(self, *args: str) -> Any:
        return CliRunner().invoke(app, [*args, "--config", str(self.config)])

    def invites(self) -> list[Invite]:
        db = Database(self.db_url)
        try:
            with db.session() as s:
                rows = list(s.exec(select(Invite).order_by(col(Invite.id))))
                for row in rows:
                    s.expunge(row)
            return rows
        finally:
            db.dispose()

    def ids(self) -> tuple[int, int]:
        """The ids of school THCS-PUNHI and office PGD-DBD."""
        db = Database(self.db_url)
        try:
            with db.session() as s:
                school, office = q.school_by_code(s, "THCS-PUNHI"), q.office_by_code(s, "PGD-DBD")
                assert school is not None and office is not None
                return school.id or 0, office.id or 0
        finally:
            db.dispose()


@pytest.fixture(name="env")
def env_fixture(tmp_path: Path, migrated: Path) -> Env:
    """A fresh database with the example organisation imported through the CLI."""
    env = Env(tmp_path, {"username": "demo_bot"})
    migrated_copy(migrated, tmp_path / "x.db")
    result = env.cli("schools", "import", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    return env


def printed_codes(stdout: str) -> list[str]:
    return re.findall(r"^([A-Z2-9]{8})\b", stdout, flags=re.MULTILINE)


# ---- schools import -----------------------------------------------------------------------


def test_schools_import_prints_a_summary_and_is_idempotent(tmp_path: Path) -> None:
    env = Env(tmp_path)

    first = env.cli("schools", "import", str(EXAMPLE))
    second = env.cli("schools", "import", str(EXAMPLE))

    assert first.exit_code == 0
    assert (
        first.stdout
        == "2 offices (2 new, 0 updated, 0 unchanged), 5 schools (5 new, 0 updated, 0 unchanged)\n"
    )
    assert second.exit_code == 0
    assert "0 new, 0 updated" in second.stdout
    assert second.stdout.count("0 new, 0 updated") == 2


def test_schools_import_refuses_a_bad_file_with_every_row(tmp_path: Path) -> None:
    env = Env(tmp_path)
    bad = tmp_path / "bad.csv"
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",THPT&XX"
    lines[4] = lines[4].replace("district", "huyện")
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = env.cli("schools", "import", str(bad))

    assert result.exit_code == 1
    assert result.stdout == ""
    err = result.stderr.splitlines()
    assert err[0].startswith("row 3: level 'THPT&XX'")
    assert err[1].startswith("row 5: office_kind is 'huyện'")
    assert err[-1].endswith("nothing was imported.")
    db = Database(env.db_url)
    try:
        with db.session() as s:
            assert list(s.exec(select(School))) == [] and list(s.exec(select(Office))) == []
    finally:
        db.dispose()


def test_schools_import_of_a_missing_file(tmp_path: Path) -> None:
    result = Env(tmp_path).cli("schools", "import", str(tmp_path / "nowhere.csv"))

    assert result.exit_code == 1
    assert result.stderr.startswith("nowhere.csv: ")
    assert "Traceback" not in result.output


# ---- invites ------------------------------------------------------------------------------


def test_invites_for_a_school_with_csv(env: Env) -> None:
    out = env.root / "codes.csv"

    result = env.cli("invites", "--school", "THCS-PUNHI", "--count", "3", "--out", str(out))

    assert result.exit_code == 0, result.output
    school_id, _ = env.ids()
    stored = env.invites()
    assert len(stored) == 3
    for invite in stored:
        assert (invite.role, invite.school_id, invite.office_id) == ("principal", school_id, None)
        assert invite.expires_at - invite.created_at == timedelta(days=14)  # registration.invite_days
        assert invite.used_at is None
    codes = [i.code for i in stored]
    assert printed_codes(result.stdout) == codes
    for code in codes:
        assert f"{code}  https://t.me/demo_bot?start={code}" in result.stdout
    assert "THCS-PUNHI – Trường PTDTBT THCS Pú Nhi" in result.stdout
    assert result.stderr == ""

    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # so Excel reads UTF-8
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows[0] == ["code", "role", "target", "expires_at", "link"]
    assert rows[1:] == [
        [
            i.code,
            "principal",
            "THCS-PUNHI – Trường PTDTBT THCS Pú Nhi",
            i.expires_at.astimezone(ZONE).strftime("%d/%m/%Y %H:%M"),
            f"https://t.me/demo_bot?start={i.code}",
        ]
        for i in stored
    ]


def test_invites_for_an_office(env: Env) -> None:
    env.telegram = {"username": "@demo_bot"}  # a leading @ is tolerated
    out = env.root / "officers.csv"

    result = env.cli(
        "invites",
        "--office",
        "pgd-dbd",
        "--role",
        "Officer",
        "--expires",
        "3",
        "--count",
        "2",
        "--out",
        str(out),
    )

    assert result.exit_code == 0, result.output
    _, office_id = env.ids()
    stored = env.invites()
    assert [(i.role, i.school_id, i.office_id) for i in stored] == [("officer", None, office_id)] * 2
    assert all(i.expires_at - i.created_at == timedelta(days=3) for i in stored)
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert [r["code"] for r in rows] == [i.code for i in stored]
    assert {r["target"] for r in rows} == {"PGD-DBD – Phòng GD&ĐT huyện Điện Biên Đông"}
    assert {r["role"] for r in rows} == {"officer"}
    assert all(r["link"] == f"https://t.me/demo_bot?start={r['code']}" for r in rows)


def test_invites_for_a_leader_and_an_admin(env: Env) -> None:
    for role in ("leader", "admin"):
        result = env.cli("invites", "--office", "SGD-DB", "--role", role)
        assert result.exit_code == 0, result.output
    assert [i.role for i in env.invites()] == ["leader", "admin"]


def test_without_username_or_token_codes_come_without_links(env: Env) -> None:
    env.telegram = {}

    result = env.cli("invites", "--school", "THCS-PUNHI", "--count", "2")

    assert result.exit_code == 0
    assert printed_codes(result.stdout) == [i.code for i in env.invites()]
    assert "t.me" not in result.stdout
    assert "telegram.username" in result.stderr


# ---- getMe --------------------------------------------------------------------------------


@dataclass
class FakeTelegram:
    """A Bot API stand-in on 127.0.0.1 answering getMe."""

    base_url: str = ""
    status: int = 200
    body: bytes = b""
    paths: list[str] = field(default_factory=list)


@pytest.fixture(name="telegram")
def telegram_fixture() -> Iterator[FakeTelegram]:
    fake = FakeTelegram(
        body=json.dumps(
            {
                "ok": True,
                "result": {"id": 123456789, "is_bot": True, "first_name": "Demo", "username": "demo_bot"},
            }
        ).encode()
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.paths.append(self.path)
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(fake.body)))
            self.end_headers()
            self.wfile.write(fake.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/bot"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_username_from_getme(env: Env, telegram: FakeTelegram) -> None:
    env.telegram = {"token": TOKEN, "base_url": telegram.base_url}
    httpx_level = logging.getLogger("httpx").level

    result = env.cli("invites", "--school", "THCS-PUNHI")

    assert result.exit_code == 0, result.output
    assert logging.getLogger("httpx").level == httpx_level  # quietened for the call only
    assert telegram.paths == [f"/bot{TOKEN}/getMe"]
    (invite,) = env.invites()
    assert f"{invite.code}  https://t.me/demo_bot?start={invite.code}" in result.stdout
    assert TOKEN not in result.output and "secret" not in result.output


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, "HTTP 401: Unauthorized"),
        (200, {"ok": True, "result": {"id": 1}}, "HTTP 200"),
        (404, {"ok": False, "description": f"no bot {TOKEN}"}, "HTTP 404: no bot ***"),
        (200, "not json", "not JSON"),
    ],
)
def test_a_getme_failure_prints_codes_without_links(
    env: Env, telegram: FakeTelegram, status: int, body: Any, why: str
) -> None:
    env.telegram = {"token": TOKEN, "base_url": telegram.base_url}
    telegram.status = status
    telegram.body = json.dumps(body).encode() if isinstance(body, dict) else body.encode()

    result = env.cli("invites", "--school", "THCS-PUNHI", "--count", "2")

    assert result.exit_code == 0
    assert printed_codes(result.stdout) == [i.code for i in env.invites()]
    assert "t.me" not in result.stdout
    assert why in result.stderr
    assert "telegram.username" in result.stderr
    assert TOKEN not in result.output and "secret" not in result.output


def test_an_unreachable_telegram_prints_codes_without_links(env: Env) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env.telegram = {"token": TOKEN, "base_url": f"http://127.0.0.1:{port}/bot"}

    result = env.cli("invites", "--office", "PGD-DBD", "--role", "leader")

    assert result.exit_code == 0
    (invite,) = env.invites()
    assert result.stdout.splitlines()[-1] == invite.code
    assert "ConnectError" in result.stderr
    assert TOKEN not in result.output and "secret" not in result.output


# ---- wrong usage --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--school", "THCS-PUNHI", "--office", "PGD-DBD"], "exactly one of --school CODE or --office CODE"),
        ([], "exactly one of --school CODE or --office CODE"),
        (["--school", "THCS-PUNHI", "--role", "officer"], "--school codes are for principals"),
        (["--office", "PGD-DBD"], "--office needs --role officer, leader or admin"),
        (["--office", "PGD-DBD", "--role", "principal"], "--office needs --role officer, leader or admin"),
        (["--office", "PGD-DBD", "--role", "boss"], "(got boss)"),
        (["--school", "NOPE"], "no school has the code 'NOPE'"),
        (["--school", "pu nhi"], "did you mean THCS-PUNHI (Trường PTDTBT THCS Pú Nhi)?"),
        (["--office", "NOPE", "--role", "officer"], "no office has the code 'NOPE'"),
        (["--school", "THCS-PUNHI", "--expires", "0"], "--expires must be between 1 and 365 days"),
        (["--school", "THCS-PUNHI", "--out", "codes.xlsx"], "--out must name a .csv file"),
        (["--school", "THCS-PUNHI", "--out", "/nonexistent-dir/x/codes.csv"], "cannot write"),
    ],
)
def test_wrong_usage_exits_2_with_one_line(env: Env, args: list[str], message: str) -> None:
    result = env.cli("invites", *args)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert env.invites() == []  # nothing created, not even when the CSV could not be written


def test_a_count_out_of_range_is_refused(env: Env) -> None:
    result = env.cli("invites", "--school", "THCS-PUNHI", "--count", "0")

    assert result.exit_code == 2
    assert env.invites() == []
