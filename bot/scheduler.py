"""The clock: APScheduler 3 triggers idempotent sweeps; the outbox sender delivers what they make.

APScheduler is only a clock here (delivery.md §4): an in-memory `AsyncIOScheduler` with an interval
job. What is due, and what was already made, lives in the database, so a tick lost while the bot was
down is caught up by the first sweep at start, and a sweep run twice creates nothing new. Several
workers may each run a Clockwork: only the holder of the "scheduler" lease sweeps, and only the holder
of the "sender" lease sends; the scheduler lease is short and renewed every few seconds, so a worker
that dies (`kill -9`, a lost machine) is replaced within seconds, and the new holder sweeps at once.
Each sweep also brings the leaders' month rollup up to date (handlers/leaders/rollup.py).
Chores of every worker belong to the clock too, whatever channels run: downloading again the files
kept by reference (every channel that has a fetcher, handlers/downloads.py), forgetting old update
ids (the dedupe keys) and, when `[privacy] media_keep_months` is set, deleting old photos and videos.
With `[backup] folder` set, the lease holder also makes the nightly backup (storage/backup.py) at
`backup.at` and keeps the last `backup.keep`.

    clockwork = Clockwork(db, clock, settings, catalog, outbox)
    await clockwork.start()   # catch-up sweep at once, then every schedule.sweep_minutes; the sender
    ...
    await clockwork.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.outbox import Outbox
from handlers import digest, incident, reminders
from handlers.calendar import Clock, Period, month_start
from handlers.config import Settings
from handlers.downloads import DownloadRetries
from handlers.i18n import Catalog
from handlers.leaders import rollup
from storage import holders, privacy
from storage import queries as q
from storage.backup import make_backup, prune_backups
from storage.db import Database, reason
from storage.errors import BackupFailed
from storage.media import MediaStore

log = logging.getLogger("schoolbot.scheduler")

SCHEDULER_LEASE = "scheduler"
SWEEP_JOB = "sweep"
PRUNE_JOB = "prune"
DOWNLOADS_JOB = "downloads"
FORGET_JOB = "forget-updates"
BACKUP_JOB = "backup"
EXPIRE_JOB = "expire-media"
LEASE_JOB = "clock-lease"
LEASE_EVERY = timedelta(seconds=5)  # the scheduler lease is renewed (or, by a waiting worker, asked for)
LEASE_SPAN = timedelta(seconds=15)  # and runs out this long after its last renewal
DOWNLOADS_EVERY = timedelta(minutes=10)
FORGET_EVERY = timedelta(hours=6)
REMEMBER_UPDATES = timedelta(days=2)  # platforms redeliver for at most one


@dataclass(eq=False)
class Clockwork:
    """The scheduler and the outbox sender of one process, started and stopped together."""

    db: Database
    clock: Clock
    settings: Settings
    catalog: Catalog
    outbox: Outbox
    _: KW_ONLY
    owner: str = field(default_factory=holders.new_owner)  # this worker's name on the leases
    send: bool = True  # False: this worker's clock sweeps but leaves the sending to another's
    media: MediaStore | None = None  # None: no old media to expire
    downloads: DownloadRetries | None = None  # None: no files kept by reference to fetch again
    scheduler: AsyncIOScheduler | None = field(default=None, init=False)
    holding: bool = field(default=False, init=False)
    _sweeping: asyncio.Future[reminders.SweepReport] | None = field(default=None, init=False)
    _one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @property
    def lease_span(self) -> timedelta:
        """How long the scheduler lease lasts without a renewal (renewed every LEASE_EVERY)."""
        return LEASE_SPAN

    async def start(self) -> None:
        """Start the clock (its first sweep is the catch-up, at once) and the outbox sender."""
        tz = ZoneInfo(self.settings.timezone)
        scheduler = AsyncIOScheduler(
            timezone=tz,
            # A late tick runs once, however late: the sweep decides from data, so nothing is missed.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        scheduler.add_job(
            self.tick,
            "interval",
            minutes=self.settings.schedule.sweep_minutes,
            id=SWEEP_JOB,
            next_run_time=datetime.now(tz),
        )
        scheduler.add_job(self.prune, "interval", hours=24, id=PRUNE_JOB)
        if self.settings.privacy.media_keep_months:
            scheduler.add_job(
                self.expire_media, "interval", hours=24, id=EXPIRE_JOB, next_run_time=datetime.now(tz)
            )
        scheduler.add_job(
            self.retry_downloads, "interval", seconds=DOWNLOADS_EVERY.total_seconds(), id=DOWNLOADS_JOB
        )
        scheduler.add_job(
            self.forget_old_updates,
            "interval",
            seconds=FORGET_EVERY.total_seconds(),
            id=FORGET_JOB,
            next_run_time=datetime.now(tz),
        )
        if self.settings.backup.folder:
            hour, minute = self.settings.backup.at.split(":")
            scheduler.add_job(self.nightly_backup, "cron", hour=int(hour), minute=int(minute), id=BACKUP_JOB)
        scheduler.add_job(self.keep_lease, "interval", seconds=LEASE_EVERY.total_seconds(), id=LEASE_JOB)
        scheduler.start()
        self.scheduler = scheduler
        if self.send:
            self.outbox.start_sender(self.owner)
        log.info("clock started: a sweep every %d min; %s", self.settings.schedule.sweep_minutes, self.owner)

    async def stop(self) -> None:
        """Stop ticking, let a sweep in progress finish, stop the sender, give the lease up."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the loop's next turn
        self.scheduler = None
        if self._sweeping is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._sweeping)
        await self.outbox.stop_sender()
        if self.holding:
            with self.db.session() as s:
                q.drop_lease(s, SCHEDULER_LEASE, self.owner)
            self.holding = False

    def hold_lease(self) -> bool:
        """Take or renew the scheduler lease (a dead holder's at once); False when another worker sweeps."""
        now = self.clock.now()
        with self.db.session() as s:
            held = q.take_lease(s, SCHEDULER_LEASE, self.owner, now, now + self.lease_span, gone=holders.gone)
        if held != self.holding:
            log.info("%s %s the scheduler lease", self.owner, "holds" if held else "does not hold")
        self.holding = held
        return held

    async def keep_lease(self) -> None:
        """Renew the scheduler lease, or take it from a holder gone quiet and catch up with a sweep now."""
        was = self.holding
        try:
            held = self.hold_lease()
        except Exception as exc:  # the database is restarting: the next renewal tries again
            log.warning("could not renew the scheduler lease: %s", reason(exc))
            return
        if held and not was:
            await self.tick()

    async def tick(self) -> reminders.SweepReport | None:
        """One sweep, if this worker holds the lease; run in a thread so chats stay responsive."""
        async with self._one_at_a_time:
            if not self.hold_lease():
                return None
            sweeping = asyncio.ensure_future(asyncio.to_thread(self.sweep))
            self._sweeping = sweeping
            try:
                report = await asyncio.shield(sweeping)  # a stop lets the thread finish its transaction
            except asyncio.CancelledError:
                return None  # the clock is stopping (SIGTERM mid-sweep): stop() waits for the sweep
            finally:
                if sweeping.done():
                    self._sweeping = None
        if report.created:
            self.outbox.poke()
        return report

    def sweep(self) -> reminders.SweepReport:
        """Reminders and escalations, incidents nobody took (to the leaders), the officers' daily
        digests, then the leaders' closed months."""
        report = reminders.sweep(self.db, self.clock, self.settings, self.catalog)
        made = incident.sweep_escalations(self.db, self.clock, self.settings, self.catalog)
        made += digest.sweep_digests(self.db, self.clock, self.settings, self.catalog)
        rollup.refresh(self.db, self.clock)
        return replace(report, created=report.created + made) if made else report

    async def prune(self) -> int:
        """Forget finished outbox rows past outbox.keep_days (once a day)."""
        return self.outbox.prune()

    async def expire_media(self) -> int:
        """Delete the photos and videos of the months closed privacy.media_keep_months ago or more
        (their records stay, noted "expired"); the files deleted. Once a day, and at start."""
        keep = self.settings.privacy.media_keep_months
        if not keep or self.media is None:
            return 0
        before = month_start(Period.of(self.clock.now()).shift(-keep), self.clock)
        root = self.media.root

        def expire() -> tuple[int, int]:
            with self.db.session() as s:
                rows, paths = privacy.expire_media(s, before)
            return rows, privacy.remove_files(root, paths)

        try:
            rows, files = await asyncio.to_thread(expire)
        except Exception:
            log.warning("could not expire old media", exc_info=True)
            return 0
        if rows:
            log.info("expired %d media file(s) stored before %s (%d deleted)", rows, before.date(), files)
        return files

    async def retry_downloads(self) -> int:
        """Download again the files kept by reference, on every channel that can fetch here."""
        if self.downloads is None:
            return 0
        try:
            return await self.downloads.run()
        except Exception:
            log.warning("retrying downloads failed", exc_info=True)
            return 0

    async def nightly_backup(self) -> Path | None:
        """The nightly backup into backup.folder, if this worker holds the lease; the last backup.keep
        are kept. A failure is one line in the log (the next night tries again)."""
        if not self.hold_lease():
            return None
        config = self.settings.backup
        folder = Path(config.folder)
        name = f"schoolbot-{self.clock.now().astimezone(self.clock.tz):%Y%m%d-%H%M%S}.zip"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            made = await asyncio.to_thread(
                make_backup, self.settings.database_url, self.settings.media_dir, folder / name
            )
        except (BackupFailed, OSError) as exc:
            log.error("nightly backup failed: %s", exc)
            return None
        gone = prune_backups(folder, config.keep)
        log.info("nightly backup %s; %d older one(s) removed", made.line(), len(gone))
        return made.path

    async def forget_old_updates(self) -> int:
        """Drop dedupe keys older than the platforms' redelivery window (at start, then every few hours)."""
        try:
            with self.db.session() as s:
                dropped = q.forget_updates_before(s, self.clock.now() - REMEMBER_UPDATES)
        except Exception:
            log.warning("could not forget old update ids", exc_info=True)
            return 0
        if dropped:
            log.info("forgot %d old update ids", dropped)
        return dropped


