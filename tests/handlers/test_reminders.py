"""The reminder ladder, escalation and "Nhắc lại sau", with the clock moved across the month."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlmodel import col, select

from bot.app import App, open_app
from bot.config import Settings
from handlers import reminders
from handlers.calendar import FrozenClock
from handlers.types import Incoming, Kind
from storage import queries as q
from storage.models import Outbox, School, User
from tests.fakes.district import seed_wave
from tests.handlers.helpers import add_district, add_principal, add_school, add_user
from tests.support import at_once, frozen
from tests.support import outbox_rows as outbox

# The demo district: five schools; "principal" is the principal of THCS-PUNHI.
PUNHI = "THCS-PUNHI"


def at(month: int, day: int, hour: int = 8, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute)


@pytest.fixture(name="make")
def make_fixture(settings: Settings, clock: FrozenClock) -> Iterator[Any]:
    """make(**schedule) -> the demo app with these [schedule] settings."""
    opened: list[Any] = []

    def build(**schedule: Any) -> App:
        from bot.demo import seed_demo

        changed = settings.schedule.model_validate({**settings.schedule.model_dump(), **schedule})
        cm = open_app(settings.model_copy(update={"schedule": changed}), clock)
        app = cm.__enter__()
        opened.append(cm)
        with app.db.session() as s:
            seed_demo(s, clock.now())
        return app

    yield build
    for cm in reversed(opened):
        cm.__exit__(None, None, None)


def principal(app: App, external_id: str, school_code: str, locale: str = "", blocked: bool = False) -> int:
    """A registered console principal of a school; their user id."""
    with app.db.session() as s:
        school = q.school_by_code(s, school_code)
        assert school is not None
        return add_principal(s, school, external_id, app.clock.now(), locale=locale, blocked=blocked).id or 0


def submit(app: App, school_code: str, period: str, kind: str = "article") -> None:
    """The school sends something for `period`, now."""
    with app.db.session() as s:
        school = q.school_by_code(s, school_code)
        author = s.exec(select(User).where(User.school_id == school.id)).first() if school else None
        assert school is not None
        user_id = author.id if author else 1
        assert user_id is not None
        q.create_submission(
            s,
            kind=kind,
            school_id=school.id or 0,
            user_id=user_id,
            token=f"{school_code}-{kind}-{period}",
            answers={},
            status="submitted",
            now=app.clock.now(),
            period=period,
        )


def sweep_at(app: App, moment: datetime) -> reminders.SweepReport:
    frozen(app).set(moment)
    return reminders.sweep(app.db, app.clock, app.settings, app.catalog)


def claim(app: App) -> list[Outbox]:
    """The console's bulk messages the sender would take now."""
    with app.db.session() as s:
        return q.claim_outbox(
            s,
            owner="t",
            now=app.clock.now(),
            lease_until=app.clock.now(),
            limit=10,
            channels=["console"],
            bulk=True,
        )


def steps(app: App, kind: str = "article-remind") -> list[tuple[str, str]]:
    """(recipient external id, step) of every row of `kind`, in order."""
    with app.db.session() as s:
        out = []
        for row in s.exec(select(Outbox).where(Outbox.kind == kind).order_by(col(Outbox.id))):
            user = s.get(User, row.user_id)
            out.append((user.external_id if user else "?", row.step))
        return out


def send_all(app: App) -> None:
    """Mark every pending row sent (the sender is tested on its own)."""
    with app.db.session() as s:
        for row in s.exec(select(Outbox).where(Outbox.status == "pending")):
            q.outbox_sent(s, row.id or 0, app.clock.now())


async def apress(app: App, external_id: str, value: str, n: int = 0) -> list[str]:
    msg = Incoming("console", external_id, external_id, Kind.CHOICE, choice=value, update_id=f"p{n}:{value}")
    return [r.text for r in await app.dispatcher.handle(msg)]


# ---- the monthly ladder ----------------------------------------------------------------------------


