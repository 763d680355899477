"""People, not nicknames (#16 item 3): the profile asked at registration and by /profile, the one
display rule wherever the office reads who did something, several accounts per school, and /people
(and `schoolbot people`) removing a person who has left."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.app import App
from bot.demo import seed_demo
from handlers.leaders import rollup
from handlers.types import Incoming, Kind
from storage import queries as q
from storage import stats
from storage.db import Database
from storage.models import Draft, Inbox, Outbox, School, Submission, User
from storage.scope import Scope, in_scope
from tests.conftest import Chat, CliEnv
from tests.handlers.article_helpers import photo_files, write_article
from tests.handlers.helpers import add_district, add_user, fill_incident
from tests.handlers.test_registration import make_code, t, user_row

SCHOOL = "Trường PTDTBT THCS Pú Nhi"
LAN = "Nguyễn Thị Lan"
HOA = "Lò Thị Hoa"


def profile_draft(app: App, external_id: str) -> tuple[object, ...] | None:
    with app.db.session() as s:
        user = q.get_user(s, "console", external_id)
        assert user is not None
        draft = q.get_draft(s, user.id or 0, "profile")
    return None if draft is None else (draft.step, draft.mode, dict(draft.answers), draft.version)


async def register(
    app: App, external_id: str, name: str, position: str = "Hiệu trưởng", phone: str = ""
) -> Chat:
    """A new school account through the chat: the code, then the whole profile."""
    chat = Chat(app, external_id, f"nick {external_id}")
    await chat.send(f"/start {make_code(app)}")
    await chat.send(name)
    await chat.press(position)
    if phone:
        await chat.send(phone)
    else:
        await chat.press("Bỏ qua")
    saved = await chat.press("Gửi")
    assert saved[0].text.startswith("Đã lưu hồ sơ")
    return chat


def waiting_for(app: App, external_id: str) -> int:
    """Outbox rows still pending and messages kept for a console user."""
    with app.db.session() as s:
        user = q.get_user(s, "console", external_id)
        assert user is not None
        pending = s.exec(select(Outbox).where(Outbox.user_id == user.id, Outbox.status == "pending")).all()
        kept = s.exec(select(Inbox).where(Inbox.user_id == user.id)).all()
    return len(pending) + len(kept)


def link_on_zalo(app: App, external_id: str) -> None:
    """The console user's same person on Zalo, as /link leaves them: one person, two accounts."""
    with app.db.session() as s:
        user = q.get_user(s, "console", external_id)
        assert user is not None
        user.person_id = user.id
        s.add(user)
        s.add(
            User(
                channel="zalo",
                external_id=f"z-{external_id}",
                chat_id=f"z-{external_id}",
                role=user.role,
                school_id=user.school_id,
                office_id=user.office_id,
                person_id=user.id,
                created_at=app.clock.now(),
            )
        )


async def hoa_sends_an_article(app: App, tmp_path: Path) -> Chat:
    """A second account of Pú Nhi, its communications staff, who sends the month's article."""
    hoa = await register(app, "hoa", HOA, "Cán bộ phụ trách truyền thông")
    await write_article(hoa, photo_files(tmp_path))
    await hoa.press("Gửi")
    return hoa


# ---- the profile at registration --------------------------------------------------------------------


async def test_registration_asks_name_position_and_phone_one_at_a_time(demo: App) -> None:
    chat = Chat(demo, "newuser", "lan_nick_99")

    first = await chat.send(f"/start {make_code(demo)}")
    assert first[0].text == t(demo)("reg.ok.principal")
    assert "Bước 1/3" in first[1].text and "Họ và tên đầy đủ?" in first[1].text
    position = await chat.send("  Nguyễn   Thị Lan ")
    assert "Bước 2/3" in position[0].text and "Chức vụ tại trường?" in position[0].text
    assert [c.label for c in position[0].flat_choices()][:3] == [
        "Hiệu trưởng",
        "Phó hiệu trưởng",
        "Cán bộ phụ trách truyền thông",
    ]
    phone = await chat.press("Phó hiệu trưởng")
    assert "Bước 3/3" in phone[0].text and "Bỏ qua" in [
        c.label.split(" ", 1)[-1] for c in phone[0].flat_choices()
    ]
    review = await chat.send("0912 345 678")
    assert f"Họ và tên: {LAN}" in review[0].text and "Chức vụ: Phó hiệu trưởng" in review[0].text
    saved = await chat.press("Gửi")

    assert saved[0].text == f"Đã lưu hồ sơ: {LAN} (Phó hiệu trưởng)."
    assert saved[1].text.startswith(f"Phó hiệu trưởng – {SCHOOL}")  # the home screen
    user = user_row(demo, "newuser")
    assert user is not None
    assert (user.full_name, user.position, user.phone, user.display_name) == (
        LAN,
        "vice",
        "+84912345678",
        "lan_nick_99",
    )
    whoami = await chat.send("/whoami")
    assert whoami[0].text == f"Tài khoản: Phó hiệu trưởng – {SCHOOL}."


