"""Backups that restore (storage/backup.py through `schoolbot backup` / `schoolbot restore`): the round
trip on SQLite and PostgreSQL, and each bad input refused with one plain line, exit 1, nothing written."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.app import App
from bot.cli import app as cli
from bot.config import load_settings
from bot.scheduler import BACKUP_JOB
from handlers.calendar import FrozenClock
from storage.backup import sqlite_tables
from storage.media import MediaStore
from tests.support import migrated_copy, pg_admin, pg_database_url

SCHOOLBOT = Path(sys.executable).with_name("schoolbot")
PHOTOS = {f"photo-{n}.jpg": secrets.token_bytes(2000 + n) for n in range(5)}


def config_file(path: Path, database_url: str, media: Path) -> Path:
    """A config file naming a database and a media folder."""
    path.write_text(f'database_url = "{database_url}"\nmedia_dir = "{media}"\n', encoding="utf-8")
    return path


def stored_media(media: Path) -> dict[str, bytes]:
    """Every file under a media folder by its relative path."""
    return {p.relative_to(media).as_posix(): p.read_bytes() for p in sorted(media.rglob("*")) if p.is_file()}


def sqlite_rows(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of a SQLite file, by column, in rowid order."""
    conn = sqlite3.connect(path)
    try:
        found = {}
        for name in sqlite_tables(conn):
            cur = conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid')
            columns = [c[0] for c in cur.description]
            found[name] = [dict(zip(columns, row, strict=True)) for row in cur]
        return found
    finally:
        conn.close()


def invoke(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in done.output
    return done.exit_code, done.output.strip()


@pytest.fixture(name="source")
def source_fixture(tmp_path: Path, demo: App) -> Path:
    """The demo district's database and five photos in its media folder; its config file."""
    store = MediaStore(demo.settings.media_dir)
    for name, content in PHOTOS.items():
        store.save(content, Path(name).suffix)
    return config_file(tmp_path / "source.toml", demo.settings.database_url, demo.settings.media_dir)


def target(tmp_path: Path, name: str = "restored") -> tuple[Path, Path, Path]:
    """A config for an empty place to restore into: (config, database file, media folder)."""
    db, media = tmp_path / name / "schoolbot.db", tmp_path / name / "media"
    return config_file(tmp_path / f"{name}.toml", f"sqlite:///{db}", media), db, media


def test_a_backup_restores_every_row_and_file_elsewhere(tmp_path: Path, source: Path, demo: App) -> None:
    out = tmp_path / "backup.zip"
    code, said = invoke("backup", "--out", str(out), "--config", str(source))
    assert code == 0 and said.startswith(f"{out}: schema ") and "5 media file(s)" in said

    config, db, media = target(tmp_path)
    code, said = invoke("restore", str(out), "--config", str(config))

    assert code == 0 and said.startswith(f"restored {out}: schema ")
    assert sqlite_rows(db) == sqlite_rows(Path(demo.settings.database_url.removeprefix("sqlite:///")))
    assert stored_media(media) == stored_media(demo.settings.media_dir)
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["media_files"] == 5 and manifest["rows"]["school"] > 0
    assert all(len(e["sha256"]) == 64 for e in manifest["files"])
    assert not list(tmp_path.glob("**/.*restoring*"))  # no work files left behind


def test_a_non_empty_target_is_refused_unless_forced(tmp_path: Path, source: Path, demo: App) -> None:
    out = tmp_path / "backup.zip"
    invoke("backup", "--out", str(out), "--config", str(source))
    other = tmp_path / "other.db"
    migrated_copy(Path(demo.settings.database_url.removeprefix("sqlite:///")), other)
    conn = sqlite3.connect(other)
    conn.execute("DELETE FROM user WHERE external_id = 'principal'")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    config = config_file(tmp_path / "other.toml", f"sqlite:///{other}", tmp_path / "other-media")

    code, said = invoke("restore", str(out), "--config", str(config))
    assert code == 1 and "is not empty" in said and "--force" in said
    assert other.read_bytes() == before and not (tmp_path / "other-media").exists()

    code, said = invoke("restore", str(out), "--force", "--config", str(config))
    assert code == 0
    assert sqlite_rows(other) == sqlite_rows(Path(demo.settings.database_url.removeprefix("sqlite:///")))


def rewritten(archive: Path, out: Path, change: dict[str, bytes]) -> Path:
    """A copy of `archive` with some members' bytes replaced (the manifest too, if named)."""
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, change.get(info.filename, src.read(info.filename)))
    return out


