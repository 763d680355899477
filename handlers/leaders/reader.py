"""The reader's office and scope, and what every leaders' reply shares: levels, days, where files go."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from handlers.calendar import Calendar, Clock
from handlers.months import MonthArg, month_or_current
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage import stats
from storage.db import Database
from storage.models import Office, School
from storage.scope import Scope, levels_of, sized

if TYPE_CHECKING:
    from handlers.config import Settings

PREFIX = "ls"  # buttons: ls:m:<month> all missing, ls:s:<school> a school, ls:x:<month> Excel, ls:r:<year>
LEVEL_ORDER = ("MN", "TH", "THCS", "THPT", "GDTX")
CHOICES_SHOWN = 8  # schools offered when several match a name
GENERATED = "generated"  # under the media dir: charts and workbooks made for a reader
Translate = Callable[..., str]


# ---- who sees what -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """The reader's office and scope (planned by `scope.sized`)."""

    office: Office
    scope: Scope


def where_of(ctx: Context) -> Where | Reply:
    """The reader's scope, or why there is none to show."""
    user = ctx.user
    assert user is not None
    if user.office_id is None:
        return Reply(ctx.t("status_leader.no_office"))
    with ctx.db.session() as s:
        office = s.get(Office, user.office_id)
        scope = sized(s, Scope(user.office_id, levels_of(user)))
    if office is None or scope.schools == 0:
        return Reply(ctx.t("status_leader.no_schools"))
    return Where(office, scope)


def office_where(db: Database, code: str) -> Where | None:
    """An office's whole scope, by its code (the command line's `--office`)."""
    with db.session() as s:
        office = q.office_by_code(s, code)
        if office is None or office.id is None:
            return None
        scope = sized(s, Scope(office.id))
    return Where(office, scope)


def choose_school(
    ctx: Context, scope: Scope, text: str, show: Callable[[School], Reply], prefix: str
) -> list[Reply]:
    """A school of the scope by name or code: `show`n when it alone matches, else a choice of the first
    few (buttons `<prefix>:s:<id>`), or a plain "none"."""
    with ctx.db.session() as s:
        found, total = stats.find_in_scope(s, scope, text, CHOICES_SHOWN)
    if not found:
        return [Reply(ctx.t("status_leader.no_match", text=text[:60]))]
    if total == 1:
        return [show(found[0])]
    lines = [ctx.t("status_leader.choose", count=total, text=text[:60])]
    if total > len(found):
        lines.append(ctx.t("status_leader.choose_more", shown=len(found)))
    buttons = tuple((Choice(school.name, f"{prefix}:s:{school.id}"),) for school in found)
    return [Reply("\n".join(lines), buttons)]


def month_asked(msg: Incoming, ctx: Context) -> tuple[Where, str, MonthArg] | Reply:
    """The reader's scope, the text after the command, and the month it names (this month when none)."""
    found = where_of(ctx)
    if isinstance(found, Reply):
        return found
    current = Calendar(ctx.clock, ctx.settings.schedule).current()
    text = msg.args.strip()
    return found, text, month_or_current(text, current)


def bad_month(ctx: Context, text: str, command: str) -> Reply:
    """The answer to a month that is none ("13/2026"), with an example of the command."""
    return Reply(ctx.t("status_leader.bad_month", text=text[:40], command=command))


# ---- shown the same way everywhere ---------------------------------------------------------------


def level_label(t: Translate, has: Callable[[str], bool], level: str) -> str:
    """ "Mầm non" for MN; a combined level ("TH&THCS") as it is."""
    key = f"status_leader.level.{level.lower()}"
    return t(key) if has(key) else level


def level_sort(level: str) -> tuple[int, str]:
    """MN, TH, THCS, THPT, GDTX, then combined levels by name."""
    return (LEVEL_ORDER.index(level), "") if level in LEVEL_ORDER else (len(LEVEL_ORDER), level)


def day(moment: datetime | date | None, clock: Clock) -> str:
    """dd/mm/yyyy in the office's zone."""
    if moment is None:
        return ""
    if isinstance(moment, datetime):
        moment = moment.astimezone(clock.tz).date()
    return moment.strftime("%d/%m/%Y")


def generated(settings: Settings, *parts: str) -> Path:
    """Where a chart or workbook made for a reader goes."""
    return Path(settings.media_dir).joinpath(GENERATED, *parts)