def test_the_monthly_ladder_reminds_only_schools_that_have_not_sent_each_step_once(demo: App) -> None:
    principal(demo, "hoaban", "MN-HOABAN")
    principal(demo, "thitran", "TH-THITRAN")
    submit(demo, "TH-THITRAN", "2026-11")

    assert sweep_at(demo, at(11, 10, 7, 59)).created == 0  # before the first rung
    first = sweep_at(demo, at(11, 10, 8, 0))
    assert first.created == 2
    assert sorted(steps(demo)) == [("hoaban", "d5"), ("principal", "d5")]
    assert sweep_at(demo, at(11, 10, 9, 0)).created == 0  # the same step again: nothing new
    assert sweep_at(demo, at(11, 12, 19, 0)).created == 0

    for day, step in ((13, "d2"), (14, "d1"), (15, "d0")):
        send_all(demo)
        assert sweep_at(demo, at(11, day, 8, 0)).created == 2
        assert sweep_at(demo, at(11, day, 16, 30)).created == 0
        assert {s for _, s in steps(demo)[-2:]} == {step}
    assert [s for who, s in steps(demo) if who == "principal"] == ["d5", "d2", "d1", "d0"]
    assert sweep_at(demo, at(11, 15, 23, 59)).created == 0
    assert (
        sweep_at(demo, at(11, 16, 7, 0)).created == 0
    )  # past the deadline: no reminder, escalation at 08:00


def test_a_reminder_says_what_is_missing_the_deadline_and_days_left_with_the_right_buttons(demo: App) -> None:
    principal(demo, "english", "MN-HOABAN", locale="en")
    sweep_at(demo, at(11, 10))
    [row] = outbox(demo, kind="article-remind", user_id=1)  # the demo principal (Vietnamese)
    text = row.payload["text"]
    assert "Bài viết tháng 11/2026" in text and "15/11/2026" in text and "còn 5 ngày" in text
    assert "Trường PTDTBT THCS Pú Nhi" in text
    buttons = [c for r in row.payload["choices"] for c in r]
    assert buttons[0] == ["📝 Viết bài ngay", "m:article"]
    assert buttons[1] == ["🕗 Nhắc lại sau", "r:a:2026-11:d5"]
    assert all(len(value.encode()) <= 64 for _, value in buttons)
    english = next(r for r in outbox(demo, kind="article-remind") if r.user_id != 1)
    assert (
        "Monthly article for 11/2026" in english.payload["text"] and "5 days left" in english.payload["text"]
    )
    assert row.priority == reminders.PRIORITY_REMINDER and row.quiet and row.school_id is not None

    send_all(demo)
    sweep_at(demo, at(11, 15))
    today = outbox(demo, kind="article-remind", user_id=1, step="d0")[0]
    assert "Hôm nay là hạn nộp" in today.payload["text"]
    assert [c[1] for r in today.payload["choices"] for c in r] == ["m:article"]  # no "later" on the last day


async def test_the_reminder_button_opens_the_monthly_article(demo: App) -> None:
    sweep_at(demo, at(11, 10))
    replies = await apress(demo, "principal", "m:article")
    assert any("Bài viết tháng" in t for t in replies)
    assert not any("không có lệnh" in t.lower() or "unknown" in t.lower() for t in replies)


def test_every_registered_principal_of_a_school_is_reminded_blocked_ones_are_not(demo: App) -> None:
    principal(demo, "deputy", PUNHI)
    principal(demo, "gone", PUNHI, blocked=True)
    principal(demo, "other_school", "MN-HOABAN")

    plan = reminders.plan(demo.db, demo.clock, demo.settings, demo.catalog, demo.clock.now().replace(hour=8))
    who = sorted(i.user.external_id for i in plan.items)
    assert who == ["deputy", "other_school", "principal"]
    assert plan.unreachable == {"article:2026-11": 3}  # three demo schools have no registered user


def test_the_deadline_day_past_the_month_end_moves_the_ladder_with_it(make: Any) -> None:
    app = make(monthly_deadline_day=31)
    assert sweep_at(app, at(2, 23, 7, 59, year=2027)).created == 0
    assert sweep_at(app, at(2, 23, 8, 0, year=2027)).created == 1  # 28 Feb - 5 days
    assert steps(app) == [("principal", "d5")]
    send_all(app)
    assert sweep_at(app, at(2, 28, 8, 0, year=2027)).created == 1
    assert steps(app)[-1] == ("principal", "d0")
    [row] = outbox(app, step="d0")
    assert row.period == "2027-02" and "28/02/2027" in row.payload["text"]


