"""`schoolbot privacy export | erase` over a seeded district, through the real command line and SQLite file.

After an erase, every text and JSON column of every table and every file of the media folder are read
back: none holds the person's name, phone or chat ids outside the audit record.
"""

from __future__ import annotations

import json
import re
import sqlite3
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, create_engine

from storage.db import Database
from storage.media import MediaStore
from storage.models import (
    CancelledDraft,
    Draft,
    Inbox,
    Incident,
    IncidentMessage,
    LinkCode,
    MediaFile,
    Outbox,
    Received,
    ReviewAction,
    Submission,
    SubmissionVersion,
    User,
)
from tests.conftest import CliEnv
from tests.fakes.district import FIRST_CHAT, seed_wave
from tests.storage.test_postgres import pg_url_fixture  # noqa: F401  (fixture)

NAME = "Nguyễn Thị Hoa"
PHONE = "0912345678"
ZALO_ID = "zl-778899aabb"
OFFICER_NAME = "Lê Văn Tám"
NOMINEE_PHOTO = b"\x89PNG fake photo of " + NAME.encode()
ARTICLE_PHOTO = b"\x89PNG the school's festival"


@dataclass
class District:
    """The seeded district and the person whose data is asked for."""

    env: CliEnv
    principal: int  # the person's Telegram account
    zalo: int  # their Zalo account, linked
    article: int
    nomination: int  # another teacher's nomination naming the person, with a photo
    teacher: int
    school: str

    @property
    def media(self) -> Path:
        return self.env.root / "media"


def submission(kind: str, school_id: int, user_id: int, answers: dict[str, Any], token: str) -> Submission:
    now = datetime.now(UTC)
    return Submission(
        kind=kind,
        school_id=school_id,
        user_id=user_id,
        period="2026-11",
        status="pending",
        answers=answers,
        token=token,
        search=f"{token} nguyen thi hoa",
        created_at=now,
        updated_at=now,
        submitted_at=now,
    )


def photo(s: Any, store: MediaStore, data: bytes, name: str, when: datetime) -> dict[str, Any]:
    digest, path = store.save(data, ".png")
    row = MediaFile(
        channel="telegram",
        kind="photo",
        file_id=f"f-{digest[:8]}",
        sha256=digest,
        file_name=name,
        path=path,
        size=len(data),
        created_at=when,
    )
    s.add(row)
    s.flush()
    return {"media_id": row.id, "kind": "photo", "sha256": digest, "name": name}


@pytest.fixture(name="district")
def district_fixture(tmp_path: Path, migrated: Path) -> District:
    """The seeded district in the test's SQLite file."""
    return seed_district(CliEnv(tmp_path, migrated))


