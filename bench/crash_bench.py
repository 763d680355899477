"""After a crash: how soon a restarted `schoolbot run` sends again, and how soon an incident alert goes
out when the process that takes it does not hold the sender lease.

    .venv/bin/python -m bench.crash_bench                          # a 1,000-school wave, 3 alerts; RESULTS.md
    .venv/bin/python -m bench.crash_bench --schools 300 --alerts 2 --no-write

1. `schoolbot run` (A, polling) starts on a fresh PostgreSQL database (`--pg-url`: a second process on
   one SQLite file is refused, since issue #18, so C below needs PostgreSQL) on the reminder day at 08:00 (the office's
   zone is picked so that it is 08:xx now, as interactive_bench does); its catch-up sweep makes a
   reminder wave to N schools, sent under Telegram's limits (the fake enforces 30 msg/s, 1/s per chat).
   Once a tenth of the wave has arrived, A is killed with SIGKILL: its sender lease and its claims stay
   in the database.
2. B (`schoolbot run`, polling) starts at once: **first send after restart** is the seconds from B's
   spawn to the first wave message that reaches the fake after it (target ≤ 5 s). B takes the dead
   holder's lease without waiting for it to run out (storage/holders.py), and the wave goes on.
3. While B holds the lease, C (`schoolbot run`, webhook on 127.0.0.1) starts on the same database, and
   principals walk `/incident` to **Gửi** through C's webhook, one after another: **alert after Gửi**
   is the seconds from the POST of **Gửi** to the alert reaching their district officer's chat
   (target ≤ 2 s). C does not hold the lease: it claims and sends the alert itself.

At the end the wave must have reached every school, and no school more than twice (a message in flight
at the kill may go again: a duplicate beats a loss). Only 127.0.0.1; the subprocesses are killed on
any error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import ROOT, compiled, loopback_only, python
from bench.interactive_bench import (
    PG_DEFAULT,
    START_TIMEOUT,
    STEP_TIMEOUT,
    Chat,
    Offer,
    Proc,
    RecordingAPI,
    Step,
    commit,
    conditions,
    config_toml,
    free_port,
    fresh_database,
    incident_walk,
    local_now,
    make_update,
    postgres_reason,
    reminder_zone,
    seed,
)
from bench.outbox_bench import machine, ok, write_section
from tests.fakes.district import FIRST_CHAT
from tests.fakes.telegram_api import FloodLimits, TgUser

SECTION = "## Crash: `kill -9` during a wave, restart, and an alert from a process without the lease"
PRINCIPALS = 10  # who walk the incident form (each school's article already sent: no reminder)
DISTRICTS = 10  # seed_wave's default: principal i's school is in district i % 10
OFFICER = 4_000_000  # the officer of district n chats as OFFICER + n (interactive_bench.seed)
WAVE_TIMEOUT = 600.0
SETTLE = 0.3  # an answer to a step of the walk is complete after this long without a new message


@dataclass
class Figures:
    """What one run measured."""

    schools: int
    sent_before_kill: int = 0
    first_send: float = float("nan")  # B's spawn to its first wave message
    ready: float = float("nan")  # B's spawn to its clock and sender starting (its log line)
    alerts: list[float] = field(default_factory=list)  # Gửi to the officer's alert, per walk
    reached: int = 0  # schools the wave reached in all
    twice: int = 0  # schools reached more than once
    most: int = 0  # the most messages one school got


def logged(log: Path, words: str) -> float:
    """When a process first logged a line with `words` (its asctime, to the millisecond), as time.time()."""
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if words in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")  # local time, as logged
            return stamp.timestamp()
    return float("nan")


async def until_pressable(chat: Chat, step: Step) -> None:
    """Until the button a press step needs has arrived (the answer to the previous step may come in parts)."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while step.kind == "press":
        try:
            chat.button(step.value)
            return
        except LookupError:
            if time.monotonic() > deadline:
                raise
            chat.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(chat.changed.wait(), 0.5)


