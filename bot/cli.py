"""`schoolbot run | doctor | backup | restore | chat | demo | db | schools | plan | invites | people | export | calendar
| privacy`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from storage.errors import ConfigError, ImportRejected, StartFailed

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import Settings
    from handlers.calendar import Period
    from storage.db import Database

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="schoolbot: communications reporting for schools."
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
schools_app = typer.Typer(no_args_is_help=True, help="The organisation: offices and schools.")
plan_app = typer.Typer(no_args_is_help=True, help="The communication plan: themes by month or quarter.")
app.add_typer(db_app, name="db")
app.add_typer(schools_app, name="schools")
app.add_typer(plan_app, name="plan")
people_app = typer.Typer(
    no_args_is_help=True, help="A school's accounts: list them, remove one who has left."
)
app.add_typer(people_app, name="people")
export_app = typer.Typer(no_args_is_help=True, help="Files for offices: the status workbook, and more.")
app.add_typer(export_app, name="export")


def existing_config(ctx: typer.Context, param: typer.CallbackParam, value: Path) -> Path:
    """A settings file named with --config must be there: a mistyped name would otherwise run on the
    defaults and say only that a token is missing. config.toml, the default, may be absent: the
    environment (SCHOOLBOT_*) can carry every setting."""
    given = ctx.get_parameter_source(param.name or "")
    if given is not None and given.name != "DEFAULT" and not value.is_file():
        refuse(f"{value}: no such settings file (config.example.toml shows every key)", 2)
    return value


ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="TOML settings file (config.toml, if there is one).", callback=existing_config
    ),
]
OfficeOption = Annotated[str, typer.Option("--office", help="Office code: its schools and those below it.")]
MonthOption = Annotated[str | None, typer.Option("--month", help="YYYY-MM; this month if left out.")]
UserOption = Annotated[
    str,
    typer.Option("--user", help="The console user to chat as (in the demo: principal, officer or leader)."),
]
SchoolOption = Annotated[str, typer.Option("--school", help="School code.")]
AccountOption = Annotated[int, typer.Option("--user", help="Account id (from `people list`).")]


def refuse(message: str, code: int = 1) -> NoReturn:
    """Say why on stderr and exit with `code` (never a traceback)."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def settings_from(config: Path) -> Settings:
    """Load settings or exit with the validation message (never a traceback)."""
    from bot.config import load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        refuse(str(exc), 2)


MALLOC_ARENAS = 2  # glibc malloc arenas of `schoolbot run` (unless MALLOC_ARENA_MAX is set)
M_ARENA_MAX = -8  # mallopt's parameter number for it (glibc's malloc.h)


