"""Leaders' aggregates: a scope's month by level, who is missing, the year's record. SQL does the counting.

Every function is one statement over a scope's schools (an office and every office below it, maybe only
some levels), with the counting in SQL aggregates; nothing loops over schools issuing queries. Per-school
facts come from derived tables joined to the school table (never correlated subqueries, which cost a seek
per school per use): `principals` (when the school joined) and `month_articles` (its articles for a month).
For a small scope those derived tables are restricted to the scope's schools; for a scope holding most of
the database they are built whole, which is cheaper than checking each row's school.

A school owes a month once registered (its first principal redeemed a code before the month ended;
`joined()`: older accounts count from their creation), or if it sent an article for that month anyway.
Every figure's denominator is every school of the scope: a school that owed nothing (no account by the
month's end, nothing sent) is not submitted and is counted as its own group, not registered
(`Figures.unregistered`), so /status, the chart, /export, /digest, the escalation and the ranking give
the same numbers.

Closed months are also kept in the month rollup (`MonthRollup`): per month, one row per office and level
with the counts that add up over schools (`month_counts`), so the chart's earlier months for any scope are
a sum over the rows of its offices. `store_month` computes a month's rows in one INSERT ... SELECT;
handlers/leaders/rollup.py decides when.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVarTuple

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlmodel import Session, col

from storage.db import upsert_select
from storage.models import (
    Incident,
    IncidentAck,
    MonthCounts,
    MonthRollup,
    Office,
    School,
    Submission,
    User,
    UTCDateTime,
)
from storage.scope import Scope, in_scope, level_filter, offices_under, school_ids
from storage.text import fold

ARTICLE = "article"
NOMINATION = "nomination"
REPORT = "report"
APPROVED = ("approved", "published")  # a published article was approved first
Row = TypeVarTuple("Row")


def by_level() -> Any:
    """The school's level as a grouping key.

    An expression, not the bare column: grouped by the column, SQLite walks the level index over every
    school of the database to skip a sort, which for a district costs a thousand times what it saves.
    """
    # no bound parameter: GROUP BY must match it
    return func.coalesce(col(School.level), literal_column("''"))


def flag(condition: SQLColumnExpression[bool]) -> Any:
    """1 when `condition` holds, else 0 (portable: PostgreSQL has no MAX over booleans)."""
    return case((condition, 1), else_=0)


def only(scope: Scope, column: Any) -> list[ColumnElement[bool]]:
    """Restrict a derived table to the scope's schools, unless the scope is broad."""
    return [] if scope.broad else [col(column).in_(school_ids(scope))]


def joined() -> Any:
    """When an account joined: its registration (a code redeemed), else its creation (older rows)."""
    return func.coalesce(col(User.registered_at), col(User.created_at))


def principals(scope: Scope) -> Any:
    """Per school, when it joined: its first principal's registration."""
    return (
        select(col(User.school_id).label("school_id"), func.min(joined()).label("reg"))
        .where(
            col(User.role) == "principal", col(User.school_id).is_not(None), *only(scope, col(User.school_id))
        )
        .group_by(col(User.school_id))
        .subquery("principals")
    )


def month_articles(scope: Scope, period: str, with_dates: bool = False, kind: str = ARTICLE) -> Any:
    """Per school, its articles (or `kind`) for `period`: any on time, any approved, any published, how many.

    Without dates it reads only the (kind, period, school_id, late, status) index.
    """
    columns = [
        col(Submission.school_id).label("school_id"),
        func.min(flag(col(Submission.late))).label("late"),  # 0: at least one was on time
        func.max(flag(col(Submission.status).in_(APPROVED))).label("approved"),
        func.max(flag(col(Submission.status) == "published")).label("published"),
        func.max(flag(col(Submission.status) == "submitted")).label("waiting"),
        func.count().label("articles"),
    ]
    if with_dates:
        columns.append(
            func.min(func.coalesce(col(Submission.submitted_at), col(Submission.created_at))).label(
                "first_at"
            )
        )
    return (
        select(*columns)
        .where(
            col(Submission.kind) == kind,
            col(Submission.period) == period,
            *only(scope, col(Submission.school_id)),
        )
        .group_by(col(Submission.school_id))
        .subquery("month")
    )


# ---- the month, by level -------------------------------------------------------------------------


