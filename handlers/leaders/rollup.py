"""The leaders' chart's earlier months: closed months kept in the month rollup, kept true by the clock.

`/status` charts the month asked for and the EARLIER months before it, by level. The month asked for is
counted live (`stats.month_by_level`); the ones before it are closed months, read from `MonthRollup`: one
row per office, level and month with counts that add up over schools, so a scope's months are a sum over
its offices' rows (a few thousand rows for the whole country: milliseconds).

Closed months still move: an October article approved, returned or published in November, a late one
from a draft begun before October ended. The clock's sweep (`refresh`, every `schedule.sweep_minutes`,
and at once at start) recomputes, each month in its own short transaction:

* every stored month whose articles changed since it was computed (every write to a submission stamps
  its `updated_at`; a change stamped up to SLACK before a computation may have committed after it had
  read, so it counts as a change too);
* the current month's EARLIER months, when not stored yet (the first sweep, a new month);
* every stored month computed REBUILT_AFTER ago or more, for what moves a month without touching an
  article (a registration date corrected in the database): a safety net, as registering counts from
  the moment a code is redeemed and so never moves a closed month.

So a change to an article is in the chart from the next sweep on (5 minutes by default), anything else
within a day. A month asked for before any sweep stored it (an older month, or a `/status` in the
seconds after a start) is computed on the spot and stored. An organisation import that moves a school
to another office or level drops the whole rollup (storage/orgimport.py), so no scope counts a school
that has left it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlmodel import Session

from handlers.calendar import Clock, Period, month_end
from storage import stats
from storage.db import Database
from storage.scope import Scope

log = logging.getLogger("schoolbot.rollup")

EARLIER = 5  # the chart's closed months before the month asked for
SLACK = timedelta(minutes=2)  # longer than any transaction between stamping `now` and committing
REBUILT_AFTER = timedelta(days=1)


def earlier_months(period: Period) -> list[Period]:
    """The chart's months before `period`, oldest first."""
    return [period.shift(-n) for n in range(EARLIER, 0, -1)]


def closed_by_level(
    s: Session, clock: Clock, scope: Scope, months: list[Period]
) -> dict[str, list[stats.Figures]]:
    """Per level, the scope's figures for the closed `months` (oldest first), from the rollup.

    A month the rollup does not hold yet is computed for every school and stored first.
    """
    keys = [p.key for p in months]
    stored = stats.stored_months(s, keys)
    now = clock.now()
    for p in months:
        if p.key not in stored and p < Period.of(now):
            stats.store_month(s, p.key, month_end(p, clock), now)
    return stats.rollup_by_level(s, scope, keys)


def due(s: Session, clock: Clock) -> list[Period]:
    """The closed months the sweep should recompute now, oldest first."""
    now = clock.now()
    current = Period.of(now)
    stored = stats.stored_months(s)
    changed = stats.changed_months(s, min(stored.values(), default=now) - SLACK)
    keys = {p.key for p in earlier_months(current)} - set(stored)
    keys |= {key for key, at in stored.items() if key in changed and changed[key] > at - SLACK}
    keys |= {key for key, at in stored.items() if now - at >= REBUILT_AFTER}
    months = (Period.parse(key) for key in keys)
    return sorted(p for p in months if p is not None and p < current)


def refresh(db: Database, clock: Clock) -> list[Period]:
    """The sweep's part: recompute the months due, each in its own transaction; which they were."""
    with db.session() as s:
        months = due(s, clock)
    for p in months:
        with db.session() as s:
            stats.store_month(s, p.key, month_end(p, clock), clock.now())
    if months:
        log.info("month rollup recomputed: %s", ", ".join(p.key for p in months))
    return months