@pytest.fixture(name="archive")
def archive_fixture(tmp_path: Path, source: Path) -> Path:
    out = tmp_path / "backup.zip"
    assert invoke("backup", "--out", str(out), "--config", str(source))[0] == 0
    return out


def refused_and_nothing_written(tmp_path: Path, archive: Path) -> str:
    """Restore `archive` into an empty place: the one line said; nothing was made there."""
    config, db, media = target(tmp_path)
    code, said = invoke("restore", str(archive), "--config", str(config))
    assert code == 1 and len(said.splitlines()) == 1
    assert not db.exists() and not media.exists() and not list((tmp_path / "restored").glob("*"))
    return said


def test_a_corrupt_archive_is_refused_before_anything_is_written(tmp_path: Path, archive: Path) -> None:
    raw = bytearray(archive.read_bytes())
    photo = next(iter(PHOTOS.values()))
    at = raw.index(photo[:64])  # a stored (uncompressed) photo's bytes inside the archive
    raw[at + 100] ^= 0xFF
    flipped = tmp_path / "flipped.zip"
    flipped.write_bytes(bytes(raw))
    assert "corrupt" in refused_and_nothing_written(tmp_path, flipped)

    with zipfile.ZipFile(archive) as zf:
        name = next(n for n in zf.namelist() if n.startswith("media/"))
    swapped = rewritten(archive, tmp_path / "swapped.zip", {name: b"another photo"})
    said = refused_and_nothing_written(tmp_path, swapped)
    assert said == f"{swapped}: {name} is not what the manifest says (corrupt)"


def test_a_truncated_archive_is_refused(tmp_path: Path, archive: Path) -> None:
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert (
        refused_and_nothing_written(tmp_path, cut)
        == f"{cut}: not a complete schoolbot backup (truncated or corrupt)"
    )