class Gap:
    """A figure that is one count less another, declared on the class: `late = Gap("sent", "on_time", doc)`."""

    def __init__(self, whole: str, part: str, doc: str) -> None:
        self.whole, self.part, self.__doc__ = whole, part, doc

    def __get__(self, figures: object, owner: type | None = None) -> int:
        return int(getattr(figures, self.whole)) - int(getattr(figures, self.part))


class Figures(MonthCounts):
    """A month's article figures for some schools: the month's counts, and the schools' own.

    `schools`, `registered`: how many schools, and with a principal; the facts of today, left at 0 for
    a month read from the rollup.
    """

    schools: int = 0
    registered: int = 0

    # What the counts leave: each one field less another.
    late: ClassVar[Gap] = Gap("sent", "on_time", "Schools whose articles for the month were all late.")
    missing: ClassVar[Gap] = Gap(
        "expected",
        "sent",
        "Schools that owe the month (registered by its end) and sent nothing: not submitted.",
    )
    unregistered: ClassVar[Gap] = Gap(
        "schools",
        "expected",
        "Schools with no account by the month's end that sent nothing: not registered.",
    )
    not_sent: ClassVar[Gap] = Gap("schools", "sent", "Every school of the scope that did not send the month.")

    @property
    def rate(self) -> int:
        """Per cent of the scope's schools (every one, registered or not) that sent the month."""
        return round(100 * self.sent / self.schools) if self.schools else 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(**{name: getattr(self, name) + getattr(other, name) for name in FIGURES})


MONTH_COUNTS = tuple(MonthCounts.model_fields)  # expected, sent, on_time, approved, published, articles
FIGURES = tuple(Figures.model_fields)


def month_counts(month: Any, reg: Any, until: datetime) -> list[Any]:
    """The month's counts that add up over schools, in MONTH_COUNTS' order.

    Per school each is a fact of the month alone: it owed the month (a principal before `until`, the
    month's end, or an article for it anyway), it sent, one was on time, approved, published, how many.
    """
    sent = month.c.school_id.is_not(None)
    return [
        func.sum(flag(or_(reg.c.reg < until, sent))),
        func.count(month.c.school_id),
        func.coalesce(func.sum(flag(month.c.late == 0)), 0),
        func.coalesce(func.sum(month.c.approved), 0),
        func.coalesce(func.sum(month.c.published), 0),
        func.coalesce(func.sum(month.c.articles), 0),
    ]


def month_by_level(
    s: Session, scope: Scope, period: str, until: datetime, kind: str = ARTICLE
) -> dict[str, Figures]:
    """The month's figures per level (registered means: before `until`, the month's end).

    With `kind` REPORT and a periodic report's period, the same figures for that report (`until`: its
    deadline, as a school that joined after it does not owe it).
    """
    month = month_articles(scope, period, kind=kind)
    reg = principals(scope)
    stmt = (
        select(by_level(), func.count(), func.count(reg.c.reg), *month_counts(month, reg, until))
        .select_from(School)
        .outerjoin(reg, reg.c.school_id == col(School.id))
        .outerjoin(month, month.c.school_id == col(School.id))
        .where(*in_scope(scope))
        .group_by(by_level())
    )
    names = ("schools", "registered", *MONTH_COUNTS)
    return {
        row[0]: Figures(**dict(zip(names, (int(v or 0) for v in row[1:]), strict=True)))
        for row in s.execute(stmt)
    }


# ---- closed months: the month rollup ---------------------------------------------------------------

EVERY_SCHOOL = Scope(0, broad=True, everything=True)


def rollup_rows(period: str, until: datetime, computed_at: datetime) -> Select[Any]:
    """The month's rollup rows, computed: one per (office, level) of every school, in MonthRollup's order."""
    month = month_articles(EVERY_SCHOOL, period)
    reg = principals(EVERY_SCHOOL)
    # An expression, as in `by_level`: grouped by the bare column, SQLite walks the office index and
    # fetches every school from there (1.7 times the cost of a scan and a sort at national scale).
    office = func.coalesce(col(School.office_id), literal_column("0"))
    return (
        select(
            literal(period),
            office,
            by_level(),
            *month_counts(month, reg, until),
            literal(computed_at, UTCDateTime()),
        )
        .select_from(School)
        .outerjoin(reg, reg.c.school_id == col(School.id))
        .outerjoin(month, month.c.school_id == col(School.id))
        .group_by(office, by_level())
    )


