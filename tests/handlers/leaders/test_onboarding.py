"""Who is on board (#16 item 2): /onboarding's figures against the database, its pages, one school, the
code re-issued from the chat (the old one stops working), scope refusals, and the workbook's sheet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from openpyxl import load_workbook
from sqlmodel import col, select

from bot.app import App
from handlers.leaders.reader import level_label, level_sort
from handlers.onboarding import invite_link
from handlers.types import Incoming, Kind
from storage import queries as q
from storage.models import Invite, Office, School, User
from tests.conftest import Chat
from tests.handlers.helpers import add_district, add_principal, add_school, add_user
from tests.handlers.test_registration import make_code, t

HOABAN = "Trường Mầm non Hoa Ban"


def seed(app: App) -> dict[str, str]:
    """Codes in every state: MN-HOABAN one outstanding, TH-THITRAN one expired and one used, Na Mai a
    registered vice principal; THCS-PUNHI has the demo's principal."""
    now = app.clock.now()
    with app.db.session() as s:
        namai = q.school_by_code(s, "THTHCS-NAMAI")
        assert namai is not None
        add_principal(
            s,
            namai,
            "vice",
            now - timedelta(days=3),
            full_name="Vừ Thị Mai",
            position="vice",
            registered_at=now,
        )
    live = make_code(app, school="MN-HOABAN", days=14)
    expired = make_code(app, school="TH-THITRAN", days=14)
    used = make_code(app, school="TH-THITRAN", days=14)
    with app.db.session() as s:
        old = s.exec(select(Invite).where(Invite.code == expired)).one()
        old.expires_at = now - timedelta(minutes=1)
        s.add(old)
        taken = s.exec(select(Invite).where(Invite.code == used)).one()
        taken.used_at = now
        s.add(taken)
    return {"live": live, "expired": expired, "used": used}


def independent_totals(app: App, office_code: str) -> dict[str, tuple[int, int, int]]:
    """Per level (schools, registered, codes outstanding), counted here from the rows themselves."""
    now = app.clock.now()
    with app.db.session() as s:
        office = q.office_by_code(s, office_code)
        assert office is not None
        schools = list(s.exec(select(School).where(School.office_id == office.id)))
        users = list(s.exec(select(User)))
        invites = list(s.exec(select(Invite)))
    out: dict[str, tuple[int, int, int]] = {}
    for school in schools:
        registered = any(u.school_id == school.id and u.role == "principal" for u in users)
        codes = sum(
            1
            for i in invites
            if i.school_id == school.id and i.role == "principal" and i.used_at is None and i.expires_at > now
        )
        n, r, c = out.get(school.level, (0, 0, 0))
        out[school.level] = (n + 1, r + int(registered), c + codes)
    return out


def cell_text(value: object) -> str:
    """A spreadsheet cell that holds text."""
    assert isinstance(value, str), value
    return value


def press(app: App, user: str, value: str, n: str) -> Incoming:
    return Incoming("console", user, user, Kind.CHOICE, choice=value, update_id=n)


async def test_onboarding_figures_equal_the_database(demo: App, chat_as: Callable[[str], Chat]) -> None:
    seed(demo)
    tr = t(demo)
    expected = independent_totals(demo, "PGD-DEMO")

    for who in ("officer", "leader"):
        replies = await chat_as(who).send("/onboarding")

        text = replies[0].text
        for level, (schools, registered, codes) in expected.items():
            line = tr(
                "onboarding.totals",
                label=level_label(tr, tr.has, level),
                schools=schools,
                registered=registered,
                unregistered=schools - registered,
                codes=codes,
            )
            assert line in text, (line, text)
        whole = [sum(v[i] for v in expected.values()) for i in range(3)]
        assert (
            tr(
                "onboarding.totals",
                label=tr("onboarding.all"),
                schools=whole[0],
                registered=whole[1],
                unregistered=whole[0] - whole[1],
                codes=whole[2],
            )
            in text
        )
    assert whole == [5, 2, 1]  # the seed, as a check on the independent count itself
    levels = [line.split(":")[0] for line in text.splitlines()[2 : 2 + len(expected)]]
    assert levels == [level_label(tr, tr.has, x) for x in sorted(expected, key=level_sort)]
    assert "✅ Trường PTDTBT THCS Pú Nhi: Cô Lò Thị Lan (từ 10/11/2026)" in text
    assert "✅ Trường TH&THCS Na Mai: Vừ Thị Mai (Phó hiệu trưởng) (từ 10/11/2026)" in text
    assert f"⏳ {HOABAN}: chưa đăng ký, 1 mã còn hiệu lực đến 24/11/2026" in text
    assert "⚪ Trường Tiểu học Thị Trấn: chưa đăng ký, chưa có mã còn hiệu lực" in text


