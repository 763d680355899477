"""Principals chatting with the real `schoolbot run`, next to a bare python-telegram-bot echo bot.

    .venv/bin/python -m bench.interactive_bench                          # the whole matrix, writes RESULTS.md
    .venv/bin/python -m bench.interactive_bench --db sqlite --mode polling --scenario quiet --no-write

Each run starts `schoolbot run` as a subprocess (polling, or webhook on 127.0.0.1 with the secret
header) against a loopback fake Bot API in this process (tests/fakes/telegram_api.py: no limits of
its own, except in the burst scenario, which has Telegram's), on a fresh SQLite file or a fresh
PostgreSQL database seeded beforehand with the project's own seeding code, and then the bare echo bot
(bench/echo_bot.py) as a subprocess on the same fake with the same load. Simulated principals:

- quiet: N principals each walk the whole incident form, `/incident` to **Gửi** (15 updates), closed
  loop: each sends its next update only once the bot has answered the previous one in full;
- wave: the same while the bot's own catch-up sweep sends a reminder wave to 3,000 schools;
- rate: the same walk, each principal offering its next update 2 s after the previous one (or when its
  answer is complete, if later): about 100 updates/s offered by 200 principals;
- burst: 150 principals send `/mystatus` within 0.5 s, against a fake that enforces Telegram's flood
  limits (30 messages/s, 1/s per chat) with 429 and retry_after.

Figures: updates/s, p50/p95/p99 from the update offered (queued at the fake, or POSTed to the
webhook) to the first reply reaching the fake, replies missing, 429s, CPU per update and peak RSS of
the subprocess (/proc; on PostgreSQL also the CPU its server's processes on this machine spent an
update), and start to first reply. Every wait has a deadline; the subprocesses are
stopped at the end of each run and killed on any error or Ctrl-C. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import itertools
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlmodel import col

from bench import ROOT, compiled, host_speed, python
from bench.outbox_bench import machine, write_section
from bot.channels import sockets
from handlers.calendar import Period
from handlers.i18n import Catalog
from storage import migrate
from storage import queries as q
from storage.db import Database
from storage.models import Office, User
from storage.text import fold
from tests.fakes.district import FIRST_CHAT, seed_wave
from tests.fakes.telegram_api import (
    BOT_USERNAME,
    TOKEN,
    FakeBotAPI,
    FloodLimits,
    TgUser,
    callback_update,
    text_update,
)

SECTION = "## Interactive: principals walking a form through `schoolbot run`, beside an echo bot"
SCENARIOS = ("quiet", "wave", "rate", "burst")
SECRET = "bench-Secret_token-0123456789"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WAVE_SCHOOLS = 3000
BURST_PRINCIPALS = 150
BURST_SECONDS = 0.5
BURST_TIMEOUT = 30.0  # a /mystatus of the burst with no answer after this is a reply missing
RATE_PAUSE = 2.0  # seconds between one principal's updates in the rate scenario
STEP_TIMEOUT = 60.0  # an update with no answer after this is a reply missing
START_TIMEOUT = 60.0
RUN_TIMEOUT = 900.0  # the whole load phase of one run
WAVE_TIMEOUT = 600.0  # after the chats, for the rest of the wave
SETTLE = 1.0  # calibration: the answer to an update is complete after this long (and 2 × rtt) without a new message
# Bot API calls that put something in a chat: what counts as a reply.
REPLY_METHODS = frozenset(
    {
        "sendmessage",
        "editmessagetext",
        "editmessagereplymarkup",
        "sendphoto",
        "senddocument",
        "sendvideo",
        "sendmediagroup",
    }
)


# ---- the fake, recording replies as they arrive ----------------------------------------------------


Listener = Callable[[float, str, dict[str, Any], Any], None]


class RecordingAPI(FakeBotAPI):
    """FakeBotAPI that tells each principal's listener of every message to its chat as it arrives."""

    def __init__(
        self, limits: FloodLimits | None = None, principals: set[str] | None = None, rtt: float = 0.0
    ) -> None:
        super().__init__(limits=limits, keep_alive=True)  # as Telegram keeps them
        self.rtt = rtt  # seconds of network each request but getUpdates spends (half each way)
        self.listeners: dict[str, Listener] = {}
        self.principals = principals or set()
        self.count_lock = threading.Lock()
        self.too_many = 0
        self.others = 0  # messages to chats that are not chatting principals: the wave, alerts
        self.wave: list[float] = []  # when each message to a school owing its article arrived

    def handle(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer as the fake does, then record the reply with the moment it arrived."""
        name = method.lower()
        away = self.rtt / 2 if name != "getupdates" else 0.0
        if away:
            time.sleep(away)  # on its way here (a thread per connection: the others go on)
        status, body = super().handle(token, method, params)
        if status == 429:
            with self.count_lock:
                self.too_many += 1
        elif status == 200 and name in REPLY_METHODS:
            now = time.monotonic()
            chat = str(params.get("chat_id"))
            listener = self.listeners.get(chat)
            if listener is not None:
                listener(now, name, params, body.get("result"))
            elif chat not in self.principals:
                with self.count_lock:
                    self.others += 1
                    if chat.isdigit() and int(chat) >= FIRST_CHAT:
                        self.wave.append(now)
        if away:
            time.sleep(away)  # the answer on its way back
        return status, body


@dataclass
class Chat:
    """One simulated principal: what the bot sent them, and the latest keyboard."""

    user: TgUser
    loop: asyncio.AbstractEventLoop
    times: list[float] = field(default_factory=list)
    keyboard: list[list[dict[str, Any]]] = field(default_factory=list)
    keyboard_message: int = 1
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def listen(self, at: float, method: str, params: dict[str, Any], result: Any) -> None:
        """Called in the fake's thread: hand the message to the event loop."""
        self.loop.call_soon_threadsafe(self.receive, at, params, result)

    def receive(self, at: float, params: dict[str, Any], result: Any) -> None:
        """A message arrived (on the loop)."""
        self.times.append(at)
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            self.keyboard = markup["inline_keyboard"]
            if isinstance(result, dict) and isinstance(result.get("message_id"), int):
                self.keyboard_message = result["message_id"]
        self.changed.set()

    async def wait_for(self, count: int, deadline: float) -> bool:
        """Until `count` messages have arrived (False at the deadline)."""
        while len(self.times) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            if len(self.times) >= count:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def settle(self, quiet: float, deadline: float) -> None:
        """Until no message has arrived for `quiet` seconds."""
        while time.monotonic() < deadline:
            seen = len(self.times)
            await asyncio.sleep(quiet)
            if len(self.times) == seen:
                return

    def button(self, label: str) -> str:
        """The callback data of the button with this label in the latest keyboard."""
        for row in self.keyboard:
            for button in row:
                if fold(label) in fold(str(button.get("text", ""))):
                    return str(button["callback_data"])
        raise LookupError(f"no button {label!r} in the latest keyboard")


# ---- the walk -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One update of a walk: a text, or a press on the button with this label."""

    kind: str  # "text" | "press"
    value: str


def incident_walk() -> list[Step]:
    """`/incident` to **Gửi**, as tests/bot/test_telegram.py's fill_incident walks it (15 updates: since
    #17 the time of day, links, screenshots and a callback phone are asked too)."""
    t = Catalog(default="vi").translator("vi")
    return [
        Step("text", "/incident"),
        Step("text", "Một tài khoản Facebook đăng tin sai sự thật về bữa ăn bán trú của trường."),
        Step("press", t("btn.today")),
        Step("text", "7h15"),
        Step("text", "Nhóm Facebook của xã"),
        Step("press", t("incident.network.facebook")),
        Step("press", t("incident.network.zalo")),
        Step("press", t("btn.done")),
        Step("text", "https://facebook.com/groups/punhi/posts/1"),
        Step("press", t("btn.done")),  # the links
        Step("press", t("btn.done")),  # no screenshots
        Step("text", "Đã gặp phụ huynh đăng tin và đề nghị gỡ bài; đã báo chính quyền xã."),
        Step("press", t("incident.level.high")),
        Step("text", "0912345678"),  # the callback phone
        Step("press", t("btn.send")),
    ]


def echo_walk(walk: list[Step]) -> list[Step]:
    """The same number of updates for the echo bot, which has no buttons: each press is its label as text."""
    return [Step("text", s.value) for s in walk]


# ---- offering updates -----------------------------------------------------------------------------


POSTS = 64  # webhook POSTs at once (Telegram's max_connections: 40 by default, up to 100)


class Offer:
    """Puts an update before the bot: queued at the fake (polling) or POSTed to the webhook; with several
    workers' webhooks, to each in turn, as a balancer in front of them would."""

    def __init__(self, api: RecordingAPI, hooks: tuple[str, ...] = ()) -> None:
        self.api = api
        self.hooks = itertools.cycle(hooks)
        hook = hooks[0] if hooks else ""
        self.client = (
            httpx.AsyncClient(
                timeout=30.0,
                trust_env=False,
                # the bot's own transport (asyncio's sockets, not anyio's): anyio's cost per request
                # held this process to about 160 POSTs a second, below what the bots could take
                transport=sockets.transport(hook, httpx.Limits(max_connections=POSTS)),
            )
            if hook
            else None
        )
        # The POSTs beyond the connections wait here, not in httpcore's pool, which looks at every
        # waiting request on each request's start and end: with 200 waiting, that bookkeeping took
        # this process's whole CPU, and the bench measured itself.
        self.gate = asyncio.Semaphore(POSTS)

    async def __call__(self, update: dict[str, Any]) -> float:
        """Offer it; the moment it was offered."""
        if self.client is None:
            offered = time.monotonic()
            self.api.push_update(update)
            return offered
        update = {"update_id": self.api.next_update_id(), **update}
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        offered = time.monotonic()
        async with self.gate:
            answer = await self.client.post(next(self.hooks), json=update, headers=headers)
        answer.raise_for_status()
        method = answer.json().get("method") if answer.content else None
        if method:  # a method in the webhook's answer: Telegram runs it, as if the bot had called it
            params = {k: v for k, v in answer.json().items() if k != "method"}
            await asyncio.to_thread(self.api.handle, TOKEN, method, params)
        return offered

    async def first(self, update: dict[str, Any], started: float) -> None:
        """The start probe: POSTed as soon as the webhook's port accepts (queued at once when polling)."""
        if self.client is None:
            self.api.push_update(update)
            return
        while True:
            try:
                await self(update)
                return
            except (httpx.TransportError, httpx.HTTPStatusError):
                if time.monotonic() - started > START_TIMEOUT:
                    raise
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        """Close the webhook client."""
        if self.client is not None:
            await self.client.aclose()


def make_update(chat: Chat, step: Step) -> dict[str, Any]:
    """The Telegram update for a step of the walk."""
    if step.kind == "press":
        return callback_update(chat.user, chat.button(step.value), chat.keyboard_message)
    return text_update(chat.user, step.value)


# ---- the subprocess -------------------------------------------------------------------------------

LIVE: set[subprocess.Popen[bytes]] = set()


def kill_all() -> None:
    """Kill every subprocess still running (at exit, after Ctrl-C or an error)."""
    for proc in list(LIVE):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        LIVE.discard(proc)


atexit.register(kill_all)


class Proc:
    """A bot in its own process group, its output in a log file; CPU and memory read from /proc."""

    def __init__(self, argv: list[str], log: Path) -> None:
        env = {
            k: v for k, v in os.environ.items() if k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
        }
        env["PTB_TIMEDELTA"] = "1"
        env["PYTHONPATH"] = str(ROOT)
        self.log = log
        self.started = time.monotonic()
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        LIVE.add(self.popen)

    def cpu_seconds(self) -> float:
        """User and system CPU time so far."""
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        """The most resident memory so far (VmHWM), in MB."""
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def alive(self) -> bool:
        """Still running."""
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        LIVE.discard(self.popen)

    def tail(self, lines: int = 15) -> str:
        """The end of its output."""
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


def server_cpu() -> dict[tuple[str, str], float]:
    """User and system CPU seconds of each PostgreSQL server process on this machine (its backends and
    background workers: `comm` postgres), by (pid, start time) so that a pid used again is not mixed up.
    Empty where /proc shows none (a server elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[tuple[str, str], float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        found[(entry.name, fields[19])] = (int(fields[11]) + int(fields[12])) / tick
    return found


def server_cpu_since(before: dict[tuple[str, str], float]) -> float:
    """The PostgreSQL server's CPU seconds since `before` (processes that ended meanwhile not counted)."""
    return sum(seconds - before.get(key, 0.0) for key, seconds in server_cpu().items())


class Procs:
    """The workers of one run (one but for `--workers` on PostgreSQL's webhook): CPU summed, memory the
    largest worker's, alive while all are."""

    def __init__(self, procs: list[Proc]) -> None:
        self.procs = procs
        self.started = min(p.started for p in procs)

    def cpu_seconds(self) -> float:
        """User and system CPU time of all the workers so far."""
        return sum(p.cpu_seconds() for p in self.procs)

    def peak_rss_mb(self) -> float:
        """The largest worker's peak resident memory."""
        return max(p.peak_rss_mb() for p in self.procs)

    def alive(self) -> bool:
        """Every worker still running."""
        return all(p.alive() for p in self.procs)

    def stop(self) -> None:
        """Stop them all."""
        for p in self.procs:
            p.stop()

    def tail(self, lines: int = 15) -> str:
        """The end of the output of the first worker that stopped (or the first's)."""
        return next((p for p in self.procs if not p.alive()), self.procs[0]).tail(lines)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- the database ---------------------------------------------------------------------------------


def reminder_zone(now: datetime) -> str:
    """The fixed-offset zone (Etc/GMT±N) in which it is now between 08:00 and 09:00.

    `schoolbot run` has no setting that pins its clock, so the bench picks the office's time zone
    instead: the run happens at the reminder hour, on a day the bench makes the deadline day.
    """
    offset = (8 - now.astimezone(UTC).hour) % 24
    if offset > 14:
        offset -= 24
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


def local_now(zone: str) -> datetime:
    """Now in that zone."""
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(zone))