def store_month(s: Session, period: str, until: datetime, now: datetime) -> None:
    """(Re)compute a month's rollup from the submissions, in one statement; rows of groups gone are dropped."""
    s.execute(delete(MonthRollup).where(col(MonthRollup.period) == period))
    columns = ["period", "office_id", "level", *MONTH_COUNTS, "computed_at"]
    upsert_select(s, MonthRollup, columns, rollup_rows(period, until, now))


def stored_months(s: Session, periods: Sequence[str] | None = None) -> dict[str, datetime]:
    """The months the rollup holds (among `periods` when given), each with when it was computed."""
    stmt = select(col(MonthRollup.period), func.min(col(MonthRollup.computed_at))).group_by(
        col(MonthRollup.period)
    )
    if periods is not None:
        stmt = stmt.where(col(MonthRollup.period).in_(periods))
    return {period: utc(at) for period, at in s.execute(stmt)}


def changed_months(s: Session, since: datetime) -> dict[str, datetime]:
    """The months whose articles were sent, edited or reviewed after `since`, with the latest change.

    Every write to a submission stamps `updated_at`; the (kind, updated_at, period) index holds the answer.
    Grouped by an expression, as in `by_level`: grouped by the bare column, SQLite walks the whole month
    index in period order to skip a sort of the few rows that changed.
    """
    period = func.coalesce(col(Submission.period), literal_column("''"))
    stmt = (
        select(period, func.max(col(Submission.updated_at)))
        .where(col(Submission.kind) == ARTICLE, col(Submission.updated_at) > since)
        .group_by(period)
    )
    return {key: utc(at) for key, at in s.execute(stmt) if key}


def forget_rollup(s: Session) -> None:
    """Drop every stored month (schools moved to another office or level): recomputed when next needed."""
    s.execute(delete(MonthRollup))


def rollup_by_level(s: Session, scope: Scope, periods: Sequence[str]) -> dict[str, list[Figures]]:
    """Per level, the scope's figures for each of `periods` from the rollup, in their order.

    A sum over the rows of the scope's offices (and levels): a few thousand rows for the whole country.
    `schools` and `registered` are left at 0: they are facts of today, not of a month.
    """
    r = MonthRollup
    conditions: list[ColumnElement[bool]] = [col(r.period).in_(periods)]
    if not scope.everything:
        conditions.append(col(r.office_id).in_(offices_under(scope.office_id)))
        if scope.levels:
            conditions.append(level_filter(scope.levels, col(r.level)))
    sums = [func.sum(getattr(r, name)) for name in MONTH_COUNTS]
    stmt = select(col(r.level), col(r.period), *sums).where(*conditions).group_by(col(r.level), col(r.period))
    index = {period: i for i, period in enumerate(periods)}
    out: dict[str, list[Figures]] = {}
    for level, period, *counts in s.execute(stmt):
        figures = dict(zip(MONTH_COUNTS, (int(c or 0) for c in counts), strict=True))
        out.setdefault(level, [Figures() for _ in periods])[index[period]] = Figures(**figures)
    return out


def first_registration(s: Session, scope: Scope) -> datetime | None:
    """When the scope's first school joined."""
    scoped = (
        col(User.school_id).is_not(None) if scope.everything else col(User.school_id).in_(school_ids(scope))
    )
    stmt = select(func.min(joined())).where(col(User.role) == "principal", scoped)
    return as_utc(s.execute(stmt).scalar_one_or_none())


def missing_schools(
    s: Session,
    scope: Scope,
    period: str,
    until: datetime,
    limit: int,
    kind: str = ARTICLE,
    unregistered: bool = False,
) -> list[tuple[School, str]]:
    """Schools registered before `until` with no article (or `kind`) for `period`, by name, with their
    office's name; with `unregistered`, those with no account by `until` that sent nothing (not registered).

    Walked in name order, so the first few are found without looking at every school.
    """
    sent = exists().where(
        col(Submission.kind) == kind,
        col(Submission.period) == period,
        col(Submission.school_id) == col(School.id),
    )
    registered = exists().where(
        col(User.school_id) == col(School.id), col(User.role) == "principal", joined() < until
    )
    stmt = (
        select(School, col(Office.name))
        .join(Office, col(Office.id) == col(School.office_id))
        .where(*in_scope(scope), ~registered if unregistered else registered, ~sent)
        .order_by(col(School.name_folded), col(School.id))
        .limit(limit)
    )
    return [(school, office) for school, office in s.execute(stmt)]