def test_a_ladder_that_starts_in_the_previous_month(make: Any) -> None:
    app = make(monthly_deadline_day=3, article_reminders=[5, 1], periodic=[])
    assert sweep_at(app, at(11, 28, 8, 0)).created == 1  # 3 December - 5 days
    [row] = outbox(app)
    assert (row.period, row.step) == ("2026-12", "d5") and "03/12/2026" in row.payload["text"]
    send_all(app)
    assert sweep_at(app, at(12, 1, 8, 0)).created == 0
    assert sweep_at(app, at(12, 2, 8, 0)).created == 1
    assert outbox(app)[-1].step == "d1"


# ---- quiet hours, pauses, catch-up, jumps ------------------------------------------------------------


def test_nothing_is_made_in_quiet_hours_and_the_morning_sweep_makes_only_the_latest_step(demo: App) -> None:
    # The bot was down from before the first rung until 21:00 on the 13th (two rungs were missed).
    report = sweep_at(demo, at(11, 13, 21, 0))
    assert report.created == 0 and report.held == "quiet"
    assert sweep_at(demo, at(11, 14, 6, 59)).created == 0
    assert sweep_at(demo, at(11, 14, 7, 0)).created == 1  # quiet ends: d2 (yesterday's) is the latest due
    assert steps(demo) == [("principal", "d2")]
    assert sweep_at(demo, at(11, 14, 8, 0)).created == 1  # then today's rung
    assert steps(demo) == [("principal", "d2"), ("principal", "d1")]


def test_catch_up_after_a_long_stop_sends_only_the_latest_due_step(demo: App) -> None:
    assert sweep_at(demo, at(11, 14, 10, 30)).created == 1
    assert steps(demo) == [("principal", "d1")]
    assert sweep_at(demo, at(11, 14, 10, 35)).created == 0


def test_a_clock_that_jumps_forward_makes_only_what_is_due_at_the_new_time(demo: App) -> None:
    assert sweep_at(demo, at(11, 10, 8, 5)).created == 1
    report = sweep_at(demo, at(11, 16, 9, 0))  # six days later in one step
    assert steps(demo) == [("principal", "d5")]
    late = outbox(demo, kind="article-late")
    assert {r.step for r in late} == {"e1"} and report.created == len(late) == 2  # officer and leader
    assert outbox(demo, kind="article-remind")[0].status == "cancelled"  # never sent, now stale


def test_a_tet_pause_holds_every_rung_and_the_first_day_after_sends_the_latest(make: Any) -> None:
    app = make(pauses=[{"name": "Tết Nguyên đán 2027", "start": "2027-02-05", "end": "2027-02-14"}])
    for day in (10, 12, 13, 14):
        report = sweep_at(app, at(2, day, 9, 0, year=2027))
        assert report.created == 0 and report.held == "Tết Nguyên đán 2027"
    assert sweep_at(app, at(2, 15, 0, 30, year=2027)).created == 0  # quiet hours after the pause
    assert sweep_at(app, at(2, 15, 8, 0, year=2027)).created == 1
    assert steps(app) == [("principal", "d0")]


def test_a_pause_over_the_deadline_delays_the_escalation_within_its_window(make: Any) -> None:
    app = make(pauses=[{"name": "Tết", "start": "2027-02-14", "end": "2027-02-18"}])
    assert sweep_at(app, at(2, 16, 9, 0, year=2027)).created == 0
    assert sweep_at(app, at(2, 19, 9, 0, year=2027)).created == 2  # e1 still due: officer and leader
    assert {r.kind for r in outbox(app)} == {"article-late"}
    assert sweep_at(app, at(2, 25, 9, 0, year=2027)).created == 0  # no second list


def test_sweeping_twice_or_concurrently_creates_nothing_new(demo: App) -> None:
    for n in range(40):
        principal(demo, f"p{n}", ("MN-HOABAN", "TH-THITRAN", "THCS-TTDBD")[n % 3])
    frozen(demo).set(at(11, 10, 8, 0))
    results: list[int] = []

    def run() -> None:
        results.append(reminders.sweep(demo.db, demo.clock, demo.settings, demo.catalog).created)

    at_once(*[run] * 4)
    assert sum(results) == 41
    assert len(outbox(demo)) == 41
    assert reminders.sweep(demo.db, demo.clock, demo.settings, demo.catalog).created == 0