def limit_malloc_arenas() -> None:
    """At most MALLOC_ARENAS malloc arenas in this process, unless MALLOC_ARENA_MAX is set (glibc then
    reads it itself); called before any thread starts. glibc gives threads arenas of their own (up to
    eight a core) and keeps what is freed in each for that arena: with the 16 unit threads and PTB's
    and the outbox's, the peak under load (200 principals) was 106 MB, 102 MB with two arenas. The
    threads take turns on the GIL, so they seldom wait for an arena. Elsewhere than glibc: nothing."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    import ctypes  # only here: 0.3 MB that nothing else of the bot needs

    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def setup_logging(verbose: bool = False, kind: str = "plain") -> None:
    """Logs to stderr, plain or JSON lines (log.format); httpx's request lines (which carry the bot
    token in the URL) stay quiet."""
    from bot.logs import formatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(kind))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    for noisy in ("httpx", "httpcore", "telegram.ext.ExtBot", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RunChannel(StrEnum):
    """Which chat platform `schoolbot run` serves (left out: every one that has a token)."""

    TELEGRAM = "telegram"
    ZALO = "zalo"
    ALL = "all"


PLATFORMS = ("telegram", "zalo")


def channels_to_run(settings: Settings, channel: RunChannel | None) -> list[str]:
    """The channels `schoolbot run` starts: those named, or every one with a token; exit 2 without one."""
    if channel is None:
        configured = [name for name in PLATFORMS if getattr(settings, name).token.get_secret_value()]
        if not configured:
            refuse(
                "no channel has a token: set telegram.token or zalo.token in the config file "
                "(or SCHOOLBOT_TELEGRAM__TOKEN / SCHOOLBOT_ZALO__TOKEN)",
                2,
            )
        return configured
    needed = list(PLATFORMS) if channel == RunChannel.ALL else [channel.value]
    for name in needed:
        if not getattr(settings, name).token.get_secret_value():
            env = f"SCHOOLBOT_{name.upper()}__TOKEN"
            refuse(f"{name}.token is empty: set it in the config file or {env}", 2)
    return needed


@app.command()
def run(
    config: ConfigOption = Path("config.toml"),
    verbose: bool = False,
    channel: Annotated[
        RunChannel | None,
        typer.Option(
            "--channel", help="Only telegram, only zalo, or all (both); default: each with a token."
        ),
    ] = None,
) -> None:
    """Run the bot on every channel that has a token (polling, or webhook when configured)."""
    # The start (its imports, the app, the channels: some 120,000 objects, all kept) runs with the
    # garbage collector paused: collecting among them frees nothing and took a sixth of its CPU.
    # bot.run.run turns it on again once running, with those objects frozen out of its collections.
    gc.disable()
    limit_malloc_arenas()
    try:
        settings = settings_from(config)
        setup_logging(verbose, settings.log.format)
        needed = channels_to_run(settings, channel)
        from bot.run import run as run_bot

        asyncio.run(run_bot(settings, needed))
    except ConfigError as exc:
        refuse(str(exc), 2)
    except StartFailed as exc:
        refuse(str(exc), 1)
    finally:
        gc.enable()


@app.command()
def doctor(config: ConfigOption = Path("config.toml")) -> None:
    """Check this setup: config, tokens, database, media folder, clock, chart font; exit 1 if any fails."""
    from bot.config import load_settings

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        typer.echo(f"FAIL  config: {exc}; fix: correct it (config.example.toml shows every key)")
        raise typer.Exit(1) from None
    from bot.doctor import diagnose

    typer.echo(f"ok    config: {config if config.exists() else 'defaults and SCHOOLBOT_* (no file)'}")
    checks = asyncio.run(diagnose(settings))
    for check in checks:
        typer.echo(check.line())
    failed = [c.name for c in checks if not c.ok]
    if failed:
        refuse(f"{len(failed)} check(s) failed: {', '.join(failed)}")


@app.command()
def backup(
    out: Annotated[Path, typer.Option("--out", help="The .zip file to write.")],
    config: ConfigOption = Path("config.toml"),
) -> None:
    """Back up the database and the media files into one archive (safe while the bot runs)."""
    from storage.backup import make_backup
    from storage.errors import BackupFailed

    settings = settings_from(config)
    try:
        made = make_backup(settings.database_url, settings.media_dir, out)
    except BackupFailed as exc:
        refuse(str(exc))
    typer.echo(made.line())


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A backup made by `schoolbot backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a database and media folder that are not empty.")
    ] = False,
    config: ConfigOption = Path("config.toml"),
) -> None:
    """Restore a backup into an empty database and media folder (stop the bot first)."""
    from storage.backup import restore_backup
    from storage.errors import BackupFailed

    settings = settings_from(config)
    try:
        done = restore_backup(file, settings.database_url, settings.media_dir, force=force)
    except BackupFailed as exc:
        refuse(str(exc))
    typer.echo(f"restored {done.line()}")


@app.command()
def chat(config: ConfigOption = Path("config.toml"), user: UserOption = "console") -> None:
    """Chat with the bot in the terminal, one message per line."""
    _chat(config, user, demo=False)


@app.command()
def demo(config: ConfigOption = Path("config.toml"), user: UserOption = "principal") -> None:
    """Seed a demo district and chat as one of its users."""
    _chat(config, user, demo=True)


def _chat(config: Path, user: str, demo: bool) -> None:
    """The console chat as `user`, logging only warnings; `demo` seeds the demo district first."""
    setup_logging(False)
    logging.getLogger().setLevel(logging.WARNING)
    settings = settings_from(config)
    from bot.app import open_app
    from bot.demo import USERS, seed_demo
    from bot.run import console_chat

    with open_app(settings) as built:
        if demo:
            with built.db.session() as s:
                seed_demo(s, built.clock.now())
            t = built.catalog.translator(None)
            others = ", ".join(u[0] for u in USERS if u[0] != user)
            typer.echo(t("demo.banner", user=user, others=others) + "\n")  # the first words on screen
        display = next((d for u, d, _, _ in USERS if u == user), user)
        session = console_chat(built.dispatcher, user, display_name=display)
        asyncio.run(session.run(prompt=sys.stdin.isatty()))


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = Path("config.toml")) -> None:
    """Bring the database schema to the latest version."""
    from storage import migrate
    from storage.db import Database

    db = Database(settings_from(config).database_url)
    migrate.upgrade(db)
    typer.echo(f"database at revision {migrate.current(db)}")
    db.dispose()


@schools_app.command("import")
def schools_import(file: Path, config: ConfigOption = Path("config.toml")) -> None:
    """Import offices and schools from CSV or XLSX; nothing is imported if any row is bad."""
    from storage.orgimport import import_file

    import_or_exit(import_file, file, config)


@plan_app.command("import")
def plan_import(file: Path, config: ConfigOption = Path("config.toml")) -> None:
    """Import plan themes (office_code, period, theme, notes) from CSV or XLSX; nothing if any row is bad."""
    from storage.plan import import_plan

    import_or_exit(import_plan, file, config)


def import_or_exit(importer: Callable[[Database, Path], str], file: Path, config: Path) -> None:
    """Run an all-or-nothing import and print its summary; on ImportRejected list every problem, exit 1."""
    from bot.app import open_app

    with open_app(settings_from(config)) as built:
        try:
            report = importer(built.db, file)
        except ImportRejected as exc:
            for row, reason in exc.problems:
                typer.echo(f"row {row}: {reason}" if row else f"{file.name}: {reason}", err=True)
            refuse(f"{len(exc.problems)} problem(s); nothing was imported.")
    typer.echo(report)


@app.command()
def invites(
    ctx: typer.Context,
    config: ConfigOption = Path("config.toml"),
    school: Annotated[str | None, typer.Option(help="School code (role principal).")] = None,
    office: Annotated[str | None, typer.Option(help="Office code (role officer or leader).")] = None,
    role: Annotated[str | None, typer.Option(help="principal, officer, leader or admin.")] = None,
    count: Annotated[int, typer.Option(min=1, max=1000)] = 1,
    expires: Annotated[int | None, typer.Option(help="Days the codes stay valid.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write a CSV for mail-merge.")] = None,
    levels: Annotated[
        str | None,
        typer.Option(
            help='An officer for some levels only, e.g. "MN" or "TH,THCS"; with --all-schools: those schools.'
        ),
    ] = None,
    all_schools: Annotated[
        bool, typer.Option("--all-schools", help="A principal's code for every school of --office.")
    ] = False,
    letters: Annotated[
        Path | None, typer.Option(help="With --all-schools: a .docx with one letter (QR code) per school.")
    ] = None,
    include_registered: Annotated[
        bool, typer.Option("--include-registered", help="Also schools that have a registered principal.")
    ] = False,
) -> None:
    """Create single-use registration codes with their Telegram links (or letters for every school)."""
    from bot.invites import make_invites

    asked = {name: value for name, value in ctx.params.items() if name != "config"}
    if all_schools or letters is not None or include_registered:
        from bot.letters import make_letters

        if not (all_schools and letters is not None and office) or school or role or count != 1:
            refuse(
                "letters: schoolbot invites --office CODE --all-schools --letters FILE.docx [--levels ...]", 2
            )
        make_letters(
            settings_from(config),
            office,
            letters,
            levels=levels,
            out=out,
            expires=expires,
            include_registered=include_registered,
        )
        return
    for name in ("all_schools", "letters", "include_registered"):
        asked.pop(name)
    make_invites(settings_from(config), **asked)  # every option above, by its name


@people_app.command("list")
def people_list(school: SchoolOption, config: ConfigOption = Path("config.toml")) -> None:
    """A school's registered accounts: id, name, position, channel, since when, phone."""
    people_do(config, lambda people, settings: people.list_people(settings, school))


