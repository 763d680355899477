"""The chart's closed months from the month rollup: the live count's figures, kept true by the sweep, in scope.

The demo district grown past SMALL_OFFICE (so its leader's chart is by level) with a school of every
level, TH&THCS included; district B beside it and two schools held by the province itself. Principals
joined at known moments (one mid-September, one at the very first moment of October, one after the
month it sent an article for) and six months of articles of every kind of state. The clock stands at
10/11/2026 09:00.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.app import App, open_app
from bot.config import Settings, load_settings
from bot.demo import seed_demo
from handlers.calendar import Calendar, FrozenClock, Period, month_end
from handlers.leaders import rollup, summary
from handlers.leaders.reader import Where, where_of
from handlers.months import MonthState, month_state
from handlers.types import Context
from storage import migrate, stats
from storage import queries as q
from storage.models import Office, School, Submission, User
from storage.orgimport import COLUMNS, import_rows
from storage.scope import Scope, sized
from storage.text import fold
from tests.conftest import Chat
from tests.handlers.article_helpers import photo_files, write_article
from tests.storage.test_postgres import pg_url_fixture  # noqa: F401  (the fixture pg_url)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
JOINED = datetime(2025, 8, 1, 9, tzinfo=TZ)
OCTOBER = Period(2026, 10)
MONTHS = [Period(2026, 4).shift(n) for n in range(7)]  # April to October 2026: all closed on 10/11
COUNTS = ("expected", "sent", "on_time", "approved", "published", "articles")

# code, level, office ("A": the demo district, "B": district B, "P": the province itself), joined
EXTRA = (
    ("MN-X0", "MN", "A", datetime(2026, 9, 15, 14, tzinfo=TZ)),  # mid-September: counts from September
    ("MN-X1", "MN", "A", None),  # never registered
    ("MN-X2", "MN", "A", JOINED),
    ("TH-X0", "TH", "A", datetime(2026, 10, 1, 0, 0, tzinfo=TZ)),  # the first moment of October
    ("TH-X1", "TH", "A", JOINED),
    ("TH-X2", "TH", "A", datetime(2026, 11, 3, 8, tzinfo=TZ)),  # after October, yet sent for it
    ("THCS-X0", "THCS", "A", JOINED),
    ("THTHCS-X0", "TH&THCS", "A", JOINED),
    ("MNTH-X0", "MN&TH", "A", datetime(2026, 6, 30, 23, 59, tzinfo=TZ)),  # the last minute of June
    ("THCS-B1", "THCS", "B", JOINED),
    ("TH-B2", "TH", "B", datetime(2026, 7, 20, 9, tzinfo=TZ)),
    ("THPT-P1", "THPT", "P", JOINED),
    ("GDTX-P1", "GDTX", "P", JOINED),
)
DEMO_JOINED = {"MN-HOABAN": JOINED, "TH-THITRAN": JOINED, "THCS-PUNHI": JOINED, "THTHCS-NAMAI": JOINED}
STATES = ("submitted", "approved", "published", "returned")
FIXED = {("THCS-PUNHI", OCTOBER), ("THCS-X0", OCTOBER), ("TH-X2", OCTOBER)}  # articles placed by hand


def at(y: int, m: int, d: int, h: int = 9) -> datetime:
    return datetime(y, m, d, h, tzinfo=TZ)


def seed(app: App) -> dict[str, int]:
    """The organisation, principals and articles described above; school ids by code."""
    rng = random.Random(7)
    with app.db.session() as s:
        province = q.office_by_code(s, "SGD-DEMO")
        district = q.office_by_code(s, "PGD-DEMO")
        assert province is not None and district is not None
        b = Office(code="PGD-B", name="Phòng GD&ĐT huyện Mường Nhé", kind="district", parent_id=province.id)
        s.add(b)
        s.flush()
        assert district.id is not None and b.id is not None and province.id is not None
        offices = {"A": district.id, "B": b.id, "P": province.id}
        for code, level, office, _ in EXTRA:
            name = f"Trường {level} {code}"
            s.add(
                School(code=code, name=name, name_folded=fold(name), level=level, office_id=offices[office])
            )
        s.flush()
        demo_principal = q.get_user(s, "console", "principal")
        assert demo_principal is not None
        s.execute(update(User).where(col(User.id) == demo_principal.id).values(created_at=JOINED))
        authors = {"THCS-PUNHI": demo_principal.id}
        since = {**DEMO_JOINED, **{c: j for c, _, _, j in EXTRA if j is not None}}
        for code, joined in [*DEMO_JOINED.items(), *((c, j) for c, _, _, j in EXTRA)]:
            if joined is None or code in authors:
                continue
            school = q.school_by_code(s, code)
            assert school is not None
            user = User(
                channel="console",
                external_id=f"p-{code}",
                chat_id=f"p-{code}",
                display_name=code,
                role="principal",
                school_id=school.id,
                office_id=school.office_id,
                created_at=joined,
            )
            s.add(user)
            s.flush()
            authors[code] = user.id
        ids = {sc.code: sc.id or 0 for sc in s.exec(select(School))}
        for code, author in authors.items():
            for p in MONTHS:
                if (code, p) in FIXED or since[code] >= month_end(p, app.clock) or rng.random() < 0.25:
                    continue
                for _ in range(2 if rng.random() < 0.3 else 1):
                    day = rng.randint(1, 28)
                    article(s, ids[code], author or 0, p, at(p.year, p.month, day), rng.choice(STATES))
        # The demo principal's October is left for a late article; THCS-X0 has one, awaiting review.
        article(s, ids["THCS-X0"], authors["THCS-X0"] or 0, OCTOBER, at(2026, 10, 9), "submitted")
        article(s, ids["TH-X2"], authors["TH-X2"] or 0, OCTOBER, at(2026, 11, 3), "submitted")
    return ids


def article(s: Session, school_id: int, user_id: int, period: Period, when: datetime, state: str) -> None:
    s.add(
        Submission(
            kind="article",
            school_id=school_id,
            user_id=user_id,
            period=period.key,
            status=state,
            answers={"title": "Bài viết"},
            token=secrets.token_hex(16),
            late=when > at(period.year, period.month, 15, 23),
            submitted_at=when,
            created_at=when,
            updated_at=when,
        )
    )


def scope_of(app: App, code: str, levels: tuple[str, ...] = ()) -> Scope:
    with app.db.session() as s:
        office = q.office_by_code(s, code)
        assert office is not None and office.id is not None
        return sized(s, Scope(office.id, levels))


def counts(f: stats.Figures | None) -> tuple[int, ...]:
    return tuple(getattr(f, name) for name in COUNTS) if f is not None else (0,) * len(COUNTS)


def live(app: App, scope: Scope, months: list[Period]) -> dict[str, list[tuple[int, ...]]]:
    """Per level and month, the figures counted from the submissions (what /status says of a month)."""
    with app.db.session() as s:
        by_month = [stats.month_by_level(s, scope, p.key, month_end(p, app.clock)) for p in months]
    levels = {level for month in by_month for level in month}
    return {level: [counts(month.get(level)) for month in by_month] for level in levels}


def rolled(app: App, scope: Scope, months: list[Period]) -> dict[str, list[tuple[int, ...]]]:
    """The same from the rollup, as the leaders' chart reads it."""
    with app.db.session() as s:
        history = rollup.closed_by_level(s, app.clock, scope, months)
    return {level: [counts(f) for f in figures] for level, figures in history.items()}