async def test_a_long_list_comes_a_page_at_a_time(demo: App, chat_as: Callable[[str], Chat]) -> None:
    with demo.db.session() as s:
        office = q.office_by_code(s, "PGD-DEMO")
        assert office is not None
        for n in range(20):
            add_school(s, f"TH-X{n:02d}", f"Trường Tiểu học Xã {n:02d}", "TH", office.id)
    officer = chat_as("officer")

    first = await officer.send("/onboarding")
    second = await officer.press("Trang sau")
    third = await officer.press("Trang sau")
    back = await officer.press("Trang trước")
    beyond = await demo.dispatcher.handle(press(demo, "officer", "ob:p:99", "p99"))

    assert "trang 1/3" in first[0].text and "trang 2/3" in second[0].text and "trang 3/3" in third[0].text
    assert [c.label for c in third[0].flat_choices()] == [t(demo)("onboarding.prev")]
    assert back[0].text == second[0].text
    assert "trang 3/3" in beyond[0].text
    listed = [
        line
        for r in (first, second, third)
        for line in r[0].text.splitlines()
        if line and line[0] in "✅⏳⚪"
    ]
    assert len(listed) == 25 and len(set(listed)) == 25  # every school once
    assert len(first[0].text) < 4096


async def test_an_officer_reissues_a_code_and_the_old_one_stops_working(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    codes = seed(demo)
    officer = chat_as("officer")

    card = await officer.send("/onboarding Hoa Ban")
    assert card[0].text.startswith(f"{HOABAN} (MN-HOABAN):")
    assert f"• Mã {codes['live']}, hạn dùng 24/11/2026" in card[0].text
    asked = await officer.press("Cấp lại mã")
    assert asked[0].text == t(demo)("onboarding.reissue_ask", school=HOABAN)
    done = await officer.press("Cấp mã mới")

    with demo.db.session() as s:
        school = q.school_by_code(s, "MN-HOABAN")
        assert school is not None
        fresh = s.exec(
            select(Invite)
            .where(Invite.school_id == school.id, col(Invite.used_at).is_(None))
            .order_by(col(Invite.id).desc())
        ).first()
        assert fresh is not None and fresh.code != codes["live"]
        new_code = fresh.code
    assert new_code in done[0].text and "hạn dùng 24/11/2026" in done[0].text
    assert f"/start {new_code}" in done[0].text  # no bot username set: the code to send on
    old = await Chat(demo, "teacher_old").send(f"/start {codes['live']}")
    assert [r.text for r in old] == [t(demo)("reg.expired")]
    new = await Chat(demo, "teacher_new").send(f"/start {new_code}")
    assert new[0].text == t(demo)("reg.ok.principal")
    again = await officer.send("/onboarding Hoa Ban")
    assert "Chưa có tài khoản" not in again[0].text and "• Không có mã còn hiệu lực." in again[0].text


def test_the_link_to_send_on_is_the_telegram_deep_link() -> None:
    assert invite_link("@SchoolBot", "ABCD2345") == "https://t.me/SchoolBot?start=ABCD2345"
    assert invite_link("", "ABCD2345") == ""


async def test_onboarding_and_reissue_refuse_outside_scope_and_other_roles(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    codes = seed(demo)
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Officer elsewhere")
    with demo.db.session() as s:
        khac = q.office_by_code(s, "PGD-KHAC")
        assert khac is not None
        add_school(s, "TH-KHAC", "Trường Tiểu học Khác", "TH", khac.id)
    add_user(demo, "mn_officer", "officer", "PGD-DEMO", "MN only", levels="MN")
    with demo.db.session() as s:
        hoaban = q.school_by_code(s, "MN-HOABAN")
        punhi = q.school_by_code(s, "THCS-PUNHI")
        assert hoaban is not None and punhi is not None
        ids = (hoaban.id, punhi.id)

    elsewhere = await chat_as("other_officer").send("/onboarding Hoa Ban")
    forged = await demo.dispatcher.handle(press(demo, "other_officer", f"ob:y:{ids[0]}", "o1"))
    other_level = await demo.dispatcher.handle(press(demo, "mn_officer", f"ob:y:{ids[1]}", "o2"))
    leader_card = await chat_as("leader").send("/onboarding Hoa Ban")
    leader_press = await demo.dispatcher.handle(press(demo, "leader", f"ob:y:{ids[0]}", "o3"))
    principal = await chat_as("principal").send("/onboarding")
    garbage = await demo.dispatcher.handle(press(demo, "officer", "ob:z:abc", "o4"))

    assert elsewhere[0].text.startswith("Không tìm thấy trường nào khớp")
    assert forged[0].text == t(demo)("onboarding.not_found")
    assert other_level[0].text == t(demo)("onboarding.not_found")
    assert leader_card[0].text.startswith(HOABAN) and leader_card[0].choices == ()  # reads, no button
    assert leader_press[0].text == t(demo)("error.not_for_role")
    assert principal[0].text == t(demo)("error.not_for_role")
    assert garbage[0].text == t(demo)("error.bad_button")
    with demo.db.session() as s:
        live = s.exec(select(Invite).where(Invite.code == codes["live"])).one()
        count = len(list(s.exec(select(Invite))))
    assert live.expires_at > demo.clock.now() and count == 3  # (TH-KHAC has none)  # nothing re-issued


async def test_the_workbook_has_the_registration_sheet_with_the_same_rows(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    codes = seed(demo)
    officer = chat_as("officer")

    exported = await officer.send("/export")

    book = load_workbook(Path(exported[0].file_path))
    assert book.sheetnames[-1] == "Đăng ký"
    ws = book["Đăng ký"]
    header = [c.value for c in ws[2]]
    assert header == [
        t(demo)(f"onboarding.col.{k}")
        for k in ("number", "code", "school", "level", "state", "since", "people", "codes")
    ]
    rows = {r[1]: r for r in ws.iter_rows(min_row=3, values_only=True)}
    with demo.db.session() as s:
        office = s.exec(select(Office).where(Office.code == "PGD-DEMO")).one()
        in_scope = {x.code for x in s.exec(select(School).where(School.office_id == office.id))}
    assert set(rows) == in_scope
    assert rows["THCS-PUNHI"][4] == "Đã đăng ký" and cell_text(rows["THCS-PUNHI"][6]).startswith(
        "Cô Lò Thị Lan – dòng lệnh – từ"
    )
    assert cell_text(rows["THTHCS-NAMAI"][6]).startswith("Vừ Thị Mai (Phó hiệu trưởng) – dòng lệnh")
    assert (
        rows["MN-HOABAN"][4] == "Chưa đăng ký"
        and rows["MN-HOABAN"][7] == f"{codes['live']} (hạn dùng 24/11/2026)"
    )
    assert rows["TH-THITRAN"][7] in (None, "")  # an expired and a used code are not outstanding
    registered = sum(1 for r in rows.values() if r[4] == "Đã đăng ký")
    assert registered == sum(v[1] for v in independent_totals(demo, "PGD-DEMO").values())