def seed(url: str, principals: int, wave: int, now: datetime) -> None:
    """Migrate, then: N + 1 principals (each school's article of the month already sent, so no reminder
    goes to them), one officer per district (the incident alerts), and `wave` schools that owe it."""
    db = Database(url)
    try:
        migrate.upgrade(db)
        seeded = seed_wave(db, principals + 1 + wave, now)
        period = Period.of(now).key
        with db.session() as s:
            ids: dict[str, int] = dict(
                s.execute(
                    select(col(User.external_id), col(User.id)).where(col(User.role) == "principal")
                ).all()
            )
            for i in range(principals + 1):
                q.create_submission(
                    s,
                    kind="article",
                    school_id=seeded.school_ids[i],
                    user_id=ids[str(FIRST_CHAT + i)],
                    token=f"bench-{i}",
                    answers={},
                    status="submitted",
                    now=now,
                    period=period,
                )
            for n, office_id in enumerate(seeded.district_ids):
                office = s.get(Office, office_id)
                assert office is not None
                s.add(
                    User(
                        channel="telegram",
                        external_id=str(4_000_000 + n),
                        chat_id=str(4_000_000 + n),
                        display_name=f"Cán bộ {n}",
                        role="officer",
                        office_id=office_id,
                        locale="vi",
                        created_at=now,
                    )
                )
    finally:
        db.dispose()


