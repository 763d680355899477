"""`schoolbot invites --office CODE --all-schools --letters FILE.docx`: the letters opened with python-docx,
their QR codes decoded, the codes redeemable, and every bad input refused before anything is made."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import zxingcpp
from docx import Document
from PIL import Image
from sqlmodel import select

from storage.db import Database
from storage.models import Invite, Office, School, User
from tests.bot.test_invites import TOKEN, Env, env_fixture  # noqa: F401
from tests.fakes.telegram_api import BOT_USERNAME, FakeBotAPI
from tests.fakes.telegram_api import TOKEN as FAKE_TOKEN


def pages(path: Path) -> list[list[str]]:
    """The document's paragraphs, split at page breaks."""
    out: list[list[str]] = [[]]
    for paragraph in Document(str(path)).paragraphs:
        if 'w:type="page"' in paragraph._p.xml:
            out.append([])
        elif paragraph.text:
            out[-1].append(paragraph.text)
    return out


def qr_links(path: Path) -> list[str]:
    """What each picture of the document decodes to, in page order."""
    doc = Document(str(path))
    found = []
    for blip in doc.element.body.iter("{http://schemas.openxmlformats.org/drawingml/2006/main}blip"):
        rel = blip.get("{http://schemas.openxmlformats.org/officeDocument/2006/relationships}embed")
        image = Image.open(io.BytesIO(doc.part.related_parts[rel].blob))
        (barcode,) = zxingcpp.read_barcodes(image)
        found.append(barcode.text)
    return found


def register_principal(env: Env, school_code: str) -> None:
    db = Database(env.db_url)
    try:
        with db.session() as s:
            school = s.exec(select(School).where(School.code == school_code)).one()
            s.add(User(channel="telegram", external_id="77", chat_id="77", display_name="Cô Lan",
                       role="principal", school_id=school.id, office_id=school.office_id,
                       created_at=datetime(2026, 11, 1, tzinfo=UTC), registered_at=datetime(2026, 11, 1, tzinfo=UTC)))  # fmt: skip
    finally:
        db.dispose()