def test_a_backup_of_a_newer_schema_is_refused(tmp_path: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    manifest["schema"] = "9999"
    newer = rewritten(archive, tmp_path / "newer.zip", {"manifest.json": json.dumps(manifest).encode()})
    said = refused_and_nothing_written(tmp_path, newer)
    assert said.startswith(f"{newer}: its schema 9999 is newer than this schoolbot's (")


def test_a_backup_to_an_unwritable_path_leaves_nothing(tmp_path: Path, source: Path) -> None:
    (tmp_path / "plain-file").write_text("not a folder")
    out = tmp_path / "plain-file" / "backup.zip"
    code, said = invoke("backup", "--out", str(out), "--config", str(source))
    assert code == 1 and said == f"cannot write {out.parent}: No such folder"


@pytest.mark.parametrize("where", ["database copy", "media files"])
def test_a_backup_to_a_full_disk_says_so_and_leaves_no_partial_archive(
    tmp_path: Path, source: Path, demo: App, where: str
) -> None:
    """The disk fills up while the database is copied, or later while the media files are written (a
    file size limit on the process stands in for the full disk: a write past it fails, as on ENOSPC)."""
    import resource
    import signal

    database = Path(demo.settings.database_url.removeprefix("sqlite:///"))
    limit = 65536 if where == "database copy" else database.stat().st_size * 2 + 300_000
    MediaStore(demo.settings.media_dir).save(secrets.token_bytes(2_000_000), ".mp4")

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "out" / "backup.zip"
    out.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLBOT_")}
    done = subprocess.run(
        [str(SCHOOLBOT), "backup", "--out", str(out), "--config", str(source)],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=small_disk,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    if where == "database copy":
        assert done.stderr.startswith(f"cannot write the backup in {out.parent}: ")
    else:
        assert done.stderr == f"cannot write {out}: File too large\n"
    assert list(out.parent.iterdir()) == []  # no archive, no .part, no work files


def test_postgresql_without_pg_dump_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump on it
    config = config_file(
        tmp_path / "pg.toml", "postgresql+psycopg://bot@127.0.0.1:5432/schoolbot", tmp_path / "m"
    )
    code, said = invoke("backup", "--out", str(tmp_path / "b.zip"), "--config", str(config))
    assert code == 1
    assert said.startswith("pg_dump is not installed: backups of a PostgreSQL database need it (apt install")
    assert not (tmp_path / "b.zip").exists()


# ---- PostgreSQL ------------------------------------------------------------------------------------


@pytest.fixture(name="pg_pair")
def pg_pair_fixture(pg_template: str) -> Iterator[tuple[str, str]]:
    """A migrated database with the demo district, and an empty one, on the local server."""
    import shutil

    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not installed (apt install postgresql-client)")
    names = [f"schoolbot_backup_{secrets.token_hex(4)}" for _ in range(2)]
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{names[0]}" TEMPLATE "{pg_template}"')
        conn.execute(f'CREATE DATABASE "{names[1]}"')
    try:
        yield pg_database_url(names[0]), pg_database_url(names[1])
    finally:
        with pg_admin() as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table (sorted), read with psycopg."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


def test_a_postgresql_backup_restores_into_an_empty_database(
    tmp_path: Path, pg_pair: tuple[str, str], clock: FrozenClock
) -> None:
    from bot.app import open_app
    from bot.demo import seed_demo

    source_url, empty_url = pg_pair
    with (
        open_app(load_settings(None, database_url=source_url), clock, upgrade=False) as app,
        app.db.session() as s,
    ):
        seed_demo(s, clock.now())
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.jpg").write_bytes(b"photo")
    source = config_file(tmp_path / "s.toml", source_url, tmp_path / "m")
    out = tmp_path / "pg.zip"
    code, said = invoke("backup", "--out", str(out), "--config", str(source))
    assert code == 0, said

    config = config_file(tmp_path / "t.toml", empty_url, tmp_path / "m2")
    code, said = invoke("restore", str(out), "--config", str(config))
    assert code == 0, said
    assert pg_rows(empty_url) == pg_rows(source_url)
    assert stored_media(tmp_path / "m2") == {"a.jpg": b"photo"}

    code, said = invoke("restore", str(out), "--config", str(config))  # now it is not empty
    assert code == 1 and "is not empty" in said


# ---- the nightly backup ------------------------------------------------------------------------------


async def test_the_clock_makes_one_nightly_and_keeps_the_last_n(tmp_path: Path, demo: App) -> None:
    from bot.scheduler import Clockwork

    folder = tmp_path / "nightly"
    settings = load_settings(
        None,
        database_url=demo.settings.database_url,
        media_dir=str(demo.settings.media_dir),
        backup={"folder": str(folder), "at": "02:30", "keep": 2},
    )
    clock = FrozenClock(demo.clock.now())
    clockwork = Clockwork(demo.db, clock, settings, demo.catalog, demo.outbox)
    made = []
    for _ in range(3):
        made.append(await clockwork.nightly_backup())
        clock.advance(days=1)

    assert sorted(folder.iterdir()) == made[1:]  # the oldest went
    assert all(p is not None and p.name.startswith("schoolbot-") for p in made)
    await clockwork.start()
    try:
        assert clockwork.scheduler is not None
        job = clockwork.scheduler.get_job(BACKUP_JOB)
        assert job is not None and str(job.trigger) == "cron[hour='2', minute='30']"
    finally:
        await clockwork.stop()
