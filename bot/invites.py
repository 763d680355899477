"""`schoolbot invites`: single-use registration codes for a school or an office, with Telegram links.

Codes go to standard output, one per line with its deep link ``https://t.me/<bot>?start=<code>``;
notes (no username known, Telegram unreachable) and errors go to standard error. ``--out FILE.csv``
also writes them as CSV (UTF-8 with a BOM, so Excel shows Vietnamese names) with the columns
``code,role,target,expires_at,link``: ``target`` is "CODE – Name" of the school or office, and
``expires_at`` is local time in ``settings.timezone`` as ``dd/mm/yyyy HH:MM`` (how dates are written in
Vietnam, ready for a mail-merge letter). A usage mistake prints one line and exits with code 2.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import typer

from bot.config import Settings
from storage import queries as q
from storage.db import Database
from storage.models import LEVELS, Invite

OFFICE_ROLES = ("officer", "leader", "admin")
MAX_DAYS = 365
GETME_TIMEOUT = 5.0
CSV_HEADER = ("code", "role", "target", "expires_at", "link")
TIME_FORMAT = "%d/%m/%Y %H:%M"


class InviteError(Exception):
    """A usage mistake; the message is shown as is."""


@dataclass(frozen=True)
class Target:
    """The school or office the codes bind to: what the codes store, and how the CSV names it."""

    bound: q.InviteTarget
    label: str  # "CODE – Name", see labelled()


def labelled(code: str, name: str) -> str:
    """ "CODE – Name" of a school or an office."""
    return f"{code} – {name}"


def check_usage(school: str | None, office: str | None, role: str | None) -> str:
    """The role the codes get; InviteError for an impossible combination."""
    school, office = (school or "").strip(), (office or "").strip()
    role = (role or "").strip().lower() or None
    if bool(school) == bool(office):
        raise InviteError("give exactly one of --school CODE or --office CODE")
    if school:
        if role not in (None, "principal"):
            raise InviteError(f"--school codes are for principals; leave out --role (got --role {role})")
        return "principal"
    if role not in OFFICE_ROLES:
        shown = f" (got {role})" if role else ""
        raise InviteError(
            f"--office needs --role {', '.join(OFFICE_ROLES[:-1])} or {OFFICE_ROLES[-1]}{shown}"
        )
    return role


def check_levels(levels: str | None, role: str) -> str:
    """--levels "MN" or "TH,THCS": an officer who sees only schools of those levels."""
    if not levels:
        return ""
    if role != "officer":
        raise InviteError("--levels is for officers (--role officer)")
    wanted = [x.strip().upper() for x in levels.split(",") if x.strip()]
    unknown = [x for x in wanted if x not in LEVELS]
    if unknown or not wanted:
        raise InviteError(f"--levels takes {', '.join(LEVELS)} separated by commas (got {levels!r})")
    return ",".join(dict.fromkeys(wanted))


def find_target(db: Database, school: str | None, office: str | None, role: str, levels: str) -> Target:
    """Look the school or office up by code (exact, else upper-cased)."""
    with db.session() as s:
        if school:
            given = school.strip()
            found = q.school_by_code(s, given) or q.school_by_code(s, given.upper())
            if found is None:
                near = [f"{x.code} ({x.name})" for x in q.find_schools(s, given, limit=3)]
                hint = f"; did you mean {', '.join(near)}?" if near else ""
                raise InviteError(f"no school has the code {given!r}{hint}")
            return Target(
                q.InviteTarget(role, school_id=found.id, levels=levels), labelled(found.code, found.name)
            )
        given = (office or "").strip()
        office_row = q.office_by_code(s, given) or q.office_by_code(s, given.upper())
        if office_row is None:
            raise InviteError(f"no office has the code {given!r}")
        return Target(
            q.InviteTarget(role, office_id=office_row.id, levels=levels),
            labelled(office_row.code, office_row.name),
        )


def bot_username(settings: Settings) -> tuple[str, str]:
    """(username, note): from the settings, else from Telegram's getMe; the note says why links are missing.

    The token is never part of the note: httpx's error messages carry the URL, so only the kind of
    failure is reported.
    """
    configured = settings.telegram.username.strip().lstrip("@")
    if configured:
        return configured, ""
    token = settings.telegram.token.get_secret_value()
    if not token:
        return "", (
            "No bot username: codes are shown without links. Set telegram.username "
            "(or telegram.token) in the config file to print t.me links."
        )
    url = f"{settings.telegram.base_url}{token}/getMe"
    httpx_log = logging.getLogger("httpx")
    level = httpx_log.level
    httpx_log.setLevel(logging.WARNING)  # its request lines would show the token
    try:
        username, why = ask_username(url)
    finally:
        httpx_log.setLevel(level)
    if username:
        return username, ""
    why = why.replace(token, "***")
    return "", (
        f"Could not get the bot's username from Telegram ({why}): codes are shown without links. "
        "Set telegram.username in the config file to print t.me links."
    )


def ask_username(url: str) -> tuple[str, str]:
    """(username, "") from getMe, or ("", the kind of failure) without the URL."""
    try:
        response = httpx.get(url, timeout=GETME_TIMEOUT)
        body = response.json()
    except httpx.HTTPError as exc:
        return "", type(exc).__name__
    except ValueError:
        return "", "the answer was not JSON"
    result = body.get("result") if isinstance(body, dict) else None
    username = result.get("username") if isinstance(result, dict) else None
    if isinstance(body, dict) and body.get("ok") is True and isinstance(username, str) and username:
        return username, ""
    described = str(body.get("description", "")) if isinstance(body, dict) else ""
    return "", f"HTTP {response.status_code}" + (f": {described}" if described else "")


def link_for(username: str, code: str) -> str:
    """The Telegram deep link that sends /start CODE."""
    return f"https://t.me/{username}?start={code}" if username else ""


def write_csv(out: Path, invites: list[Invite], target: Target, username: str, zone: ZoneInfo) -> None:
    """The codes as CSV for a mail-merge; Excel reads the BOM as UTF-8."""
    with out.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_HEADER)
        for invite in invites:
            writer.writerow(
                (
                    invite.code,
                    invite.role,
                    target.label,
                    local_time(invite.expires_at, zone),
                    link_for(username, invite.code),
                )
            )


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """dd/mm/yyyy HH:MM in the office's zone."""
    return moment.astimezone(zone).strftime(TIME_FORMAT)