def test_one_letter_per_school_with_its_qr_and_code(env: Env, tmp_path: Path) -> None:
    register_principal(env, "THCS-PUNHI")
    letters = tmp_path / "thu-moi.docx"

    result = env.cli("invites", "--office", "PGD-DBD", "--all-schools", "--letters", str(letters))

    assert result.exit_code == 0, result.output
    assert (
        "3 letter(s)" in result.stdout and "1 school(s) with a registered principal left out" in result.stdout
    )
    invites = {i.code: i for i in env.invites()}
    assert len(invites) == 3 and all(i.role == "principal" for i in invites.values())
    shown = pages(letters)
    assert len(shown) == 3
    names = ["Trường Mầm non Hoa Ban", "Trường TH&THCS Na Mai", "Trường Tiểu học Thị Trấn"]
    links = qr_links(letters)
    db = Database(env.db_url)
    with db.session() as s:
        school_of = {school.id: school.name for school in s.exec(select(School))}
    db.dispose()
    for page, link in zip(shown, links, strict=True):
        text = "\n".join(page)
        code = link.rsplit("=", 1)[1]
        assert link == f"https://t.me/demo_bot?start={code}"
        assert code in text and link in text  # the code for Zalo or typing, the link for a computer
        assert f"Kính gửi: Hiệu trưởng {school_of[invites[code].school_id]}" in text  # by role: no names
        assert "PHÒNG GD&ĐT HUYỆN ĐIỆN BIÊN ĐÔNG" in text and "Trân trọng" in text
        assert "Zalo" in text and "Thầy/Cô" in text
    assert sorted(school_of[invites[link.rsplit("=", 1)[1]].school_id] for link in links) == sorted(names)
    with (tmp_path / "thu-moi.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert {r["code"] for r in rows} == set(invites) and {r["link"] for r in rows} == set(links)
    assert not list(tmp_path.glob(".*.part"))

    again = env.cli("invites", "--office", "PGD-DBD", "--all-schools", "--letters", str(letters),
                    "--include-registered", "--levels", "THCS")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert len(pages(letters)) == 2 and len(env.invites()) == 5  # Pú Nhi and Na Mai (TH&THCS)


def test_the_username_from_getme_on_the_fake_bot_api(env: Env, tmp_path: Path) -> None:
    with FakeBotAPI() as api:
        env.telegram = {"token": TOKEN, "base_url": api.base_url}  # a token the platform refuses
        refused = env.cli(
            "invites", "--office", "SGD-DB", "--all-schools", "--letters", str(tmp_path / "l.docx")
        )
        assert refused.exit_code == 2 and "HTTP 401" in refused.stderr and "no codes" in refused.stderr
        assert env.invites() == [] and not (tmp_path / "l.docx").exists()
        env.telegram = {"token": FAKE_TOKEN, "base_url": api.base_url}
        result = env.cli(
            "invites", "--office", "SGD-DB", "--all-schools", "--letters", str(tmp_path / "l.docx")
        )
    assert result.exit_code == 0, result.output
    assert len(pages(tmp_path / "l.docx")) == 5  # the province's own school and its district's four
    assert all(
        link.startswith(f"https://t.me/{BOT_USERNAME}?start=") for link in qr_links(tmp_path / "l.docx")
    )
    assert FAKE_TOKEN not in result.output and TOKEN not in refused.output


def test_nothing_is_made_without_a_link_or_a_school(env: Env, tmp_path: Path) -> None:
    letters = tmp_path / "l.docx"
    env.telegram = {}
    no_bot = env.cli("invites", "--office", "PGD-DBD", "--all-schools", "--letters", str(letters))
    assert no_bot.exit_code == 2 and len(no_bot.stderr.strip().splitlines()) == 1
    assert "telegram.username" in no_bot.stderr and "no codes" in no_bot.stderr

    env.telegram = {"username": "demo_bot"}
    db = Database(env.db_url)
    with db.session() as s:
        s.add(Office(code="PGD-TRONG", name="Phòng GD&ĐT mới", kind="district"))
    db.dispose()
    empty = env.cli("invites", "--office", "PGD-TRONG", "--all-schools", "--letters", str(letters))
    assert empty.exit_code == 1 and empty.stdout.strip() == (
        "PGD-TRONG has no schools: no letters written (schoolbot schools import)"
    )
    for args, message in [
        (["--office", "PGD-DBD", "--all-schools", "--letters", str(tmp_path / "l.pdf")], ".docx"),
        (["--office", "PGD-DBD", "--all-schools", "--letters", str(letters), "--levels", "ABC"], "--levels"),
        (["--office", "NOPE", "--all-schools", "--letters", str(letters)], "no office"),
        (["--office", "PGD-DBD", "--letters", str(letters)], "--all-schools"),
        (["--school", "THCS-PUNHI", "--all-schools", "--letters", str(letters)], "--all-schools"),
        (
            ["--office", "PGD-DBD", "--all-schools", "--letters", str(letters), "--role", "officer"],
            "--all-schools",
        ),
    ]:
        result = env.cli("invites", *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert env.invites() == [] and not letters.exists()


def test_a_letter_file_that_cannot_be_written_keeps_no_codes(env: Env, tmp_path: Path) -> None:
    letters = tmp_path / "no-such-folder" / "l.docx"
    result = env.cli("invites", "--office", "PGD-DBD", "--all-schools", "--letters", str(letters))
    assert result.exit_code == 2 and "cannot write" in result.stderr
    assert env.invites() == []


def test_a_letter_code_registers_its_school(env: Env, tmp_path: Path) -> None:
    from bot.config import load_settings
    from storage import queries as q

    letters = tmp_path / "l.docx"
    assert (
        env.cli("invites", "--office", "PGD-DBD", "--all-schools", "--letters", str(letters)).exit_code == 0
    )
    code = qr_links(letters)[0].rsplit("=", 1)[1]
    db = Database(load_settings(None, database_url=env.db_url).database_url)
    with db.session() as s:
        user = User(channel="zalo", external_id="z1", chat_id="z1", created_at=datetime.now(UTC))
        s.add(user)
        s.flush()
        now = datetime.now(UTC)
        from datetime import timedelta

        assert q.redeem_invite(s, user, code, now, 5, timedelta(minutes=15)) is q.Redeem.OK
        invite = s.exec(select(Invite).where(Invite.code == code)).one()
        assert user.role == "principal" and user.school_id == invite.school_id
    db.dispose()


def test_two_hundred_schools_make_one_file_of_two_hundred_pages(env: Env, tmp_path: Path) -> None:
    """1,500 is measured in bench/letters_bench.py; 200 here keeps the suite quick."""
    db = Database(env.db_url)
    with db.session() as s:
        office = Office(code="SGD-LON", name="Sở GD&ĐT tỉnh Lớn", kind="province")
        s.add(office)
        s.flush()
        for n in range(200):
            name = f"Trường Tiểu học Số {n:03d}"
            s.add(School(code=f"TH-{n:03d}", name=name, name_folded=name.lower(), level="TH",
                         office_id=office.id or 0))  # fmt: skip
    db.dispose()
    letters = tmp_path / "l.docx"

    result = env.cli("invites", "--office", "SGD-LON", "--all-schools", "--letters", str(letters))

    assert result.exit_code == 0, result.output
    shown = pages(letters)
    assert len(shown) == 200 and len(env.invites()) == 200
    links = qr_links(letters)
    with (tmp_path / "l.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [r["link"] for r in rows] == links  # page n's QR code is row n's link
    assert all(r["target"].split(" – ")[1] in "\n".join(page) for r, page in zip(rows, shown, strict=True))
