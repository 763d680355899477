"""The parents' consent holds everywhere (issue #15 item 6): a pupil nominated without it is initials in
every reply to officers and leaders and in every export; the school sees the name; consent recorded
later lifts the rule."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from docx import Document
from openpyxl import load_workbook
from sqlmodel import select

from bot.app import App
from handlers.calendar import FrozenClock
from handlers.types import Incoming, Kind
from storage.models import Outbox, ReviewAction, Submission
from storage.text import fold, withhold_names
from tests.conftest import Chat
from tests.handlers.article_helpers import photo_files, write_article
from tests.handlers.helpers import fill_incident, inbox_texts
from tests.handlers.test_nomination import nominate

NAME = "Giàng A Páo"
DEEDS = (
    "Em Páo nhặt được ví của cô giáo và trả lại ngay. Páo học giỏi; GIÀNG A PÁO được cả lớp yêu quý, "
    "các bạn gọi em là pao. An toàn là trên hết, bình thường em đến lớp sớm."
)
TITLE = "Tấm gương em Giàng A Páo"
BODY = "Em giang a pao kể lại câu chuyện. Cả trường học tập A Páo."


def leaks(text: str) -> list[str]:
    """The student's name, or any part of it, with or without diacritics, in any case."""
    lowered, folded = text.lower(), fold(text)
    found = re.findall(r"\b(?:páo|giàng)\b", lowered) + re.findall(r"\bpao\b|\bgiang a\b", folded)
    return found


def xlsx_text(data: bytes) -> str:
    book = load_workbook(io.BytesIO(data))
    return "\n".join(str(c) for sheet in book for row in sheet.iter_rows(values_only=True) for c in row if c)


def docx_text(data: bytes) -> str:
    return "\n".join(p.text for p in Document(io.BytesIO(data)).paragraphs)


async def send_both(chat_as: Callable[[str], Chat], tmp_path: Path) -> None:
    """The school sends the nomination (no consent, one photo) and an article that names the pupil."""
    principal = chat_as("principal")
    await nominate(
        principal, tmp_path, role="Học sinh", name=NAME, consent="Chưa có", photos=1, stop_before="deeds"
    )
    await principal.send(DEEDS)
    await principal.send(f"/file {photo_files(tmp_path)['extra']}")
    await principal.press("Xong")
    await principal.press("Bỏ qua")
    await principal.press("Cả hai")
    await principal.send("Lò Thị Lan")
    await principal.send("0912345678")
    await principal.press("Gửi")
    await write_article(principal, photo_files(tmp_path), stop_before="title")
    await principal.send(TITLE)
    files = photo_files(tmp_path)
    for key in ("wide", "speaker", "closeup"):
        await principal.send(f"/file {files[key]}")
    await principal.send("05/11/2026, Sân trường")
    await principal.send("Em Páo kể chuyện; 320 học sinh")
    await principal.send("Sôi nổi")
    if "Số điện thoại hoặc email" in principal.last.text:
        await principal.send("0912 345 678")
    await principal.send(BODY)
    await principal.press("Gửi")


def rows(demo: App) -> dict[str, Submission]:
    with demo.db.session() as s:
        return {r.kind: r for r in s.exec(select(Submission))}