# ---- nominations, incidents, reports ---------------------------------------------------------------


@dataclass(frozen=True)
class NominationFigures:
    """Nominations of some periods (semesters) in a scope."""

    count: int
    schools: int
    waiting: int
    models: int = 0  # of them, models, activities or solutions (answers' kind "model")


def with_school(scope: Scope, stmt: Select[*Row]) -> Select[*Row]:
    """`stmt` over Submission restricted to the scope's schools (no join when the scope is everything)."""
    if scope.everything:
        return stmt
    return stmt.join(School, col(School.id) == col(Submission.school_id)).where(*in_scope(scope))


def nomination_figures(s: Session, scope: Scope, periods: Sequence[str]) -> NominationFigures:
    """How many nominations, from how many schools, how many awaiting review."""
    stmt = select(
        func.count(),
        func.count(func.distinct(col(Submission.school_id))),
        func.coalesce(func.sum(flag(col(Submission.status) == "submitted")), 0),
        func.coalesce(func.sum(flag(col(Submission.answers)["kind"].as_string() == "model")), 0),
    ).where(col(Submission.kind) == NOMINATION, col(Submission.period).in_(periods))
    count, schools, waiting, models = s.execute(with_school(scope, stmt.select_from(Submission))).one()
    return NominationFigures(int(count), int(schools), int(waiting), int(models))


@dataclass(frozen=True)
class IncidentLine:
    """An incident, how many officers or leaders acknowledged it, and where its case stands."""

    id: int
    school: str
    severity: str
    created_at: datetime
    acks: int
    state: str = "new"


def incident_scope(scope: Scope) -> Scope:
    """The scope incidents are read over: an officer's level limit does not apply (issue #17 item 7:
    an incident reaches every officer and leader over the school)."""
    return replace(scope, levels=(), broad=False, everything=False) if scope.levels else scope


def incident_lines(s: Session, scope: Scope, *where: Any) -> list[IncidentLine]:
    """The scope's incidents (every level) meeting `where`, oldest first, with their acknowledgements."""
    acks = (
        select(col(IncidentAck.incident_id).label("incident_id"), func.count().label("n"))
        .group_by(col(IncidentAck.incident_id))
        .subquery("acks")
    )
    stmt = (
        select(
            col(Incident.id),
            col(School.name),
            col(Incident.severity),
            col(Incident.created_at),
            func.coalesce(acks.c.n, 0),
            col(Incident.state),
        )
        .join(School, col(School.id) == col(Incident.school_id))
        .outerjoin(acks, acks.c.incident_id == col(Incident.id))
        .where(*where, *in_scope(incident_scope(scope)))
        .order_by(col(Incident.created_at), col(Incident.id))
    )
    return [
        IncidentLine(int(i or 0), n, sev, at, int(a), state) for i, n, sev, at, a, state in s.execute(stmt)
    ]


def incidents_between(s: Session, scope: Scope, start: datetime, end: datetime) -> list[IncidentLine]:
    """The scope's incidents raised in [start, end), oldest first, with their acknowledgement counts."""
    return incident_lines(s, scope, col(Incident.created_at) >= start, col(Incident.created_at) < end)


def incidents_open_since(s: Session, scope: Scope, before: datetime) -> list[IncidentLine]:
    """The scope's cases raised before `before` and still not closed (incident.open_days)."""
    return incident_lines(s, scope, col(Incident.created_at) < before, col(Incident.state) != "closed")


@dataclass(frozen=True)
class IncidentTimes:
    """When a case was raised, taken and closed (None: not yet), and its place in the workbook."""

    id: int
    school: str
    level: str
    severity: str
    state: str
    created_at: datetime
    happened_at: datetime | None
    acked_at: datetime | None
    closed_at: datetime | None
    holder: str
    result: str
    result_link: str


