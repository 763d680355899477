"""One person on two channels: /link joins a Zalo account to a console (or Telegram) one."""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import col, select

from bot.app import App
from handlers.calendar import FrozenClock
from handlers.types import Incoming, Kind
from storage import queries as q
from tests.conftest import Chat
from tests.support import frozen


def zalo(text: str, n: int, user: str = "zl-abc123") -> Incoming:
    command, _, args = text[1:].partition(" ") if text.startswith("/") else ("", "", "")
    kind = Kind.COMMAND if command else Kind.TEXT
    return Incoming(
        "zalo",
        user,
        user,
        kind,
        display_name="Lò Thị Lan",
        text=text,
        command=command,
        args=args,
        update_id=f"z{n}",
    )


async def test_link_a_zalo_account_to_the_same_principal(demo: App, chat_as: Callable[[str], Chat]) -> None:
    principal = chat_as("principal")
    replies = await principal.send("/link")
    code = replies[0].text.split(": ", 1)[1].split("\n")[0]
    joined = await demo.dispatcher.handle(zalo(f"/link {code}", 1))
    assert "Đã nối với tài khoản dòng lệnh" in joined[0].text
    who = await demo.dispatcher.handle(zalo("/whoami", 2))
    assert "Hiệu trưởng – Trường PTDTBT THCS Pú Nhi" in who[0].text
    with demo.db.session() as s:
        console = q.get_user(s, "console", "principal")
        on_zalo = q.get_user(s, "zalo", "zl-abc123")
        assert console is not None and on_zalo is not None
        assert console.person_id == on_zalo.person_id == console.id
        assert [u.channel for u in q.accounts_of(s, on_zalo)] == ["console", "zalo"]
    again = await demo.dispatcher.handle(zalo(f"/link {code}", 3, user="zl-other"))
    assert "không đúng hoặc đã hết hạn" in again[0].text


async def test_bad_link_codes(demo: App, chat_as: Callable[[str], Chat], clock: FrozenClock) -> None:
    principal = chat_as("principal")
    code = (await principal.send("/link"))[0].text.split(": ", 1)[1].split("\n")[0]
    same_channel = await chat_as("leader").send(f"/link {code}")
    assert "không đúng hoặc đã hết hạn" in same_channel[0].text
    code = (await principal.send("/link"))[0].text.split(": ", 1)[1].split("\n")[0]
    clock.advance(hours=25)
    expired = await demo.dispatcher.handle(zalo(f"/link {code}", 4))
    assert "không đúng hoặc đã hết hạn" in expired[0].text
    stranger = await demo.dispatcher.handle(zalo("/link", 5, user="zl-nobody"))
    assert "Vui lòng đăng ký trước" in stranger[0].text
    with demo.db.session() as s:
        user = q.get_user(s, "zalo", "zl-abc123")
        assert user is not None and user.role is None


def test_the_zalo_budget_survives_a_restart(app: App) -> None:
    from bot.channels.zalo import DbBudgetStore, MonthlyBudget

    first = MonthlyBudget(5, app.clock, store=DbBudgetStore(app.db))
    first.store.add(first.month(), 3)
    again = MonthlyBudget(5, app.clock, store=DbBudgetStore(app.db))
    assert again.used == 3
    frozen(app).advance(days=30)  # a new month starts from zero
    assert MonthlyBudget(5, app.clock, store=DbBudgetStore(app.db)).used == 0


async def test_an_alert_reaches_a_linked_officer_once_on_the_channel_used_last(
    demo: App, chat_as: Callable[[str], Chat], clock: FrozenClock
) -> None:
    from storage.models import Outbox
    from tests.handlers.helpers import fill_incident, inbox_texts

    officer = chat_as("officer")
    code = (await officer.send("/link"))[0].text.split(": ", 1)[1].split("\n")[0]
    clock.advance(minutes=5)
    await demo.dispatcher.handle(zalo(f"/link {code}", 10, user="zl-officer"))  # Zalo is now the latest
    principal = chat_as("principal")
    await fill_incident(principal)
    sent = await principal.press("Gửi")
    assert "Đã báo ngay cho 2 người" in sent[0].text  # the officer once, and the leader
    assert inbox_texts(demo, "officer") == []  # not to the console account
    with demo.db.session() as s:
        console = q.get_user(s, "console", "officer")
        zl = q.get_user(s, "zalo", "zl-officer")
        assert console is not None and zl is not None
        rows = s.exec(select(Outbox).where(col(Outbox.user_id).in_([console.id, zl.id]))).all()
    assert [r.user_id for r in rows] == [zl.id]  # waiting for the Zalo sender, once
    assert "SỰ CỐ TRUYỀN THÔNG" in rows[0].payload["text"]
