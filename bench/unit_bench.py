"""An update's work in process, step by step: `Dispatcher.handle` for principals walking `/incident`.

    .venv/bin/python -m bench.unit_bench                          # SQLite and PostgreSQL, 60 principals
    .venv/bin/python -m bench.unit_bench --db postgres --profile 14   # and cProfile of Gửi's unit
    .venv/bin/python -m bench.unit_bench --gap 0.01               # each update 10 ms after the last

No channel, no HTTP: each principal's update is handed to the dispatcher of a real app on a fresh,
seeded database (the interactive bench's seeding), one after another, so the CPU each step of the walk
costs is the bot's own (time.process_time around `handle`, which waits for the unit on its worker
thread), read without the event loop's other work or a fake Bot API beside it. It prints the CPU of each
step (the mean over the principals), the CPU and wall time per update, and the statements per update by
their first word (BEGIN and COMMIT of PostgreSQL's driver are not seen); then the CPU and wall time of
storing one update alone in the durable inbox (`Dispatcher.receive`, as a webhook POST at a quiet
moment; a busy moment stores several together). `--profile K` runs step K's
units under cProfile on their worker thread and prints the functions that took most. `--gap S`
leaves S seconds idle before each update (not counted), as at a steady rate, where each update comes
alone: the same work then costs this host more CPU than back to back. A comparison is only fair against a run of the other code on the same machine just before or after. Nothing leaves
127.0.0.1; RESULTS.md is not written.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench import ROOT
from bench.interactive_bench import (
    PG_DEFAULT,
    Step,
    fresh_database,
    incident_walk,
    postgres_reason,
    reminder_zone,
    seed,
)
from bot.app import build_app
from bot.config import load_settings
from bot.workers import Began
from handlers.types import Incoming, Kind, Reply
from storage.queries import Arrival
from tests.fakes.district import FIRST_CHAT


def incoming(step: Step, user: str, update_id: int, shown: list[Reply]) -> Incoming:
    """The update for one step of the walk: a command, a text, or a press on the button with its label
    among the replies shown last."""
    if step.kind == "press":
        choice = next(c for r in shown for row in r.choices for c in row if c.label == step.value)
        return Incoming("telegram", user, user, Kind.CHOICE, choice=choice.value, update_id=str(update_id))
    if step.value.startswith("/"):
        command = step.value[1:]
        return Incoming(
            "telegram", user, user, Kind.COMMAND, text=step.value, command=command, update_id=str(update_id)
        )
    return Incoming("telegram", user, user, Kind.TEXT, text=step.value, update_id=str(update_id))


def profiled(profile: cProfile.Profile, work: Any) -> Any:
    """`work()` under `profile` (on the thread it runs on)."""
    profile.enable()
    try:
        return work()
    finally:
        profile.disable()


async def walk(url: str, workdir: Path, principals: int, profile_step: int | None, gap: float = 0.0) -> str:
    """Seed, walk every principal through the form step by step, and say what each step cost."""
    now = datetime.now(UTC)
    seed(url, principals, 0, now)
    settings = load_settings(
        None, database_url=url, media_dir=str(workdir / "media"), timezone=reminder_zone(now)
    )
    statements: collections.Counter[str] = collections.Counter()
    profile = cProfile.Profile()
    async with build_app(settings, clockwork=False) as app:
        d = app.dispatcher

        @event.listens_for(app.db.engine, "before_cursor_execute")
        def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            statements[statement.split(None, 1)[0].upper()] += 1

        steps = incident_walk()
        shown: dict[int, list[Reply]] = {}
        per_step: list[float] = []
        update_id = 0
        idled = [0.0, 0.0]  # the gaps' CPU and wall time
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for index, step in enumerate(steps):
            spent = 0.0
            for p in range(principals):
                update_id += 1
                msg = incoming(step, str(FIRST_CHAT + p), update_id, shown.get(p, []))
                if gap:  # idle, and not counted
                    idle_cpu, idle_wall = time.process_time(), time.perf_counter()
                    await asyncio.sleep(gap)
                    idled[0] += time.process_time() - idle_cpu
                    idled[1] += time.perf_counter() - idle_wall
                started = time.process_time()
                if index == profile_step:
                    unit = partial(d.db.in_unit, partial(d.unit, msg, {}, (), Began()))
                    found = await d.workers.run(partial(profiled, profile, unit))
                    shown[p] = found[0] if found else []
                else:
                    shown[p] = await d.handle(msg)
                spent += time.process_time() - started
            per_step.append(spent / principals)
        cpu = time.process_time() - cpu_start - idled[0]
        wall = time.perf_counter() - wall_start - idled[1]
        walked = collections.Counter(statements)  # the walk's (not the stores' that follow)
        store_cpu, store_wall = await stores(d, update_id, principals * STORES)
    updates = principals * len(steps)
    lines = [
        f"{app.db.engine.dialect.name}: {updates} updates; CPU {1000 * cpu / updates:.2f} ms an update, "
        f"wall {1000 * wall / updates:.2f} ms",
        "  CPU of each step (ms): " + " ".join(f"{1000 * s:.1f}" for s in per_step),
        "  statements an update: "
        + ", ".join(f"{kind} {n / updates:.2f}" for kind, n in walked.most_common()),
        f"  an update stored alone in the durable inbox (a webhook POST at a quiet moment): CPU "
        f"{1000 * store_cpu:.2f} ms, wall {1000 * store_wall:.2f} ms",
    ]
    if profile_step is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(40)
        lines.append(f"  cProfile of step {profile_step}'s units ({steps[profile_step].value}):")
        lines.append(out.getvalue())
    return "\n".join(lines)


STORES = 5  # updates stored alone, per principal


async def stores(d: Any, after: int, count: int) -> tuple[float, float]:
    """CPU and wall seconds of `Dispatcher.receive` storing one update at a time, `count` times (the
    update ids after `after`; each stored, never handled), the mean of each."""
    cpu, wall = time.process_time(), time.perf_counter()
    for update_id in range(after + 1, after + 1 + count):
        payload = {"update_id": update_id, "message": {"message_id": 1, "date": 0, "text": "x"}}
        await d.receive("telegram", [Arrival(f"telegram:{update_id}", str(FIRST_CHAT), payload)])
    return (time.process_time() - cpu) / count, (time.perf_counter() - wall) / count


def main() -> None:
    """Walk on each database asked for and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--principals", type=int, default=60)
    parser.add_argument(
        "--profile",
        type=int,
        default=None,
        metavar="STEP",
        help="cProfile this step's units (0-14; 14 is Gửi)",
    )
    parser.add_argument(
        "--gap", type=float, default=0.0, metavar="S", help="seconds idle before each update (not counted)"
    )
    parser.add_argument("--pg-url", default=PG_DEFAULT, help="a PostgreSQL server's admin database URL")
    args = parser.parse_args()
    if args.profile is not None and not 0 <= args.profile < len(incident_walk()):
        parser.error(f"--profile: a step of the walk, 0 to {len(incident_walk()) - 1}")
    sys.path.insert(0, str(ROOT))
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    for kind in kinds:
        if kind == "postgres" and (why := postgres_reason(args.pg_url)):
            print(f"postgres: skipped ({why})")
            continue
        with (
            tempfile.TemporaryDirectory(prefix="unit-bench-") as tmp,
            fresh_database(kind, Path(tmp), args.pg_url, "unit") as url,
        ):
            print(asyncio.run(walk(url, Path(tmp), args.principals, args.profile, args.gap)))


if __name__ == "__main__":
    main()