def seed_district(env: CliEnv) -> District:
    """Ten schools with their principals; the first principal is the person, with a Zalo account,
    a profile, an article, a draft, messages kept and sent, and a nomination naming her."""
    db = Database(env.url)
    now = datetime.now(UTC)
    store = MediaStore(env.root / "media")
    try:
        seeded = seed_wave(db, 10, now, districts=2)
        with db.session() as s:
            me = s.get(User, 1)
            assert me is not None and me.chat_id == str(FIRST_CHAT)
            me.full_name, me.phone, me.position = NAME, PHONE, "principal"
            school_id = me.school_id or 0
            zalo = User(
                channel="zalo",
                external_id=ZALO_ID,
                chat_id=ZALO_ID,
                display_name="Hiệu Trưởng",  # a title, not a name: other rows saying it stay
                role="principal",
                school_id=school_id,
                office_id=me.office_id,
                person_id=me.id,
                created_at=now,
            )
            me.person_id = me.id
            teacher = User(
                channel="telegram",
                external_id="6000001",
                chat_id="6000001",
                display_name="Trần Văn Bình",
                full_name="Trần Văn Bình",
                role="principal",
                school_id=school_id,
                office_id=me.office_id,
                created_at=now,
            )
            officer = User(
                channel="telegram",
                external_id="7000001",
                chat_id="7000001",
                full_name=OFFICER_NAME,
                display_name=OFFICER_NAME,
                role="officer",
                office_id=me.office_id,
                created_at=now,
            )
            s.add_all([me, zalo, teacher, officer])
            s.flush()
            assert zalo.id and teacher.id and officer.id and me.id
            shot = photo(s, store, ARTICLE_PHOTO, "le-hoi.png", now)
            article = submission("article", school_id, me.id, {"title": "Lễ hội", "photos": [shot]}, "a1")
            own = {
                "kind": "individual",
                "role": "teacher",
                "name": "Phạm Văn Đức",
                "deeds": "Thầy Đức dạy giỏi.",
                "contact_name": NAME,
                "contact_phone": PHONE,
            }
            mine = submission("nomination", school_id, me.id, own, "n1")
            face = photo(s, store, NOMINEE_PHOTO, "co-hoa.png", now)
            about_me = {
                "kind": "individual",
                "role": "manager",
                "name": "nguyen thi hoa",  # typed without diacritics: still her
                "deeds": f"Cô {NAME} (số {PHONE}) gắn bó với trường 20 năm.",
                "photos": [face],
                "contact_name": "Trần Văn Bình",
                "contact_phone": "0987654321",
            }
            theirs = submission("nomination", school_id, teacher.id, about_me, "n2")
            s.add_all([article, mine, theirs])
            s.flush()
            assert article.id and theirs.id
            s.add(SubmissionVersion(submission_id=theirs.id, version=1, answers=about_me, created_at=now))
            s.add(
                SubmissionVersion(
                    submission_id=article.id,
                    version=1,
                    answers=article.answers,
                    created_at=now,
                    user_id=me.id,
                )
            )
            s.add(
                ReviewAction(
                    submission_id=article.id,
                    user_id=officer.id,
                    action="return",
                    version=1,
                    note=f"Đề nghị cô {NAME} bổ sung ảnh.",
                    created_at=now,
                )
            )
            # An incident the teacher raised with her number to call back, and her update on the case.
            raised = submission("incident", school_id, teacher.id, {"what": "Bài đăng sai sự thật"}, "i1")
            s.add(raised)
            s.flush()
            assert raised.id
            case = Incident(
                submission_id=raised.id, school_id=school_id, severity="high", created_at=now, phone=PHONE
            )
            s.add(case)
            s.flush()
            assert case.id
            update_text = f"Cô {NAME} đã gặp phụ huynh; gọi {PHONE}."
            s.add(
                IncidentMessage(
                    incident_id=case.id, user_id=me.id, side="school", text=update_text, created_at=now
                )
            )
            drafted: dict[str, Any] = {"step": "x", "answers": {"note": "nháp"}, "created_at": now}
            s.add(Draft(user_id=me.id, form="report", token="d1", updated_at=now, **drafted))
            s.add(CancelledDraft(user_id=zalo.id, form="article", mode="fill", cancelled_at=now, **drafted))
            s.add(Inbox(user_id=me.id, payload={"text": f"Kính gửi cô {NAME}"}, created_at=now))
            s.add(LinkCode(code="LINK1", user_id=me.id, expires_at=now + timedelta(days=1)))
            s.add(
                Received(
                    channel="telegram",
                    key="telegram:99",
                    chat=str(FIRST_CHAT),
                    payload={"message": {"chat": {"id": FIRST_CHAT}, "text": NAME}},
                    received_at=now,
                )
            )
            messages = (
                (me, "Nhắc gửi bài tháng 11", "pending"),
                (officer, "Hiệu trưởng 3 trường đã gửi bài tháng 11", "sent"),
                (officer, f"Sự cố: {NAME}, gọi lại {PHONE[:4]} {PHONE[4:7]} {PHONE[7:]}", "sent"),
            )
            for step, (user, text, status) in enumerate(messages):
                assert user.id
                s.add(
                    Outbox(
                        channel="telegram",
                        user_id=user.id,
                        chat_id=user.chat_id,
                        kind="direct",
                        period=f"u{user.id}",
                        step=str(step),
                        payload={"text": text},
                        status=status,
                        not_before=now,
                        created_at=now,
                        updated_at=now,
                    )
                )
        assert seeded.school_ids[0] == school_id
        return District(
            env, me.id, zalo.id, article.id, theirs.id, teacher.id, "Trường Tiểu học Thử Tải 00000"
        )
    finally:
        db.dispose()


IDENTIFYING = [
    re.compile(re.escape(NAME), re.IGNORECASE),
    re.compile("nguyen thi hoa", re.IGNORECASE),
    re.compile(r"(?<!\d)(?:\+?84|0)?[\s.]?912[\s.]?345[\s.]?678(?!\d)"),
    re.compile(rf"(?<!\d){FIRST_CHAT}(?!\d)"),
    re.compile(re.escape(ZALO_ID)),
]


def found_in(text: str) -> list[str]:
    """The identifying forms this text holds."""
    return [p.pattern for p in IDENTIFYING if p.search(text)]