def test_a_wave_of_several_insert_batches_makes_exactly_the_plan_once(demo: App) -> None:
    """The sweep makes a wave a batch at a time (never holding it whole): across batches it makes
    exactly the rows the plan lists (the dry run's), in its order, each once, with the same words;
    a second sweep makes nothing."""
    moment = at(11, 15, 8, 0).replace(tzinfo=demo.clock.tz)
    schools = 2 * reminders.INSERT_BATCH + 7
    seed_wave(demo.db, schools, moment)
    planned = reminders.plan(demo.db, demo.clock, demo.settings, demo.catalog, moment)
    assert len({i.school_id for i in planned.items}) > schools  # the wave's and the demo's owing schools

    made = sweep_at(demo, at(11, 15, 8, 0))

    assert made.created == len(planned.items)
    rows = outbox(demo)
    assert [(r.user_id, r.kind, r.period, r.step) for r in rows] == [i.key for i in planned.items]
    assert [r.payload for r in rows] == [i.reply.to_payload() for i in planned.items]
    assert [r.school_id for r in rows] == [i.school_id for i in planned.items]
    assert sweep_at(demo, at(11, 15, 9, 0)).created == 0


def test_a_wave_reads_its_principals_a_batch_of_schools_at_a_time_and_reaches_each_once(demo: App) -> None:
    """The principals are read a batch of schools at a time (`PRINCIPAL_BATCH`); across batches every
    reachable principal of each school that owes is reminded once: a person with two accounts at a
    school once (the one used last), a person who heads two schools in different batches for each, a
    school whose only principal blocked the bot not at all (counted unreachable)."""
    moment = at(11, 15, 8, 0).replace(tzinfo=demo.clock.tz)
    seeded = seed_wave(demo.db, 2 * reminders.PRINCIPAL_BATCH + 7, moment)
    ids = seeded.school_ids
    twice, head_a, head_b, shut = ids[3], ids[20], ids[-3], ids[150]
    with demo.db.session() as s:
        wave = {u.school_id: u for u in s.exec(select(User).where(col(User.external_id).like("5%")))}
        wave[twice].person_id = 9001
        s.add(
            User(
                channel="zalo",
                external_id="z-twice",
                chat_id="z-twice",
                role="principal",
                school_id=twice,
                person_id=9001,
                created_at=moment,
                last_seen_at=moment,  # used last: this account is the one reminded
            )
        )
        wave[head_a].person_id = wave[head_b].person_id = 9002
        wave[shut].blocked = True
        s.add_all(wave.values())
    with demo.db.session() as s:
        reachable = {
            (u.id, u.school_id)
            for u in s.exec(select(User).where(col(User.role) == "principal", col(User.blocked).is_(False)))
            if u.school_id is not None and u.external_id != str(seeded.chats[3])
        }
        sent = q.schools_that_sent(s, "article", "2026-11")
        nobody = set(s.exec(select(School.id))) - sent - {school for _, school in reachable}

    sweep_at(demo, at(11, 15, 8, 0))

    made = [(r.user_id, r.school_id) for r in outbox(demo, kind="article-remind")]
    assert len(made) == len(set(made))
    assert set(made) == {(user, school) for user, school in reachable if school not in sent}
    assert {school for _, school in made} >= {twice, head_a, head_b}
    assert shut not in {school for _, school in made}
    assert [r.chat_id for r in outbox(demo, kind="article-remind") if r.school_id == twice] == ["z-twice"]
    plan = reminders.plan(demo.db, demo.clock, demo.settings, demo.catalog, moment)
    assert shut in nobody
    assert plan.unreachable["article:2026-11"] == len(nobody)


def test_a_waiting_reminder_is_cancelled_when_the_school_sends_before_it_goes(demo: App) -> None:
    sweep_at(demo, at(11, 10, 8, 0))
    submit(demo, PUNHI, "2026-11")
    report = sweep_at(demo, at(11, 10, 8, 5))
    assert report.cancelled == 1
    assert outbox(demo)[0].status == "cancelled" and outbox(demo)[0].last_error == "fulfilled"


# ---- periodic reports -------------------------------------------------------------------------------


