"""`schoolbot doctor`: is this setup ready to run? One line per check, with the fix where one fails.

    checks = asyncio.run(diagnose(settings))
    for check in checks: print(check.line())

Checked: each configured channel's token (getMe; Zalo only when it has one), the database (it answers,
its schema is this version's), the media folder (writable, free space), the time zone and the clock
(against the platform's own clock), the charts' font. Nothing is changed but the media folder made,
as the bot makes it at start. No line ever shows a token or a password.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.engine import make_url

from bot.channels.base import TokenRedactor
from bot.channels.zalo.api import TokenRejected, ZaloAPI
from bot.metrics import database_fault
from handlers.config import Settings
from storage import migrate
from storage.db import Database
from storage.errors import ChannelError
from storage.media import MediaStore

MIN_FREE_MB = 1024  # below this the media folder fails the check: a month's photos need room
CLOCK_SKEW_SECONDS = 30  # reminders and leases need the clock within this of the platform's
TIMEOUT = 15.0


@dataclass(frozen=True)
class Check:
    """One check's outcome: what, whether it passed, what was found, and how to fix it."""

    name: str
    ok: bool
    found: str
    fix: str = ""

    def line(self) -> str:
        """`ok    name: found` or `FAIL  name: found; fix: ...`."""
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark}  {self.name}: {self.found}" + (
            f"; fix: {self.fix}" if self.fix and not self.ok else ""
        )


@dataclass
class PlatformClock:
    """The latest Date header a platform answered with (its clock, to the second)."""

    at: datetime | None = None
    where: str = ""

    async def note(self, response: httpx.Response) -> None:
        """httpx response hook: keep the server's Date."""
        date = response.headers.get("date")
        if date:
            try:
                self.at = parsedate_to_datetime(date).astimezone(UTC)
                self.where = response.url.host
            except (TypeError, ValueError):
                pass


async def diagnose(settings: Settings) -> list[Check]:
    """Every check of this setup, in the order printed."""
    heard = PlatformClock()
    checks: list[Check] = []
    async with httpx.AsyncClient(timeout=TIMEOUT, event_hooks={"response": [heard.note]}) as client:
        if not (settings.telegram.token.get_secret_value() or settings.zalo.token.get_secret_value()):
            checks.append(
                Check("channels", False, "no channel has a token", "set telegram.token or zalo.token")
            )
        if settings.telegram.token.get_secret_value():
            checks.append(await telegram_check(settings, client))
        if settings.zalo.token.get_secret_value():
            checks.append(await zalo_check(settings, client))
    checks.append(database_check(settings))
    checks.append(media_check(settings))
    checks.append(clock_check(settings, heard))
    checks.append(font_check())
    return checks


async def telegram_check(settings: Settings, client: httpx.AsyncClient) -> Check:
    """getMe with telegram.token at telegram.base_url."""
    config = settings.telegram
    token = config.token.get_secret_value()
    redact = TokenRedactor(token).redact
    try:
        response = await client.get(f"{config.base_url}{token}/getMe")
    except httpx.HTTPError as exc:
        return Check(
            "telegram",
            False,
            redact(f"cannot reach {config.base_url}: {type(exc).__name__}: {exc}"),
            "check telegram.base_url and this server's network (firewall, proxy)",
        )
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code in (401, 404):
        return Check(
            "telegram",
            False,
            "telegram.token = ***: Telegram rejected this bot token",
            "copy it from @BotFather",
        )
    if not (response.status_code == 200 and isinstance(body, dict) and body.get("ok")):
        return Check(
            "telegram",
            False,
            f"getMe answered HTTP {response.status_code}",
            "try again; check telegram.base_url",
        )
    me = body.get("result") or {}
    return Check("telegram", True, f"@{me.get('username', '?')} (id {me.get('id', '?')}), {config.mode}")