def describe_plan(
    db: Database, clock: Clock, settings: Settings, catalog: Catalog, at: datetime
) -> list[str]:
    """`schoolbot remind --dry-run`: who would be reminded of what at `at`, without making anything."""
    result = reminders.plan(db, clock, settings, catalog, at)
    when = result.at.strftime("%Y-%m-%d %H:%M")
    lines = [f"At {when} ({settings.timezone}):"]
    if result.held:
        held = "quiet hours" if result.held == "quiet" else f"pause {result.held!r}"
        return [*lines, f"  nothing: {held} (no reminder or escalation is made then)"]
    done = reminders.existing(db, result.items)
    with db.session() as s:
        names = {sc.id: sc.name for sc in q.all_schools(s)}
    fresh = [i for i in result.items if i.key not in done]
    for item in fresh:
        text = item.reply.text.splitlines() or [""]
        school = f", {names.get(item.school_id, '?')}" if item.school_id else ""
        who = f"{item.user.display_name or '?'} ({item.user.channel}:{item.user.external_id}){school}"
        lines.append(f"  {item.kind} {item.period} {item.step} -> {who}: {text[0]}")
        if item.kind.endswith(reminders.LATE):  # an escalation: the schools it names, as it names them
            lines += [f"      {line}" for line in text[1:]]
    lines.append(
        f"{len(fresh)} message(s) would be queued; {len(result.items) - len(fresh)} already in the outbox."
    )
    for deadline, count in sorted(result.unreachable.items()):
        lines.append(f"{count} school(s) owing {deadline} have no registered user to remind.")
    return lines