def test_the_report_ladder_follows_the_named_deadline_and_report_rows(demo: App) -> None:
    principal(demo, "hoaban", "MN-HOABAN")
    principal(demo, "thitran", "TH-THITRAN")
    submit(demo, "TH-THITRAN", "nam-2026", kind="report")  # the lead's issue #4 stores this
    for code in ("MN-HOABAN", "TH-THITRAN", PUNHI, "THCS-TTDBD", "THTHCS-NAMAI"):
        submit(demo, code, "2026-11")  # no article escalation in the way

    assert sweep_at(demo, at(11, 17, 7, 59)).created == 0
    assert sweep_at(demo, at(11, 17, 8, 0)).created == 2
    assert sorted(steps(demo, "report-remind")) == [("hoaban", "d14"), ("principal", "d14")]
    row = outbox(demo, kind="report-remind", user_id=1)[0]
    assert row.period == "nam-2026"
    assert "Báo cáo năm" in row.payload["text"] and "01/12/2026" in row.payload["text"]
    assert "còn 14 ngày" in row.payload["text"]
    assert [c[1] for r in row.payload["choices"] for c in r] == ["m:report", "r:r:nam-2026:d14"]
    send_all(demo)
    for day, step in ((24, "d7"), (28, "d3"), (30, "d1")):
        sweep_at(demo, at(11, day))
        assert steps(demo, "report-remind")[-1][1] == step
        send_all(demo)
    assert sweep_at(demo, at(12, 1, 9, 0)).created == 0
    sweep_at(demo, at(12, 2, 8, 0))
    late = outbox(demo, kind="report-late")
    assert len(late) == 2 and all(r.period == "nam-2026" for r in late)


def test_a_report_sent_for_the_six_month_deadline_does_not_silence_the_yearly_one(make: Any) -> None:
    app = make()
    submit(app, PUNHI, "6thang-2026", kind="report")
    sweep_at(app, at(11, 17))
    assert [(r.period, r.step) for r in outbox(app, kind="report-remind")] == [("nam-2026", "d14")]


# ---- escalation --------------------------------------------------------------------------------------


def test_escalation_names_missed_schools_to_officers_and_leaders_in_scope(demo: App) -> None:
    add_user(demo, "prov_leader", "leader", "SGD-DEMO", "Ông Sở")
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Anh Huyện Khác")
    with demo.db.session() as s:
        other = q.office_by_code(s, "PGD-KHAC")
        assert other is not None
        add_school(s, "KHAC-1", "Trường Tiểu học Khác", "TH", other.id or 0)
    submit(demo, PUNHI, "2026-11")
    submit(demo, "TH-THITRAN", "2026-11")

    sweep_at(demo, at(11, 16, 8, 0))
    by_user = {}
    with demo.db.session() as s:
        for row in s.exec(select(Outbox).where(Outbox.kind == "article-late")):
            user = s.get(User, row.user_id)
            assert user is not None
            by_user[user.external_id] = row.payload["text"]
    officer = by_user["officer"]
    # Only Pú Nhi has an account in the demo: the three others that missed it are "chưa đăng ký".
    assert officer.startswith(
        "📋 Bài viết tháng 11/2026 (hạn 15/11/2026, đã qua): 2/5 trường đã nộp; chưa nộp 0, chưa đăng ký 3.\n"
        "Chưa đăng ký dùng bot (3):\n"
    )
    assert "Trường Mầm non Hoa Ban" in officer and "Trường TH&THCS Na Mai" in officer
    assert "Pú Nhi" not in officer and "Tiểu học Thị Trấn" not in officer and "Khác" not in officer
    assert by_user["leader"] == officer  # leaders are told the same, schools named
    assert "2/6 trường đã nộp; chưa nộp 0, chưa đăng ký 4." in by_user["prov_leader"]
    assert by_user["prov_leader"].count("•") == 4
    assert by_user["other_officer"].count("•") == 1
    assert sweep_at(demo, at(11, 16, 9, 0)).created == 0


def test_a_school_that_sends_late_drops_out_of_later_lists(make: Any) -> None:
    app = make(escalate_after_days=[1, 7])
    sweep_at(app, at(11, 16, 8, 0))
    first = outbox(app, kind="article-late", step="e1")
    officer_first = next(r for r in first if r.payload["text"].count("•"))
    assert "Pú Nhi" in officer_first.payload["text"]
    submit(app, PUNHI, "2026-11")  # late
    send_all(app)
    sweep_at(app, at(11, 22, 8, 0))
    later = outbox(app, kind="article-late", step="e7")
    officer_later = next(r for r in later if r.payload["text"].count("•"))
    assert "Pú Nhi" not in officer_later.payload["text"]
    assert "1/5 trường đã nộp; chưa nộp 0, chưa đăng ký 4." in officer_later.payload["text"]