async def walk_to_send(chat: Chat, offer: Offer, officer: Chat, begun: bool = False) -> float:
    """Walk the incident form through the webhook (`begun`: its first step is answered already);
    seconds from the POST of Gửi to the officer's alert."""
    steps = incident_walk()
    for step in steps[1 if begun else 0 :]:
        await until_pressable(chat, step)
        if step is steps[-1]:
            break
        seen = len(chat.times)
        await offer(make_update(chat, step))
        if not await chat.wait_for(seen + 1, time.monotonic() + STEP_TIMEOUT):
            raise RuntimeError(f"no answer to {step.value!r}")
        await chat.settle(SETTLE, time.monotonic() + STEP_TIMEOUT)
    before = len(officer.times)
    offered = await offer(make_update(chat, steps[-1]))
    if not await officer.wait_for(before + 1, offered + STEP_TIMEOUT):
        raise RuntimeError("the officer's alert never came")
    return officer.times[before] - offered


async def run(schools: int, alerts: int, workdir: Path, pg_url: str) -> Figures:
    """One crash and restart in `workdir` on a fresh PostgreSQL database; the subprocesses are gone
    and the database dropped when this returns."""
    with fresh_database("postgres", workdir, pg_url, "crash") as url:
        return await crash(url, schools, alerts, workdir)


async def crash(url: str, schools: int, alerts: int, workdir: Path) -> Figures:
    """A, killed during its wave; B, restarted; C, taking incidents without the lease."""
    zone = reminder_zone(datetime.now(UTC))
    now = local_now(zone)
    await asyncio.to_thread(seed, url, PRINCIPALS, schools, now)
    loop = asyncio.get_running_loop()
    principals = [Chat(TgUser(FIRST_CHAT + i, "Hiệu trưởng", str(i)), loop) for i in range(alerts)]
    officers = {n: Chat(TgUser(OFFICER + n, "Cán bộ", str(n)), loop) for n in range(DISTRICTS)}
    chatting = {str(c.user.id) for c in principals} | {str(c.user.id) for c in officers.values()}
    api = RecordingAPI(limits=FloodLimits(), principals=chatting).start()
    for chat in [*principals, *officers.values()]:
        api.listeners[str(chat.user.id)] = chat.listen
    schoolbot = [*python(), str(Path(sys.executable).parent / "schoolbot")]  # as deployed
    port = free_port()
    polling = workdir / "polling.toml"
    polling.write_text(config_toml(url, workdir, api, zone, now.day, "polling", port))
    webhook = workdir / "webhook.toml"
    webhook.write_text(config_toml(url, workdir, api, zone, now.day, "webhook", port))
    figures = Figures(schools)
    procs: list[Proc] = []
    offer = Offer(api, (f"http://127.0.0.1:{port}/telegram",))
    try:
        a = Proc([*schoolbot, "run", "--config", str(polling)], workdir / "a.log")
        procs.append(a)
        deadline = a.started + START_TIMEOUT + WAVE_TIMEOUT
        while len(api.wave) < max(1, schools // 10):
            if not a.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"A never sent the wave:\n{a.tail()}")
            await asyncio.sleep(0.05)
        os.killpg(a.popen.pid, signal.SIGKILL)
        a.popen.wait(10)
        await asyncio.sleep(0.2)  # A's last requests, if any, are answered by now
        figures.sent_before_kill = before = len(api.wave)
        spawned = time.time()
        b = Proc([*schoolbot, "run", "--config", str(polling)], workdir / "b.log")
        procs.append(b)
        while len(api.wave) <= before:
            if not b.alive() or time.monotonic() > b.started + START_TIMEOUT:
                raise RuntimeError(f"B never sent:\n{b.tail()}")
            await asyncio.sleep(0.01)
        figures.first_send = api.wave[before] - b.started
        figures.ready = logged(b.log, "clock started") - spawned
        print(f"  first send {figures.first_send:.2f} s after the restart", flush=True)
        c = Proc([*schoolbot, "run", "--config", str(webhook)], workdir / "c.log")
        procs.append(c)
        for index, chat in enumerate(principals):
            if index == 0:  # its first step is POSTed as soon as C listens
                await offer.first(make_update(chat, incident_walk()[0]), c.started)
                if not await chat.wait_for(1, c.started + START_TIMEOUT):
                    raise RuntimeError(f"C never answered:\n{c.tail()}")
                await chat.settle(SETTLE, time.monotonic() + STEP_TIMEOUT)
            officer = officers[(chat.user.id - FIRST_CHAT) % DISTRICTS]
            seconds = await walk_to_send(chat, offer, officer, begun=index == 0)
            figures.alerts.append(seconds)
            print(f"  alert {index + 1}: {seconds:.2f} s after Gửi", flush=True)
        wave_chats = {str(FIRST_CHAT + PRINCIPALS + 1 + i) for i in range(schools)}
        deadline = time.monotonic() + WAVE_TIMEOUT
        while True:
            got = collections.Counter(
                str(p.get("chat_id")) for p in api.calls_to("sendMessage", ok_only=True)
            )
            if wave_chats <= set(got) or time.monotonic() > deadline or not b.alive():
                break
            await asyncio.sleep(0.5)
        figures.reached = len(wave_chats & set(got))
        figures.twice = sum(1 for chat in wave_chats if got[chat] > 1)
        figures.most = max((got[chat] for chat in wave_chats), default=0)
    finally:
        await offer.close()
        for proc in procs:
            await asyncio.to_thread(proc.stop)
        api.stop()
    return figures


