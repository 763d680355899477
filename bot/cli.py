"""`schoolbot run | chat | demo | db | schools | plan | invites`."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.config import Settings, load_settings
from storage.errors import ConfigError, ImportRejected

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="schoolbot: communications reporting for schools."
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
schools_app = typer.Typer(no_args_is_help=True, help="The organisation: offices and schools.")
plan_app = typer.Typer(no_args_is_help=True, help="The communication plan: themes by month or quarter.")
app.add_typer(db_app, name="db")
app.add_typer(schools_app, name="schools")
app.add_typer(plan_app, name="plan")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="TOML settings file.")]


def settings_from(config: Path) -> Settings:
    """Load settings or exit with the validation message (never a traceback)."""
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def setup_logging(verbose: bool = False) -> None:
    """Plain logs to stderr; httpx's request lines (which carry the bot token in the URL) stay quiet."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "telegram.ext.ExtBot", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
def run(config: ConfigOption = Path("config.toml"), verbose: bool = False) -> None:
    """Run the bot on Telegram (polling, or webhook when configured)."""
    setup_logging(verbose)
    settings = settings_from(config)
    if not settings.telegram.token.get_secret_value():
        typer.echo(
            "telegram.token is empty: set it in the config file or SCHOOLBOT_TELEGRAM__TOKEN", err=True
        )
        raise typer.Exit(2)
    from bot.channels.telegram import run_telegram

    try:
        asyncio.run(run_telegram(settings))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command()
def chat(
    config: ConfigOption = Path("config.toml"),
    user: Annotated[str, typer.Option("--user", help="The console user to chat as.")] = "console",
) -> None:
    """Chat with the bot in the terminal, one message per line."""
    setup_logging(False)
    logging.getLogger().setLevel(logging.WARNING)
    _chat(settings_from(config), user)


@app.command()
def demo(
    config: ConfigOption = Path("config.toml"),
    user: Annotated[str, typer.Option("--user", help="principal, officer or leader")] = "principal",
) -> None:
    """Seed a demo district and chat as one of its users."""
    setup_logging(False)
    logging.getLogger().setLevel(logging.WARNING)
    settings = settings_from(config)
    from bot.app import open_app
    from bot.demo import USERS, seed_demo

    with open_app(settings) as built, built.db.session() as s:
        seed_demo(s, built.clock.now())
    if sys.stdin.isatty():
        names = ", ".join(u[0] for u in USERS)
        typer.echo(
            f"Demo: you are '{user}'. Other users: {names} (schoolbot demo --user NAME). Ctrl-D to leave.\n"
        )
    _chat(settings, user)


def _chat(settings: Settings, user: str) -> None:
    from bot.app import open_app
    from bot.channels.console import ConsoleChat

    with open_app(settings) as built:
        display = ""
        from bot.demo import USERS

        display = next((d for u, d, _, _ in USERS if u == user), user)
        session = ConsoleChat(built.dispatcher, user, display_name=display)
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
    from bot.app import open_app
    from storage.orgimport import import_file

    with open_app(settings_from(config)) as built:
        try:
            report = import_file(built.db, file)
        except ImportRejected as exc:
            for row, reason in exc.problems:
                typer.echo(f"row {row}: {reason}" if row else f"{file.name}: {reason}", err=True)
            typer.echo(f"{len(exc.problems)} problem(s); nothing was imported.", err=True)
            raise typer.Exit(1) from None
    typer.echo(report)


@plan_app.command("import")
def plan_import(file: Path, config: ConfigOption = Path("config.toml")) -> None:
    """Import plan themes (office_code, period, theme, notes) from CSV or XLSX; nothing if any row is bad."""
    from bot.app import open_app
    from storage.plan import import_plan

    with open_app(settings_from(config)) as built:
        try:
            report = import_plan(built.db, file)
        except ImportRejected as exc:
            for row, reason in exc.problems:
                typer.echo(f"row {row}: {reason}" if row else f"{file.name}: {reason}", err=True)
            typer.echo(f"{len(exc.problems)} problem(s); nothing was imported.", err=True)
            raise typer.Exit(1) from None
    typer.echo(report)


@app.command()
def invites(
    config: ConfigOption = Path("config.toml"),
    school: Annotated[str | None, typer.Option(help="School code (role principal).")] = None,
    office: Annotated[str | None, typer.Option(help="Office code (role officer or leader).")] = None,
    role: Annotated[str | None, typer.Option(help="principal, officer, leader or admin.")] = None,
    count: Annotated[int, typer.Option(min=1, max=1000)] = 1,
    expires: Annotated[int | None, typer.Option(help="Days the codes stay valid.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write a CSV for mail-merge.")] = None,
) -> None:
    """Create single-use registration codes with their Telegram links."""
    from bot.invites import make_invites

    make_invites(
        settings_from(config), school=school, office=office, role=role, count=count, expires=expires, out=out
    )


def main() -> None:
    """The console script."""
    app()
