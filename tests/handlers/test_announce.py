"""/announce through the console: scope, the preview's count, the outbox rows, receipts, bad input."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlmodel import func, select

from bot.app import App, open_app
from bot.config import load_settings
from bot.demo import seed_demo
from handlers.calendar import FrozenClock
from handlers.types import Incoming, Kind
from storage import queries as q
from storage.models import Announcement, AnnouncementReceipt, Draft, Outbox, PlanTheme, School
from tests.conftest import Chat
from tests.handlers.helpers import add_district, add_principal, add_school, add_submission, add_user
from tests.support import outbox_rows, outbox_statuses, until

TEXT = "Đề nghị các trường cử cán bộ dự tập huấn truyền thông ngày 20/11/2026 tại Phòng GD&ĐT."


def school(app: App, code: str) -> School:
    """A demo school by its code."""
    with app.db.session() as s:
        found = q.school_by_code(s, code)
        assert found is not None
        s.expunge(found)
        return found


def people(app: App) -> None:
    """A registered person at three more demo schools (two at Hoa Ban), and one at another district."""
    add_district(app, "PGD-KHAC")
    with app.db.session() as s:
        for code, who in (
            ("MN-HOABAN", "hb1"),
            ("MN-HOABAN", "hb2"),
            ("TH-THITRAN", "tt"),
            ("THTHCS-NAMAI", "nm"),
        ):
            found = q.school_by_code(s, code)
            assert found is not None
            add_principal(s, found, who, app.clock.now())
        other = q.office_by_code(s, "PGD-KHAC")
        assert other is not None
        far = add_school(s, "TH-XA", "Trường Tiểu học Xa", "TH", other.id)
        add_principal(s, far, "far", app.clock.now())


def press(chat: Chat, value: str, update_id: str) -> Incoming:
    """A button press replayed by its value (an old message's button, or another person's)."""
    user = chat.session.user_id
    return Incoming("console", user, user, Kind.CHOICE, choice=value, update_id=update_id)


async def compose(officer: Chat, text: str = TEXT, audience: str = "Tất cả các trường") -> None:
    """/announce, a new one, its text, no file, the schools: ends on the preview."""
    await officer.send("/announce")
    await officer.press("Soạn thông báo mới")
    await officer.send(text)
    await officer.press("Bỏ qua")
    await officer.press(audience)


def announce_rows(app: App) -> list[Outbox]:
    return outbox_rows(app, kind="announce")


def count(app: App, model: type) -> int:
    with app.db.session() as s:
        return int(s.exec(select(func.count()).select_from(model)).one())


async def test_an_announcement_reaches_every_person_of_the_schools_in_scope_once(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    people(demo)
    officer = chat_as("officer")
    await compose(officer)
    preview = officer.last.text
    assert TEXT in preview and "Phòng GD&ĐT huyện Điện Biên Đông (demo)" in preview
    assert "Sẽ gửi đến 4 trường (5 người nhận)" in preview  # Pú Nhi, Hoa Ban (2), Thị Trấn, Na Mai
    assert "1 trường chưa có tài khoản" in preview  # THCS Thị Trấn Điện Biên Đông
    assert [c.label for r in officer.batch for c in r.flat_choices()][:2] == [
        "📤 Gửi",
        "🚨 Gửi khẩn (cả giờ nghỉ)",
    ]
    send_button = officer.value_of("📤 Gửi")
    sent = await officer.press("📤 Gửi")
    assert "#1" in sent[0].text and "4 trường" in sent[0].text and "5 người nhận" in sent[0].text

    rows = announce_rows(demo)
    with demo.db.session() as s:
        far = q.get_user(s, "console", "far")
        assert far is not None
    assert len(rows) == 5 and far.id not in {r.user_id for r in rows}  # the other district hears nothing
    assert {(r.quiet, r.priority, r.period) for r in rows} == {(True, 10, "announce:1")}
    assert all(TEXT in r.payload["text"] and r.payload["choices"] == [[["✅ Đã nhận", "ar:1"]]] for r in rows)
    assert count(demo, AnnouncementReceipt) == 5

    again = await demo.dispatcher.handle(press(officer, send_button, "again"))
    assert "đã được gửi" in again[0].text
    assert len(announce_rows(demo)) == 5 and count(demo, Announcement) == 1  # never twice


async def test_confirmations_are_counted_and_the_sender_sees_who_has_not(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    people(demo)
    officer = chat_as("officer")
    await compose(officer)
    await officer.press("📤 Gửi")
    demo.outbox.start_sender("test")
    await until(lambda: outbox_statuses(demo)["sent"] == 5, "every message delivered", 30)
    await demo.outbox.stop_sender()

    principal = chat_as("principal")
    await principal.session.run([])  # the chat opens on the kept announcement
    assert TEXT in principal.text() and "THÔNG BÁO CỦA Phòng GD&ĐT" in principal.text()
    first = await demo.dispatcher.handle(press(principal, "ar:1", "c1"))
    second = await demo.dispatcher.handle(press(principal, "ar:1", "c2"))
    assert "đã nhận thông báo #1" in first[0].text
    assert "trước đó" in second[0].text
    hb = chat_as("hb1")
    await demo.dispatcher.handle(press(hb, "ar:1", "c3"))

    listing = await officer.send("/announce")
    assert "#1" in listing[0].text and "2/4 trường đã nhận" in listing[0].text
    detail = await officer.press("Xem thông báo #1")
    text = detail[0].text
    assert "Đã gửi: 5 tin" in text and "Đã nhận: 2/4 trường (2/5 người)" in text
    assert "2 trường chưa bấm Đã nhận" in text
    assert "Trường Tiểu học Thị Trấn" in text and "Trường TH&THCS Na Mai" in text
    assert "Pú Nhi" not in text and "Hoa Ban" not in text


async def test_quiet_hours_hold_a_plain_announcement_until_morning_but_not_an_urgent_one(
    tmp_path: Path, demo: App, chat_as: Callable[[str], Chat]
) -> None:
    clock = demo.clock
    assert isinstance(clock, FrozenClock)
    clock.set(datetime(2026, 11, 10, 21, 0))
    people(demo)
    officer = chat_as("officer")
    await compose(officer)
    assert "giờ nghỉ: thông báo sẽ được gửi lúc 07:00 11/11/2026" in officer.last.text
    plain = await officer.press("📤 Gửi")
    assert "sẽ được gửi lúc 07:00 11/11/2026" in plain[0].text

    clock.set(datetime(2026, 11, 11, 6, 30))  # still quiet hours, and the day before in UTC
    await compose(officer, "Thông báo khẩn: tạm dừng hoạt động ngoài trời do mưa lớn.")
    urgent = await officer.press("Gửi khẩn")
    assert "#2" in urgent[0].text and "giờ nghỉ" not in urgent[0].text
    rows = outbox_rows(demo, period="announce:2")
    assert {r.quiet for r in rows} == {False}
    assert (
        rows[0]
        .payload["text"]
        .startswith("🚨 THÔNG BÁO KHẨN CỦA Phòng GD&ĐT huyện Điện Biên Đông (demo) (ngày 11/11/2026)")
    )

    demo.outbox.start_sender("night")
    await until(lambda: outbox_statuses(demo)["sent"] == 5, "the urgent one delivered", 30)
    await demo.outbox.stop_sender()
    assert {r.status for r in outbox_rows(demo, period="announce:1")} == {"pending"}  # held overnight

    clock.set(datetime(2026, 11, 11, 7, 0))
    demo.outbox.start_sender("morning")
    await until(lambda: outbox_statuses(demo)["sent"] == 10, "the plain one delivered at 07:00", 30)
    await demo.outbox.stop_sender()


async def test_too_long_and_empty_messages_are_refused_and_nothing_changes(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    officer = chat_as("officer")
    await officer.send("/announce")
    await officer.press("Soạn thông báo mới")
    long = await officer.send("Thông báo " + "x" * 4990)
    assert "quá dài (5000 ký tự). Tối đa 3500 ký tự" in long[0].text
    empty = await officer.send("   ")
    assert "đang trống" in empty[0].text
    with demo.db.session() as s:
        draft = s.exec(select(Draft).where(Draft.form == "announce")).one()
        assert draft.step == "message" and not draft.answers.get("message")
    assert count(demo, Announcement) == 0 and announce_rows(demo) == []


async def test_a_choice_of_no_school_is_refused_and_the_draft_kept(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    officer = chat_as("officer")
    await compose(officer, audience="Theo cấp học")
    await officer.press("GDTX")  # no such school in the district
    await officer.press("Xong")
    assert "Không có trường nào có tài khoản" in officer.last.text
    refused = await officer.press("📤 Gửi")
    assert "Không có trường nào có tài khoản" in refused[0].text and "Sửa: Nơi nhận" in refused[0].text
    assert count(demo, Announcement) == 0 and announce_rows(demo) == []
    with demo.db.session() as s:
        assert s.exec(select(Draft).where(Draft.form == "announce")).one().mode == "review"


async def test_an_office_without_schools_is_told_so(demo: App, chat_as: Callable[[str], Chat]) -> None:
    add_district(demo, "PGD-RONG")
    add_user(demo, "lonely", "officer", "PGD-RONG", "Chị Huyện Rỗng")
    replies = await chat_as("lonely").send("/announce")
    assert replies[0].text.startswith("Phạm vi phụ trách chưa có trường nào.")
    assert count(demo, Announcement) == 0


async def test_levels_and_not_yet_sent_choose_the_schools(demo: App, chat_as: Callable[[str], Chat]) -> None:
    people(demo)
    officer = chat_as("officer")
    await compose(officer, audience="Theo cấp học")
    await officer.press("Tiểu học")
    await officer.press("Xong")
    assert "Sẽ gửi đến 2 trường (2 người nhận)" in officer.last.text  # Thị Trấn and Na Mai (TH&THCS)
    await officer.press("📤 Gửi")
    assert {r.school_id for r in announce_rows(demo)} == {
        school(demo, "TH-THITRAN").id,
        school(demo, "THTHCS-NAMAI").id,
    }

    with demo.db.session() as s:  # Pú Nhi has sent this month's article
        add_submission(
            s, "THCS-PUNHI", "article", {"title": "Bài"}, demo.clock.now(), "t-1", period="2026-11"
        )
    await compose(officer, audience="Các trường chưa nộp bài tháng 11/2026")
    assert "Nơi nhận: các trường chưa nộp bài viết tháng 11/2026" in officer.last.text
    assert "Sẽ gửi đến 3 trường (4 người nhận)" in officer.last.text
    await officer.press("📤 Gửi")
    assert school(demo, "THCS-PUNHI").id not in {r.school_id for r in outbox_rows(demo, period="announce:2")}


async def test_an_officer_limited_to_a_level_reaches_only_those_schools(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    people(demo)
    add_user(demo, "mn_officer", "officer", "PGD-DEMO", "Chị Mầm Non", levels="MN")
    officer = chat_as("mn_officer")
    await compose(officer)
    assert "Sẽ gửi đến 1 trường (2 người nhận)" in officer.last.text
    await officer.press("📤 Gửi")
    assert {r.school_id for r in announce_rows(demo)} == {school(demo, "MN-HOABAN").id}


async def test_another_offices_buttons_open_nothing(demo: App, chat_as: Callable[[str], Chat]) -> None:
    people(demo)
    officer = chat_as("officer")
    await compose(officer)
    await officer.press("📤 Gửi")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Anh Huyện Khác")
    outsider = chat_as("other_officer")
    seen = await demo.dispatcher.handle(press(outsider, "an:v:1", "o1"))
    assert "Không tìm thấy thông báo" in seen[0].text
    far = chat_as("far")  # a principal the announcement was not sent to
    confirmed = await demo.dispatcher.handle(press(far, "ar:1", "o2"))
    assert "Không tìm thấy thông báo" in confirmed[0].text
    principal = chat_as("principal")
    denied = await demo.dispatcher.handle(press(principal, "an:v:1", "o3"))
    assert denied[0].text == "Chức năng này không dành cho tài khoản này."
    with demo.db.session() as s:
        confirmed_rows = s.exec(select(AnnouncementReceipt).where(AnnouncementReceipt.confirmed_at != None))  # noqa: E711
        assert list(confirmed_rows) == []


async def test_a_pdf_goes_with_the_announcement(
    tmp_path: Path, demo: App, chat_as: Callable[[str], Chat]
) -> None:
    people(demo)
    pdf = tmp_path / "ke-hoach.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
    officer = chat_as("officer")
    await officer.send("/announce")
    await officer.press("Soạn thông báo mới")
    await officer.send(TEXT)
    got = await officer.send(f"/file {pdf}")
    assert "Đã nhận tệp" in got[0].text
    await officer.press("Tất cả các trường")
    assert "Kèm theo tệp đính kèm" in officer.last.text
    await officer.press("📤 Gửi")
    payload = announce_rows(demo)[0].payload
    assert payload["attachments"][0][0] == "document" and payload["attachments"][0][1] == "Tệp đính kèm 1"


async def test_the_months_themes_are_announced_with_one_button(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    people(demo)
    with demo.db.session() as s:
        office = q.office_by_code(s, "PGD-DEMO")
        assert office is not None
        for theme in ("Ngày Nhà giáo Việt Nam 20/11", "An toàn giao thông"):
            s.add(PlanTheme(office_id=office.id or 0, period="2026-11", theme=theme))
    officer = chat_as("officer")
    await officer.send("/announce")
    review = await officer.press("Thông báo chủ đề tháng 11/2026 (2 chủ đề)")
    text = review[0].text
    assert "1. Ngày Nhà giáo Việt Nam 20/11" in text and "2. An toàn giao thông" in text
    assert "23:59 ngày 15/11/2026" in text and "Sẽ gửi đến 4 trường" in text
    await officer.press("📤 Gửi")
    with demo.db.session() as s:
        row = s.exec(select(Announcement)).one()
        assert row.themes and row.period == "2026-11"
    menu = await officer.send("/announce")
    assert all("chủ đề" not in c.label for c in menu[0].flat_choices())
    again = await demo.dispatcher.handle(press(officer, "an:t", "t2"))
    assert "đã được thông báo" in again[0].text and count(demo, Announcement) == 1


async def test_help_lists_calendar_and_announce(demo: App, chat_as: Callable[[str], Chat]) -> None:
    officer = await chat_as("officer").send("/help")
    leader = await chat_as("leader").send("/help")
    principal = await chat_as("principal").send("/help")
    assert "/announce" in officer[0].text and "/calendar" in officer[0].text
    assert "/announce" in leader[0].text and "/calendar" in leader[0].text
    assert "/calendar" in principal[0].text and "/announce" not in principal[0].text


async def test_a_pause_holds_a_plain_announcement_until_it_ends(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    pause = {"name": "Nghỉ giữa kỳ", "start": "2026-11-09", "end": "2026-11-12"}
    settings = load_settings(
        None, database_url=database_url, media_dir=str(tmp_path / "media"), schedule={"pauses": [pause]}
    )
    with open_app(settings, clock) as app:
        with app.db.session() as s:
            seed_demo(s, clock.now())
        people(app)
        officer = Chat(app, "officer", "Anh Nguyễn Văn Minh")
        await compose(officer)
        assert "tạm dừng (Nghỉ giữa kỳ): thông báo sẽ được gửi lúc 07:00 13/11/2026" in officer.last.text
        sent = await officer.press("📤 Gửi")
        assert "sẽ được gửi lúc 07:00 13/11/2026" in sent[0].text
        assert {(r.quiet, r.status) for r in announce_rows(app)} == {(True, "pending")}