def test_no_list_when_every_school_sent(demo: App) -> None:
    for code in ("MN-HOABAN", "TH-THITRAN", PUNHI, "THCS-TTDBD", "THTHCS-NAMAI"):
        submit(demo, code, "2026-11")
    assert sweep_at(demo, at(11, 16, 8, 0)).created == 0


def test_a_long_list_is_cut_and_counted(demo: App) -> None:
    with demo.db.session() as s:
        office = q.office_by_code(s, "PGD-DEMO")
        assert office is not None
        for n in range(reminders.MAX_LISTED + 10):
            add_school(s, f"X{n}", f"Trường X{n:03d}", "TH", office.id or 0)
    sweep_at(demo, at(11, 16, 8, 0))
    officer = next(r for r in outbox(demo, kind="article-late") if "•" in r.payload["text"])
    text = officer.payload["text"]
    # Pú Nhi (registered) under "chưa nộp"; the 74 schools with no account cut at MAX_LISTED
    assert text.count("•") == 1 + reminders.MAX_LISTED
    assert text.endswith("… và 14 trường khác.")
    assert len(text) < 4096


# ---- "Nhắc lại sau" -------------------------------------------------------------------------------------


async def test_remind_me_later_once_per_step_tomorrow_morning(demo: App) -> None:
    sweep_at(demo, at(11, 10, 8, 0))
    send_all(demo)
    frozen(demo).set(at(11, 10, 9, 30))
    first = await apress(demo, "principal", "r:a:2026-11:d5", 1)
    assert first == ["Đã ghi nhận. Bot sẽ nhắc lại lúc 08:00 11/11."]
    [later] = outbox(demo, step="d5-later")
    assert later.not_before.astimezone(demo.clock.tz) == at(11, 11).replace(tzinfo=demo.clock.tz)
    assert "còn 4 ngày" in later.payload["text"]
    assert [c[1] for r in later.payload["choices"] for c in r] == ["m:article"]  # no second "later"
    again = await apress(demo, "principal", "r:a:2026-11:d5", 2)
    assert again == ["Lời nhắc này đã được hẹn lại: bot sẽ nhắc lúc 08:00 11/11."]
    assert len(outbox(demo, step="d5-later")) == 1
    # The snoozed reminder is held until its time, then goes like any other.
    assert claim(demo) == []
    frozen(demo).set(at(11, 11, 8, 0))
    assert [r.step for r in claim(demo)] == ["d5-later"]


async def test_remind_me_later_when_the_ladder_reminds_by_then_anyway(demo: App) -> None:
    sweep_at(demo, at(11, 13, 8, 0))  # d2; the next rung (d1) is tomorrow at 08:00
    replies = await apress(demo, "principal", "r:a:2026-11:d2")
    assert replies == ["Đã ghi nhận. Bot sẽ nhắc lại lúc 08:00 14/11."]
    assert outbox(demo, step="d2-later") == []


async def test_remind_me_later_over_a_pause_comes_the_first_morning_after(make: Any) -> None:
    app = make(
        pauses=[{"name": "Tết", "start": "2027-02-02", "end": "2027-02-03"}], article_reminders=[14, 1]
    )
    sweep_at(app, at(2, 1, 19, 0, year=2027))  # 15 Feb - 14 days
    rows = outbox(app, kind="article-remind")
    assert [(r.period, r.step) for r in rows] == [("2027-02", "d14")]
    frozen(app).set(at(2, 1, 19, 50, year=2027))
    replies = await apress(app, "principal", "r:a:2027-02:d14")
    assert replies == ["Đã ghi nhận. Bot sẽ nhắc lại lúc 08:00 04/02."]  # tomorrow is in the pause
    [later] = outbox(app, step="d14-later")
    assert later.not_before.astimezone(app.clock.tz).isoformat() == "2027-02-04T08:00:00+07:00"


