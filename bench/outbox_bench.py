"""The outbox under Telegram's real limits: a 10,000-recipient reminder wave and a principal chatting.

    .venv/bin/python -m bench.outbox_bench                  # 10,000 recipients, writes bench/RESULTS.md
    .venv/bin/python -m bench.outbox_bench --recipients 500 --no-write    # a quick look

It runs the production pieces: the SQLite database, the Clockwork (its catch-up sweep queues the
wave, the outbox sender drains it at [outbox] rate), and the Telegram channel on python-telegram-bot
(with its two lanes, as `schoolbot run` has it: replies go at once and take their share of the
ceiling first; outbox sends are not retried inside PTB, so a 429 reaches the outbox), all against the loopback fake Bot API of the tests, which enforces 30 messages/s overall and 1/s per chat with 429 and retry_after. Meanwhile a
principal sends /mystatus 1.5 s after each answer; the time from the update to the bot's answer reaching the fake
is the reply time.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import ROOT, loopback_only

if TYPE_CHECKING:
    from bot.app import App
    from tests.fakes.telegram_api import FakeBotAPI, TgUser

SECTION = "## Outbox: a 10,000-recipient reminder wave under Telegram's limits"
GOALS = {"rate_fraction": 0.95, "too_many": 0, "duplicates": 0, "losses": 0, "p95_reply": 1.5}


@dataclass
class Figures:
    """What one run measured."""

    recipients: int
    configured_rate: float
    sweep_seconds: float
    wave_seconds: float
    sustained_rate: float
    too_many: int
    duplicates: int
    losses: int
    replies: list[float]
    unanswered: int
    busiest: int  # the most messages the fake accepted in any one second (its limit: 30)

    @property
    def fraction(self) -> float:
        return self.sustained_rate / self.configured_rate

    @property
    def p95(self) -> float:
        ordered = sorted(self.replies)
        return ordered[max(0, round(0.95 * len(ordered)) - 1)] if ordered else float("nan")


async def run(recipients: int, rate: float, workdir: Path) -> Figures:
    """One wave; everything on 127.0.0.1."""
    loopback_only()
    from bot.app import open_app
    from bot.channels.telegram import TelegramChannel
    from bot.config import load_settings
    from bot.run import attached
    from handlers.calendar import FrozenClock
    from storage import queries as q
    from storage.models import User
    from tests.fakes.district import seed_wave
    from tests.fakes.telegram_api import FakeBotAPI, FloodLimits, TgUser, text_update

    api = FakeBotAPI(limits=FloodLimits()).start()  # Telegram's real limits
    settings = load_settings(
        None,
        database_url=f"sqlite:///{workdir / 'bench.db'}",
        media_dir=str(workdir / "media"),
        telegram=api.settings(),
        outbox={"rate": rate},
    )
    clock = FrozenClock(datetime(2026, 11, 10, 8, 0))  # the first reminder of November is due
    chatter = TgUser(42, "Lan", "Lò Thị")
    try:
        with open_app(settings, clock) as app:
            seeded = seed_wave(app.db, recipients + 1, clock.now())  # school 0 is the chatting principal's
            with app.db.session() as s:  # the chatting principal's school has sent: no reminder for them
                s.add(
                    User(
                        channel="telegram",
                        external_id="42",
                        chat_id="42",
                        display_name=chatter.full_name,
                        role="principal",
                        school_id=seeded.school_ids[0],
                        office_id=seeded.district_ids[0],
                        locale="vi",
                        created_at=clock.now(),
                    )
                )
                q.create_submission(
                    s,
                    kind="article",
                    school_id=seeded.school_ids[0],
                    user_id=1,
                    token="bench",
                    answers={},
                    status="submitted",
                    now=clock.now(),
                    period="2026-11",
                )
            channel = TelegramChannel(app, poll_timeout=1.0, typing_after=60.0)
            async with attached(app, channel):
                started = time.perf_counter()
                await app.clockwork.start()  # the catch-up sweep queues the wave; the sender drains it
                while app.clockwork.holding is False or app.outbox.stats.sent == 0:
                    await asyncio.sleep(0.01)
                sweep_seconds = time.perf_counter() - started
                replies, unanswered = await chat_during_wave(api, app, chatter, recipients, text_update)
                while app.outbox.stats.sent < recipients:
                    await asyncio.sleep(0.1)
                await app.clockwork.stop()
    finally:
        api.stop()
    chats = {str(c) for c in seeded.chats[1:]}
    wave = [(t, c) for t, c in api.gate.accepted if c in chats]
    counts = collections.Counter(c for _, c in wave)
    span = wave[-1][0] - wave[0][0] if len(wave) > 1 else float("nan")
    return Figures(
        recipients=recipients,
        configured_rate=rate,
        sweep_seconds=sweep_seconds,
        wave_seconds=span,
        sustained_rate=(len(wave) - 1) / span,
        too_many=api.gate.refused,
        duplicates=sum(n - 1 for n in counts.values()),
        losses=len(chats - set(counts)),
        replies=replies,
        unanswered=unanswered,
        busiest=busiest_second([t for t, _ in api.gate.accepted]),
    )


def ok(good: bool) -> str:
    """A target's mark in a table."""
    return "✅" if good else "❌"