def create(
    db: Database,
    now: datetime,
    target: Target,
    count: int,
    days: int,
    username: str,
    out: Path | None,
    zone: ZoneInfo,
) -> list[Invite]:
    """Create the codes and write the CSV in one transaction: a CSV that cannot be written keeps no codes."""
    with db.session() as s:
        invites = q.create_invites(s, target.bound, count, now, days)
        if out is not None:
            try:
                write_csv(out, invites, target, username, zone)
            except OSError as exc:
                raise InviteError(f"cannot write {out}: {exc.strerror or exc}") from None
        for invite in invites:
            s.expunge(invite)
    return invites


def make_invites(
    settings: Settings,
    *,
    school: str | None,
    office: str | None,
    role: str | None,
    count: int,
    expires: int | None,
    out: Path | None,
    levels: str | None = None,
) -> list[Invite]:
    """The `invites` command: check, look up, create and print `count` codes; exit 2 on a usage mistake."""
    from bot.app import open_app

    zone = ZoneInfo(settings.timezone)
    try:
        wanted_role = check_usage(school, office, role)
        limited = check_levels(levels, wanted_role)
        days = check_numbers(settings, count, expires, out)
        with open_app(settings) as built:
            target = find_target(built.db, school, office, wanted_role, limited)
            username, note = bot_username(settings)  # no transaction is open during the network call
            invites = create(built.db, built.clock.now(), target, count, days, username, out, zone)
    except InviteError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    until = local_time(invites[0].expires_at, zone)
    typer.echo(
        f"{len(invites)} {wanted_role} code(s) for {target.label}, single use, "
        f"valid until {until} ({settings.timezone}):"
    )
    for invite in invites:
        link = link_for(username, invite.code)
        typer.echo(f"{invite.code}  {link}" if link else invite.code)
    if out is not None:
        typer.echo(f"written to {out}")
    if note:
        typer.echo(note, err=True)
    return invites


def check_numbers(settings: Settings, count: int, expires: int | None, out: Path | None) -> int:
    """The days the codes stay valid; InviteError for a count, a duration or an --out name out of bounds."""
    if not 1 <= count <= 1000:
        raise InviteError(f"--count must be between 1 and 1000 (got {count})")
    days = settings.registration.invite_days if expires is None else expires
    if not 1 <= days <= MAX_DAYS:
        raise InviteError(f"--expires must be between 1 and {MAX_DAYS} days (got {days})")
    if out is not None and out.suffix.lower() != ".csv":
        raise InviteError(f"--out must name a .csv file (got {out.name})")
    return days
