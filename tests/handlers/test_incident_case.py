"""Incidents as cases (issue #17), through the console: the evidence and the callback phone, the case's
states, the conversation, the escalation on the injected clock, the figures, the scope rule, and a
crash between the school's update and its delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import col, select

from bot.app import App
from bot.config import Settings, load_settings
from bot.outbox import inbox_sender
from handlers.calendar import FrozenClock, Period
from handlers.leaders.reader import Where, office_where
from handlers.leaders.workbook import build_workbook
from handlers.types import Incoming, Kind, Media, Reply
from storage import queries as q
from storage.models import Incident, IncidentMessage, Outbox, User
from storage.scope import Scope, sized
from tests.conftest import Chat
from tests.handlers.helpers import (
    add_district,
    add_principal,
    add_submission,
    add_user,
    fill_incident,
    inbox_texts,
    the_draft,
)
from tests.media.samples import jpeg, write

OFFICER = "Anh Nguyễn Văn Minh"
GUIDE_1 = "Đề nghị nhà trường đăng thông tin chính thức về bữa ăn bán trú trên trang thông tin điện tử."
GUIDE_2 = "Đề nghị gửi kèm thực đơn tuần này và ảnh bữa ăn để Phòng GD&ĐT đối chiếu."
UPDATE = "Nhà trường đã đăng thông tin chính thức; phụ huynh đã gỡ bài."


@pytest.fixture(name="settings")
def settings_fixture(tmp_path: Path, database_url: str) -> Settings:
    """The incident's clock short: leaders hear after 10 minutes; a case is stale after 3 days."""
    return load_settings(
        None,
        database_url=database_url,
        media_dir=str(tmp_path / "media"),
        incident={"ack_minutes": 10, "open_days": 3},
    )


def press(user: str, value: str, update_id: str) -> Incoming:
    """A button press by its value, as a platform would deliver it."""
    return Incoming("console", user, user, Kind.CHOICE, choice=value, update_id=update_id)


def said(replies: list[Reply]) -> str:
    """Everything an update was answered with (kept messages come first)."""
    return "\n".join(r.text for r in replies)


def incident(app: App, number: int = 1) -> Incident:
    with app.db.session() as s:
        row = s.get(Incident, number)
        assert row is not None
        s.expunge(row)
        return row


def case_rows(app: App, external_id: str, kind: str) -> list[Outbox]:
    with app.db.session() as s:
        user = q.get_user(s, "console", external_id)
        assert user is not None
        rows = list(s.exec(select(Outbox).where(Outbox.user_id == user.id, Outbox.kind == kind)))
        for r in rows:
            s.expunge(r)
        return rows


async def raise_incident(chat: Chat, tmp_path: Path) -> None:
    """The principal files an incident with a link, a small screenshot and the callback phone."""
    await fill_incident(chat, stop_before="links")
    await chat.send("https://www.facebook.com/groups/phuhuynh/posts/123")
    await chat.press("Xong")
    shot = write(tmp_path, "man-hinh.jpg", jpeg(480, 320))  # far under 1280 px: a screenshot is fine
    got = await chat.send(f"/file {shot}")
    assert "Đã nhận 1 ảnh" in got[0].text
    await chat.press("Xong")
    await chat.send("Đã gặp phụ huynh")
    await chat.press("Nghiêm trọng")
    review = await chat.send("0912 345 678")
    assert "Số điện thoại gọi lại: 0912345678" in review[-1].text
    await chat.press("Gửi")


