"""Leaders' status at the scale of the country: 45,000 schools and 24 months of submissions in SQLite.

    python bench/status_bench.py                 # seed a fresh database in a temporary folder, measure
    python bench/status_bench.py --db /tmp/b.db  # keep (or reuse) the seeded file

It starts as the bot does: the clock's catch-up sweep refreshes the month rollup (the chart's five
closed months, none stored yet) with the call `Clockwork.sweep` makes, and is timed. Then it measures the
first `/status` after that, and on a warm cache the median of several runs of:

* `/status` for the whole scope (a leader over all 45,000 schools) through the real dispatcher:
  the summary text and its chart; the same summary's queries alone, with the rollup and without it
  (a `/status` before the first sweep computes and stores the months itself);
* a later sweep's refresh of the rollup, with nothing changed and after a closed month's article was
  approved (one month recomputed);
* the month's Excel export for a province of 1,000 schools (three sheets, written to disk);

each next to the floor: a plain SQL `GROUP BY` count over the same rows of the submission table.
Nothing talks to the network; the clock is frozen at 10/11/2026 09:00.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.app import open_app
from bot.config import load_settings
from handlers.calendar import FrozenClock, Period, month_end
from handlers.leaders import reader, rollup, summary, workbook
from handlers.school_year import semester_key
from handlers.types import Incoming, Kind
from storage import migrate, stats
from storage.db import Database
from storage.queries.submissions import search_text
from storage.text import fold

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 10, 9, 0, tzinfo=TZ)
SCHOOLS = 45_000
MONTHS = 24
PROVINCES = 63
BIG_PROVINCE = 1_000  # the export's province has exactly this many schools
DISTRICTS_PER_PROVINCE = 11
LEVELS = (("MN", 30), ("TH", 32), ("THCS", 24), ("THPT", 6), ("GDTX", 2), ("TH&THCS", 6))
STATUSES = (("published", 40), ("approved", 30), ("submitted", 20), ("returned", 10))
LEADER = "bench-leader"


def stamp(moment: datetime) -> str:
    """A UTC datetime as SQLAlchemy stores it in SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def seed(path: Path, schools: int = SCHOOLS, months: int = MONTHS, seed_value: int = 7) -> dict[str, int]:
    """A migrated database with the organisation, principals and `months` months of submissions."""
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    db.dispose()
    rng = random.Random(seed_value)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    cur = con.cursor()
    created = stamp(NOW - timedelta(days=3 * 365))
    cur.execute(
        "INSERT INTO office (code, name, kind, parent_id) VALUES ('VN', 'Toàn quốc', 'province', NULL)"
    )
    root = cur.lastrowid
    province_ids: list[int | None] = []
    district_ids: list[list[int | None]] = []
    for p in range(PROVINCES):
        cur.execute(
            "INSERT INTO office (code, name, kind, parent_id) VALUES (?, ?, 'province', ?)",
            (f"SGD-{p:02d}", f"Sở GD&ĐT tỉnh Thử {p:02d}", root),
        )
        province_ids.append(cur.lastrowid)
        district_ids.append([])
        for d in range(DISTRICTS_PER_PROVINCE):
            cur.execute(
                "INSERT INTO office (code, name, kind, parent_id) VALUES (?, ?, 'district', ?)",
                (f"PGD-{p:02d}-{d:02d}", f"Phòng GD&ĐT huyện Thử {p:02d}-{d:02d}", province_ids[-1]),
            )
            district_ids[-1].append(cur.lastrowid)
    school_rows: list[tuple[Any, ...]] = []
    user_rows: list[tuple[Any, ...]] = []
    for i in range(schools):
        p = 0 if i < BIG_PROVINCE else 1 + (i - BIG_PROVINCE) % (PROVINCES - 1)
        level = weighted(rng, LEVELS)
        office = province_ids[p] if level in ("THPT", "GDTX") else district_ids[p][i % DISTRICTS_PER_PROVINCE]
        name = f"Trường {level} Thử Tải Số {i:05d}"
        school_rows.append((f"S{i:06d}", name, fold(name), level, office))
    cur.executemany(
        "INSERT INTO school (code, name, name_folded, level, office_id) VALUES (?, ?, ?, ?, ?)", school_rows
    )
    school_ids = [r[0] for r in cur.execute("SELECT id FROM school ORDER BY code")]
    first = Period.of(NOW).shift(-(months - 1))
    registered = []
    for i, school_id in enumerate(school_ids):
        # Most schools joined before the first month; a few later (they are not counted before that).
        joined = (
            NOW - timedelta(days=800) if rng.random() < 0.95 else NOW - timedelta(days=rng.randint(30, 700))
        )
        registered.append(joined)
        user_rows.append(
            (
                "console",
                f"p{i}",
                f"p{i}",
                f"Hiệu trưởng {i}",
                "principal",
                school_id,
                None,
                "vi",
                0,
                "{}",
                stamp(joined),
            )
        )
    user_rows.append(
        ("console", LEADER, LEADER, "Lãnh đạo thử", "leader", None, root, "vi", 0, "{}", created)
    )
    cur.executemany(
        "INSERT INTO user (channel, external_id, chat_id, display_name, role, school_id, office_id, locale,"
        " blocked, menu, created_at, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*row, row[-1]) for row in user_rows],  # each registered when first seen
    )
    user_of = dict(cur.execute("SELECT school_id, id FROM user WHERE role = 'principal'").fetchall())
    rows: list[tuple[Any, ...]] = []
    n = 0

    def add(
        kind: str,
        school_id: int,
        period: str,
        status_: str,
        late: bool,
        at: datetime,
        answers: dict[str, Any],
    ) -> None:
        nonlocal n
        n += 1
        rows.append(
            (
                kind,
                school_id,
                user_of[school_id],
                period,
                status_,
                json.dumps(answers),
                f"b{n}",
                1,
                int(late),
                stamp(at),
                "",
                stamp(at),
                stamp(at),
                search_text(kind, answers),
            )
        )

    deadlines = []
    for year in range(NOW.year - 2, NOW.year + 1):
        deadlines += [
            ("6thang", datetime(year, 6, 20, 23, 59, 59, tzinfo=TZ)),
            ("nam", datetime(year, 12, 1, 23, 59, 59, tzinfo=TZ)),
        ]
    for school_id, joined in zip(school_ids, registered, strict=True):
        for m in range(months):
            period = first.shift(m)
            start = datetime(period.year, period.month, 1, 8, tzinfo=TZ)
            if start < joined or (period == Period.of(NOW) and rng.random() < 0.5) or rng.random() > 0.85:
                continue
            for _ in range(2 if rng.random() < 0.05 else 1):
                day = rng.randint(1, 26) if period != Period.of(NOW) else rng.randint(1, 9)
                recent = period >= Period.of(NOW).shift(-1)
                status_ = "submitted" if recent and rng.random() < 0.6 else weighted(rng, STATUSES)
                add(
                    "article",
                    school_id,
                    period.key,
                    status_,
                    day > 15,
                    start.replace(day=day),
                    {"title": "Bài viết"},
                )
        for semester_start in (
            datetime(2024, 9, 10, tzinfo=TZ),
            datetime(2025, 2, 10, tzinfo=TZ),
            datetime(2025, 9, 10, tzinfo=TZ),
            datetime(2026, 2, 10, tzinfo=TZ),
            datetime(2026, 9, 10, tzinfo=TZ),
        ):
            if semester_start < joined:
                continue
            for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
                at = semester_start + timedelta(days=rng.randint(0, 60))
                student = rng.random() < 0.3
                answers: dict[str, Any] = {
                    "kind": "individual",
                    "name": "Nguyễn Văn An",
                    "role": "student" if student else "teacher",
                    "consent": "no" if student and rng.random() < 0.5 else "yes",
                    "purpose": "press",
                    "deeds": "Thành tích tiêu biểu",
                    "contact_name": "Cô Lan",
                    "contact_phone": "0912345678",
                }
                answers["publishable"] = not student or answers["consent"] == "yes"
                add("nomination", school_id, semester_key(at), weighted(rng, STATUSES), False, at, answers)
        for key, due in deadlines:
            if due > NOW or due < joined or rng.random() > 0.8:
                continue
            late = rng.random() < 0.1
            at = (
                due + timedelta(days=rng.randint(1, 20)) if late else due - timedelta(days=rng.randint(1, 20))
            )
            add(
                "report",
                school_id,
                f"{key}-{due.year}",
                weighted(rng, STATUSES),
                late,
                at,
                {"highlights": "…"},
            )
        if len(rows) > 50_000:
            flush(cur, rows)
    flush(cur, rows)
    incidents = rng.sample(school_ids, 1800)
    for k, school_id in enumerate(incidents):
        at = NOW - timedelta(days=rng.randint(0, 720), hours=rng.randint(0, 20))
        add("incident", school_id, None, "submitted", False, at, {"what": "Sự cố"})  # type: ignore[arg-type]
        cur.execute(INSERT_SUBMISSION, rows.pop())
        sub_id = cur.lastrowid
        cur.execute(
            "INSERT INTO incident (submission_id, school_id, severity, created_at) VALUES (?, ?, ?, ?)",
            (sub_id, school_id, rng.choice(("low", "medium", "high")), stamp(at)),
        )
        if k % 2 == 0:
            leader = cur.execute("SELECT id FROM user WHERE external_id = ?", (LEADER,)).fetchone()[0]
            cur.execute(
                "INSERT INTO incidentack (incident_id, user_id, created_at) VALUES (?, ?, ?)",
                (cur.lastrowid, leader, stamp(at + timedelta(hours=1))),
            )
    con.commit()
    con.execute("ANALYZE")
    counts = {
        table: con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("office", "school", "user", "submission", "incident")
    }
    con.close()
    return counts


