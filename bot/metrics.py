"""What `/metrics` shows (Prometheus text format, prometheus-client), one registry per app.

Counted as they happen: updates handled and the time to each reply, outbox sends by outcome (429s
among them), failed downloads. Read from the database at each scrape (so every worker shows the
same): the outbox's waiting rows by lane, the updates waiting in the durable inbox, who holds each
lease.

    metrics = Metrics(db, clock)
    metrics.handled("telegram", 0.12)
    body = metrics.exposition()      # GET /metrics
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bot.web import Probes
from handlers.calendar import Clock
from storage import queries as q
from storage.db import Database

ALERT_LANE = 0  # Outbox.priority 0: alerts, claimed first and sent even in quiet hours
REPLY_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def lane(priority: int) -> str:
    """An outbox row's lane by its priority."""
    return "alert" if priority <= ALERT_LANE else "bulk"


class Metrics:
    """The counters of this process and the database's figures, in one registry."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.updates = Counter("schoolbot_updates_handled", "Updates handled", ["channel"], registry=r)
        self.reply_seconds = Histogram(
            "schoolbot_reply_seconds",
            "Seconds from an update's arrival at the dispatcher to its replies being ready",
            ["channel"],
            buckets=REPLY_SECONDS,
            registry=r,
        )
        self.sends = Counter(
            "schoolbot_outbox_sends", "Outbox send attempts by outcome", ["channel", "outcome"], registry=r
        )
        self.throttled = Counter(
            "schoolbot_rate_limited",
            "Sends the platform answered with 429 (asked to wait)",
            ["channel"],
            registry=r,
        )
        self.download_failures = Counter(
            "schoolbot_download_failures", "Files that could not be downloaded", ["channel"], registry=r
        )
        ProcessCollector(registry=r)
        r.register(DatabaseFigures(db, clock))

    def handled(self, channel: str, seconds: float) -> None:
        """One update handled, its replies ready after `seconds`."""
        self.updates.labels(channel).inc()
        self.reply_seconds.labels(channel).observe(seconds)

    def sent(self, channel: str, outcome: str) -> None:
        """One outbox attempt and its outcome (`retry_after`: a 429)."""
        self.sends.labels(channel, outcome).inc()
        if outcome == "retry_after":
            self.rate_limited(channel)

    def rate_limited(self, channel: str) -> None:
        """The platform answered a send or a reply with 429 (asked to wait)."""
        self.throttled.labels(channel).inc()

    def download_failed(self, channel: str) -> None:
        """A file of an update could not be downloaded (kept by reference, tried again later)."""
        self.download_failures.labels(channel).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    def probes(self) -> Probes:
        """What the webhook server's /healthz and /metrics answer from."""
        return Probes(lambda: database_fault(self.db), self.exposition, CONTENT_TYPE_LATEST)


def database_fault(db: Database) -> str | None:
    """None when the database answers a query; else why not, in one line (never the password)."""
    try:
        with db.reading() as s:
            s.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"{db.where}: {reason}"
    return None


class DatabaseFigures(Collector):
    """Figures every worker reads alike from the database at each scrape."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # read at scrape time only: nothing to describe at registration (no query then)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "schoolbot_outbox_depth",
            "Outbox rows waiting (pending or claimed) by lane",
            labels=["channel", "lane"],
        )
        waiting = GaugeMetricFamily(
            "schoolbot_inbox_waiting", "Updates stored and not yet handled", labels=["channel"]
        )
        leases = GaugeMetricFamily(
            "schoolbot_lease_held", "1 for each lease held now, by its holder", labels=["lease", "owner"]
        )
        with self.db.reading() as s:
            rows = q.outbox_waiting(s)
            inbox = q.waiting_counts(s)
            held = q.leases_held(s, self.clock.now())
        by_lane: dict[tuple[str, str], int] = {}
        for channel, priority, count in rows:
            key = (channel, lane(priority))
            by_lane[key] = by_lane.get(key, 0) + count
        for (channel, name), count in sorted(by_lane.items()):
            depth.add_metric([channel, name], count)
        for channel, count in inbox:
            waiting.add_metric([channel], count)
        for name, owner in held:
            leases.add_metric([name, owner], 1)
        yield from (depth, waiting, leases)