async def test_an_officer_gives_a_name_and_a_phone_no_school_position(demo: App) -> None:
    chat = Chat(demo, "newofficer", "minh")
    code = make_code(demo, role="officer", office="PGD-DEMO")

    await chat.send(f"/start {code}")
    phone = await chat.send("Trần Văn Minh")
    assert "Bước 2/2" in phone[0].text and "Số điện thoại" in phone[0].text
    await chat.press("Bỏ qua")
    saved = await chat.press("Gửi")

    assert saved[0].text == "Đã lưu hồ sơ: Trần Văn Minh."
    user = user_row(demo, "newofficer")
    assert user is not None and (user.full_name, user.position, user.phone) == ("Trần Văn Minh", "", "")


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("0912345678", "Vui lòng nhập tên bằng chữ"),  # a name of digits
        ("Nguyễn " + "a" * 293, "Câu trả lời quá dài (300 ký tự). Tối đa 120 ký tự."),  # 300 characters
        ("   ", "Câu trả lời đang trống"),  # empty
        ("!!! ???", "Vui lòng trả lời bằng chữ"),  # symbols only
    ],
)
async def test_a_bad_name_is_answered_and_asked_again_nothing_lost(demo: App, typed: str, said: str) -> None:
    chat = Chat(demo, "newuser")
    await chat.send(f"/start {make_code(demo)}")
    before = profile_draft(demo, "newuser")

    replies = await chat.send(typed)

    assert said in replies[0].text.replace("\n", " ") or said.split(" (")[0] in replies[0].text
    assert "Họ và tên đầy đủ?" in replies[0].text  # asked again
    assert profile_draft(demo, "newuser") == before
    user = user_row(demo, "newuser")
    assert user is not None and user.role == "principal" and user.full_name == ""  # registered, no name yet
    await chat.send(LAN)
    assert "Chức vụ tại trường?" in chat.last.text


@pytest.mark.parametrize("typed", ["12345", "0123 456 789 000", "+1 202 555 0100", "số của tôi"])
async def test_a_bad_phone_is_answered_and_asked_again(demo: App, typed: str) -> None:
    chat = Chat(demo, "newuser")
    await chat.send(f"/start {make_code(demo)}")
    await chat.send(LAN)
    await chat.press("Hiệu trưởng")
    before = profile_draft(demo, "newuser")

    replies = await chat.send(typed)

    assert replies[0].text.startswith(t(demo)("error.bad_phone"))
    assert "Số điện thoại liên hệ" in replies[0].text
    assert profile_draft(demo, "newuser") == before


async def test_a_position_must_be_one_of_the_three(demo: App) -> None:
    chat = Chat(demo, "newuser")
    await chat.send(f"/start {make_code(demo)}")
    await chat.send(LAN)
    before = profile_draft(demo, "newuser")

    replies = await chat.send("Tổng phụ trách")

    assert replies[0].text.startswith(t(demo)("error.pick_option"))
    assert profile_draft(demo, "newuser") == before


# ---- /profile ----------------------------------------------------------------------------------------


async def test_profile_shows_what_is_on_file_and_changes_one_answer(demo: App) -> None:
    chat = await register(demo, "lan", LAN, "Hiệu trưởng", "0912345678")

    shown = await chat.send("/profile")
    assert f"Họ và tên: {LAN}" in shown[0].text and "Chức vụ: Hiệu trưởng" in shown[0].text
    assert "Số điện thoại: 0912345678" in shown[0].text
    asked = await chat.press("Sửa: Chức vụ")
    assert "Chức vụ tại trường?" in asked[0].text
    await chat.press("Cán bộ phụ trách truyền thông")
    await chat.press("Sửa: Số điện thoại")
    await chat.send("+84 987 654 321")
    saved = await chat.press("Gửi")

    assert saved[0].text == f"Đã lưu hồ sơ: {LAN} (Cán bộ phụ trách truyền thông)."
    user = user_row(demo, "lan")
    assert user is not None and (user.position, user.phone) == ("media", "+84987654321")