def report(f: Figures, command: str, loads: tuple[str, str]) -> str:
    """The RESULTS.md section."""
    worst = max(f.alerts, default=float("nan"))
    alerts = ", ".join(f"{s:.2f}" for s in f.alerts)
    return f"""{SECTION}

`{command}`, run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.

- **Machine:** {machine()}; nproc {len(os.sched_getaffinity(0))}. Load average (and host speed)
  {loads[0]} before, {loads[1]} after (other work on the machine makes the figures pessimistic).
- **Code measured:** {commit()}

| | figure | target | |
|---|---|---|---|
| first send after `kill -9` and restart (spawn to first message) | {f.first_send:.2f} s | ≤ 5 s | {ok(f.first_send <= 5)} |
| of which B's own start (spawn to its clock and sender starting: imports, database, getMe) | {f.ready:.2f} s | | |
| of which the takeover (the dead holder's lease and claims taken, the first message sent) | {f.first_send - f.ready:.2f} s | | |
| incident alert after **Gửi**, the process without the lease (worst of {len(f.alerts)}) | {worst:.2f} s ({alerts}) | ≤ 2 s | {ok(worst <= 2)} |
| wave reached every school ({f.schools:,}; {f.sent_before_kill:,} before the kill) | {f.reached:,} | all | {ok(f.reached == f.schools)} |
| schools reached twice (in flight at the kill) | {f.twice} (at most {f.most} each) | few, never lost | {ok(f.most <= 2)} |

How: `schoolbot run` A (polling) sends a reminder wave under Telegram's limits (the fake enforces
them with 429); at a tenth of it A gets SIGKILL; B starts at once and takes the dead holder's sender
lease; C (webhook) starts next to B without the lease, and principals walk `/incident` to **Gửi**
through C. The first-send figure includes B's own start (imports, database, getMe).
"""


def main() -> None:
    """Run once, print the figures, write the section of RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schools", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--pg-url", default=PG_DEFAULT, help="a PostgreSQL server's admin database URL")
    args = parser.parse_args()
    loopback_only()
    reason = postgres_reason(args.pg_url)
    if reason:
        raise SystemExit(f"crash_bench needs PostgreSQL (two processes on one database): {reason}")
    compiled()  # as deployed: the restart reads the byte-code, not compile the tree
    command = "python -m bench.crash_bench " + " ".join(sys.argv[1:])
    before = conditions()
    with tempfile.TemporaryDirectory(prefix="schoolbot-crash-") as tmp:
        figures = asyncio.run(run(args.schools, min(args.alerts, PRINCIPALS), Path(tmp), args.pg_url))
    text = report(figures, command.strip(), (before, conditions()))
    print(text)
    if not args.no_write:
        write_section(args.out, text, SECTION)


if __name__ == "__main__":
    main()
