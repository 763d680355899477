"""Registration through the console: codes bind a chat to a school or an office, and nothing else does."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import select

from bot.app import App
from handlers.i18n import Translator
from handlers.types import Incoming, Kind
from storage import queries as q
from storage.models import CodeAttempt, IncidentAck, Invite, User
from tests.conftest import Chat
from tests.support import frozen

SCHOOL = "Trường PTDTBT THCS Pú Nhi"
DISTRICT = "Phòng GD&ĐT huyện Điện Biên Đông (demo)"


def wrong(n: int) -> str:
    """A code-shaped string no invite has (real codes are random; these are never issued in a test)."""
    return f"XXXXXX2{n + 2}"


def t(app: App) -> Translator:
    return app.catalog.translator("vi")


def make_code(
    app: App, role: str = "principal", school: str = "THCS-PUNHI", office: str = "", days: int = 14
) -> str:
    """A fresh invite, made with the same query the `invites` command uses."""
    with app.db.session() as s:
        if office:
            found = q.office_by_code(s, office)
            assert found is not None
            target = q.InviteTarget(role, office_id=found.id)
        else:
            place = q.school_by_code(s, school)
            assert place is not None
            target = q.InviteTarget("principal", school_id=place.id)
        return q.create_invites(s, target, 1, app.clock.now(), days)[0].code


def user_row(app: App, external_id: str) -> User | None:
    with app.db.session() as s:
        return q.get_user(s, "console", external_id)


def invite_row(app: App, code: str) -> Invite:
    with app.db.session() as s:
        invite = s.exec(select(Invite).where(Invite.code == code)).one()
        s.expunge(invite)
        return invite


async def assert_unregistered(app: App, chat: Chat) -> None:
    replies = await chat.send("/whoami")
    assert [r.text for r in replies] == [t(app)("whoami.none")]
    user = user_row(app, chat.session.user_id)
    assert user is not None and (user.role, user.school_id, user.office_id) == (None, None, None)


async def test_an_unregistered_user_is_told_how_to_register(demo: App) -> None:
    chat = Chat(demo, "newuser")

    hello = await chat.send("xin chào thầy cô")
    start = await chat.send("/start")
    menu = await chat.send("/menu")
    incident = await chat.send("/incident")

    assert [r.text for r in hello] == [t(demo)("reg.how")]
    assert [r.text for r in start] == [t(demo)("reg.welcome"), t(demo)("reg.how")]
    assert [r.text for r in menu] == [t(demo)("reg.how")]
    assert [r.text for r in incident] == [t(demo)("reg.how")]
    await assert_unregistered(demo, chat)


async def test_start_with_a_code_binds_a_principal_to_the_school(demo: App) -> None:
    code = make_code(demo)
    chat = Chat(demo, "newuser", "Thầy Giàng A Páo")

    replies = await chat.send(f"/start {code}")

    assert replies[0].text == t(demo)("reg.ok.principal")
    assert replies[0].commands_for == "principal"
    assert replies[1].text.startswith(
        t(demo)("profile.intro")
    )  # then who they are (tests/handlers/test_people.py)
    assert "Bước 1/3" in replies[1].text
    whoami = await chat.send("/whoami")
    assert whoami[0].text == f"Tài khoản: Hiệu trưởng – {SCHOOL}."
    user = user_row(demo, "newuser")
    with demo.db.session() as s:
        school = q.school_by_code(s, "THCS-PUNHI")
        assert school is not None
    assert user is not None
    assert (user.role, user.school_id, user.office_id) == ("principal", school.id, school.office_id)
    invite = invite_row(demo, code)
    assert invite.used_at == demo.clock.now() and invite.used_by_id == user.id


@pytest.mark.parametrize("typed", ["{code}", "  {lower}  ", "/start {lower}"])
async def test_the_code_pasted_as_text_or_in_lower_case_works(demo: App, typed: str) -> None:
    code = make_code(demo)
    chat = Chat(demo, "newuser")

    replies = await chat.send(typed.format(code=code, lower=code.lower()))

    assert replies[0].text == t(demo)("reg.ok.principal")
    user = user_row(demo, "newuser")
    assert user is not None and user.role == "principal"


async def test_a_wrong_code_is_refused(demo: App) -> None:
    make_code(demo)
    chat = Chat(demo, "newuser")

    replies = await chat.send(f"/start {wrong(0)}")
    pasted = await chat.send(wrong(1).lower())

    assert [r.text for r in replies] == [t(demo)("reg.unknown")]
    assert [r.text for r in pasted] == [t(demo)("reg.unknown")]
    await assert_unregistered(demo, chat)


async def test_an_expired_code_is_refused(demo: App) -> None:
    code = make_code(demo, days=14)
    frozen(demo).advance(days=14)
    chat = Chat(demo, "newuser")

    replies = await chat.send(f"/start {code}")

    assert [r.text for r in replies] == [t(demo)("reg.expired")]
    await assert_unregistered(demo, chat)
    assert invite_row(demo, code).used_at is None


async def test_a_code_still_works_on_its_last_day(demo: App) -> None:
    code = make_code(demo, days=14)
    frozen(demo).advance(days=13, hours=23)

    replies = await Chat(demo, "newuser").send(f"/start {code}")

    assert replies[0].text == t(demo)("reg.ok.principal")


async def test_a_used_code_is_refused(demo: App) -> None:
    code = make_code(demo)
    first = Chat(demo, "first")
    await first.send(f"/start {code}")
    second = Chat(demo, "second")

    replies = await second.send(f"/start {code}")

    assert [r.text for r in replies] == [t(demo)("reg.used")]
    await assert_unregistered(demo, second)
    first_user = user_row(demo, "first")
    assert first_user is not None and first_user.role == "principal"
    assert invite_row(demo, code).used_by_id == first_user.id


async def test_too_many_wrong_codes_throttle_even_a_right_one(demo: App) -> None:
    rules = demo.settings.registration
    code = make_code(demo)
    chat = Chat(demo, "newuser")
    for n in range(rules.max_wrong_codes):
        refused = await chat.send(f"/start {wrong(n)}")
        assert [r.text for r in refused] == [t(demo)("reg.unknown")]

    refused = await chat.send(f"/start {code}")
    assert [r.text for r in refused] == [t(demo)("reg.throttled", minutes=rules.wrong_code_window_minutes)]
    assert "15 phút" in refused[0].text
    assert invite_row(demo, code).used_at is None
    await assert_unregistered(demo, chat)

    frozen(demo).advance(minutes=rules.wrong_code_window_minutes - 1)
    still = await chat.send(code)  # tries while throttled do not extend the window
    assert [r.text for r in still] == [t(demo)("reg.throttled", minutes=rules.wrong_code_window_minutes)]

    frozen(demo).advance(minutes=1, seconds=1)
    replies = await chat.send(f"/start {code}")
    assert replies[0].text == t(demo)("reg.ok.principal")
    user = user_row(demo, "newuser")
    assert user is not None and user.role == "principal"


async def test_the_throttle_is_per_user(demo: App) -> None:
    rules = demo.settings.registration
    guesser = Chat(demo, "guesser")
    for n in range(rules.max_wrong_codes):
        await guesser.send(wrong(n))
    code = make_code(demo)

    replies = await Chat(demo, "newuser").send(code)

    assert replies[0].text == t(demo)("reg.ok.principal")


async def test_an_officer_code_binds_to_the_office(demo: App) -> None:
    code = make_code(demo, role="officer", office="PGD-DEMO")
    chat = Chat(demo, "newofficer")

    replies = await chat.send(f"/start {code}")

    assert replies[0].text == t(demo)("reg.ok.officer")
    assert replies[0].commands_for == "officer"
    assert replies[1].text.startswith(t(demo)("profile.intro"))
    assert "Bước 1/2" in replies[1].text  # an officer gives a name and a phone, no school position
    whoami = await chat.send("/whoami")
    assert whoami[0].text == f"Tài khoản: Chuyên viên truyền thông – {DISTRICT}."
    with demo.db.session() as s:
        office = q.office_by_code(s, "PGD-DEMO")
        assert office is not None
    user = user_row(demo, "newofficer")
    assert user is not None and (user.role, user.school_id, user.office_id) == ("officer", None, office.id)


async def test_a_leader_code_binds_to_the_office(demo: App) -> None:
    code = make_code(demo, role="leader", office="SGD-DEMO")

    replies = await Chat(demo, "newleader").send(code)

    assert replies[0].text == t(demo)("reg.ok.leader")
    user = user_row(demo, "newleader")
    assert user is not None and user.role == "leader" and user.school_id is None


async def test_a_principal_cannot_press_officer_buttons(demo: App, chat_as: Callable[[str], Chat]) -> None:
    chat: Chat = chat_as("principal")
    await chat.send("/menu")

    async def press(user_id: str, n: int) -> list[str]:
        replies = await demo.dispatcher.handle(
            Incoming(
                "console", user_id, user_id, Kind.CHOICE, choice="k:1", update_id=f"{user_id}:button:{n}"
            )
        )
        return [r.text for r in replies]

    assert await press("principal", 1) == [t(demo)("error.not_for_role")]
    assert await press("newuser", 1) == [t(demo)("reg.how")]
    assert await press("officer", 1) == [t(demo)("incident.not_found")]  # staff get past the role check
    with demo.db.session() as s:
        assert s.exec(select(IncidentAck)).all() == []


async def test_a_newly_registered_principal_cannot_press_officer_buttons(demo: App) -> None:
    code = make_code(demo)
    await Chat(demo, "newuser").send(code)

    replies = await demo.dispatcher.handle(
        Incoming("console", "newuser", "newuser", Kind.CHOICE, choice="k:1", update_id="newuser:button")
    )

    assert [r.text for r in replies] == [t(demo)("error.not_for_role")]


@pytest.mark.parametrize("word", ["help", "menu", "hello"])
async def test_a_plain_word_is_not_taken_for_a_code(demo: App, word: str) -> None:
    chat = Chat(demo, "newuser")

    replies = await chat.send(word)

    assert [r.text for r in replies] == [t(demo)("reg.how")]
    user = user_row(demo, "newuser")
    assert user is not None
    with demo.db.session() as s:
        assert s.exec(select(CodeAttempt).where(CodeAttempt.user_id == user.id)).all() == []