async def test_profile_of_an_account_without_a_name_asks_it(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    principal = chat_as("principal")  # the demo's principal never gave a profile

    replies = await principal.send("/profile")

    assert "Bước 1/3" in replies[0].text and "Họ và tên đầy đủ?" in replies[0].text


async def test_a_profile_is_written_on_every_linked_account(demo: App) -> None:
    chat = await register(demo, "lan", LAN)
    link_on_zalo(demo, "lan")

    await chat.send("/profile")
    await chat.press("Sửa: Họ và tên")
    await chat.send("Nguyễn Thị Lan Anh")
    await chat.press("Gửi")

    with demo.db.session() as s:
        names = {u.channel: u.full_name for u in s.exec(select(User).where(col(User.person_id).is_not(None)))}
    assert names == {"console": "Nguyễn Thị Lan Anh", "zalo": "Nguyễn Thị Lan Anh"}


# ---- the one display rule ---------------------------------------------------------------------------


async def test_the_incident_alert_and_its_acknowledgement_name_people_not_nicknames(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    lan = await register(demo, "lan", LAN, "Hiệu trưởng")
    officer = chat_as("officer")
    await officer.send("/profile")
    await officer.send("Nguyễn Văn Minh")
    await officer.press("Bỏ qua")
    await officer.press("Gửi")

    await fill_incident(lan)
    sent = await lan.press("Gửi")

    assert "Nguyễn Văn Minh" in sent[0].text  # who was alerted
    with demo.db.session() as s:
        alerts = list(s.exec(select(Outbox).where(Outbox.kind == "alert")))
    assert alerts and all(f"Người báo: {LAN} (Hiệu trưởng)" in a.payload["text"] for a in alerts)
    assert all("nick lan" not in a.payload["text"] for a in alerts)
    await officer.send("/incidents")
    await officer.press("Hồ sơ sự cố #1")
    await officer.press("Đã nắm thông tin")
    with demo.db.session() as s:
        notices = [r.payload["text"] for r in s.exec(select(Outbox).where(Outbox.kind == "notice"))]
    assert any("Nguyễn Văn Minh (Chuyên viên truyền thông) đã nắm thông tin sự cố #1" in n for n in notices)
    listed = await officer.send("/incidents")
    assert "Đã tiếp nhận · Nguyễn Văn Minh (Chuyên viên truyền thông)" in listed[0].text


async def test_several_accounts_per_school_each_submission_shows_its_sender(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    await hoa_sends_an_article(demo, tmp_path)
    officer = chat_as("officer")

    queue = await officer.send("/digest")
    opened = await officer.send("/review")
    shown = await officer.press("Mở #1")

    assert f"{HOA} (Cán bộ phụ trách truyền thông)" in queue[0].text  # the digest's line
    assert "Mở #1" in next(c.label for r in opened for c in r.flat_choices())
    assert f"Người gửi: {HOA} (Cán bộ phụ trách truyền thông)" in shown[0].text
    assert f"{HOA} (Cán bộ phụ trách truyền thông)" in shown[-1].text  # the history: sent by
    with demo.db.session() as s:
        row = s.exec(select(Submission)).one()
        sender = s.get(User, row.user_id)
    assert sender is not None and sender.external_id == "hoa"
    card = await chat_as("leader").send("/status Pú Nhi")
    assert f"{HOA} (Cán bộ phụ trách truyền thông)" in card[0].text and "Cô Lò Thị Lan" in card[0].text


# ---- /people and removal ----------------------------------------------------------------------------


async def test_an_officer_removes_a_person_who_left_whose_access_ends_and_whose_work_stays(
    demo: App, chat_as: Callable[[str], Chat], tmp_path: Path
) -> None:
    hoa = await hoa_sends_an_article(demo, tmp_path)
    officer = chat_as("officer")
    await officer.send("/review")
    await officer.press("Mở #1")
    await officer.press("Duyệt")  # the school is told: a notice waits for Hoa
    assert waiting_for(demo, "hoa") > 0

    listed = await officer.send("/people Pú Nhi")
    assert listed[0].text.startswith(f"Tài khoản của {SCHOOL} (2):")
    assert f"{HOA} (Cán bộ phụ trách truyền thông) · dòng lệnh · từ" in listed[0].text
    asked = await officer.press(f"Xoá: {HOA}")
    assert asked[0].text.startswith(f"Xoá {HOA} (Cán bộ phụ trách truyền thông) khỏi danh sách")
    assert "tài khoản cuối cùng" not in asked[0].text
    done = await officer.press("✔️ Xoá")

    assert done[0].text.startswith(f"Đã xoá {HOA} (Cán bộ phụ trách truyền thông)")
    assert f"Tài khoản của {SCHOOL} (1):" in done[0].text
    after = await hoa.send("/article")
    assert [r.text for r in after] == [t(demo)("reg.how")]
    free = await hoa.send("xin chào")
    assert [r.text for r in free] == [t(demo)("reg.how")]
    user = user_row(demo, "hoa")
    assert user is not None and (user.role, user.school_id, user.full_name) == (None, None, HOA)
    assert waiting_for(demo, "hoa") == 0 and waiting_for(demo, "principal") > 0  # only Hoa's dropped
    shown = await demo.dispatcher.handle(  # the approved article, opened again (as from /find)
        Incoming("console", "officer", "officer", Kind.CHOICE, choice="o:1", update_id="again")
    )
    assert f"Người gửi: {HOA} (Cán bộ phụ trách truyền thông)" in shown[0].text


async def test_removing_the_last_principal_warns_and_the_school_counts_as_not_registered(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    officer = chat_as("officer")
    with demo.db.session() as s:
        office = q.office_by_code(s, "PGD-DEMO")
        assert office is not None
        scope = Scope(office.id or 0)
        before = stats.unregistered_count(s, scope, demo.clock.now() + timedelta(days=1))
        invited = [x.code for x in q.schools_to_invite(s, in_scope(scope), include_registered=False)]
        assert "THCS-PUNHI" not in invited

    rollup.refresh(demo.db, demo.clock)  # the chart's earlier months, stored
    with demo.db.session() as s:
        assert stats.stored_months(s)
    await officer.send("/people THCS-PUNHI")
    asked = await officer.press("Xoá: Cô Lò Thị Lan")
    done = await officer.press("✔️ Xoá")

    with demo.db.session() as s:
        assert not stats.stored_months(s)  # dropped: the school's joining moved, recomputed when read
    assert t(demo)("people.last_warning") in asked[0].text
    assert t(demo)("people.removed_last") in done[0].text
    assert f"{SCHOOL} chưa có tài khoản nào đăng ký." in done[0].text
    with demo.db.session() as s:
        assert stats.unregistered_count(s, scope, demo.clock.now() + timedelta(days=1)) == before + 1
        punhi = q.school_by_code(s, "THCS-PUNHI")
        assert punhi is not None and stats.school_registered(s, punhi.id or 0) is None
        assert punhi.id not in stats.registrations(s)  # the clock's sweep over every school
        letters = q.schools_to_invite(s, in_scope(scope), include_registered=False)
        assert "THCS-PUNHI" in [x.code for x in letters]  # invitation letters go to it again
    principal = await chat_as("principal").send("/mystatus")
    assert [r.text for r in principal] == [t(demo)("reg.how")]


async def test_people_refuses_outside_scope_and_other_roles(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Officer elsewhere")
    with demo.db.session() as s:
        lan = q.get_user(s, "console", "principal")
        assert lan is not None
        lan_id, school_id = lan.id, lan.school_id
    other = chat_as("other_officer")

    search = await other.send("/people Pú Nhi")
    forged = await demo.dispatcher.handle(
        Incoming(
            "console", "other_officer", "other_officer", Kind.CHOICE, choice=f"pp:y:{lan_id}", update_id="f1"
        )
    )
    listing = await demo.dispatcher.handle(
        Incoming(
            "console",
            "other_officer",
            "other_officer",
            Kind.CHOICE,
            choice=f"pp:s:{school_id}",
            update_id="f2",
        )
    )
    by_principal = await chat_as("principal").send("/people Pú Nhi")
    by_leader = await chat_as("leader").send("/people Pú Nhi")
    leader_press = await demo.dispatcher.handle(
        Incoming("console", "leader", "leader", Kind.CHOICE, choice=f"pp:y:{lan_id}", update_id="f3")
    )
    garbage = await chat_as("officer").send("/people")

    assert search[0].text.startswith("Không tìm thấy trường nào khớp")
    assert forged[0].text == t(demo)("people.not_found")
    assert listing[0].text == t(demo)("people.not_found")
    assert by_principal[0].text == t(demo)("error.not_for_role")
    assert by_leader[0].text == t(demo)("error.not_for_role")
    assert leader_press[0].text == t(demo)("error.not_for_role")
    assert garbage[0].text == t(demo)("people.how")
    user = user_row(demo, "principal")
    assert user is not None and user.role == "principal"  # nothing removed


async def test_an_officer_limited_to_a_level_cannot_remove_at_another_level(demo: App) -> None:
    add_user(demo, "mn_officer", "officer", "PGD-DEMO", "MN only", levels="MN")
    with demo.db.session() as s:
        lan = q.get_user(s, "console", "principal")
        assert lan is not None
    replies = await demo.dispatcher.handle(
        Incoming("console", "mn_officer", "mn_officer", Kind.CHOICE, choice=f"pp:y:{lan.id}", update_id="m1")
    )
    assert replies[0].text == t(demo)("people.not_found")
    user = user_row(demo, "principal")
    assert user is not None and user.role == "principal"


def test_people_on_the_command_line(tmp_path: Path, migrated: Path) -> None:
    env = CliEnv(tmp_path, migrated)
    db = Database(env.url)
    try:
        with db.session() as s:
            seed_demo(s, datetime.now(UTC))
            lan = q.get_user(s, "console", "principal")
            officer = q.get_user(s, "console", "officer")
            assert lan is not None and officer is not None
            lan.full_name, lan.position, lan.phone = LAN, "principal", "+84912345678"
            s.add(lan)
            lan_id, officer_id = lan.id, officer.id
    finally:
        db.dispose()

    listed = env.cli("people", "list", "--school", "THCS-PUNHI")
    unknown = env.cli("people", "list", "--school", "NOPE")
    not_school = env.cli("people", "remove", "--user", str(officer_id))
    missing = env.cli("people", "remove", "--user", "99999")
    removed = env.cli("people", "remove", "--user", str(lan_id))
    again = env.cli("people", "remove", "--user", str(lan_id))
    empty = env.cli("people", "list", "--school", "THCS-PUNHI")

    assert listed.exit_code == 0, listed.output
    assert f"1 account(s) at THCS-PUNHI – {SCHOOL}:" in listed.output
    assert f"{lan_id}  {LAN}  principal  console  since" in listed.output and "+84912345678" in listed.output
    assert unknown.exit_code == 2 and "no school has the code 'NOPE'" in unknown.output
    assert not_school.exit_code == 2 and "not a school's registered account" in not_school.output
    assert missing.exit_code == 2 and "no account has the id 99999" in missing.output
    assert removed.exit_code == 0 and f"removed 1 account(s): {lan_id}" in removed.output
    assert "no registered account left; it counts as not registered" in removed.output
    assert again.exit_code == 2 and "Traceback" not in again.output
    assert "0 account(s) at THCS-PUNHI" in empty.output


async def test_the_removed_person_can_register_again_with_a_new_code(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    officer = chat_as("officer")
    await officer.send("/people THCS-PUNHI")
    await officer.press("Xoá: Cô Lò Thị Lan")
    await officer.press("✔️ Xoá")
    principal = chat_as("principal")

    replies = await principal.send(f"/start {make_code(demo)}")

    assert replies[0].text == t(demo)("reg.ok.principal")
    with demo.db.session() as s:
        school = s.exec(select(School).where(School.code == "THCS-PUNHI")).one()
        assert [u.external_id for u in q.school_users(s, school.id or 0)] == ["principal"]
        assert s.exec(select(Draft).where(Draft.form == "profile")).first() is not None


async def test_removal_ends_every_linked_account_of_the_person(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    link_on_zalo(demo, "principal")
    officer = chat_as("officer")

    listed = await officer.send("/people Pú Nhi")
    asked = await officer.press("Xoá: Cô Lò Thị Lan")
    await officer.press("✔️ Xoá")

    assert f"Tài khoản của {SCHOOL} (2):" in listed[0].text  # one line per account, both channels
    assert t(demo)("people.last_warning") in asked[0].text  # the person's accounts are all the school has
    with demo.db.session() as s:
        roles = {u.channel: u.role for u in s.exec(select(User).where(col(User.person_id).is_not(None)))}
    assert roles == {"console": None, "zalo": None}