async def zalo_check(settings: Settings, client: httpx.AsyncClient) -> Check:
    """getMe with zalo.token at zalo.base_url."""
    config = settings.zalo
    api = ZaloAPI(config.base_url, config.token.get_secret_value(), client)
    try:
        me = await api.call("getMe")
    except TokenRejected:
        return Check(
            "zalo", False, "zalo.token = ***: Zalo rejected this bot token", "copy it from Zalo Bot Creator"
        )
    except ChannelError as exc:
        return Check(
            "zalo",
            False,
            api.clean(f"cannot reach {config.base_url}: {exc}"),
            "check zalo.base_url and this server's network",
        )
    name = me.get("account_name", "?") if isinstance(me, dict) else "?"
    return Check("zalo", True, f"{name}, {config.mode}")


def database_check(settings: Settings) -> Check:
    """The database answers, and its schema is the one this version of schoolbot expects (SQLite is
    made and upgraded at start, so only a newer schema fails there)."""
    url = make_url(settings.database_url)
    where = url.render_as_string(hide_password=True)
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite and not Path(url.database or "").is_file():
        return Check("database", True, f"{where}: none yet, the first start makes it")
    db = Database(settings.database_url)
    try:
        fault = database_fault(db)
        if fault is not None:
            return Check("database", False, fault, "check database_url and that the server is running")
        current, head = migrate.current(db) or "", migrate.head()
    finally:
        db.dispose()
    if current > head:
        return Check(
            "database",
            False,
            f"{where}: schema {current} is newer than this schoolbot's ({head})",
            "run the schoolbot version that made it",
        )
    if current == head:
        return Check("database", True, f"{where}, schema {current}")
    if sqlite:
        return Check(
            "database", True, f"{where}, schema {current or 'none'}: the next start upgrades it to {head}"
        )
    return Check(
        "database",
        False,
        f"{where}: schema {current or 'none'}, this schoolbot needs {head}",
        "schoolbot db upgrade",
    )


def media_check(settings: Settings) -> Check:
    """The media folder can be written and has room."""
    root = settings.media_dir
    try:
        MediaStore(root).check()
        free = shutil.disk_usage(root).free // 1_048_576
    except OSError as exc:
        return Check(
            "media",
            False,
            f"cannot write {exc.filename or root}: {exc.strerror or exc}",
            f"make {root} a folder this user can write (media_dir)",
        )
    if free < MIN_FREE_MB:
        return Check(
            "media", False, f"{root}: only {free} MB free", f"free at least {MIN_FREE_MB} MB on its disk"
        )
    return Check("media", True, f"{root}, {free:,} MB free")


def clock_check(settings: Settings, heard: PlatformClock) -> Check:
    """The time zone, the local time in it, and the clock against the platform's (when one answered)."""
    now = datetime.now(UTC)
    local = now.astimezone(ZoneInfo(settings.timezone))
    found = f"{settings.timezone}, {local:%d/%m/%Y %H:%M} (UTC{local:%z})"
    if heard.at is None:
        return Check("clock", True, found + ", not compared (no platform answered)")
    skew = (now - heard.at).total_seconds()
    if abs(skew) > CLOCK_SKEW_SECONDS:
        return Check(
            "clock",
            False,
            f"{found}, {skew:+.0f} s from {heard.where}'s clock",
            "turn on time sync (timedatectl set-ntp true)",
        )
    return Check("clock", True, f"{found}, within {CLOCK_SKEW_SECONDS} s of {heard.where}'s clock")


def font_check() -> Check:
    """The charts' font (DejaVu Sans, every Vietnamese letter) is installed where matplotlib finds it."""
    from matplotlib import font_manager

    from handlers.leaders.charts import FONT

    try:
        path = font_manager.findfont(font_manager.FontProperties(family=FONT), fallback_to_default=False)
    except ValueError:
        return Check("chart font", False, f"{FONT} not found", "reinstall matplotlib (it ships the font)")
    return Check("chart font", True, f"{FONT} ({path})")