def incident_times(s: Session, scope: Scope) -> list[IncidentTimes]:
    """Every case of the scope (every level), oldest first: the ground of the figures of /incidents and
    of the workbook's incidents sheet (medians are taken by the caller: SQLite has none)."""
    stmt = (
        select(
            col(Incident.id),
            col(School.name),
            col(School.level),
            col(Incident.severity),
            col(Incident.state),
            col(Incident.created_at),
            col(Incident.happened_at),
            col(Incident.acked_at),
            col(Incident.closed_at),
            func.coalesce(col(User.display_name), ""),
            col(Incident.result),
            col(Incident.result_link),
        )
        .join(School, col(School.id) == col(Incident.school_id))
        .outerjoin(User, col(User.id) == col(Incident.holder_id))
        .where(*in_scope(incident_scope(scope)))
        .order_by(col(Incident.created_at), col(Incident.id))
    )
    return [IncidentTimes(int(row[0] or 0), *row[1:]) for row in s.execute(stmt)]


# ---- one school ------------------------------------------------------------------------------------


def find_in_scope(s: Session, scope: Scope, query: str, limit: int) -> tuple[list[School], int]:
    """Schools of the scope whose name contains `query` (accents and case ignored) or whose code it is.

    The first `limit` (an exact code first, then by name) and how many matched in all.
    """
    needle = fold(query)
    if not needle:
        return [], 0
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    exact = func.lower(col(School.code)) == needle
    match = or_(col(School.name_folded).like(f"%{escaped}%", escape="\\"), exact)
    total = int(
        s.execute(select(func.count()).select_from(School).where(*in_scope(scope), match)).scalar_one()
    )
    stmt = (
        select(School)
        .where(*in_scope(scope), match)
        .order_by(flag(exact).desc(), col(School.name_folded), col(School.id))
        .limit(limit)
    )
    return list(s.scalars(stmt)), total


def school_in_scope(s: Session, scope: Scope, school_id: int) -> School | None:
    """The school, if it is in the scope (nothing crosses into another office's schools)."""
    return s.scalars(select(School).where(col(School.id) == school_id, *in_scope(scope))).first()


def unregistered_count(s: Session, scope: Scope, until: datetime) -> int:
    """How many of the scope's schools had no principal's account before `until` ("chưa đăng ký")."""
    registered = exists().where(
        col(User.school_id) == col(School.id), col(User.role) == "principal", joined() < until
    )
    stmt = select(func.count()).select_from(School).where(*in_scope(scope), ~registered)
    return int(s.execute(stmt).scalar_one())


def registrations(s: Session) -> dict[int, datetime]:
    """Every registered school's id with when it joined (its first principal), for a sweep over all."""
    stmt = (
        select(col(User.school_id), func.min(joined()))
        .where(col(User.role) == "principal", col(User.school_id).is_not(None))
        .group_by(col(User.school_id))
    )
    return {int(school_id): utc(at) for school_id, at in s.execute(stmt)}


def school_registered(s: Session, school_id: int) -> datetime | None:
    """When the school's first principal registered."""
    stmt = select(func.min(joined())).where(col(User.school_id) == school_id, col(User.role) == "principal")
    return as_utc(s.execute(stmt).scalar_one_or_none())


@dataclass(frozen=True)
class MonthMark:
    """A school's articles for one month: any on time, review states, how many, when first sent."""

    on_time: bool
    approved: bool
    published: bool
    waiting: bool
    articles: int
    first_at: datetime | None


def school_months(s: Session, school_id: int, periods: Sequence[str]) -> dict[str, MonthMark]:
    """The school's article months among `periods`."""
    stmt = (
        select(
            col(Submission.period),
            func.min(flag(col(Submission.late))),
            func.max(flag(col(Submission.status).in_(APPROVED))),
            func.max(flag(col(Submission.status) == "published")),
            func.max(flag(col(Submission.status) == "submitted")),
            func.count(),
            func.min(func.coalesce(col(Submission.submitted_at), col(Submission.created_at))),
        )
        .where(
            col(Submission.school_id) == school_id,
            col(Submission.kind) == ARTICLE,
            col(Submission.period).in_(periods),
        )
        .group_by(col(Submission.period))
    )
    return {
        p: MonthMark(late == 0, bool(a), bool(pub), bool(w), int(n), as_utc(first))
        for p, late, a, pub, w, n, first in s.execute(stmt)
    }