async def test_the_name_is_withheld_in_every_output_and_the_school_sees_it(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    await send_both(chat_as, tmp_path)
    sent = rows(demo)
    nomination, article = sent["nomination"].id, sent["article"].id
    assert sent["nomination"].answers["deeds"] == DEEDS  # stored whole: the rule is on the way out

    officer, leader = chat_as("officer"), chat_as("leader")
    await officer.send("/digest")
    await officer.send("/review")
    opened = await officer.press(f"Mở #{nomination}")
    assert "G.A.P." in opened[0].text and "Em G.A.P. nhặt được ví" in opened[0].text
    assert "An toàn là trên hết, bình thường em đến lớp sớm." in opened[0].text  # common words stay
    assert "1 ảnh không hiển thị vì chưa có sự đồng ý của cha mẹ học sinh" in opened[0].text
    assert "(bỏ qua)" not in opened[0].text.split("Ảnh minh chứng")[1].splitlines()[0]
    assert opened[0].attachments == ()
    await officer.send("/review")
    await officer.press(f"Mở #{article}")
    for number in (nomination, article):
        await officer.send("/review")
        await officer.press(f"Mở #{number}")
        await officer.press("Duyệt")
    await officer.send("/published")
    await officer.send("/find")
    await officer.send("/nominations")
    bundle = await officer.send("/bundle 11/2026")
    for words in ("/nominations", "/find", "/status pu nhi", "/status"):
        await leader.send(words)
    await leader.send("/find")
    await leader.press(f"Mở #{nomination}")
    export = await leader.send("/export 11/2026")

    for who, chat in (("officer", officer), ("leader", leader)):
        assert not leaks(chat.text()), (who, leaks(chat.text()))
    assert "G.A.P." in officer.text() and "G.A.P." in leader.text()
    assert "Tấm gương em G.A.P." in officer.text()  # the article's title, on every list

    outputs: dict[str, str] = {"export.xlsx": xlsx_text(Path(export[0].file_path).read_bytes())}
    with zipfile.ZipFile(bundle[0].file_path) as archive:
        for name in archive.namelist():
            outputs[name + " (its name)"] = name
            if name.endswith(".txt"):
                outputs[name] = archive.read(name).decode()
            elif name.endswith(".docx"):
                outputs[name] = docx_text(archive.read(name))
            elif name.endswith(".xlsx"):
                outputs[name] = xlsx_text(archive.read(name))
        assert not any(n.endswith(".jpg") and "Đề xuất" in n for n in archive.namelist())
    assert not {name: leaks(text) for name, text in outputs.items() if leaks(text)}
    assert any("Em G.A.P. nhặt được ví" in text for name, text in outputs.items() if name.endswith(".docx"))
    assert "Em G.A.P. nhặt được ví" in outputs["export.xlsx"]

    # The school itself: its notices and its list name the pupil.
    principal = chat_as("principal")
    told = [*inbox_texts(demo, "principal"), principal.text()]
    assert any(f'Đề xuất điển hình "{NAME}" đã được duyệt' in text for text in told)
    own = await principal.send("/nominations")
    assert NAME in own[0].text


async def test_consent_recorded_later_lifts_the_rule(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path, clock: FrozenClock
) -> None:
    await send_both(chat_as, tmp_path)
    nomination = rows(demo)["nomination"].id
    officer = chat_as("officer")
    await officer.send("/review")
    await officer.press(f"Mở #{nomination}")
    recorded = await officer.press("Ghi nhận cha mẹ đã đồng ý")
    assert f"Đã ghi nhận sự đồng ý của cha mẹ học sinh cho đề xuất #{nomination}" in recorded[0].text
    with demo.db.session() as s:
        row = s.get(Submission, nomination)
        action = s.exec(select(ReviewAction).where(ReviewAction.action == "consent")).one()
    assert row is not None
    assert row.answers["consent"] == "yes" and row.answers["publishable"] is True
    assert (row.version, row.status) == (1, "submitted")  # still waiting for review, same version
    assert action.created_at == clock.now() and action.user_id is not None
    assert any(
        "ghi nhận sự đồng ý" in t for t in [*inbox_texts(demo, "principal"), chat_as("principal").text()]
    )

    opened = await officer.press(f"Mở #{nomination}")
    assert "Em Páo nhặt được ví" in opened[0].text and len(opened[0].attachments) == 1
    assert "Ghi nhận đồng ý của cha mẹ học sinh: Anh Nguyễn Văn Minh" in opened[1].text
    assert not any("Ghi nhận cha mẹ" in c.label for c in opened[1].flat_choices())
    listing = await chat_as("leader").send("/nominations")
    assert f"{NAME} (Học sinh)" in listing[0].text
    stale = Incoming(
        "console", "officer", "officer", Kind.CHOICE, choice=f"rv:c:{nomination}:1", update_id="c2"
    )
    again = await demo.dispatcher.handle(stale)  # the button pressed again from an older message
    assert "đã có sự đồng ý" in again[0].text
    with demo.db.session() as s:
        assert len(s.exec(select(ReviewAction).where(ReviewAction.action == "consent")).all()) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Em Páo nhặt được ví.", "Em G.A.P. nhặt được ví."),
        ("Páo học giỏi, páo và PAO", "G.A.P. học giỏi, G.A.P. và G.A.P."),
        ("giang a pao, GIÀNG A PÁO, Giàng A Páo", "G.A.P., G.A.P., G.A.P."),
        ("Cô giảng bài cho A Páo.", "Cô giảng bài cho G.A.P."),
        ("Lớp 9A, nhóm A", "Lớp 9A, nhóm A"),
    ],
)
def test_a_name_that_is_no_common_word_is_withheld_anywhere(text: str, expected: str) -> None:
    assert withhold_names(text, [NAME]) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("An toàn là trên hết.", "An toàn là trên hết."),
        ("Bình thường em đến sớm; bình thường thôi.", "Bình thường em đến sớm; bình thường thôi."),
        ("Chúc các em bình an, các em an toàn.", "Chúc các em bình an, các em an toàn."),
        ("Hôm nay em An đến sớm.", "Hôm nay em N.B.A. đến sớm."),
        ("Bạn Bình An giúp cô.", "Bạn N.B.A. giúp cô."),
        ("nguyen binh an, NGUYỄN BÌNH AN.", "N.B.A., N.B.A."),
        ("Cô khen Bình. An toàn giao thông", "Cô khen N.B.A. An toàn giao thông"),
    ],
)
def test_a_name_that_is_a_common_word_only_where_it_names_the_student(text: str, expected: str) -> None:
    assert withhold_names(text, ["Nguyễn Bình An"]) == expected


