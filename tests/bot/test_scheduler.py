"""The clock in the running bot: APScheduler 3 ticks, the catch-up at start, one active scheduler."""

from __future__ import annotations

from datetime import datetime

from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import col, select

from bot.app import App, build_app
from bot.config import Settings
from bot.scheduler import PRUNE_JOB, SCHEDULER_LEASE, SWEEP_JOB, Clockwork
from handlers.calendar import FrozenClock
from storage import queries as q
from storage.models import Outbox
from tests.handlers.helpers import inbox_texts
from tests.support import frozen, until


def rows(app: App) -> list[Outbox]:
    with app.db.session() as s:
        return list(s.exec(select(Outbox).order_by(col(Outbox.id))))


def another(app: App, owner: str) -> Clockwork:
    """A second worker's clock over the same database."""
    return Clockwork(app.db, app.clock, app.settings, app.catalog, app.outbox, owner=owner, send=False)


async def test_start_catches_up_with_only_the_latest_step_and_the_sender_delivers_it(demo: App) -> None:
    frozen(demo).set(datetime(2026, 11, 14, 10, 30))  # down since the 9th
    clockwork = demo.clockwork
    await clockwork.start()
    try:
        await until(lambda: [r.status for r in rows(demo)] == ["sent"], "the catch-up reminder to be sent")
        assert [(r.kind, r.step) for r in rows(demo)] == [("article-remind", "d1")]
        assert "còn 1 ngày" in inbox_texts(demo, "principal")[0]  # a console user: kept for their next chat
        scheduler = clockwork.scheduler
        assert scheduler is not None
        sweep = scheduler.get_job(SWEEP_JOB)
        assert isinstance(sweep.trigger, IntervalTrigger)
        assert sweep.trigger.interval.total_seconds() == demo.settings.schedule.sweep_minutes * 60
        assert scheduler.get_job(PRUNE_JOB) is not None
        assert clockwork.holding and demo.outbox.sender is not None and demo.outbox.sender.running
        report = await clockwork.tick()
        assert report is not None and report.created == 0  # the next tick: nothing new
    finally:
        await clockwork.stop()
    assert clockwork.scheduler is None and demo.outbox.sender is None
    with demo.db.session() as s:
        assert q.lease_holder(s, SCHEDULER_LEASE) is None  # given up at a clean stop


async def test_only_one_worker_sweeps_and_another_takes_over_when_it_stops(demo: App) -> None:
    frozen(demo).set(datetime(2026, 11, 10, 8, 0))
    first, second = another(demo, "worker-1"), another(demo, "worker-2")
    report = await first.tick()
    assert report is not None and report.created == 1
    assert await second.tick() is None
    await first.stop()  # a clean stop drops the lease
    frozen(demo).set(datetime(2026, 11, 13, 8, 0))
    report = await second.tick()
    assert report is not None and report.created == 1
    assert await first.tick() is None


async def test_a_dead_workers_lease_is_taken_over_once_it_runs_out(demo: App) -> None:
    frozen(demo).set(datetime(2026, 11, 10, 8, 0))
    first, second = another(demo, "worker-1"), another(demo, "worker-2")
    assert await first.tick() is not None  # then it dies without a word
    frozen(demo).advance(seconds=first.lease_span.total_seconds() - 1)
    assert await second.tick() is None
    frozen(demo).advance(seconds=2)
    assert await second.tick() is not None


async def test_build_app_runs_the_clock_and_stops_it(settings: Settings) -> None:
    from bot.demo import seed_demo

    clock = FrozenClock(datetime(2026, 11, 10, 8, 0))
    async with build_app(settings, clock) as app:
        with app.db.session() as s:
            seed_demo(s, clock.now())
        await app.clockwork.tick()
        await until(lambda: [r.status for r in rows(app)] == ["sent"], "the reminder to be delivered")
        assert app.clockwork.scheduler is not None and app.clockwork.scheduler.running
    assert app.clockwork.scheduler is None and app.outbox.sender is None


async def test_build_app_without_the_clock(settings: Settings) -> None:
    async with build_app(settings, FrozenClock(datetime(2026, 11, 10, 8, 0)), clockwork=False) as app:
        assert app.clockwork.scheduler is None and app.outbox.sender is None