def schools_months(
    s: Session, scope: Scope, periods: Sequence[str]
) -> list[tuple[School, datetime | None, dict[str, bool]]]:
    """Every school of a (small) scope with its registration and, per period sent, whether on time."""
    reg = principals(scope)
    sent = (
        select(
            col(Submission.school_id).label("school_id"),
            col(Submission.period),
            func.min(flag(col(Submission.late))).label("late"),
        )
        .where(
            col(Submission.kind) == ARTICLE,
            col(Submission.period).in_(periods),
            *only(scope, col(Submission.school_id)),
        )
        .group_by(col(Submission.school_id), col(Submission.period))
        .subquery("sent")
    )
    stmt = (
        select(School, reg.c.reg, sent.c.period, sent.c.late)
        .outerjoin(reg, reg.c.school_id == col(School.id))
        .outerjoin(sent, sent.c.school_id == col(School.id))
        .where(*in_scope(scope))
        .order_by(col(School.name_folded), col(School.id))
    )
    out: dict[int, tuple[School, datetime | None, dict[str, bool]]] = {}
    for school, registered, period, late in s.execute(stmt):
        entry = out.setdefault(school.id or 0, (school, as_utc(registered), {}))
        if period is not None:
            entry[2][period] = late == 0
    return list(out.values())


# ---- the month's sheet, the year's record, nominations ---------------------------------------------


@dataclass(frozen=True)
class SchoolMonth:
    """One school's line of the month's sheet."""

    code: str
    name: str
    level: str
    office: str
    registered: datetime | None
    mark: MonthMark | None


def month_sheet(s: Session, scope: Scope, period: str) -> list[SchoolMonth]:
    """Every school of the scope with its articles for `period` (None: none), by office then name."""
    month = month_articles(scope, period, with_dates=True)
    reg = principals(scope)
    stmt = (
        select(
            col(School.code),
            col(School.name),
            col(School.level),
            col(Office.name),
            reg.c.reg,
            month.c.late,
            month.c.approved,
            month.c.published,
            month.c.waiting,
            month.c.articles,
            month.c.first_at,
        )
        .join(Office, col(Office.id) == col(School.office_id))
        .outerjoin(reg, reg.c.school_id == col(School.id))
        .outerjoin(month, month.c.school_id == col(School.id))
        .where(*in_scope(scope))
        .order_by(col(Office.name), col(School.name_folded), col(School.id))
    )
    out = []
    for code, name, level, office, registered, late, appr, pub, waiting, n, first in s.execute(stmt):
        mark = (
            None
            if n is None
            else MonthMark(late == 0, bool(appr), bool(pub), bool(waiting), int(n), as_utc(first))
        )
        out.append(SchoolMonth(code, name, level, office, as_utc(registered), mark))
    return out


@dataclass(frozen=True)
class SchoolReport:
    """One school's line of a periodic report's sheet: the school, and its report (None: not sent)."""

    code: str
    name: str
    level: str
    office: str
    registered: datetime | None
    report: Submission | None


def report_sheet(s: Session, scope: Scope, period: str) -> list[SchoolReport]:
    """Every school of the scope with its periodic report `period` ("nam-2026"; None: not sent), by office
    then name. A school that sent it twice is shown with the latest."""
    reg = principals(scope)
    sent = (
        select(col(Submission.school_id).label("school_id"), func.max(col(Submission.id)).label("id"))
        .where(col(Submission.kind) == REPORT, col(Submission.period) == period)
        .group_by(col(Submission.school_id))
        .subquery("sent")
    )
    stmt = (
        select(col(School.code), col(School.name), col(School.level), col(Office.name), reg.c.reg, Submission)
        .join(Office, col(Office.id) == col(School.office_id))
        .outerjoin(reg, reg.c.school_id == col(School.id))
        .outerjoin(sent, sent.c.school_id == col(School.id))
        .outerjoin(Submission, col(Submission.id) == sent.c.id)
        .where(*in_scope(scope))
        .order_by(col(Office.name), col(School.name_folded), col(School.id))
    )
    return [
        SchoolReport(code, name, level, office, as_utc(registered), row)
        for code, name, level, office, registered, row in s.execute(stmt)
    ]


@dataclass(frozen=True)
class Weights:
    """Points per unit of each part of the communications score."""

    article_on_time: float
    article_approved: float
    article_published: float
    nomination: float
    report_on_time: float


@dataclass(frozen=True)
class YearSpec:
    """What counts for a school year: its article months, its semesters, its periodic reports."""

    months: tuple[str, ...]
    semesters: tuple[str, ...]
    reports: tuple[str, ...]
    due: tuple[str, ...] = ()  # the months whose deadline has passed