def chart(app: App, user: str = "leader") -> dict[str, list[stats.Figures]]:
    """The closed months of the leader's /status chart for November (June to October), by level."""
    with app.db.session() as s:
        reader = q.get_user(s, "console", user)
    ctx = Context(
        db=app.db,
        clock=app.clock,
        t=app.catalog.translator("vi"),
        settings=app.settings,
        user=reader,
        channel="console",
        catalog=app.catalog,
    )
    where = where_of(ctx)
    assert isinstance(where, Where) and where.scope.schools > summary.SMALL_OFFICE
    return summary.gather(ctx, where, Period(2026, 11)).history


def october(app: App, level: str) -> tuple[int, ...]:
    return counts(chart(app)[level][-1])


@pytest.fixture(name="seeded", params=["sqlite", "postgresql"])
def seeded_fixture(
    request: pytest.FixtureRequest, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> Iterator[tuple[App, dict[str, int]]]:
    """The seeded app, on SQLite and (when a local server answers) PostgreSQL."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        settings = load_settings(None, database_url=url, media_dir=str(tmp_path / "media"))
    with open_app(settings, clock, upgrade=request.param == "sqlite") as app:
        migrate.upgrade(app.db)
        with app.db.session() as s:
            seed_demo(s, clock.now())
        yield app, seed(app)


# ---- the same figures as counting live --------------------------------------------------------------


@pytest.mark.parametrize(
    ("office", "levels"),
    [
        ("PGD-DEMO", ()),
        ("PGD-DEMO", ("TH",)),  # TH&THCS and MN&TH count as TH too
        ("PGD-DEMO", ("THCS", "MN")),
        ("PGD-B", ()),
        ("SGD-DEMO", ()),  # every school: no office is checked
        ("SGD-DEMO", ("THPT", "GDTX")),  # the province's own schools
    ],
)
def test_the_rollup_gives_the_live_figures_of_every_level_and_month(
    seeded: tuple[App, dict[str, int]], office: str, levels: tuple[str, ...]
) -> None:
    app, _ = seeded
    scope = scope_of(app, office, levels)
    with app.db.session() as s:
        assert stats.stored_months(s) == {}
    assert rolled(app, scope, MONTHS) == live(app, scope, MONTHS)
    with app.db.session() as s:
        assert sorted(stats.stored_months(s)) == [p.key for p in MONTHS]  # computed once, for everyone


def test_the_seed_covers_the_edge_cases(seeded: tuple[App, dict[str, int]]) -> None:
    """The comparison above is worth something: joiners mid-month and at a month's edge, combined levels."""
    app, _ = seeded
    figures = live(app, scope_of(app, "PGD-DEMO"), MONTHS)
    owed = {level: [month[0] for month in months] for level, months in figures.items()}
    assert owed == {
        #          Apr May Jun Jul Aug Sep Oct
        "MN": [2, 2, 2, 2, 2, 3, 3],  # MN-X0 from mid-September; MN-X1 never
        # TH-X0 from 1 October 00:00; TH-X2 (joined in November) sent for October anyway
        "TH": [2, 2, 2, 2, 2, 2, 4],
        "THCS": [2, 2, 2, 2, 2, 2, 2],  # THCS-TTDBD never joined
        "TH&THCS": [2, 2, 2, 2, 2, 2, 2],
        "MN&TH": [0, 0, 1, 1, 1, 1, 1],  # joined in June's last minute
    }


def test_the_sql_counts_agree_with_month_state(seeded: tuple[App, dict[str, int]]) -> None:
    """Per school, `month_state` gives the counts the SQL sums: owed, sent, on time, not sent yet owed."""
    app, _ = seeded
    cal = Calendar(app.clock, app.settings.schedule)
    scope = scope_of(app, "SGD-DEMO")
    months = [*MONTHS, Period(2026, 11)]  # the closed months and the current one (not yet due)
    with app.db.session() as s:
        per_school = stats.schools_months(s, scope, [p.key for p in months])
        figures = [
            sum(stats.month_by_level(s, scope, p.key, month_end(p, app.clock)).values(), stats.Figures())
            for p in months
        ]
    seen: set[MonthState] = set()
    for p, f in zip(months, figures, strict=True):
        states = [
            month_state(cal, p, sent.get(p.key), registered, app.clock.now())
            for _, registered, sent in per_school
        ]
        seen.update(states)
        assert (f.expected, f.sent, f.on_time, f.missing) == (
            sum(state.owed for state in states),
            sum(state.sent for state in states),
            states.count(MonthState.ON_TIME),
            states.count(MonthState.MISSING) + states.count(MonthState.PENDING),
        ), p
    assert seen == set(MonthState)  # every state is met


# ---- kept true by the clock ------------------------------------------------------------------------


async def test_a_closed_months_change_reaches_the_chart_at_the_next_sweep(
    demo: App, clock: FrozenClock, tmp_path: Path
) -> None:
    ids = seed(demo)
    await demo.clockwork.tick()  # the catch-up sweep at start
    with demo.db.session() as s:
        assert sorted(stats.stored_months(s)) == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10"]
    district = scope_of(demo, "PGD-DEMO")
    assert {level: [counts(f) for f in months] for level, months in chart(demo).items()} == live(
        demo, district, MONTHS[2:]
    )
    with demo.db.session() as s:
        officer = q.get_user(s, "console", "officer")
        row = s.exec(
            select(Submission).where(Submission.school_id == ids["THCS-X0"], Submission.period == "2026-10")
        ).one()
    assert officer is not None and officer.id is not None and row.id is not None

    # An officer approves an October article in November: the chart has it from the next sweep.
    before = october(demo, "THCS")
    clock.advance(minutes=3)
    with demo.db.session() as s:
        assert q.review(
            s, row.id, row.version, officer.id, "approve", clock.now(), ("submitted",), "approved"
        )
    assert october(demo, "THCS") == before
    await demo.clockwork.tick()
    assert moved(before, october(demo, "THCS")) == {"approved": 1}

    # Then publishes it.
    before = october(demo, "THCS")
    clock.advance(minutes=5)
    with demo.db.session() as s:
        link = "https://pgd.example/bai"
        assert q.review(
            s, row.id, row.version, officer.id, "publish", clock.now(), ("approved",), "published", link
        )
    await demo.clockwork.tick()
    assert moved(before, october(demo, "THCS")) == {"published": 1}

    # A late article from a draft begun before October ended, sent in November.
    before = october(demo, "THCS")
    clock.set(datetime(2026, 10, 30, 10, 0))
    principal = Chat(demo, "principal", "Cô Lò Thị Lan")
    await write_article(principal, photo_files(tmp_path), when="28/10/2026")
    clock.set(datetime(2026, 11, 10, 10, 0))
    await principal.press("Gửi")
    with demo.db.session() as s:
        sent = s.exec(
            select(Submission).where(
                Submission.school_id == ids["THCS-PUNHI"], Submission.period == "2026-10"
            )
        ).one()
    assert sent.late
    await demo.clockwork.tick()
    assert moved(before, october(demo, "THCS")) == {"sent": 1, "articles": 1}  # late: not on time
    assert {level: [counts(f) for f in months] for level, months in chart(demo).items()} == live(
        demo, district, MONTHS[2:]
    )


def moved(before: tuple[int, ...], after: tuple[int, ...]) -> dict[str, int]:
    """Which counts changed, by how much."""
    return {name: b - a for name, a, b in zip(COUNTS, before, after, strict=True) if a != b}


async def test_a_principal_seen_before_joins_when_registering_and_old_months_stay(
    demo: App, clock: FrozenClock
) -> None:
    """An account that wrote to the bot in September and redeems a principal's code in November makes
    its school count from November: the closed months do not change, now or after the daily rebuild."""
    ids = seed(demo)
    with demo.db.session() as s:  # wrote to the bot in September; gets MN-X1's principal code in November
        s.add(
            User(
                channel="console",
                external_id="late",
                chat_id="late",
                display_name="Cô Vàng Thị Mai",
                created_at=at(2026, 9, 20),
            )
        )
        target = q.InviteTarget("principal", school_id=ids["MN-X1"])
        code = q.create_invites(s, target, 1, clock.now(), 14)[0].code
    await demo.clockwork.tick()
    before = [counts(f) for f in chart(demo)["MN"]]
    clock.advance(minutes=10)
    await Chat(demo, "late").send(f"/start {code}")
    with demo.db.session() as s:
        user = q.get_user(s, "console", "late")
        assert user is not None and user.role == "principal" and user.registered_at == clock.now()
        assert stats.school_registered(s, ids["MN-X1"]) == clock.now()
    await demo.clockwork.tick()
    assert [counts(f) for f in chart(demo)["MN"]] == before
    clock.set(datetime(2026, 11, 11, 9, 0))
    await demo.clockwork.tick()
    assert [counts(f) for f in chart(demo)["MN"]] == before  # not owed for September or October
    assert {level: [counts(f) for f in months] for level, months in chart(demo).items()} == live(
        demo, scope_of(demo, "PGD-DEMO"), MONTHS[2:]
    )


async def test_what_moves_a_closed_month_without_an_article_shows_within_a_day(
    demo: App, clock: FrozenClock
) -> None:
    """An operator backdating a principal's registration in the database touches no article: the daily
    rebuild catches it."""
    ids = seed(demo)
    await demo.clockwork.tick()
    before = [counts(f) for f in chart(demo)["MN"]]
    with demo.db.session() as s:
        s.add(
            User(
                channel="console",
                external_id="fixed",
                chat_id="fixed",
                role="principal",
                school_id=ids["MN-X1"],
                created_at=clock.now(),
                registered_at=at(2026, 9, 20),  # as it should have been recorded
            )
        )
    await demo.clockwork.tick()
    assert [counts(f) for f in chart(demo)["MN"]] == before
    clock.set(datetime(2026, 11, 11, 9, 0))
    await demo.clockwork.tick()
    after = [counts(f) for f in chart(demo)["MN"]]
    assert [a[0] - b[0] for a, b in zip(after, before, strict=True)] == [0, 0, 0, 1, 1]  # owes Sep, Oct
    assert {level: [counts(f) for f in months] for level, months in chart(demo).items()} == live(
        demo, scope_of(demo, "PGD-DEMO"), MONTHS[2:]
    )


# ---- never across a scope --------------------------------------------------------------------------


def test_a_district_counts_its_own_schools_and_the_province_all(seeded: tuple[App, dict[str, int]]) -> None:
    app, _ = seeded
    a, b, province = (scope_of(app, code) for code in ("PGD-DEMO", "PGD-B", "SGD-DEMO"))
    own = scope_of(app, "SGD-DEMO", ("THPT", "GDTX"))  # the province's own schools: no district's
    parts = [rolled(app, scope, MONTHS) for scope in (a, b, own)]
    assert rolled(app, a, MONTHS) == live(app, a, MONTHS) and rolled(app, b, MONTHS) == live(app, b, MONTHS)
    assert set(parts[0]).isdisjoint(parts[2]) and set(parts[1]).isdisjoint(parts[2])
    whole = rolled(app, province, MONTHS)
    for level, months in whole.items():
        for i, month in enumerate(months):
            summed = [sum(part[level][i][k] for part in parts if level in part) for k in range(len(COUNTS))]
            assert list(month) == summed
    assert rolled(app, b, [OCTOBER]) != rolled(app, a, [OCTOBER])


HEADER = list(COLUMNS)


def test_a_school_moved_by_an_import_counts_for_its_new_district_only(
    seeded: tuple[App, dict[str, int]],
) -> None:
    app, _ = seeded
    a, b = scope_of(app, "PGD-DEMO"), scope_of(app, "PGD-B")
    before_a, before_b = rolled(app, a, MONTHS), rolled(app, b, MONTHS)
    moved_school = [
        "PGD-B",
        "Phòng GD&ĐT huyện Mường Nhé",
        "district",
        "SGD-DEMO",
        "THCS-X0",
        "Trường THCS THCS-X0",
    ]
    import_rows(app.db, [HEADER, [*moved_school, "THCS"]])
    with app.db.session() as s:
        assert stats.stored_months(s) == {}  # dropped: recomputed when next needed
    a, b = scope_of(app, "PGD-DEMO"), scope_of(app, "PGD-B")
    assert rolled(app, a, MONTHS) == live(app, a, MONTHS) != before_a
    assert rolled(app, b, MONTHS) == live(app, b, MONTHS) != before_b
    owed = [month[0] for month in rolled(app, b, MONTHS)["THCS"]]
    assert owed == [month[0] + 1 for month in before_b["THCS"]]  # THCS-X0 joined long before

    import_rows(app.db, [HEADER, [*moved_school, "THCS"]])  # the same file again changes nothing
    with app.db.session() as s:
        assert sorted(stats.stored_months(s)) == [p.key for p in MONTHS]