async def test_remind_me_later_refusals(demo: App) -> None:
    sweep_at(demo, at(11, 10, 8, 0))
    assert await apress(demo, "principal", "r:a:2026-11:d9") == ["Lời nhắc này không còn hiệu lực."]
    assert await apress(demo, "principal", "r:a:2026-13:d5") == ["Lời nhắc này không còn hiệu lực."]
    assert await apress(demo, "principal", "r:x:2026-11:d5") == ["Lời nhắc này không còn hiệu lực."]
    assert await apress(demo, "principal", "r:a:2026-11") == ["Lời nhắc này không còn hiệu lực."]
    assert await apress(demo, "principal", "r:a:2026-11:d5-later") == ["Lời nhắc này không còn hiệu lực."]
    assert await apress(demo, "principal", "r:r:zzz-2026:d14") == ["Lời nhắc này không còn hiệu lực."]
    assert await apress(demo, "principal", "r:r:nam-99999:d14") == ["Lời nhắc này không còn hiệu lực."]
    officer = await apress(demo, "officer", "r:a:2026-11:d5")
    assert "Lời nhắc" not in officer[0]  # not for this role
    submit(demo, PUNHI, "2026-11")
    assert await apress(demo, "principal", "r:a:2026-11:d5", 3) == [
        "Nhà trường đã nộp, không cần nhắc lại. Trân trọng cảm ơn thầy/cô."
    ]
    assert outbox(demo, step="d5-later") == []


async def test_no_remind_me_later_on_the_deadline_day(make: Any) -> None:
    app = make(article_reminders=[0])
    sweep_at(app, at(11, 15, 8, 0))
    [row] = outbox(app)
    assert [c[1] for r in row.payload["choices"] for c in r] == ["m:article"]
    replies = await apress(app, "principal", "r:a:2026-11:d0")  # an old or forged button
    assert replies == [
        "Hạn nộp là 23:59 ngày 15/11/2026, bot không kịp nhắc lại. Đề nghị thầy/cô bấm nút phía trên để nộp ngay."
    ]


# ---- the school year ------------------------------------------------------------------------------------


def test_the_school_year_turns_in_september(demo: App) -> None:
    from handlers.calendar import Calendar

    cal = Calendar(demo.clock, demo.settings.schedule)
    assert cal.school_year(at(8, 31, 23, 59).replace(tzinfo=demo.clock.tz)).key == "2025-2026"
    assert cal.school_year(at(9, 1, 0, 0).replace(tzinfo=demo.clock.tz)).key == "2026-2027"
    assert cal.school_year().contains(at(5, 25, year=2027).date())


def test_an_officer_limited_to_some_levels_hears_only_of_those_schools(demo: App) -> None:
    add_user(demo, "mn_officer", "officer", "PGD-DEMO", "Chị Mầm Non")
    with demo.db.session() as s:
        user = q.get_user(s, "console", "mn_officer")
        assert user is not None
        user.levels = "MN"
        s.add(user)
    sweep_at(demo, at(11, 16, 8, 0))
    with demo.db.session() as s:
        user = q.get_user(s, "console", "mn_officer")
        assert user is not None
        [row] = s.exec(select(Outbox).where(Outbox.user_id == user.id)).all()
    assert row.payload["text"].splitlines()[1:] == ["Chưa đăng ký dùng bot (1):", "• Trường Mầm non Hoa Ban"]


def test_a_person_with_two_accounts_is_reminded_once_where_zalo_deliver_to_says(demo: App, make: Any) -> None:
    with demo.db.session() as s:
        lan = q.get_user(s, "console", "principal")
        assert lan is not None
        lan.person_id = 77
        lan.last_seen_at = demo.clock.now()
        s.add(lan)
        s.add(
            User(
                channel="telegram",
                external_id="9",
                chat_id="9",
                role="principal",
                school_id=lan.school_id,
                office_id=lan.office_id,
                person_id=77,
                created_at=demo.clock.now(),
            )
        )
    plan = reminders.plan(
        demo.db, demo.clock, demo.settings, demo.catalog, at(11, 10).replace(tzinfo=demo.clock.tz)
    )
    assert [(i.user.channel, i.user.external_id) for i in plan.items] == [("console", "principal")]
    both = demo.settings.model_copy(
        update={"zalo": demo.settings.zalo.model_copy(update={"deliver_to": "both"})}
    )
    plan = reminders.plan(demo.db, demo.clock, both, demo.catalog, at(11, 10).replace(tzinfo=demo.clock.tz))
    assert sorted(i.user.channel for i in plan.items) == ["console", "telegram"]