@contextlib.contextmanager
def fresh_database(kind: str, workdir: Path, pg_url: str, tag: str) -> Iterator[str]:
    """A fresh SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'{tag}.db'}"
        return
    import psycopg

    admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"schoolbot_bench_{os.getpid()}_{tag}".replace("-", "_")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_reason(pg_url: str) -> str:
    """Empty when PostgreSQL answers at `pg_url`; otherwise why it is skipped."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        with psycopg.connect(
            pg_url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3
        ) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"no PostgreSQL at {pg_url.split('@')[-1]}: {str(exc).splitlines()[0]}"
    return ""


def config_toml(
    url: str,
    workdir: Path,
    api: FakeBotAPI,
    zone: str,
    day: int,
    mode: str,
    port: int,
    per_chat: float | None = None,
) -> str:
    """The bot's settings: the fake's URLs, the office zone, today the deadline day, no periodic report
    (`per_chat`: outbox.per_chat_seconds, when not the default)."""

    def s(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    hook = (
        f'mode = "webhook"\nwebhook_url = {s(f"https://127.0.0.1:{port}/telegram")}\n'
        if mode == "webhook"
        else ""
    )
    return (
        f"database_url = {s(url)}\nmedia_dir = {s(str(workdir / 'media'))}\ntimezone = {s(zone)}\n\n"
        f"[telegram]\ntoken = {s(TOKEN)}\nusername = {s(BOT_USERNAME)}\nbase_url = {s(api.base_url)}\n"
        f'base_file_url = {s(api.base_file_url)}\n{hook}listen = "127.0.0.1"\nport = {port}\n'
        f'url_path = "telegram"\nsecret_token = {s(SECRET)}\n\n'
        + (f"[outbox]\nper_chat_seconds = {per_chat}\n\n" if per_chat is not None else "")
        + f"[schedule]\nmonthly_deadline_day = {day}\nperiodic = []\ndigest_days = []\n"
    )


# ---- one run --------------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one run of one bot measured."""

    offered: int = 0
    latencies: list[float] = field(default_factory=list)
    missing: int = 0
    unfinished: int = 0  # walks cut short by a reply missing
    too_many: int = 0
    seconds: float = float("nan")  # first offer to last reply
    cpu_ms: float = float("nan")
    db_cpu_ms: float = float("nan")  # PostgreSQL's server processes, on this machine
    rss_mb: float = float("nan")
    start: float = float("nan")
    offered_rate: float = float("nan")
    wave_sent: int = 0  # messages to other chats (the wave, incident alerts) during the load
    wave_total: int = 0  # reminders delivered in all
    wave_seconds: float = float("nan")  # first reminder to last
    failed: str = ""

    @property
    def rate(self) -> float:
        """Updates answered per second."""
        return len(self.latencies) / self.seconds if self.seconds > 0 else float("nan")

    def pct(self, p: float) -> float:
        """A percentile of the reply times (nearest rank)."""
        ordered = sorted(self.latencies)
        return ordered[max(0, round(p / 100 * len(ordered)) - 1)] if ordered else float("nan")


@dataclass(frozen=True)
class Run:
    """What to run: which bot, scenario, database and mode."""

    bot: str  # "schoolbot" | "echo"
    scenario: str
    mode: str
    db: str = ""  # "sqlite" | "postgres" (schoolbot only)
    workers: int = 1  # `schoolbot run` processes (`--workers`: PostgreSQL's webhook only)

    @property
    def title(self) -> str:
        """The run as its table and progress line name it."""
        return f"{self.scenario} · {self.db or '-'} · {self.mode}" + (
            f" · {self.workers} workers" if self.workers > 1 else ""
        )

    def file(self, index: int, suffix: str) -> str:
        """The name of worker `index`'s file (its config, its log) in the work folder."""
        return f"{self.bot}-{self.scenario}-{self.db or 'none'}-{self.mode}{f'-{index}' if index else ''}{suffix}"


class Bench:
    """The matrix's shared state: the principal count, the work folder, the calibrated walk."""

    def __init__(
        self,
        principals: int,
        workdir: Path,
        pg_url: str,
        rtt: float = 0.0,
        per_chat: float | None = None,
        plain: bool = False,
        settle: float = SETTLE,
    ) -> None:
        self.principals = principals
        self.rtt = rtt
        self.per_chat = per_chat
        self.python = python(plain)  # the bots as deployed (bench/__init__.py), or plain
        self.settle = settle
        self.workdir = workdir
        self.pg_url = pg_url
        self.walk = incident_walk()
        self.counts: dict[str, list[int]] = {}  # messages each step of the walk is answered with, per bot

    async def run(self, r: Run) -> Figures:
        """One bot, one scenario; its subprocess is gone when this returns."""
        tag = r.file(0, "")
        zone = reminder_zone(datetime.now(UTC))
        now = local_now(zone)
        wave = WAVE_SCHOOLS if r.scenario == "wave" else 0
        chatting = max(self.principals, BURST_PRINCIPALS) if r.scenario == "burst" else self.principals
        users = [TgUser(FIRST_CHAT + i, "Hiệu trưởng", str(i)) for i in range(chatting + 1)]
        limits = FloodLimits() if r.scenario == "burst" else None
        api = RecordingAPI(limits=limits, principals={str(u.id) for u in users}, rtt=self.rtt).start()
        port = free_port()
        try:
            if r.bot == "schoolbot":
                with fresh_database(r.db, self.workdir, self.pg_url, tag) as url:
                    await asyncio.to_thread(seed, url, chatting, wave, now)
                    ports = [port]
                    while len(ports) < r.workers:
                        ports += {free_port()} - set(ports)
                    argvs = []
                    for index, worker_port in enumerate(ports):
                        config = self.workdir / r.file(index, ".toml")
                        config.write_text(
                            config_toml(
                                url, self.workdir, api, zone, now.day, r.mode, worker_port, self.per_chat
                            )
                        )
                        schoolbot = str(Path(sys.executable).parent / "schoolbot")
                        argvs.append([*self.python, schoolbot, "run", "--config", str(config)])
                    return await self.drive(r, api, argvs, users, ports)
            argv = [*self.python, "-m", "bench.echo_bot", "--base-url", api.base_url, "--token", TOKEN]
            if r.mode == "webhook":
                argv += ["--webhook-port", str(port), "--secret", SECRET]
            return await self.drive(r, api, [argv], users, [port])
        finally:
            api.stop()

    async def drive(
        self, r: Run, api: RecordingAPI, argvs: list[list[str]], users: list[TgUser], ports: list[int]
    ) -> Figures:
        """Start the bot (each worker), probe it, calibrate the walk, run the scenario, read /proc, stop
        the bot."""
        loop = asyncio.get_running_loop()
        chats = [Chat(u, loop) for u in users]
        for chat in chats:
            api.listeners[str(chat.user.id)] = chat.listen
        hooks = tuple(f"http://127.0.0.1:{port}/telegram" for port in ports) if r.mode == "webhook" else ()
        offer = Offer(api, hooks)
        walk = self.walk if r.bot == "schoolbot" else echo_walk(self.walk)
        figures = Figures()
        proc = Procs([Proc(argv, self.workdir / r.file(i, ".log")) for i, argv in enumerate(argvs)])
        try:
            probe = chats[0]
            first = walk[0] if r.scenario != "burst" else Step("text", "/mystatus")
            await offer.first(make_update(probe, first), proc.started)
            if not await probe.wait_for(1, proc.started + START_TIMEOUT) or not proc.alive():
                raise RuntimeError(f"{r.bot} never answered:\n{proc.tail()}")
            figures.start = probe.times[0] - proc.started
            if r.scenario != "burst" and r.bot not in self.counts:
                self.counts[r.bot] = await calibrate(probe, walk, offer, self.settle + 2 * self.rtt)
                print(f"  messages answering each step of the walk: {self.counts[r.bot]}", flush=True)
            elif r.scenario != "burst":
                await probe.settle(self.settle + 2 * self.rtt, time.monotonic() + STEP_TIMEOUT)
            cpu_before = proc.cpu_seconds()
            db_before = server_cpu() if r.db == "postgres" else None
            others_before = api.others
            too_many_before = api.too_many
            load = chats[1:]
            if r.scenario == "burst":
                await burst(load[:BURST_PRINCIPALS], offer, figures)
            else:
                pause = RATE_PAUSE if r.scenario == "rate" else 0.0
                await walks(load, walk, self.counts[r.bot], offer, figures, pause)
            figures.wave_sent = api.others - others_before
            figures.too_many = api.too_many - too_many_before
            if proc.alive():
                figures.cpu_ms = 1000 * (proc.cpu_seconds() - cpu_before) / max(figures.offered, 1)
                figures.rss_mb = proc.peak_rss_mb()
            if db_before:
                figures.db_cpu_ms = 1000 * server_cpu_since(db_before) / max(figures.offered, 1)
            if r.scenario == "wave":  # the wave must still finish
                deadline = time.monotonic() + WAVE_TIMEOUT
                while len(api.wave) < WAVE_SCHOOLS and time.monotonic() < deadline and proc.alive():
                    await asyncio.sleep(0.5)
                figures.wave_total = len(api.wave)
                if len(api.wave) > 1:
                    figures.wave_seconds = api.wave[-1] - api.wave[0]
            if not proc.alive():
                figures.failed = f"the bot died:\n{proc.tail()}"
        finally:
            await offer.close()
            await asyncio.to_thread(proc.stop)
        return figures


async def calibrate(chat: Chat, walk: list[Step], offer: Offer, quiet: float) -> list[int]:
    """Walk once slowly (the probe's first step already offered): how many messages answer each step
    (an answer is whole after `quiet` seconds without a message: longer than a request's trip)."""
    counts: list[int] = []
    seen = 0
    for index, step in enumerate(walk):
        if index:
            await offer(make_update(chat, step))
        deadline = time.monotonic() + STEP_TIMEOUT
        if not await chat.wait_for(seen + 1, deadline):
            raise RuntimeError(f"calibration: no answer to step {index + 1} ({step.value!r})")
        await chat.settle(quiet, deadline)
        counts.append(len(chat.times) - seen)
        seen = len(chat.times)
    return counts


async def walks(
    chats: list[Chat], walk: list[Step], counts: list[int], offer: Offer, figures: Figures, pause: float
) -> None:
    """Every principal walks the form, closed loop (with `pause`: each update `pause` s after the last)."""
    began = time.monotonic()
    deadline = began + RUN_TIMEOUT
    last_reply = [began]

    async def principal(i: int, chat: Chat) -> None:
        if pause:
            await asyncio.sleep(i * pause / len(chats))  # spread out evenly
        seen = 0
        for step, count in zip(walk, counts, strict=True):
            offered = await offer(make_update(chat, step))
            figures.offered += 1
            complete = await chat.wait_for(seen + count, min(deadline, offered + STEP_TIMEOUT))
            if len(chat.times) > seen:
                figures.latencies.append(chat.times[seen] - offered)
                last_reply[0] = max(last_reply[0], chat.times[seen])
            else:
                figures.missing += 1
            if not complete:
                figures.unfinished += 1
                return
            seen += count
            if pause:
                await asyncio.sleep(max(0.0, offered + pause - time.monotonic()))

    await asyncio.gather(*(principal(i, c) for i, c in enumerate(chats)))
    figures.seconds = last_reply[0] - began
    figures.offered_rate = figures.offered / (time.monotonic() - began)


async def burst(chats: list[Chat], offer: Offer, figures: Figures) -> None:
    """Each principal sends /mystatus once, all within BURST_SECONDS; wait for every first reply."""
    began = time.monotonic()

    async def principal(i: int, chat: Chat) -> None:
        await asyncio.sleep(i * BURST_SECONDS / len(chats))
        seen = len(chat.times)
        offered = await offer(text_update(chat.user, "/mystatus"))
        figures.offered += 1
        if await chat.wait_for(seen + 1, offered + BURST_TIMEOUT):
            figures.latencies.append(chat.times[seen] - offered)
        else:
            figures.missing += 1

    await asyncio.gather(*(principal(i, c) for i, c in enumerate(chats)))
    replied = [t for c in chats for t in c.times]
    figures.seconds = (max(replied) if replied else time.monotonic()) - began
    figures.offered_rate = figures.offered / BURST_SECONDS


# ---- the report -----------------------------------------------------------------------------------


def commit() -> str:
    """The last commit that changed the bot's code (and whether the tree differs from it)."""
    try:
        head = subprocess.run(
            ["git", "log", "-1", "--format=%h %s", "--", "bot", "handlers", "storage"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "bot", "handlers", "storage"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"`{head[:90]}`" + (" with uncommitted changes" if dirty else "")


def conditions() -> str:
    """The 1-, 5- and 15-minute load averages, and the host's speed now (`host_speed`)."""
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{load} (a 10-million-step Python loop: {host_speed():.2f} s)"


def fmt(value: float, unit: str = "", digits: int = 2) -> str:
    """A figure, or a dash when there is none."""
    if value != value:  # NaN
        return "–"
    return f"{value:.{digits}f}{unit}"


def ratio(a: float, b: float) -> str:
    """a ÷ b, or a dash."""
    if a != a or b != b or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def rows(f: Figures) -> list[tuple[str, float, str, int]]:
    """(figure, value, unit, digits) for the table."""
    return [
        ("updates answered per second", f.rate, "", 1),
        ("reply time p50", f.pct(50), " s", 3),
        ("reply time p95", f.pct(95), " s", 3),
        ("reply time p99", f.pct(99), " s", 3),
        ("replies missing (of updates offered)", float(f.missing), "", 0),
        ("HTTP 429 answers", float(f.too_many), "", 0),
        ("CPU per update", f.cpu_ms, " ms", 1),
        ("PostgreSQL server's CPU per update", f.db_cpu_ms, " ms", 1),
        ("peak RSS (VmHWM)", f.rss_mb, " MB", 0),
        ("start to first reply", f.start, " s", 2),
    ]


def table(title: str, mine: Figures, echo: Figures | None) -> str:
    """One run beside the echo bot's."""
    out = [f"**{title}**", ""]
    if mine.failed:
        out += [f"Failed: {mine.failed.splitlines()[0]}", ""]
    out += ["| | schoolbot | echo bot | schoolbot ÷ echo |", "|---|---:|---:|---:|"]
    theirs = rows(echo) if echo is not None else None
    for index, (name, value, unit, digits) in enumerate(rows(mine)):
        shown = fmt(value, unit, digits)
        if name.startswith("replies missing"):
            shown = f"{mine.missing} of {mine.offered}"
        if theirs is None or echo is None:
            out.append(f"| {name} | {shown} | – | – |")
            continue
        other = theirs[index][1]
        other_shown = fmt(other, unit, digits)
        if name.startswith("replies missing"):
            other_shown = f"{echo.missing} of {echo.offered}"
        out.append(f"| {name} | {shown} | {other_shown} | {ratio(value, other)} |")
    notes = [
        f"offered {mine.offered_rate:.0f} updates/s" + (f" (echo {echo.offered_rate:.0f})" if echo else "")
    ]
    if mine.unfinished:
        notes.append(f"{mine.unfinished} walks cut short by a missing reply")
    if mine.wave_sent:
        notes.append(f"{mine.wave_sent} messages to other chats (the wave, incident alerts) during the load")
    if mine.wave_total:
        notes.append(
            f"the wave: {mine.wave_total:,} of {WAVE_SCHOOLS:,} reminders delivered, first to last "
            f"{fmt(mine.wave_seconds, ' s', 0)} ({fmt(mine.wave_total / mine.wave_seconds, '/s', 1)})"
        )
    out += ["", "; ".join(notes) + ".", ""]
    return "\n".join(out)


def report(
    results: list[tuple[Run, Figures]],
    principals: int,
    command: str,
    skipped: list[str],
    loads: tuple[str, str],
    runs: int = 0,
) -> str:
    """This benchmark's section of RESULTS.md (`runs`: how many the matrix has, when not all are done)."""
    echo = {(r.scenario, r.mode): f for r, f in results if r.bot == "echo"}
    parts = [
        SECTION,
        "",
        "`python -m bench.interactive_bench` (the venv's Python).",
        "",
        f"- **Date:** {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- **Machine:** {machine()}; nproc {len(os.sched_getaffinity(0))}",
        f"- **Load average (1/5/15 min) and host speed:** {loads[0]} before the runs, {loads[1]} after",
        f"- **Command:** `{command}`",
        f"- **Code measured:** {commit()}",
        f"- **Principals:** {principals} (plus one for the start probe and calibration); the walk is "
        "`/incident` to **Gửi**, 15 updates (10 before #17); burst: "
        f"{BURST_PRINCIPALS} × `/mystatus` within {BURST_SECONDS} s against Telegram's flood limits; "
        f"wave: {WAVE_SCHOOLS:,} schools owing the month's article, reminded by the bot's catch-up sweep",
        "",
    ]
    parts += [
        "How: each run starts the bot as a subprocess against the loopback fake Bot API of the tests (in",
        "the bench's process; no limits of its own except in the burst, which has Telegram's 30/s overall",
        "and 1/s per chat with 429 and retry_after), on a fresh database seeded beforehand. A reply time runs",
        "from the update offered (queued at the fake for getUpdates, or the start of the webhook POST) to",
        "the first message of the answer reaching the fake; a principal sends the next update once the whole",
        "answer is in (the rate scenario: 2 s after the previous update, or then). Updates per second:",
        "updates answered ÷ (last first-reply − start of the load). CPU per update: the subprocess's user +",
        "system time over the load ÷ updates offered (in the wave, the wave's work is in it); on PostgreSQL",
        "the same of the server's processes on this machine (backends, WAL writer, autovacuum), which share",
        "its cores with the bot, the fake and the bench (SQLite's work is in the bot's own). RSS: VmHWM at",
        "the end of the load. Start: from spawning the process to the first reply to an update waiting",
        "for it. Both bots start as the deploy starts `schoolbot run` (`python -OO`, deploy/: byte-code",
        "without docstrings or asserts) unless the command says `--plain`. The echo bot is",
        "python-telegram-bot alone (bench/echo_bot.py: one MessageHandler that replies,",
        "concurrent_updates(32), no rate limiter) on its own fake with the same load; it has no",
        "buttons, so each press of the walk is sent to it as a text. `schoolbot run` cannot pin its clock,",
        "so the office's time zone is set to the Etc/GMT zone in which it is just past 08:00 and today is",
        "made the deadline day (its `d0` reminder is due; no periodic report, no digest). The chatting",
        "principals' schools have sent their article, so no reminder reaches them.",
        "",
        "Telegram's per-chat rule: the bot sends a chat at most one message a second after three quick",
        "ones (outbox.per_chat_seconds 1.0, reply_burst 3), and a principal here answers the moment the",
        "reply is in; so N principals walking hold the bot to about N updates a second, each reply about",
        "1 s after the one before, whatever its CPU could do. The echo bot keeps no such rule (the fake",
        "has no limits outside the burst). `--per-chat 0` lifts the rule to show the bot's own ceiling.",
        "",
    ]
    if skipped:
        parts += [f"Skipped: {'; '.join(skipped)}.", ""]
    if runs > len(results):
        parts += [f"**Partial: {len(results)} of {runs} runs done so far.**", ""]
    for r, f in results:
        if r.bot != "schoolbot":
            continue
        parts.append(table(r.title, f, echo.get((r.scenario, r.mode))))
    return "\n".join(parts)


def choices(value: str, allowed: tuple[str, ...]) -> list[str]:
    """`both`/`all` or a comma-separated list, checked."""
    if value in ("both", "all"):
        return list(allowed)
    picked = [v.strip() for v in value.split(",") if v.strip()]
    for v in picked:
        if v not in allowed:
            raise SystemExit(f"unknown choice {v!r}: pick from {', '.join(allowed)}")
    return picked


Progress = Callable[[list[tuple["Run", "Figures"]], list[str], int], None]


async def matrix(
    args: argparse.Namespace, workdir: Path, progress: Progress
) -> tuple[list[tuple[Run, Figures]], list[str]]:
    """Every run asked for, one after the other; the echo bot once per scenario and mode."""
    dbs = choices(args.db, ("sqlite", "postgres"))
    modes = choices(args.mode, ("polling", "webhook"))
    scenarios = choices(args.scenario, SCENARIOS)
    skipped: list[str] = []
    if "postgres" in dbs:
        reason = postgres_reason(args.pg_url)
        if reason:
            print(f"PostgreSQL skipped: {reason}", flush=True)
            skipped.append(f"PostgreSQL ({reason})")
            dbs.remove("postgres")
    bench = Bench(args.principals, workdir, args.pg_url, args.rtt, args.per_chat, args.plain)
    # several workers only on PostgreSQL's webhook: SQLite takes one worker, one process polls Telegram
    runs = [
        Run("schoolbot", s, m, d, args.workers if (d, m) == ("postgres", "webhook") else 1)
        for s in scenarios
        for m in modes
        for d in dbs
    ]
    if not args.no_echo:
        runs += [Run("echo", s, m) for s in scenarios if s != "wave" for m in modes]
    # SQLite's whole matrix first (the quiet runs calibrate the walk; the echo bot runs beside each
    # scenario there), the wave, the longest, last in each; then PostgreSQL's
    key_order = ("quiet", "burst", "rate", "wave")
    order = sorted(
        runs,
        key=lambda r: (r.db == "postgres", key_order.index(r.scenario), r.mode, r.bot != "schoolbot"),
    )
    results: list[tuple[Run, Figures]] = []
    for r in order:
        label = f"{r.bot} · {r.title}"
        print(f"{datetime.now():%H:%M:%S} {label} ...", flush=True)
        try:
            figures = await bench.run(r)
        except Exception as exc:  # one failed run does not lose the others
            figures = Figures(failed=f"{type(exc).__name__}: {exc}")
        results.append((r, figures))
        progress(results, skipped, len(order))
        summary = (
            f"  {figures.rate:.1f} updates/s, p50 {fmt(figures.pct(50), ' s', 3)}, "
            f"p95 {fmt(figures.pct(95), ' s', 3)}, missing {figures.missing}/{figures.offered}, "
            f"429s {figures.too_many}, start {fmt(figures.start, ' s')}, "
            f"CPU {fmt(figures.cpu_ms, ' ms', 1)} an update"
            + (
                f" (PostgreSQL {fmt(figures.db_cpu_ms, ' ms', 1)})"
                if not math.isnan(figures.db_cpu_ms)
                else ""
            )
            + f", RSS {fmt(figures.rss_mb, ' MB', 0)}"
        )
        print(figures.failed or summary, flush=True)
    return results, skipped


def main() -> None:
    """Parse the flags, run the matrix, print the tables, write RESULTS.md unless --no-write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--principals", type=int, default=200)
    parser.add_argument("--db", default="both", help="sqlite, postgres or both")
    parser.add_argument("--mode", default="both", help="polling, webhook or both")
    parser.add_argument("--scenario", default="all", help="quiet, wave, rate, burst (comma-separated) or all")
    parser.add_argument("--pg-url", default=PG_DEFAULT, help="a PostgreSQL server's admin database URL")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--no-echo", action="store_true", help="schoolbot only (while working on it)")
    parser.add_argument(
        "--rtt",
        type=float,
        default=0.0,
        help="seconds each Bot API request spends on the network (0: loopback)",
    )
    parser.add_argument(
        "--per-chat",
        type=float,
        help="the bot's outbox.per_chat_seconds (default: the config's 1.0, Telegram's rule; 0 shows "
        "what the bot itself can carry)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="`schoolbot run` processes on PostgreSQL's webhook, the POSTs shared out in turn as a "
        "balancer would (README: Deploying); SQLite and polling take one",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="start the bots as `schoolbot run` typed in a shell, not as deployed (python -OO)",
    )
    parser.add_argument(
        "--keep", type=Path, help="work in this folder and keep it (logs, configs, SQLite files)"
    )
    args = parser.parse_args()
    if args.principals < 1:
        raise SystemExit("--principals must be at least 1")
    if args.per_chat is not None and args.per_chat < 0:
        raise SystemExit("--per-chat must be 0 or more seconds")
    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    command = (
        "python -m bench.interactive_bench"
        + "".join(
            f" --{name} {value}"
            for name, value, default in (
                ("principals", args.principals, 200),
                ("db", args.db, "both"),
                ("mode", args.mode, "both"),
                ("scenario", args.scenario, "all"),
                ("rtt", args.rtt, 0.0),
                ("per-chat", args.per_chat, None),
                ("workers", args.workers, 1),
            )
            if value != default
        )
        + (" --no-echo" if args.no_echo else "")
        + (" --plain" if args.plain else "")
    )
    compiled()  # as deployed: the starts read the byte-code, not compile the tree
    before = conditions()

    def save(results: list[tuple[Run, Figures]], skipped: list[str], runs: int) -> None:
        """After each run: RESULTS.md holds what is done so far (a stop loses only the run in hand)."""
        if not args.no_write:
            loads = (before, conditions())
            write_section(args.out, report(results, args.principals, command, skipped, loads, runs), SECTION)

    try:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            results, skipped = asyncio.run(matrix(args, args.keep.resolve(), save))
        else:
            with tempfile.TemporaryDirectory(prefix="schoolbot-ibench-") as tmp:
                results, skipped = asyncio.run(matrix(args, Path(tmp), save))
    finally:
        kill_all()
    print(report(results, args.principals, command, skipped, (before, conditions())))
    if not args.no_write:
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