INSERT_SUBMISSION = (
    "INSERT INTO submission (kind, school_id, user_id, period, status, answers, token, version, late,"
    " submitted_at, review_note, created_at, updated_at, search)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def flush(cur: sqlite3.Cursor, rows: list[tuple[Any, ...]]) -> None:
    cur.executemany(INSERT_SUBMISSION, rows)
    rows.clear()


# ---- measuring ------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """(median ms, best ms, last result) over `runs` calls."""
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times), result


def floor(db: Database, sql: str, params: dict[str, Any], runs: int) -> float:
    """The median time of a plain SQL statement on the app's own engine."""
    from sqlalchemy import text

    def run() -> Any:
        with db.engine.connect() as conn:
            return conn.execute(text(sql), params).all()

    return timed(run, runs)[0]


def machine() -> str:
    """CPU, cores, load, Python and SQLite versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{cpu}, {os.cpu_count()} cores, load average {load}; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}"
    )


def measure(path: Path, runs: int, cache_mb: int) -> list[tuple[str, float, float, str]]:
    """The rows of the results table: (what, median ms, best ms, note)."""
    settings = load_settings(None, database_url=f"sqlite:///{path}", media_dir=str(path.parent / "media"))
    clock = FrozenClock(NOW)
    rows: list[tuple[str, float, float, str]] = []
    with open_app(settings, clock) as app:
        if cache_mb:
            from sqlalchemy import event

            @event.listens_for(app.db.engine, "connect")
            def bigger_cache(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.execute(f"PRAGMA cache_size=-{cache_mb * 1024}")

            app.db.engine.dispose()
        n = 0
        session = secrets.token_hex(4)  # a reused database remembers earlier runs' update ids

        def status_reply(args: str = "") -> Any:
            nonlocal n
            n += 1
            msg = Incoming(
                "console",
                LEADER,
                LEADER,
                Kind.COMMAND,
                command="status",
                args=args,
                update_id=f"{session}:{n}",
            )
            replies = asyncio.run(app.dispatcher.handle(msg))
            assert replies and replies[0].photo_path, replies[0].text if replies else "no reply"
            return replies

        # The bot's start: the clock's catch-up sweep recomputes the chart's closed months (none are stored
        # yet: a reused database's are dropped first), by the same call Clockwork.sweep makes.
        with app.db.session() as s:
            stats.forget_rollup(s)
        cold, _, made = timed(lambda: rollup.refresh(app.db, clock), 1)
        assert len(made) == rollup.EARLIER, made
        first = timed(status_reply, 1)[0]
        med, best, _ = timed(status_reply, runs)
        rows.append(("/status, whole scope (45,000 schools): text + chart, warm", med, best, ""))
        rows.append(
            ("/status, whole scope: first call after start", first, first, "after the catch-up sweep")
        )
        where = reader.office_where(app.db, "VN")  # the leader's office: every school
        assert where is not None and where.scope.everything
        period = Period.of(NOW)

        def gather() -> Any:
            return summary.gather(context(app, LEADER), where, period)

        med, best, facts = timed(gather, runs)
        rows.append(("  of which the summary's queries", med, best, ""))
        chart = path.parent / "bench-chart.png"
        med, best, _ = timed(lambda: summary.draw(context(app, LEADER), where, period, facts, chart), runs)
        rows.append(("  of which the chart (PNG)", med, best, f"{chart.stat().st_size // 1024} KB"))

        def unstored() -> Any:
            with app.db.session() as s:
                stats.forget_rollup(s)
            return gather()

        med, best, _ = timed(unstored, max(3, runs // 3))
        rows.append(("  the summary's queries, earlier months not yet stored", med, best, "computed, stored"))
        months = [period.shift(-k).key for k in range(summary.MONTHS_CHARTED)]
        marks = ", ".join(f":m{i}" for i in range(len(months)))
        params = {f"m{i}": m for i, m in enumerate(months)}
        sql = f"SELECT period, COUNT(*) FROM submission WHERE kind = 'article' AND period IN ({marks}) GROUP BY period"
        rows.append(
            ("  floor: GROUP BY count of the six months' articles", floor(app.db, sql, params, runs), 0, "")
        )
        sql = "SELECT kind, COUNT(*) FROM submission GROUP BY kind"
        rows.append(("  floor: GROUP BY count of the whole table", floor(app.db, sql, {}, runs), 0, ""))

        rows.append(
            ("Month rollup: the catch-up sweep's refresh at start", cold, cold, f"{len(made)} months")
        )
        med, best, made = timed(lambda: rollup.refresh(app.db, clock), runs)
        assert made == [], made
        rows.append(("  a later sweep's refresh, nothing changed", med, best, ""))
        med, best, made = refresh_after_approval(app, clock, period.shift(-1), max(3, runs // 3))
        assert made == [period.shift(-1)], made
        rows.append(
            ("  a later sweep's refresh after a closed month's article was approved", med, best, "1 month")
        )

        province = reader.office_where(app.db, "SGD-00")
        assert province is not None and province.scope.schools == BIG_PROVINCE
        t = app.catalog.translator("vi")
        out = path.parent / "bench-export.xlsx"
        med, best, (count, sheets) = timed(
            lambda: workbook.build_workbook(app.db, clock, settings, t, province, period, out),
            max(3, runs // 3),
        )
        rows.append(
            (
                f"Excel export, a province of {count:,} schools, this month",
                med,
                best,
                f"{out.stat().st_size // 1024} KB, {sheets} sheets",
            )
        )
        sql = (
            "SELECT school_id, COUNT(*) FROM submission WHERE school_id IN (SELECT id FROM school WHERE office_id IN "
            "(SELECT id FROM office WHERE id = :p OR parent_id = :p)) GROUP BY school_id"
        )
        rows.append(
            (
                "  floor: GROUP BY count of the province's submissions",
                floor(app.db, sql, {"p": province.office.id}, runs),
                0,
                "",
            )
        )
        med, best, _ = timed(lambda: summary.gather(context(app, LEADER), province, period), runs)
        rows.append(("/status queries, the same province", med, best, ""))
    return rows


def refresh_after_approval(
    app: Any, clock: FrozenClock, month: Period, runs: int
) -> tuple[float, float, Any]:
    """(median ms, best ms, months recomputed) of the sweep's refresh after an article of `month` is approved.

    Each time an article awaiting review is approved as the review desk does (`queries.review`), then put
    back as it was, and its month recomputed, so that a reused database's later runs find nothing changed.
    """
    from sqlalchemy import select, update
    from sqlmodel import col

    from storage import queries as q
    from storage.models import Submission

    times, made = [], None
    for _ in range(runs):
        with app.db.session() as s:
            row = s.scalars(
                select(Submission)
                .where(
                    col(Submission.kind) == "article",
                    col(Submission.period) == month.key,
                    col(Submission.status) == "submitted",
                )
                .order_by(col(Submission.id))
                .limit(1)
            ).one()
            before = {k: getattr(row, k) for k in ("status", "reviewed_by_id", "reviewed_at", "updated_at")}
            assert q.review(
                s, row.id, row.version, row.user_id, "approve", clock.now(), ("submitted",), "approved"
            )
        started = time.perf_counter()
        made = rollup.refresh(app.db, clock)
        times.append((time.perf_counter() - started) * 1000)
        with app.db.session() as s:
            s.execute(update(Submission).where(Submission.id == row.id).values(**before))
            stats.store_month(s, month.key, month_end(month, clock), clock.now())
    return statistics.median(times), min(times), made


def context(app: Any, user_id: str) -> Any:
    """A handler context for a console user, as the dispatcher builds it."""
    from handlers.types import Context
    from storage import queries as q

    with app.db.session() as s:
        user = q.get_user(s, "console", user_id)
    return Context(
        app.db, app.clock, app.catalog.translator("vi"), app.settings, user, "console", app.catalog
    )


def main() -> None:
    """Seed (or reuse) the database, measure, print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="keep the seeded database here (reused when it exists)")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--cache-mb", type=int, default=0, help="SQLite page cache per connection (default: the app's)"
    )
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory() if args.db is None else None
    path = args.db or Path(folder.name) / "bench.db"  # type: ignore[union-attr]
    if not path.exists():
        started = time.perf_counter()
        counts = seed(path)
        print(f"seeded {counts} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    rows = measure(path, args.runs, args.cache_mb)
    cache = (
        f"{args.cache_mb} MB page cache" if args.cache_mb else "the app's SQLite settings (2 MB page cache)"
    )
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine()} · {cache} · median of {args.runs} runs\n")
    print("| measured | median ms | best ms | note |\n|---|---:|---:|---|")
    for what, med, best, note in rows:
        print(f"| {what} | {med:.0f} | {f'{best:.0f}' if best else '–'} | {note} |")
    if folder is not None:
        folder.cleanup()


if __name__ == "__main__":
    main()