@people_app.command("remove")
def people_remove(user: AccountOption, config: ConfigOption = Path("config.toml")) -> None:
    """End a person's access at once (every linked account); what they sent stays under their name."""
    people_do(config, lambda people, settings: people.remove_person(settings, user))


def people_do(config: Path, work: Callable[[ModuleType, Settings], None]) -> None:
    """Run one `people` command (bot/people.py, imported when used); its refusals are one line, exit 2."""
    from bot import people

    try:
        work(people, settings_from(config))
    except people.PeopleError as exc:
        refuse(f"error: {exc}", 2)


@app.command()
def outbox(
    config: ConfigOption = Path("config.toml"),
    errors: Annotated[int, typer.Option(min=0, max=1000, help="How many of the latest errors to show.")] = 10,
    requeue_dead: Annotated[bool, typer.Option(help="Put dead messages back in the queue first.")] = False,
) -> None:
    """The outbox: messages by status and kind, who sends, and the last errors."""
    from bot.app import open_app
    from bot.outbox import describe
    from storage import queries as q

    with open_app(settings_from(config)) as built:
        if requeue_dead:
            with built.db.session() as s:
                typer.echo(f"{q.requeue_dead(s, built.clock.now())} dead message(s) back in the queue")
        budgets = {"zalo": built.settings.zalo.monthly_budget}
        for line in describe(built.db, built.clock, errors, budgets):
            typer.echo(line)


