"""`schoolbot people list --school CODE` and `schoolbot people remove --user ID`: a school's accounts.

Removing ends the person's access at once on every channel they linked (their next message is an
unregistered one); what they sent stays, under their name. Removing a school's last account is done,
with a warning that the school now counts as not registered.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import typer

from bot.config import Settings
from storage import queries as q
from storage.models import User

TIME_FORMAT = "%d/%m/%Y %H:%M"


class PeopleError(Exception):
    """A usage mistake; the message is shown as is."""


def line(user: User, zone: ZoneInfo) -> str:
    """One account: id, name, position, channel, since when, phone."""
    since = (user.registered_at or user.created_at).astimezone(zone).strftime(TIME_FORMAT)
    name = user.full_name or f"{user.display_name or '?'} (platform name)"
    parts = [f"{user.id}", name, user.position or "-", user.channel, f"since {since}"]
    if user.phone:
        parts.append(user.phone)
    return "  ".join(parts)


def list_people(settings: Settings, school: str) -> None:
    """Print the school's registered accounts, one a line."""
    from bot.app import open_app

    zone = ZoneInfo(settings.timezone)
    with open_app(settings) as built, built.db.session() as s:
        given = school.strip()
        found = q.school_by_code(s, given) or q.school_by_code(s, given.upper())
        if found is None:
            raise PeopleError(f"no school has the code {given!r}")
        rows = q.school_users(s, found.id or 0)
        typer.echo(f"{len(rows)} account(s) at {found.code} – {found.name}:")
        for user in rows:
            typer.echo(line(user, zone))


def remove_person(settings: Settings, user_id: int) -> None:
    """End a school person's access now (every linked account); warn when the school is left with none."""
    from bot.app import open_app

    with open_app(settings) as built, built.db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise PeopleError(f"no account has the id {user_id}")
        if user.role != q.SCHOOL_ROLE or user.school_id is None:
            raise PeopleError(
                f"account {user_id} is not a school's registered account (role: {user.role or 'none'})"
            )
        school = user.school_id
        last = q.is_last_person(s, user)
        removed = q.remove_person(s, user, built.clock.now())
        typer.echo(f"removed {len(removed)} account(s): " + ", ".join(str(a.id) for a in removed))
        if last:
            typer.echo(
                f"warning: school id {school} has no registered account left; it counts as not registered"
            )