def scan_database(url: str) -> list[str]:
    """`table.column #row: pattern` for every cell of every table in the database (as reflected, not
    as the models say) but the audit record that holds the person's data; JSON read back, since
    it is stored with \\u escapes."""
    hits = []
    engine = create_engine(url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as conn:
            for table in tables.sorted_tables:
                if table.name == "privacyrequest":
                    continue
                for number, row in enumerate(conn.execute(table.select()).mappings()):
                    for column, value in row.items():
                        hits += [f"{table.name}.{column} #{number}: {p}" for p in found_in(as_text(value))]
    finally:
        engine.dispose()
    return hits


def as_text(value: Any) -> str:
    """A cell as text; JSON (a string on SQLite, decoded on PostgreSQL) both as stored and read back."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(("[", "{")):
        return value + json.dumps(json.loads(value), ensure_ascii=False)
    return value if isinstance(value, str) else ""


def scan_media(root: Path) -> list[str]:
    """Every file under the media folder whose name or bytes hold the person's data."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            hits += [
                f"{path.name}: {p}"
                for p in found_in(path.name + path.read_bytes().decode("utf-8", "replace"))
            ]
    return hits


def rows(env: CliEnv, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(env.root / "x.db") as conn:
        return list(conn.execute(sql))


def test_the_seeded_data_holds_the_person_before_anything(district: District) -> None:
    assert len(scan_database(district.env.url)) >= 12
    assert scan_media(district.media)


def test_export_gives_everything_held_and_records_only_counts(district: District, tmp_path: Path) -> None:
    out = tmp_path / "ra" / "hoa.zip"

    result = district.env.cli(
        "privacy", "export", "--person", "+84 912 345 678", "--out", str(out), "--asked-by", "đơn ngày 30/11"
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        f"{out}: person {district.principal}, 2 accounts, 1 messages kept, 1 messages sent to them, 2 drafts, 2 submissions"
    )
    with zipfile.ZipFile(out) as z:
        parts = {name: z.read(name) for name in z.namelist()}
    accounts = json.loads(parts["accounts.json"])
    assert sorted((a["channel"], a["chat_id"]) for a in accounts) == [
        ("telegram", str(FIRST_CHAT)),
        ("zalo", ZALO_ID),
    ]
    assert accounts[0]["full_name"] == NAME and accounts[0]["phone"] == PHONE
    assert json.loads(parts["messages_kept.json"])[0]["payload"]["text"] == f"Kính gửi cô {NAME}"
    [update] = json.loads(parts["incident_messages.json"])
    assert update["side"] == "school" and NAME in update["text"]
    assert {d["table"] for d in json.loads(parts["drafts.json"])} == {"Draft", "CancelledDraft"}
    assert {s["token"] for s in json.loads(parts["submissions.json"])} == {"a1", "n1"}
    assert len(json.loads(parts["submission_versions.json"])) == 1
    named = {n["token"]: n["named_as"] for n in json.loads(parts["nominations_naming_them.json"])}
    assert named == {"n1": "contact", "n2": "nominee"}
    assert sorted(v for k, v in parts.items() if k.startswith("media/")) == sorted(
        [ARTICLE_PHOTO, NOMINEE_PHOTO]
    )
    assert "name" in json.loads(parts["about.json"])["matched"]
    audit = rows(district.env, "SELECT kind, person, asked_by, counts FROM privacyrequest")
    assert [(k, p, a) for k, p, a, _ in audit] == [("export", district.principal, "đơn ngày 30/11")]
    assert not found_in(audit[0][3]) and json.loads(audit[0][3])["accounts"] == 2
    # Exporting changes nothing held.
    assert len(scan_database(district.env.url)) >= 12


def test_erase_leaves_no_identifying_data_outside_the_audit_record(
    district: District, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")

    result = district.env.cli(
        "privacy", "erase", "--person", str(district.zalo), "--asked-by", "Hiệu trưởng, đơn ngày 30/11"
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"person {district.principal} erased: ")
    left = scan_database(district.env.url)
    assert not left, "\n".join(left)
    assert scan_media(district.media) == []
    assert not any(found_in(r.getMessage()) for r in caplog.records)
    env = district.env
    role = f"Hiệu trưởng {district.school}"
    assert rows(
        env,
        f"SELECT display_name, full_name, phone, chat_id, blocked FROM user WHERE id = {district.principal}",
    ) == [(role, "", "", "", 1)]
    # What the office keeps stays, the person named by their role.
    assert rows(env, "SELECT token, user_id FROM submission ORDER BY token") == [
        ("a1", district.principal),
        ("i1", district.teacher),
        ("n1", district.principal),
        ("n2", district.teacher),
    ]
    [(update, phone)] = rows(env, "SELECT m.text, i.phone FROM incidentmessage m JOIN incident i")
    assert update.startswith(f"Cô {role} đã gặp phụ huynh") and phone == ""  # the case kept, her number gone
    answers = json.loads(rows(env, f"SELECT answers FROM submission WHERE id = {district.nomination}")[0][0])
    assert answers["name"] == "Cán bộ quản lý (đã xoá thông tin cá nhân)"
    assert answers["photos"] == [] and answers["photos_erased"] == 1
    assert role in answers["deeds"] and answers["contact_phone"] == "0987654321"
    note = rows(env, "SELECT note FROM reviewaction")[0][0]
    assert note == f"Đề nghị cô {role} bổ sung ảnh."
    # The article's photo is the school's record: kept; the nominee's photo is gone, its row noted.
    assert rows(env, "SELECT file_name, note, path = '' FROM mediafile ORDER BY id") == [
        ("le-hoi.png", "", 0),
        ("", "erased", 1),
    ]
    assert [p.read_bytes() for p in district.media.rglob("*.png")] == [ARTICLE_PHOTO]
    for table in ("draft", "cancelleddraft", "inbox", "linkcode", "received"):
        assert rows(env, f"SELECT count(*) FROM {table}") == [(0,)], table
    outbox = [
        (status, json.loads(payload))
        for status, payload in rows(env, "SELECT status, payload FROM outbox ORDER BY id")
    ]
    assert outbox == [
        ("cancelled", {}),
        ("sent", {"text": "Hiệu trưởng 3 trường đã gửi bài tháng 11"}),
        ("sent", {"text": f"Sự cố: {role}, gọi lại (đã xoá)"}),
    ]
    assert rows(env, "SELECT kind, person FROM privacyrequest") == [("erase", district.principal)]


def test_erasing_twice_says_so_and_changes_nothing(district: District) -> None:
    first = district.env.cli("privacy", "erase", "--person", PHONE)
    assert first.exit_code == 0, first.output
    before = rows(district.env, "SELECT * FROM user ORDER BY id")

    by_id = district.env.cli("privacy", "erase", "--person", str(district.principal))
    by_phone = district.env.cli("privacy", "erase", "--person", PHONE)

    assert by_id.exit_code == 0
    assert "was already erased on " in by_id.stdout and "nothing left to erase" in by_id.stdout
    assert by_phone.exit_code == 1
    assert (
        by_phone.output
        == "--person: no account has this phone number (an erased person's number is no longer held)\n"
    )
    assert rows(district.env, "SELECT * FROM user ORDER BY id") == before
    assert rows(district.env, "SELECT kind, counts FROM privacyrequest ORDER BY id")[1] == (
        "erase",
        '{"already_erased": 1}',
    )


@pytest.mark.parametrize(
    ("ref", "code", "said"),
    [
        ("9999", 1, "--person 9999: no account has this id"),
        (
            "0977000111",
            1,
            "--person: no account has this phone number (an erased person's number is no longer held)",
        ),
        ("cô Hoa", 2, "--person: expected an account id or a phone number"),
    ],
)
def test_an_unknown_person_is_one_clear_line(
    district: District, tmp_path: Path, ref: str, code: int, said: str
) -> None:
    before = scan_database(district.env.url)

    export = district.env.cli("privacy", "export", "--person", ref, "--out", str(tmp_path / "x.zip"))
    erase = district.env.cli("privacy", "erase", "--person", ref)

    for result in (export, erase):
        assert result.exit_code == code
        assert result.output == said + "\n"
    assert not (tmp_path / "x.zip").exists()
    assert rows(district.env, "SELECT count(*) FROM privacyrequest") == [(0,)]
    assert scan_database(district.env.url) == before


def test_erase_on_postgresql_leaves_nothing_either(pg_url: str, tmp_path: Path) -> None:
    env = CliEnv(tmp_path)
    env.url = pg_url
    district = seed_district(env)
    assert len(scan_database(pg_url)) >= 12

    result = env.cli("privacy", "erase", "--person", PHONE)

    assert result.exit_code == 0, result.output
    left = scan_database(pg_url)
    assert not left, "\n".join(left)
    assert scan_media(district.media) == []
    again = env.cli("privacy", "erase", "--person", str(district.principal))
    assert again.exit_code == 0 and "was already erased on " in again.stdout


def test_an_export_that_cannot_be_written_says_why_and_records_nothing(
    district: District, tmp_path: Path
) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")

    unwritable = district.env.cli(
        "privacy", "export", "--person", PHONE, "--out", str(tmp_path / "taken" / "x.zip")
    )
    not_zip = district.env.cli("privacy", "export", "--person", PHONE, "--out", str(tmp_path / "x.xlsx"))

    assert unwritable.exit_code == 1
    assert unwritable.output.startswith(f"cannot write {tmp_path / 'taken' / 'x.zip'}: ")
    assert not_zip.exit_code == 2 and not_zip.output == "--out must name a .zip file (got x.xlsx)\n"
    assert rows(district.env, "SELECT count(*) FROM privacyrequest") == [(0,)]