@dataclass(frozen=True)
class YearRecord:
    """One school's communications record for a school year, its score and its rank."""

    code: str
    name: str
    level: str
    office: str
    registered: datetime | None
    months_on_time: int
    months_sent: int
    months_sent_due: int
    approved: int
    published: int
    nominations: int
    reports_on_time: int
    score: float
    rank: int

    @property
    def months_late(self) -> int:
        """Months sent, none of it on time."""
        return self.months_sent - self.months_on_time


def year_records(
    s: Session, scope: Scope, year: YearSpec, weights: Weights, limit: int | None = None
) -> list[YearRecord]:
    """The scope's schools by score, highest first (then by name); equal scores share a rank.

    Score = Σ weight × count over: months with an article on time, articles approved, articles
    published, nominations, periodic reports on time.
    """
    a = Submission
    counted = or_(
        and_(col(a.kind) == ARTICLE, col(a.period).in_(year.months)),
        and_(col(a.kind) == NOMINATION, col(a.period).in_(year.semesters)),
        and_(col(a.kind) == REPORT, col(a.period).in_(year.reports)),
    )
    is_article = col(a.kind) == ARTICLE
    per_school = (
        select(
            col(a.school_id).label("school_id"),
            func.count(func.distinct(case((and_(is_article, ~col(a.late)), col(a.period))))).label("on_time"),
            func.count(func.distinct(case((is_article, col(a.period))))).label("sent"),
            func.count(
                func.distinct(case((and_(is_article, col(a.period).in_(year.due or ("",))), col(a.period))))
            ).label("sent_due"),
            func.sum(flag(and_(is_article, col(a.status).in_(APPROVED)))).label("approved"),
            func.sum(flag(and_(is_article, col(a.status) == "published"))).label("published"),
            func.sum(flag(col(a.kind) == NOMINATION)).label("nominations"),
            func.sum(flag(and_(col(a.kind) == REPORT, ~col(a.late)))).label("reports"),
        )
        .where(counted, *only(scope, col(a.school_id)))
        .group_by(col(a.school_id))
        .subquery("per_school")
    )
    p = per_school.c
    counts = [
        func.coalesce(c, 0)
        for c in (p.on_time, p.sent, p.sent_due, p.approved, p.published, p.nominations, p.reports)
    ]
    score = (
        counts[0] * literal(weights.article_on_time)
        + counts[3] * literal(weights.article_approved)
        + counts[4] * literal(weights.article_published)
        + counts[5] * literal(weights.nomination)
        + counts[6] * literal(weights.report_on_time)
    ).label("score")
    reg = principals(scope)
    stmt = (
        select(
            col(School.code), col(School.name), col(School.level), col(Office.name), reg.c.reg, *counts, score
        )
        .join(Office, col(Office.id) == col(School.office_id))
        .outerjoin(reg, reg.c.school_id == col(School.id))
        .outerjoin(per_school, p.school_id == col(School.id))
        .where(*in_scope(scope))
        .order_by(score.desc(), col(School.name_folded), col(School.id))
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    records: list[YearRecord] = []
    for code, name, level, office, registered, *numbers, points in s.execute(stmt):
        points = round(float(points or 0), 2)
        same = records and records[-1].score == points
        rank = records[-1].rank if same else len(records) + 1
        on_time, sent, sent_due, appr, pub, noms, reports = (int(n) for n in numbers)
        records.append(
            YearRecord(
                code,
                name,
                level,
                office,
                as_utc(registered),
                on_time,
                sent,
                sent_due,
                appr,
                pub,
                noms,
                reports,
                points,
                rank,
            )
        )
    return records


def nominations_of(s: Session, scope: Scope, periods: Sequence[str]) -> list[tuple[Submission, School]]:
    """The scope's nominations of `periods`, oldest first, with their schools."""
    stmt = (
        select(Submission, School)
        .join(School, col(School.id) == col(Submission.school_id))
        .where(col(Submission.kind) == NOMINATION, col(Submission.period).in_(periods), *in_scope(scope))
        .order_by(col(Submission.created_at), col(Submission.id))
    )
    return [(row, school) for row, school in s.execute(stmt)]


def as_utc(value: Any) -> datetime | None:
    """A datetime from an aggregate (SQLite may give MIN() of a column back as text): aware, in UTC."""
    if value is None:
        return None
    when: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def utc(value: Any) -> datetime:
    """`as_utc` of a value known not to be NULL."""
    moment = as_utc(value)
    assert moment is not None
    return moment
