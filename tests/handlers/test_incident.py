"""The incident alert: the first real form, end to end through the console channel."""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import col, func, select

from bot.app import App
from handlers.notify import ALERT, tell, tell_each
from handlers.types import Incoming, Kind, Reply
from storage import queries as q
from storage.models import Incident, IncidentAck, Outbox, Submission
from tests.conftest import Chat
from tests.handlers.helpers import (
    WHAT,
    add_district,
    add_user,
    fill_incident,
    inbox_texts,
    the_draft,
)


async def test_alert_reaches_every_officer_and_leader_in_scope_and_no_one_else(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    add_user(demo, "prov_officer", "officer", "SGD-DEMO", "Chị Sở Một")
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Anh Huyện Khác")
    principal = chat_as("principal")
    await fill_incident(principal)
    replies = await principal.press("Gửi")

    assert "#1" in replies[0].text and "3" in replies[0].text
    for who in ("officer", "leader", "prov_officer"):
        texts = inbox_texts(demo, who)
        assert len(texts) == 1, who
        assert "SỰ CỐ TRUYỀN THÔNG #1" in texts[0] and WHAT in texts[0]
        assert "Trường PTDTBT THCS Pú Nhi" in texts[0]
    assert inbox_texts(demo, "other_officer") == []
    with demo.db.session() as s:
        assert s.exec(select(func.count()).select_from(Submission)).one() == 1
        incident = s.exec(select(Incident)).one()
        assert incident.severity == "medium"
    assert the_draft(demo, "principal").mode == "sent"


async def test_officer_acknowledges_and_the_principal_sees_who(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")

    officer = chat_as("officer")
    await officer.session.run([])  # opening the chat shows the kept alert first
    assert "SỰ CỐ TRUYỀN THÔNG #1" in officer.text()
    replies = await officer.send("1")  # its only button: acknowledge
    assert "#1" in replies[0].text and "nắm thông tin" in replies[0].text
    again = await officer.send("/incidents")
    assert "Anh Nguyễn Văn Minh" in again[0].text

    acked = inbox_texts(demo, "principal")
    assert any("Anh Nguyễn Văn Minh" in t and "#1" in t for t in acked)
    with demo.db.session() as s:
        assert s.exec(select(func.count()).select_from(IncidentAck)).one() == 1

    principal2 = chat_as("principal")
    listing = await principal2.send("/incidents")
    assert "Anh Nguyễn Văn Minh" in principal2.text() and "#1" in listing[-1].text


async def test_acknowledging_twice_is_recorded_once(demo: App, chat_as: Callable[[str], Chat]) -> None:
    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")
    officer = chat_as("officer")
    await officer.send("/incidents")
    first = await officer.press("Đã nắm thông tin")
    assert "nắm thông tin" in first[0].text
    second = await demo.dispatcher.handle(_press(officer, "k:1", "x1"))
    assert "đã xác nhận sự cố #1" in second[0].text
    with demo.db.session() as s:
        assert s.exec(select(func.count()).select_from(IncidentAck)).one() == 1


async def test_officer_outside_scope_cannot_acknowledge(demo: App, chat_as: Callable[[str], Chat]) -> None:
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Anh Huyện Khác")
    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")
    outsider = chat_as("other_officer")
    replies = await demo.dispatcher.handle(_press(outsider, "k:1", "o1"))
    assert "Không tìm thấy" in replies[0].text
    listing = await outsider.send("/incidents")
    assert "Chưa có sự cố" in listing[0].text
    with demo.db.session() as s:
        assert s.exec(select(func.count()).select_from(IncidentAck)).one() == 0


async def test_no_registered_staff_tells_the_principal_to_phone(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    from sqlmodel import delete

    from storage.models import User

    with demo.db.session() as s:
        s.execute(delete(User).where(col(User.role).in_(["officer", "leader"])))
    principal = chat_as("principal")
    await fill_incident(principal)
    replies = await principal.press("Gửi")
    assert "gọi điện" in replies[0].text


def _press(chat: Chat, value: str, update_id: str) -> Incoming:
    from handlers.types import Incoming, Kind

    return Incoming(
        "console", chat.session.user_id, chat.session.user_id, Kind.CHOICE, choice=value, update_id=update_id
    )


def test_telling_several_at_once_queues_each_once_and_keeps_a_row_already_there(demo: App) -> None:
    """`tell_each` writes one row a person in one INSERT; a person whose row with that key exists keeps
    it (not written again), and every row to send, the old one included, is in the update's queue."""
    add_user(demo, "prov_officer", "officer", "SGD-DEMO", "Chị Sở Một")
    with demo.db.session() as s:
        found = [q.get_user(s, "console", who) for who in ("officer", "leader", "prov_officer")]
    people = [p for p in found if p is not None]
    assert len(people) == len(found)  # every one of them found
    msg = Incoming("console", "principal", "principal", Kind.TEXT)
    earlier = demo.dispatcher.context(msg, people[0])
    with demo.db.session() as s:
        tell(s, earlier, people[1], Reply("Tin cũ"), kind=ALERT, period="incident:99")
    ctx = demo.dispatcher.context(msg, people[0])
    with demo.db.session() as s:
        tell_each(
            s,
            ctx,
            [(p, Reply(f"Tin cho {p.display_name}")) for p in people],
            kind=ALERT,
            period="incident:99",
        )
    with demo.db.session() as s:
        rows = s.exec(select(Outbox).where(Outbox.period == "incident:99").order_by(col(Outbox.id))).all()
        texts = {row.user_id: row.payload["text"] for row in rows}
    assert len(rows) == 3 and sorted(ctx.queued) == [row.id for row in rows]
    assert earlier.queued[0] in ctx.queued
    assert people[1].id is not None and people[2].id is not None
    assert texts[people[1].id] == "Tin cũ"  # kept, not written again
    assert texts[people[2].id] == "Tin cho Chị Sở Một"