@app.command()
def remind(
    config: ConfigOption = Path("config.toml"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print who would be reminded.")] = False,
    at: Annotated[
        str | None, typer.Option("--at", help="ISO time for --dry-run, e.g. 2026-11-10T08:00.")
    ] = None,
) -> None:
    """Run a reminder sweep now, or with --dry-run print who would be reminded of what (at --at)."""
    from datetime import datetime

    from bot.app import open_app
    from bot.scheduler import describe_plan
    from handlers import reminders
    from handlers.calendar import FrozenClock

    settings = settings_from(config)
    if at is not None and not dry_run:
        refuse("--at only goes with --dry-run (a real sweep always runs at the present time)", 2)
    try:
        moment = datetime.fromisoformat(at) if at is not None else None
    except ValueError:
        refuse(f"--at {at!r}: not an ISO time such as 2026-11-10T08:00", 2)
    clock = FrozenClock(moment, settings.timezone) if moment is not None else None
    with open_app(settings, clock) as built:
        if dry_run:
            for line in describe_plan(built.db, built.clock, settings, built.catalog, built.clock.now()):
                typer.echo(line)
            return
        report = reminders.sweep(built.db, built.clock, settings, built.catalog)
    if report.held:
        typer.echo(f"nothing made now ({report.held})")
    typer.echo(
        f"{report.created} new message(s) queued, {report.cancelled} cancelled; `schoolbot outbox` to follow them"
    )


def month_asked(built: App, month: str | None, *, example: bool) -> tuple[Period, Period]:
    """This month and the one `--month` names (this month when left out); exit 2 when it names none."""
    from handlers.calendar import Calendar
    from handlers.months import month_or_current

    current = Calendar(built.clock, built.settings.schedule).current()
    period = month_or_current(month or "", current).period
    if period is None:
        refuse(f"--month {month!r}: expected YYYY-MM" + (f", such as {current.key}" if example else ""), 2)
    return current, period


@export_app.command("status")
def export_status(
    office: OfficeOption,
    out: Annotated[Path, typer.Option("--out", help="The .xlsx file to write.")],
    month: MonthOption = None,
    config: ConfigOption = Path("config.toml"),
) -> None:
    """Write an office's status workbook for a month: by school, the school year, nominations."""
    from bot.app import open_app
    from handlers.leaders.reader import office_where
    from handlers.leaders.workbook import build_workbook

    settings = settings_from(config)
    with open_app(settings) as built:
        current, period = month_asked(built, month, example=True)
        if period > current:
            refuse(f"--month {period.key} has not come yet (this month is {current.key})")
        where = office_where(built.db, office)
        if where is None:
            refuse(f"--office {office!r}: no office has this code")
        if where.scope.schools == 0:
            refuse(f"{office} has no schools yet (schoolbot schools import)")
        t = built.catalog.translator(settings.locale)
        count, sheets = build_workbook(built.db, built.clock, settings, t, where, period, out)
    typer.echo(f"{out}: {period.key}, {count} schools ({sheets} sheets)")


@app.command()
def calendar(
    office: OfficeOption,
    out: Annotated[Path, typer.Option("--out", help="The .ics file to write.")],
    year: Annotated[
        str | None, typer.Option("--year", help="School year, e.g. 2026-2027; this one if left out.")
    ] = None,
    config: ConfigOption = Path("config.toml"),
) -> None:
    """Write an office's school-year deadlines as an .ics file (alarms included) for phones' calendars."""
    from bot.app import open_app
    from handlers.deadlines_ics import write_ics
    from handlers.leaders.years import read_school_year, year_label
    from handlers.school_year import school_year
    from storage import queries as q

    settings = settings_from(config)
    if out.suffix.lower() != ".ics":
        refuse(f"--out must name an .ics file (got {out.name})", 2)
    with open_app(settings) as built:
        start = read_school_year(year) if year is not None else school_year(built.clock.now())
        if start is None:
            refuse(f"--year {year!r}: expected a school year such as 2026-2027", 2)
        with built.db.session() as s:
            found = q.office_by_code(s, office) or q.office_by_code(s, office.upper())
            if found is None:
                refuse(f"--office {office!r}: no office has this code")
            code, name = found.code, found.name
        t = built.catalog.translator(settings.locale)
        try:
            count = write_ics(out, built.clock, settings, t, start, code, name)
        except OSError as exc:
            refuse(f"cannot write {out}: {exc.strerror or exc}")
    typer.echo(f"{out}: {year_label(start)}, {count} deadline(s) with alarms")


def main() -> None:
    """The console script."""
    app()


@export_app.command("bundle")
def export_bundle(
    office: OfficeOption,
    out: Annotated[Path, typer.Option("--out", help="The .zip file to write.")],
    month: MonthOption = None,
    report: Annotated[
        str | None, typer.Option("--report", help="A report's key and year, e.g. nam-2026 (or its name).")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every sent item, not only approved ones.")
    ] = False,
    part_mb: Annotated[
        float | None, typer.Option("--part-mb", min=0.01, help="Split into numbered parts under this size.")
    ] = None,
    config: ConfigOption = Path("config.toml"),
) -> None:
    """Write the month's press bundle (a folder per item, its .docx, photos and videos, an index sheet),
    or with --report every school's signed file for that report, named by school."""
    from bot.app import open_app
    from handlers.bundle import build_bundle, build_report_bundle, report_named
    from handlers.calendar import Calendar
    from storage import queries as q
    from storage import scope

    if report is not None and month is not None:
        refuse("--report and --month: one or the other", 2)
    settings = settings_from(config)
    limit = None if part_mb is None else int(part_mb * 1_048_576)
    with open_app(settings) as built:
        with built.db.session() as s:
            found = q.office_by_code(s, office) or q.office_by_code(s, office.upper())
            if found is None:
                refuse(f"--office {office!r}: no office has this code")
            schools = scope.school_ids(scope.Scope(found.id or 0))
        t = built.catalog.translator(settings.locale)
        media = Path(settings.media_dir)
        if report is not None:
            due = report_named(Calendar(built.clock, settings.schedule), report)
            if due is None:
                names = ", ".join(f"{p.key}-YYYY ({p.name})" for p in settings.schedule.periodic)
                refuse(f"--report {report!r}: no such report; the reports are {names}")
            made = build_report_bundle(built.db, media, t, schools, due, out, limit)
            empty = t("bundle.report_empty", report=due.name)
        else:
            _, period = month_asked(built, month, example=False)
            made = build_bundle(built.db, media, t, schools, period, out, built.clock.tz, everything, limit)
            empty = t("bundle.empty", month=period.label)
    if made is None:
        refuse(empty)
    where = (
        f"{len(made.parts)} parts: " + ", ".join(p.name for p in made.parts)
        if len(made.parts) > 1
        else str(out)
    )
    typer.echo(
        f"{where}: {made.items} item(s), {made.files} file(s)"
        + (f", {len(made.missing)} missing" if made.missing else "")
        + (f", {len(made.apart)} over the part size (left out)" if made.apart else "")
    )


# `schoolbot privacy`: its commands use the options and `refuse` above.
from bot.privacy_cli import privacy_app  # noqa: E402

app.add_typer(privacy_app, name="privacy")
