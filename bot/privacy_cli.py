"""`schoolbot privacy export | erase`: a person's data on request (Decree 13/2023/NĐ-CP).

The operator answers a person's request: `export` writes everything held about them as a ZIP of JSON
files and their files; `erase` removes or anonymises it and keeps what the office must keep with the
person replaced by their role. Each request is recorded (`PrivacyRequest`: counts, never the data).
The storage modules are imported by the commands, not with this module: bot/cli.py registers it for
every `schoolbot` command, and `schoolbot run` imports them itself with the collector paused.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli import ConfigOption, refuse, settings_from

if TYPE_CHECKING:
    from sqlmodel import Session

    from handlers.i18n import Translator
    from storage import privacy
    from storage.models import User

privacy_app = typer.Typer(
    no_args_is_help=True, help="A person's data on request (Decree 13/2023): export it or erase it."
)

PersonOption = Annotated[
    str, typer.Option("--person", help="An account id, or the phone number of one of the person's accounts.")
]
AskedByOption = Annotated[
    str, typer.Option("--asked-by", help="Who made the request, as the audit record should say.")
]
MATCHING = (
    "accounts: the account given and every account linked to it (person_id); nominations: the nominee's "
    "name equal to the person's full name (ignoring case and diacritics) in the schools of their "
    "accounts (an office account: the schools under its office), or the contact phone equal to theirs"
)


def found_or_exit(s: Session, ref: str) -> privacy.Person:
    """The person `ref` names; exit 1 with a clear line when nobody (exit 2 when `ref` names nothing)."""
    from storage import privacy

    person = privacy.find_person(s, ref)
    if person is not None:
        return person
    if ref.strip().isdigit() and len(ref.strip()) < 10:
        refuse(f"--person {ref.strip()}: no account has this id")
    if privacy.phone_core(ref) is not None:
        refuse("--person: no account has this phone number (an erased person's number is no longer held)")
    refuse("--person: expected an account id or a phone number", 2)


@privacy_app.command("export")
def export(
    person: PersonOption,
    out: Annotated[Path, typer.Option("--out", help="The .zip file to write.")],
    asked_by: AskedByOption = "the person",
    config: ConfigOption = Path("config.toml"),
) -> None:
    """Write everything held about a person as a ZIP: a JSON file per part, and their files."""
    from bot.app import open_app
    from storage import privacy

    if out.suffix.lower() != ".zip":
        refuse(f"--out must name a .zip file (got {out.name})", 2)
    settings = settings_from(config)
    with open_app(settings) as built, built.db.session() as s:
        found = found_or_exit(s, person)
        data = privacy.held(s, found)
        try:
            write_zip(out, found, data, Path(settings.media_dir))
        except OSError as exc:
            refuse(f"cannot write {out}: {exc.strerror or exc}")
        number = privacy.record(s, "export", found.key, asked_by, data.counts(), built.clock.now())
    typer.echo(f"{out}: person {found.key}, {summary(data.counts())} (request #{number})")


def write_zip(out: Path, person: privacy.Person, data: privacy.Held, media_root: Path) -> None:
    """The ZIP, written whole or not at all (a partial file is removed)."""
    from storage import privacy
    from storage.media import safe_filename

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            about = {"person": person.key, "matched": MATCHING, "counts": data.counts()}
            z.writestr("about.json", _json(about))
            for part, rows in data.parts.items():
                z.writestr(f"{part}.json", _json(rows))
            files = []
            for media in data.media:
                stored = media_root / media.path if media.path else None
                name = f"media/{media.id}-{safe_filename(media.file_name or media.sha256 or media.kind)}"
                if stored is not None and stored.is_file():
                    z.write(stored, name)
                files.append(
                    {**privacy.row_dict(media), "in_zip": name if stored and stored.is_file() else ""}
                )
            z.writestr("media.json", _json(files))
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


@privacy_app.command("erase")
def erase(
    person: PersonOption,
    asked_by: AskedByOption = "the person",
    config: ConfigOption = Path("config.toml"),
) -> None:
    """Erase a person's data: accounts anonymised, their drafts and messages removed, a nominee's name
    and photos erased; what the office keeps names their role. Erasing twice says so and exits 0."""
    from bot.app import open_app
    from storage import privacy

    settings = settings_from(config)
    with open_app(settings) as built, built.db.session() as s:
        found = found_or_exit(s, person)
        now = built.clock.now()
        before = privacy.erased_before(s, found.key)
        if before is not None:
            number = privacy.record(s, "erase", found.key, asked_by, {"already_erased": 1}, now)
            when = before.created_at.astimezone(built.clock.tz).strftime("%d/%m/%Y %H:%M")
            typer.echo(
                f"person {found.key} was already erased on {when} (request #{before.id}); "
                f"nothing left to erase (request #{number})"
            )
            return
        t = built.catalog.translator(settings.locale)
        done = privacy.erase(s, found, labels_for(s, found, t))
        number = privacy.record(s, "erase", found.key, asked_by, done.counts, now)
    files = privacy.remove_files(Path(settings.media_dir), done.files)  # once the erase is committed
    typer.echo(
        f"person {found.key} erased: {summary({**done.counts, 'files_deleted': files})} (request #{number})"
    )


def labels_for(s: Session, person: privacy.Person, t: Translator) -> privacy.Labels:
    """The words that replace the person: each account's role (privacy.as_principal ...), a nominee's."""
    from sqlmodel import col, select

    from handlers.nomination import role_label
    from storage import privacy
    from storage.models import User

    users = s.exec(select(User).where(col(User.id).in_(person.accounts)).order_by(col(User.id)))
    return privacy.Labels(
        accounts={u.id or 0: role_words(s, u, t) for u in users},
        nominee=lambda answers: t("privacy.nominee", role=role_label(t, answers)),
        removed=t("privacy.removed"),
    )


def role_words(s: Session, user: User, t: Translator) -> str:
    """The role and the school or office (privacy.as_principal, privacy.as_staff), or privacy.someone."""
    from storage.models import Office, School

    school = s.get(School, user.school_id) if user.school_id is not None else None
    office = s.get(Office, user.office_id) if user.office_id is not None else None
    if user.role == "principal" and school is not None:
        return t("privacy.as_principal", role=t("role.principal"), school=school.name)
    if user.role in ("officer", "leader") and office is not None:
        return t("privacy.as_staff", role=t(f"role.{user.role}"), office=office.name)
    return t("privacy.someone")


def summary(counts: dict[str, int]) -> str:
    """ "2 accounts, 1 drafts, ..." (what was found or done, in numbers only)."""
    shown = [f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n]
    return ", ".join(shown) or "nothing held"