async def test_find_by_a_withheld_name_finds_nothing_that_names_the_pupil(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    """The article's title names the pupil ("Tấm gương em Giàng A Páo"): searching the pupil's name (with
    or without accents, or its start) must not find it, or the search would tell who it is; the title's
    other words still find it, shown with the initials."""
    await send_both(chat_as, tmp_path)
    officer = chat_as("officer")
    for words in ("/find pao", "/find Páo", "/find giang a", "/find pa"):
        [found] = await officer.send(words)
        assert found.text.startswith("Không tìm thấy mục nào") and "Tấm gương" not in found.text, words
    [found] = await officer.send("/find tam guong")
    assert "Tấm gương em G.A.P." in found.text and not leaks(found.text)
    [found] = await officer.send("/find pu nhi")  # the school's name: both items, nothing leaked
    assert "Tấm gương em G.A.P." in found.text and not leaks(found.text)


async def test_an_incident_that_names_the_pupil_shows_the_office_only_initials(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    """The school raises an incident whose text names the pupil nominated without consent, then adds an
    update naming the pupil again: the officer's alert, the case and its messages carry only the
    initials; the school's own view of its case names the pupil."""
    await send_both(chat_as, tmp_path)
    principal, officer = chat_as("principal"), chat_as("officer")
    await fill_incident(principal, what="Một trang Facebook đăng ảnh em Giàng A Páo kèm lời lẽ xúc phạm.")
    await principal.press("Gửi")
    with demo.db.session() as s:
        alerts = [r.payload["text"] for r in s.exec(select(Outbox).where(Outbox.kind == "alert"))]
    assert alerts and not any(leaks(text) for text in alerts) and all("em G.A.P." in a for a in alerts)
    await principal.send("/incidents")
    await principal.press("Hồ sơ sự cố #1")
    await principal.press("Cập nhật sự cố")
    await principal.send("Đã gặp gia đình em Páo; bài đăng đã được gỡ.")
    await principal.press("Xong")  # no links
    await principal.press("Xong")  # no photos
    await principal.press("Gửi")
    with demo.db.session() as s:
        school = s.exec(select(Submission)).first()
        to_office = [
            r.payload.get("text", "")
            for r in s.exec(select(Outbox).where(Outbox.kind != "notice"))
            if r.user_id != (school.user_id if school else 0)
        ]
    assert any("gia đình em G.A.P." in text for text in to_office)  # the update reached the office...
    assert not [text for text in to_office if leaks(text)]  # ...with the initials only
    await officer.send("/incidents")
    case = await officer.press("Hồ sơ sự cố #1")
    assert "gia đình em G.A.P." in case[0].text and not leaks(case[0].text)
    await principal.send("/incidents")
    own = await principal.press("Hồ sơ sự cố #1")
    assert "gia đình em Páo" in own[0].text  # the school's own case, whole