def busiest_second(times: list[float]) -> int:
    """The most messages in any one-second window."""
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


async def chat_during_wave(
    api: FakeBotAPI, app: App, chatter: TgUser, recipients: int, text_update: Callable[[TgUser, str], Any]
) -> tuple[list[float], int]:
    """/mystatus 1.5 s after each answer while the wave runs; how long each answer took to reach the platform."""
    replies: list[float] = []
    unanswered = 0
    n = 0
    while app.outbox.stats.sent < recipients * 0.98:
        n += 1
        pushed = time.monotonic()
        api.push_update(text_update(chatter, "/mystatus"))
        answer = None
        while answer is None and time.monotonic() - pushed < 10:
            await asyncio.sleep(0.005)
            answer = next((t for t, c in reversed(api.gate.accepted) if c == "42" and t >= pushed), None)
        if answer is None:
            unanswered += 1
            replies.append(10.0)
        else:
            replies.append(answer - pushed)
        await asyncio.sleep(1.5)  # a person reads the answer, then types the next message
    return replies, unanswered


def machine() -> str:
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    import telegram

    return (
        f"{cpu}, {os.cpu_count()} CPUs; {platform.platform()}; Python {platform.python_version()}; "
        f"SQLite {sqlite3.sqlite_version}; python-telegram-bot {telegram.__version__}"
    )


def report(f: Figures, command: str) -> str:
    return f"""{SECTION}

`python -m bench.outbox_bench` (the venv's Python; about seven minutes: 10,000 messages at 25/s).

- **Date:** {datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}
- **Machine:** {machine()}
- **Command:** `{command}`
- **Set-up:** {f.recipients:,} principals of {f.recipients:,} schools on Telegram, SQLite (WAL) in a temporary folder,
  the Clockwork's catch-up sweep queueing the wave and the outbox sender at `[outbox] rate = {f.configured_rate:g}`
  (burst 2, 1 s per chat, 4 in flight), python-telegram-bot with its two lanes (replies first; outbox sends not retried inside it), the loopback fake Bot API
  enforcing **30 msg/s overall and 1/s per chat** (HTTP 429 with `retry_after`), and a principal sending
  `/mystatus` 1.5 s after each answer during the wave.

| Figure | Result | Goal | |
|---|---|---|---|
| Sustained send rate | {f.sustained_rate:.2f} msg/s = **{f.fraction:.3f}** of the configured {f.configured_rate:g}/s | ≥ 0.95 | {ok(f.fraction >= GOALS["rate_fraction"])} |
| HTTP 429 answers | **{f.too_many}** | 0 | {ok(f.too_many == 0)} |
| Duplicates | **{f.duplicates}** | 0 | {ok(f.duplicates == 0)} |
| Losses (recipients never reached) | **{f.losses}** | 0 | {ok(f.losses == 0)} |
| Interactive reply time, p95 | **{f.p95:.3f} s** (median {statistics.median(f.replies):.3f} s, max {max(f.replies):.3f} s, {len(f.replies)} replies, {f.unanswered} unanswered) | < 1.5 s | {ok(f.p95 < GOALS["p95_reply"])} |

Also measured: the busiest one-second window carried {f.busiest} messages (the fake refuses the 31st; replies to the
chatting principal included); the wave took {f.wave_seconds:.1f} s from its first message to its last; the catch-up sweep
(planning and queueing {f.recipients:,} rows, in a worker thread) and the first send took {f.sweep_seconds:.2f} s.

The rate is (messages − 1) / (time of the last − time of the first), as the fake saw them. Reply time is from
the moment the update was queued at the fake until the fake accepted the bot's answer (getUpdates long
poll, the dispatcher, the database, sendMessage), while the wave was going on.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=25.0, help="[outbox] rate (messages/s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    command = (
        "python -m bench.outbox_bench"
        + (f" --recipients {args.recipients}" if args.recipients != 10_000 else "")
        + (f" --rate {args.rate:g}" if args.rate != 25.0 else "")
    )
    with tempfile.TemporaryDirectory(prefix="schoolbot-bench-") as tmp:
        figures = asyncio.run(run(args.recipients, args.rate, Path(tmp)))
    text = report(figures, command)
    print(text)
    if not args.no_write:
        write_section(args.out, text)
        print(f"written to {args.out}")


def write_section(path: Path, section: str, heading: str = SECTION) -> None:
    """Put a benchmark's section (this one's by default) in RESULTS.md, replacing its previous one and
    keeping the others'."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    start = old.find(heading)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + section
    else:
        end = old.find("\n## ", start + len(heading))
        new = old[:start] + section.rstrip("\n") + ("\n" + old[end:] if end >= 0 else "\n")
    path.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
