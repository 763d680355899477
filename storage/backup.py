"""Backups that restore: one ZIP with the database, the media files and a manifest.

    made = make_backup(database_url, media_dir, Path("nightly.zip"))   # while the bot runs
    done = restore_backup(Path("nightly.zip"), database_url, media_dir, force=False)

The archive holds `database/schoolbot.db` (SQLite, copied through SQLite's online backup API: one
consistent snapshot while other connections write) or `database/schoolbot.pgdump` (PostgreSQL,
`pg_dump --format=custom` of a snapshot whose rows are counted in the same snapshot), then every file
of the media folder under `media/` (after the database, so every file the snapshot names is there),
and last `manifest.json`: the format, the schema revision, the rows of every table, and the size and
sha256 of every other member. It is written as `FILE.part` and renamed when complete, so a full disk
leaves no archive that looks whole.

A restore reads the whole archive and checks it against its manifest (every member there, nothing
else, each size and sha256) and the schema against this version's before it writes anything; it then
fills a new database file or a single PostgreSQL transaction (`pg_restore --single-transaction`) and a
new media folder beside the target, checks the rows against the manifest, and only then moves them in.
Any failure raises BackupFailed with one plain line; what was there before is as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from storage import migrate
from storage.errors import BackupFailed

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/schoolbot.db"
PG_MEMBER = "database/schoolbot.pgdump"
MEDIA = "media/"
SKIPPED = (".write-check.", ".part")  # the media store's probes and files being written
CHUNK = 1 << 20
PG_CLIENT = "apt install postgresql-client (the server's major version or newer)"


@dataclass(frozen=True)
class Summary:
    """What a backup holds (or a restore put back)."""

    path: Path
    schema: str
    rows: int
    tables: int
    files: int
    size: int

    def line(self) -> str:
        """One line for the operator."""
        return (
            f"{self.path}: schema {self.schema}, {self.rows:,} row(s) in {self.tables} table(s), "
            f"{self.files:,} media file(s), {self.size / 1_048_576:.1f} MB"
        )


# ---- making one ---------------------------------------------------------------------------------


def make_backup(database_url: str, media_dir: Path, out: Path) -> Summary:
    """Write the archive at `out` (complete or not at all); BackupFailed says why not."""
    url = make_url(database_url)
    part = out.with_name(out.name + ".part")
    try:
        with tempfile.TemporaryDirectory(prefix=".schoolbot-backup-", dir=_existing(out.parent)) as work:
            if url.get_backend_name() == "sqlite":
                member, dump, schema, counts = SQLITE_MEMBER, *_sqlite_snapshot(url, Path(work))
            else:
                member, dump, schema, counts = PG_MEMBER, *_pg_snapshot(url, Path(work))
            files = _write_archive(part, member, dump, schema, counts, Path(media_dir))
        part.replace(out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        raise BackupFailed(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    return Summary(out, schema, sum(counts.values()), len(counts), files, out.stat().st_size)


def _existing(folder: Path) -> Path:
    """`folder` if it is one (the work files go beside the archive, on its disk); OSError if not."""
    if not folder.is_dir():
        raise FileNotFoundError(2, "No such folder", str(folder))
    return folder


def _sqlite_snapshot(url: URL, work: Path) -> tuple[Path, str, dict[str, int]]:
    """SQLite's online backup of the database into `work`; its schema and rows per table."""
    source_path = Path(url.database or "")
    if not source_path.is_file():
        raise BackupFailed(f"database_url: no SQLite database at {source_path}")
    copy = work / "schoolbot.db"
    source = sqlite3.connect(source_path, timeout=15)
    try:
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        source.close()
        raise BackupFailed(f"cannot read the database {source_path}: {exc}") from None
    try:
        target = sqlite3.connect(copy)
        try:
            source.backup(target)  # all pages in one step: one consistent snapshot
        finally:
            target.close()
    except sqlite3.Error as exc:  # SQLite's words for a full disk: "database or disk is full"
        raise BackupFailed(f"cannot write the backup in {work.parent}: {exc}") from None
    finally:
        source.close()
    schema, counts = _sqlite_counts(copy)
    return copy, schema, counts


def sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    """The tables of a SQLite database (SQLite's own aside), by name."""
    query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    return [str(r[0]) for r in conn.execute(query)]


def _sqlite_counts(path: Path) -> tuple[str, dict[str, int]]:
    """The schema revision and the rows of every table of a SQLite file."""
    conn = sqlite3.connect(path)
    try:
        tables = sqlite_tables(conn)
        counts = {t: int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}
        found = (
            conn.execute("SELECT version_num FROM alembic_version").fetchone()
            if "alembic_version" in tables
            else None
        )
    finally:
        conn.close()
    return (str(found[0]) if found else ""), counts


def libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A SQLAlchemy PostgreSQL URL as pg_dump/pg_restore take it, the password in the environment
    (never on a command line, where `ps` shows it)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    """The path of a PostgreSQL client tool; BackupFailed when it is not installed."""
    found = shutil.which(name)
    if found is None:
        raise BackupFailed(f"{name} is not installed: backups of a PostgreSQL database need it ({PG_CLIENT})")
    return found


def _pg_snapshot(url: URL, work: Path) -> tuple[Path, str, dict[str, int]]:
    """pg_dump of one snapshot, whose rows are counted in that same snapshot."""
    pg_dump = _tool("pg_dump")
    dump = work / "schoolbot.pgdump"
    target, env = libpq(url)
    engine = create_engine(url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn:
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            schema, counts = _pg_counts(conn)
            done = subprocess.run(
                [
                    pg_dump,
                    "--format=custom",
                    "--no-owner",
                    "--no-acl",
                    f"--snapshot={snapshot}",
                    f"--file={dump}",
                    target,
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            conn.rollback()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise BackupFailed(
            f"cannot read the database {url.render_as_string(hide_password=True)}: {reason}"
        ) from None
    finally:
        engine.dispose()
    if done.returncode != 0:
        raise BackupFailed(f"pg_dump failed: {_first_line(done.stderr)}")
    return dump, schema, counts


def _pg_counts(conn: Any) -> tuple[str, dict[str, int]]:
    """The schema revision and the rows of every table of the current schema, in the open snapshot."""
    tables = [
        r[0]
        for r in conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")
        )
    ]
    counts = {t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in tables}
    schema = ""
    if "alembic_version" in tables:
        schema = str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none() or "")
    return schema, counts


def _first_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[0].strip() if lines else "(no message)"


def media_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Every stored file under the media folder: (path, its name in the archive), sorted."""
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(mark in path.name for mark in SKIPPED):
            yield path, MEDIA + path.relative_to(root).as_posix()


def _write_archive(
    part: Path, member: str, dump: Path, schema: str, counts: dict[str, int], media: Path
) -> int:
    """The ZIP: the database, the media files, the manifest last; the number of media files."""
    entries: list[dict[str, Any]] = []
    with zipfile.ZipFile(part, "w", allowZip64=True) as zf:
        entries.append(_add(zf, dump, member, zipfile.ZIP_DEFLATED))
        for path, name in media_files(media):
            entries.append(_add(zf, path, name, zipfile.ZIP_STORED))  # photos and videos are compressed
        manifest = {
            "format": FORMAT,
            "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "schema": schema,
            "database": member,
            "rows": counts,
            "media_files": len(entries) - 1,
            "files": entries,
        }
        zf.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
    with part.open("rb") as written:
        os.fsync(written.fileno())
    return len(entries) - 1


def _add(zf: zipfile.ZipFile, path: Path, name: str, compression: int) -> dict[str, Any]:
    """Copy one file into the archive, hashing what is written; its manifest entry."""
    digest = hashlib.sha256()
    size = 0
    try:
        info = zipfile.ZipInfo.from_file(path, name)
        src = path.open("rb")
    except OSError as exc:
        raise BackupFailed(f"cannot read {path}: {exc.strerror or exc}") from None
    info.compress_type = compression
    with src, zf.open(info, "w", force_zip64=True) as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    return {"path": name, "size": size, "sha256": digest.hexdigest()}


# ---- restoring one ------------------------------------------------------------------------------


def read_manifest(archive: Path) -> dict[str, Any]:
    """The archive's manifest once every member is checked against it (nothing is written)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            manifest = _manifest_of(zf, archive)
            listed = {e["path"]: e for e in manifest["files"]}
            present = {i.filename for i in zf.infolist()} - {MANIFEST}
            if present != set(listed) or manifest["database"] not in listed:
                raise BackupFailed(f"{archive}: its files do not match its manifest (altered or incomplete)")
            for name, entry in listed.items():
                _check_member(zf, name, entry, archive)
    except (zipfile.BadZipFile, EOFError):
        raise BackupFailed(f"{archive}: not a complete schoolbot backup (truncated or corrupt)") from None
    except OSError as exc:
        raise BackupFailed(f"cannot read {archive}: {exc.strerror or exc}") from None
    return manifest


def _manifest_of(zf: zipfile.ZipFile, archive: Path) -> dict[str, Any]:
    """The manifest's JSON, its shape checked."""
    try:
        manifest = json.loads(zf.read(MANIFEST))
    except KeyError:
        raise BackupFailed(f"{archive}: no manifest: not a schoolbot backup") from None
    except ValueError:
        raise BackupFailed(f"{archive}: its manifest cannot be read (corrupt)") from None
    good = (
        isinstance(manifest, dict)
        and manifest.get("format") == FORMAT
        and isinstance(manifest.get("files"), list)
        and isinstance(manifest.get("rows"), dict)
        and manifest.get("database") in (SQLITE_MEMBER, PG_MEMBER)
        and all(isinstance(e, dict) and _safe(e.get("path")) for e in manifest["files"])
    )
    if not good:
        raise BackupFailed(f"{archive}: its manifest is not one this version reads (format {FORMAT})")
    checked: dict[str, Any] = manifest
    return checked


def _safe(name: object) -> bool:
    """A member name that stays inside the target: the database, or a relative path under media/."""
    if not isinstance(name, str):
        return False
    parts = PurePosixPath(name).parts
    return name in (SQLITE_MEMBER, PG_MEMBER) or (
        name.startswith(MEDIA) and ".." not in parts and not name.startswith("/") and len(parts) > 1
    )


def _check_member(zf: zipfile.ZipFile, name: str, entry: dict[str, Any], archive: Path) -> None:
    """The member's size and sha256 are the manifest's."""
    digest = hashlib.sha256()
    size = 0
    with zf.open(name) as member:
        while chunk := member.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    if size != entry.get("size") or digest.hexdigest() != entry.get("sha256"):
        raise BackupFailed(f"{archive}: {name} is not what the manifest says (corrupt)")


def restore_backup(archive: Path, database_url: str, media_dir: Path, force: bool = False) -> Summary:
    """Put a checked backup in place of an empty database and media folder (any, with `force`)."""
    manifest = read_manifest(archive)
    schema, head = str(manifest.get("schema") or ""), migrate.head()
    if schema > head:
        raise BackupFailed(
            f"{archive}: its schema {schema} is newer than this schoolbot's ({head}): "
            "restore it with the version that made it"
        )
    url = make_url(database_url)
    sqlite = url.get_backend_name() == "sqlite"
    if (manifest["database"] == SQLITE_MEMBER) != sqlite:
        made = "SQLite" if manifest["database"] == SQLITE_MEMBER else "PostgreSQL"
        raise BackupFailed(f"{archive}: a backup of a {made} database; database_url is not {made}")
    media = Path(media_dir)
    if not force:
        _refuse_unless_empty(url, media)
    rows = sum(int(n) for n in manifest["rows"].values())
    with zipfile.ZipFile(archive) as zf:
        if sqlite:
            _restore_sqlite(zf, manifest, Path(url.database or ""), media)
        else:
            _restore_pg(zf, manifest, url, media)
    return Summary(
        archive, schema, rows, len(manifest["rows"]), int(manifest["media_files"]), archive.stat().st_size
    )


def _refuse_unless_empty(url: URL, media: Path) -> None:
    """BackupFailed when the target database has rows or the media folder has files."""
    held = _rows_held(url)
    if held:
        where = url.render_as_string(hide_password=True)
        raise BackupFailed(
            f"{where} is not empty ({held:,} rows): restore into an empty one, or add --force to replace it"
        )
    if next(media_files(media), None) is not None:
        raise BackupFailed(
            f"{media} is not empty: restore into an empty media folder, or add --force to replace it"
        )


def _rows_held(url: URL) -> int:
    """Rows in the target's tables (its schema version aside); 0 for a database not made yet."""
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not path.is_file() or path.stat().st_size == 0:
            return 0
        _, counts = _sqlite_counts(path)
    else:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                _, counts = _pg_counts(conn)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise BackupFailed(f"cannot open {url.render_as_string(hide_password=True)}: {reason}") from None
        finally:
            engine.dispose()
    return sum(n for t, n in counts.items() if t != "alembic_version")


def _extract_media(zf: zipfile.ZipFile, manifest: dict[str, Any], media: Path) -> Path:
    """The archive's media files in a new folder beside `media` (moved in by `_swap_media`)."""
    media.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{media.name}.restoring-", dir=media.parent))
    for entry in manifest["files"]:
        name = entry["path"]
        if not name.startswith(MEDIA):
            continue
        target = fresh / name[len(MEDIA) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(name) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
    return fresh


def _swap_media(fresh: Path, media: Path) -> None:
    """Put the restored media folder where `media` was (the old one, if any, removed after)."""
    old = media.with_name(f".{media.name}.replaced-{os.getpid()}")
    if media.exists():
        media.replace(old)
    fresh.replace(media)
    shutil.rmtree(old, ignore_errors=True)


def _restore_sqlite(zf: zipfile.ZipFile, manifest: dict[str, Any], path: Path, media: Path) -> None:
    """The database file and the media folder, each made beside its target, checked, moved in."""
    fresh: Path | None = None
    path.parent.mkdir(parents=True, exist_ok=True)
    copy = path.with_name(f".{path.name}.restoring-{os.getpid()}")
    try:
        with zf.open(SQLITE_MEMBER) as src, copy.open("wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
        _, counts = _sqlite_counts(copy)
        if counts != manifest["rows"]:
            raise BackupFailed(
                "the restored database's rows differ from the manifest's: nothing was restored"
            )
        fresh = _extract_media(zf, manifest, media)
        for stale in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)  # the replaced database's journal must not be applied to this one
        copy.replace(path)
        _swap_media(fresh, media)
        fresh = None
    except OSError as exc:
        raise BackupFailed(
            f"cannot write {exc.filename or path}: {exc.strerror or exc}: nothing was restored"
        ) from None
    finally:
        copy.unlink(missing_ok=True)
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)


def _restore_pg(zf: zipfile.ZipFile, manifest: dict[str, Any], url: URL, media: Path) -> None:
    """pg_restore in one transaction (what was there replaced), then the media folder moved in."""
    pg_restore = _tool("pg_restore")
    target, env = libpq(url)
    fresh: Path | None = None
    with tempfile.TemporaryDirectory(prefix=".schoolbot-restore-") as work:
        dump = Path(work) / "schoolbot.pgdump"
        try:
            with zf.open(PG_MEMBER) as src, dump.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            fresh = _extract_media(zf, manifest, media)
            done = subprocess.run(
                [
                    pg_restore,
                    "--clean",
                    "--if-exists",
                    "--single-transaction",
                    "--exit-on-error",
                    "--no-owner",
                    "--no-acl",
                    f"--dbname={target}",
                    str(dump),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise BackupFailed(f"pg_restore failed, nothing was restored: {_first_line(done.stderr)}")
            _swap_media(fresh, media)
            fresh = None
        except OSError as exc:
            raise BackupFailed(
                f"cannot write {exc.filename or media}: {exc.strerror or exc}: nothing was restored"
            ) from None
        finally:
            if fresh is not None:
                shutil.rmtree(fresh, ignore_errors=True)


def prune_backups(folder: Path, keep: int, prefix: str = "schoolbot-") -> list[Path]:
    """Delete all but the `keep` newest nightly backups in `folder` (by their names); those deleted."""
    made = sorted(folder.glob(f"{prefix}*.zip"))
    gone = made[: max(len(made) - keep, 0)]
    for path in gone:
        path.unlink(missing_ok=True)
    return gone