async def test_a_case_from_the_alert_to_closed(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    add_user(demo, "prov_officer", "officer", "SGD-DEMO", "Chị Sở Một")
    principal, officer = chat_as("principal"), chat_as("officer")
    Chat(demo, "bystander")  # holds the console sender: every message to the others is kept, readable

    await raise_incident(principal, tmp_path)

    alert = inbox_texts(demo, "officer")[0]
    assert "Thời gian xảy ra: 14:30 09/11/2026" in alert and "Báo lúc: 09:00 10/11/2026" in alert
    assert "0912345678" in alert and "https://www.facebook.com/groups/phuhuynh/posts/123" in alert
    await officer.send("/incidents")
    taken = await officer.press("Đã nắm thông tin")
    assert "đã nắm thông tin sự cố #1" in taken[0].text and "Đã tiếp nhận" in taken[1].text
    late = await demo.dispatcher.handle(press("leader", "k:1", "leader-ack"))
    assert late[-1].text == f"Sự cố #1 đã có người tiếp nhận: {OFFICER} (Chuyên viên truyền thông)."
    for other in (
        "leader",
        "prov_officer",
    ):  # their alerts now name the holder (a new message on the console)
        edits = [r for r in case_rows(demo, other, "alert-edit")]
        assert len(edits) == 1 and f"Đã tiếp nhận: {OFFICER}" in edits[0].payload["text"]
        assert [c[1] for row in edits[0].payload["choices"] for c in row] == ["ic:o:1"]
    assert case_rows(demo, "officer", "alert-edit") == []

    working = await officer.press("Đang xử lý")
    assert "Tình trạng: Đang xử lý" in working[0].text
    for guidance in (GUIDE_1, GUIDE_2):
        await officer.press("Trả lời trường")
        await officer.send(guidance)
        sent = await officer.press("Gửi")
        assert sent[0].text == "Đã gửi trả lời cho nhà trường về sự cố #1."

    principal = chat_as("principal")
    Chat(demo, "bystander")
    await principal.send("/incidents")
    await principal.press("Hồ sơ sự cố #1")
    await principal.press("Cập nhật sự cố")
    await principal.send(UPDATE)
    await principal.send("https://truongpunhi.edu.vn/thong-bao-ban-tru")
    await principal.press("Xong")
    await principal.press("Xong")
    told = await principal.press("Gửi")
    assert told[0].text == "Đã gửi cập nhật về sự cố #1 cho Phòng/Sở GD&ĐT."

    officer = chat_as("officer")
    Chat(demo, "bystander")
    await officer.send("/incidents")
    await officer.press("Hồ sơ sự cố #1")
    await officer.press("Đã xử lý")
    await officer.send("Đã đăng thông tin chính thức; phụ huynh gỡ bài và xin lỗi.")
    await officer.send("https://pgd.edu.vn/ket-qua-xu-ly")
    await officer.press("Gửi")
    closed = await officer.press("Đóng sự cố")
    assert closed[0].text == "Đã đóng sự cố #1. Nhà trường đã được thông báo."

    case = incident(demo)
    assert case.state == "closed" and case.result_link == "https://pgd.edu.vn/ket-qua-xu-ly"
    with demo.db.session() as s:
        said = [(m.side, m.text) for m in s.exec(select(IncidentMessage).order_by(col(IncidentMessage.id)))]
    assert said == [("office", GUIDE_1), ("office", GUIDE_2), ("school", UPDATE)]
    school_heard = inbox_texts(demo, "principal")
    for guidance in (GUIDE_1, GUIDE_2):
        assert sum(guidance in t for t in school_heard) == 1
    assert sum("đã xử lý xong" in t for t in school_heard) == 1
    assert sum("đã đóng" in t for t in school_heard) == 1
    office_heard = inbox_texts(demo, "officer")
    assert sum(UPDATE in t for t in office_heard) == 1
    assert not any(UPDATE in t for t in inbox_texts(demo, "leader"))  # the holder hears, not everyone
    with demo.db.session() as s:
        statuses = {r.status for r in s.exec(select(Outbox))}
    assert statuses == {"sent"}

    view = await officer.send("/incidents")
    await officer.press("Hồ sơ sự cố #1")
    text = officer.batch[0].text
    assert text.index(GUIDE_1) < text.index(GUIDE_2) < text.index(UPDATE)
    assert f"{OFFICER} (Phòng/Sở GD&ĐT)" in text and "Cô Lò Thị Lan (Nhà trường)" in text
    assert "Tình trạng: Đóng" in text and officer.batch[0].choices == ()
    assert "Đóng" in view[-1].text


async def test_bad_input_on_a_case_changes_nothing(demo: App, chat_as: Callable[[str], Chat]) -> None:
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Anh Huyện Khác")
    add_user(demo, "prov_officer", "officer", "SGD-DEMO", "Chị Sở Một")
    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")
    handle = demo.dispatcher.handle

    for n, value in enumerate(("k:1", "ic:w:1", "ic:c:1", "ic:g:1", "ic:r:1", "ic:o:1")):
        got = await handle(press("other_officer", value, f"out-{n}"))  # another district's officer
        assert said(got) == "Không tìm thấy sự cố này trong phạm vi phụ trách."
    assert incident(demo).state == "new" and incident(demo).holder_id is None

    early = await handle(press("officer", "ic:g:1", "early"))
    assert "Sự cố #1 chưa có người tiếp nhận" in said(early)

    # Two officers take it at the same moment: one wins, the other is told who has it.
    first, second = await asyncio.gather(
        handle(press("officer", "k:1", "race-a")), handle(press("prov_officer", "k:1", "race-b"))
    )
    answers = [said(first), said(second)]
    won = [t for t in answers if "đồng chí đã nắm thông tin sự cố #1" in t]
    lost = [t for t in answers if "Sự cố #1 đã có người tiếp nhận" in t]
    assert len(won) == 1 and len(lost) == 1
    holder = incident(demo).holder_id
    with demo.db.session() as s:
        winner = s.get(User, holder)
        assert winner is not None and winner.display_name in lost[0]

    no_result = await handle(press("officer", "ic:c:1", "close-early"))
    assert no_result[-1].text == "Chưa đóng được sự cố #1: cần ghi kết quả xử lý trước (bấm Đã xử lý)."
    assert incident(demo).state == "acked"

    result = await handle(press("officer", "ic:r:1", "result"))
    assert "Kết quả xử lý sự cố, ngắn gọn?" in result[-1].text
    officer = chat_as("officer")
    words = await officer.send("!!! ...")  # the result form refuses an answer without words
    assert "bằng chữ" in words[0].text
    assert incident(demo).state == "acked" and incident(demo).result == ""

    # Guidance and an update on a case that closed meanwhile are refused; nothing is kept or sent.
    reply_form = await handle(press("officer", "ic:g:1", "g-open"))
    assert "Nội dung trả lời" in reply_form[-1].text
    with demo.db.session() as s:
        assert q.move(s, 1, ("acked",), "resolved", result="Đã xử lý", resolved_at=demo.clock.now())
        assert q.move(s, 1, ("resolved",), "closed", closed_at=demo.clock.now())
    await officer.send("Đề nghị nhà trường theo dõi thêm.")
    refused_reply = await officer.press("Gửi")
    assert refused_reply[0].text == "Sự cố #1 đã đóng, không nhận thêm trao đổi hay thay đổi."
    late = await handle(press("principal", "ic:u:1", "u-late"))
    assert late[-1].text == "Sự cố #1 đã đóng, không nhận thêm trao đổi hay thay đổi."
    again = await handle(press("officer", "ic:c:1", "close-again"))
    assert again[-1].text == "Sự cố #1 đã đóng, không nhận thêm trao đổi hay thay đổi."
    with demo.db.session() as s:
        assert s.exec(select(IncidentMessage)).all() == []
    assert not any("theo dõi thêm" in t for t in inbox_texts(demo, "principal"))


async def test_bad_evidence_and_phone_are_refused_and_the_draft_kept(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    chat = chat_as("principal")
    await fill_incident(chat, stop_before="links")
    for bad in ("ftp://example.com/bai-dang", "facebook.com/bai-dang", "https://ok.vn/a javascript:alert(1)"):
        before = the_draft(demo, "principal").answers
        got = await chat.send(bad)
        assert "Đường link chưa đúng" in got[0].text and "http://" in got[0].text
        assert the_draft(demo, "principal").answers == before
    await chat.send("https://baomoi.vn/a.html https://vnexpress.net/b.html")
    assert the_draft(demo, "principal").answers["links"] == [
        "https://baomoi.vn/a.html",
        "https://vnexpress.net/b.html",
    ]
    await chat.press("Xong")

    pdf = write(tmp_path, "chup-man-hinh.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    before = the_draft(demo, "principal").answers
    got = await chat.send(f"/file {pdf}")
    assert "không phải là ảnh" in got[0].text
    assert the_draft(demo, "principal").answers == before

    shots = [write(tmp_path, f"anh-{i}.jpg", jpeg(300 + i, 200)) for i in range(30)]
    media = tuple(
        Media(
            kind="document",
            file_id=f"console:{p}",
            mime_type="image/jpeg",
            file_name=p.name,
            size=p.stat().st_size,
            local_path=str(p),
        )
        for p in shots
    )
    album = Incoming("console", "principal", "principal", Kind.MEDIA, media=media, update_id="thirty")
    got = await demo.dispatcher.handle(album)
    assert "Đã nhận 10 ảnh (tổng 10/10); 20 tệp không đạt." in got[0].text
    assert len(the_draft(demo, "principal").answers["photos"]) == 10
    more = await chat.send(f"/file {shots[0]}")
    assert "Đã đủ 10 tệp" in more[0].text
    await chat.press("Xong")
    await chat.send("Đã gặp phụ huynh")
    await chat.press("Nghiêm trọng")
    for bad in ("12345", "0123 456 789", "không có"):
        before = the_draft(demo, "principal").answers
        got = await chat.send(bad)
        assert "điện thoại" in got[0].text.lower()
        assert the_draft(demo, "principal").answers == before


async def test_the_callback_phone_comes_from_the_profile(demo: App, chat_as: Callable[[str], Chat]) -> None:
    with demo.db.session() as s:
        user = q.get_user(s, "console", "principal")
        assert user is not None
        user.phone = "+84912345678"
        s.add(user)
    chat = chat_as("principal")
    await fill_incident(chat)
    review = chat.batch[-1].text
    assert "Số điện thoại gọi lại: 0912345678" in review  # known, not asked; editable from the review
    await chat.press("Gửi")
    assert incident(demo).phone == "0912345678"


async def test_escalation_to_the_leaders_after_the_configured_minutes(
    demo: App, chat_as: Callable[[str], Chat], clock: FrozenClock
) -> None:
    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")
    clock.advance(minutes=9)
    demo.clockwork.sweep()
    assert [r.period for r in case_rows(demo, "leader", "alert")] == ["incident:1"]  # the alert only

    clock.advance(minutes=2)
    demo.clockwork.sweep()
    demo.clockwork.sweep()  # a second sweep makes nothing new
    late = [r for r in case_rows(demo, "leader", "alert") if r.period == "incident-late:1"]
    assert len(late) == 1 and late[0].priority == 0 and not late[0].quiet
    assert late[0].payload["text"].startswith("⏰ CHƯA AI TIẾP NHẬN sau 10 phút.")
    assert [r.period for r in case_rows(demo, "officer", "alert")] == ["incident:1"]

    # Taken after the escalation: the leader's escalated alert is edited too.
    await demo.dispatcher.handle(press("officer", "k:1", "ack"))
    edits = case_rows(demo, "leader", "alert-edit")
    assert {e.payload["edit_of"] for e in edits} == {r.id for r in case_rows(demo, "leader", "alert")}

    # Still open after incident.open_days: named in the leaders' /status and in the digest.
    clock.advance(days=3)
    leader = chat_as("leader")
    status = await leader.send("/status")
    assert "Sự cố còn mở quá 3 ngày (1): #1 Trường PTDTBT THCS Pú Nhi (Đã tiếp nhận)" in status[-1].text
    digest = await chat_as("officer").send("/digest")
    assert "Sự cố còn mở quá 3 ngày (1)" in digest[-1].text


async def test_a_case_taken_in_time_is_not_escalated(
    demo: App, chat_as: Callable[[str], Chat], clock: FrozenClock
) -> None:
    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")
    clock.advance(minutes=5)
    await demo.dispatcher.handle(press("officer", "k:1", "ack"))
    clock.advance(minutes=30)
    demo.clockwork.sweep()
    assert all(r.period == "incident:1" for r in case_rows(demo, "leader", "alert"))
    assert incident(demo).escalated_at is None


def seed_case(app: App, token: str, raised: datetime, ack: int | None, close: int | None) -> None:
    """A case raised at `raised`, taken `ack` and closed `close` minutes later (None: not yet)."""
    with app.db.session() as s:
        sub = add_submission(s, "THCS-PUNHI", "incident", {"severity": "low"}, raised, token)
        officer = q.get_user(s, "console", "officer")
        assert officer is not None
        state = "closed" if close is not None else "acked" if ack is not None else "new"
        s.add(
            Incident(
                submission_id=sub.id or 0,
                school_id=sub.school_id,
                severity="low",
                created_at=raised,
                state=state,
                holder_id=officer.id if ack is not None else None,
                acked_at=raised + timedelta(minutes=ack) if ack is not None else None,
                closed_at=raised + timedelta(minutes=close) if close is not None else None,
                result="Đã xử lý" if close is not None else "",
            )
        )


async def test_figures_on_a_seeded_month_computed_by_hand(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    nov = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    seed_case(demo, "n1", nov, ack=10, close=120)
    seed_case(demo, "n2", nov + timedelta(hours=5), ack=20, close=360)
    seed_case(demo, "n3", nov + timedelta(hours=9), ack=90, close=None)
    seed_case(demo, "o1", datetime(2026, 10, 20, 1, 0, tzinfo=UTC), ack=5, close=None)
    seed_case(demo, "o2", datetime(2026, 10, 21, 1, 0, tzinfo=UTC), ack=None, close=None)

    listing = await chat_as("officer").send("/incidents")
    text = listing[-1].text
    # November: acknowledged after 10, 20, 90 min -> median 20; closed after 120 and 360 min -> 240 = 4 h.
    assert (
        "Tháng 11/2026: 3 sự cố; thời gian tiếp nhận (trung vị): 20 phút; thời gian đóng (trung vị): 4 giờ."
        in text
    )
    # October: one acknowledged after 5 min, none closed.
    assert (
        "Tháng 10/2026: 2 sự cố; thời gian tiếp nhận (trung vị): 5 phút; thời gian đóng (trung vị): chưa có."
        in text
    )
    lines = [line for line in text.splitlines() if line.startswith("#")]
    assert [line.split(" ")[0] for line in lines] == ["#5", "#4", "#3", "#2", "#1"]  # open first, then closed
    assert all("Đóng" in line for line in lines[3:]) and not any("Đóng" in line for line in lines[:3])

    where = office_where(demo.db, "PGD-DEMO")
    assert where is not None
    path = tmp_path / "status.xlsx"
    build_workbook(
        demo.db, demo.clock, demo.settings, demo.catalog.translator("vi"), where, Period(2026, 11), path
    )
    sheet = load_workbook(path)["Sự cố"]
    rows = [[c.value for c in row] for row in sheet.iter_rows(min_row=3)]
    assert [r[1] for r in rows] == [4, 5, 1, 2, 3]  # oldest first
    assert [r[9] for r in rows] == [5, None, 10, 20, 90]  # minutes to take it
    assert [r[10] for r in rows] == [None, None, 2.0, 6.0, None]  # hours to close it


async def test_a_level_limited_officer_gets_every_incident_of_the_office(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    add_user(demo, "mn_officer", "officer", "PGD-DEMO", "Chị Mầm Non", levels="MN")
    with demo.db.session() as s:  # the preschool has joined, so the MN officer's /status has figures
        preschool = q.school_by_code(s, "MN-HOABAN")
        assert preschool is not None
        add_principal(s, preschool, "mn_principal", demo.clock.now() - timedelta(days=60))
    principal = chat_as("principal")
    await fill_incident(principal)  # a lower-secondary (THCS) school
    await principal.press("Gửi")

    assert any("SỰ CỐ TRUYỀN THÔNG #1" in t for t in inbox_texts(demo, "mn_officer"))
    mn = chat_as("mn_officer")
    listing = await mn.send("/incidents")
    assert "#1 · Trường PTDTBT THCS Pú Nhi" in listing[-1].text
    taken = await demo.dispatcher.handle(press("mn_officer", "k:1", "mn-ack"))
    assert "đã nắm thông tin sự cố #1" in taken[0].text
    status = await chat_as("mn_officer").send("/status")
    assert "Sự cố truyền thông trong tháng: 1" in status[-1].text
    with demo.db.session() as s:
        office = q.office_by_code(s, "PGD-DEMO")
        assert office is not None and office.id is not None
        where = Where(office, sized(s, Scope(office.id, ("MN",))))  # the MN officer's own scope
        s.expunge(office)
    path = tmp_path / "mn.xlsx"
    build_workbook(
        demo.db, demo.clock, demo.settings, demo.catalog.translator("vi"), where, Period(2026, 11), path
    )
    rows = list(load_workbook(path)["Sự cố"].iter_rows(min_row=3, values_only=True))
    assert [r[2] for r in rows] == ["Trường PTDTBT THCS Pú Nhi"]


async def test_a_crash_between_the_update_and_its_delivery_loses_nothing(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")
    await demo.dispatcher.handle(press("officer", "k:1", "ack"))
    principal = chat_as("principal")
    await principal.send("/incidents")
    await principal.press("Hồ sơ sự cố #1")
    await principal.press("Cập nhật sự cố")
    await principal.send(UPDATE)
    await principal.press("Xong")
    await principal.press("Xong")
    Chat(demo, "bystander")
    del demo.dispatcher.senders["console"]  # the process dies after the commit, before sending
    await principal.press("Gửi")

    rows = [r for r in case_rows(demo, "officer", "case")]
    assert len(rows) == 1 and rows[0].status == "pending"  # stored with the message, not yet sent
    with demo.db.session() as s:
        assert [m.text for m in s.exec(select(IncidentMessage))] == [UPDATE]
    assert not any(UPDATE in t for t in inbox_texts(demo, "officer"))

    demo.dispatcher.senders["console"] = inbox_sender(demo.db, demo.clock)  # the restarted process
    outbox = demo.outbox
    outbox.start_sender()
    try:
        for _ in range(200):
            if case_rows(demo, "officer", "case")[0].status == "sent":
                break
            await asyncio.sleep(0.02)
    finally:
        await outbox.stop_sender()
    assert case_rows(demo, "officer", "case")[0].status == "sent"
    assert sum(UPDATE in t for t in inbox_texts(demo, "officer")) == 1


async def test_guidance_goes_at_once_in_the_quiet_hours(
    demo: App, chat_as: Callable[[str], Chat], clock: FrozenClock
) -> None:
    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")
    await demo.dispatcher.handle(press("officer", "k:1", "ack"))
    clock.advance(hours=13)  # 22:00: reminders wait for the morning, a case's messages do not
    assert not demo.clockwork.outbox.calendar.can_send()
    officer = chat_as("officer")
    Chat(demo, "bystander")
    await demo.dispatcher.handle(press("officer", "ic:g:1", "g"))
    await officer.send(GUIDE_1)
    await officer.press("Gửi")
    [row] = case_rows(demo, "principal", "case")
    assert row.status == "sent" and row.sent_at == clock.now()
    assert sum(GUIDE_1 in t for t in inbox_texts(demo, "principal")) == 1
