"""`schoolbot invites --office CODE --all-schools --letters letters.docx`: a letter for every school.

One page per school, addressed to its principal (by role: the organisation file names no principals),
in the office's register: what the bot is for, a QR code of the school's deep link
``https://t.me/<bot>?start=<code>``, the code itself (for Zalo, or typing), three steps to start, and
the CSV of the codes as `schoolbot invites --out` writes it. Schools with a registered principal are
left out unless ``--include-registered``.

The letters and the CSV are written to temporary files first; the codes are then stored in one short
transaction, and only then are the files moved into place: a failure anywhere leaves no codes and no
files, and the database is never held while the pages are laid out. Without a bot username (neither
``telegram.username`` nor a token answering getMe) nothing is made: a letter needs its link.

Only DOCX is written: Word and LibreOffice open it, print it and save it as PDF, which is how offices
send letters today.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import segno
import typer
from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
from docx.image.image import Image as DocxImage
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.oxml.shape import CT_Inline
from docx.parts.image import ImagePart
from docx.shared import Cm, Pt
from docx.text.paragraph import Paragraph
from PIL import Image as PILImage

from bot.config import Settings
from bot.invites import CSV_HEADER, InviteError, bot_username, check_numbers, link_for, local_time
from handlers.i18n import Translator
from storage import queries as q
from storage import scope as scopes
from storage.db import Database
from storage.models import LEVELS

QR_SCALE = 6  # pixels per module in the PNG; the picture is sized on the page by QR_WIDTH
QR_WIDTH = Cm(4.5)
QR_BORDER = 2  # modules of white around the code
QR_SHAPE_IDS = 1000  # drawing ids for the pictures, above python-docx's own
MASK = 2  # a fixed mask: choosing the best of eight costs most of the time, and readers take any


def school_levels(levels: str | None) -> tuple[str, ...]:
    """--levels "TH,THCS" for letters: the schools of those levels; InviteError for an unknown level."""
    wanted = scopes.parse_levels(levels)
    unknown = [x for x in wanted if x not in LEVELS]
    if unknown or (levels is not None and not wanted):
        raise InviteError(f"--levels takes {', '.join(LEVELS)} separated by commas (got {levels!r})")
    return tuple(dict.fromkeys(wanted))


def qr_png(link: str) -> bytes:
    """The link's QR code as a black-and-white PNG (segno's matrix, drawn by Pillow: fast at 1,500)."""
    qr = segno.make(link, error="m", mask=MASK, boost_error=False)
    size = len(qr.matrix) + 2 * QR_BORDER
    image = PILImage.new("1", (size, size), 1)
    image.putdata([0 if dark else 1 for row in qr.matrix_iter(border=QR_BORDER) for dark in row])
    out = io.BytesIO()
    image.resize((size * QR_SCALE, size * QR_SCALE), PILImage.Resampling.NEAREST).save(out, format="PNG")
    return out.getvalue()


def add_qr(doc: DocxDocument, paragraph: Paragraph, png: bytes, number: int) -> None:
    """The picture in `paragraph`, as its own image part named by `number`.

    python-docx's `add_picture` looks every earlier image up (by hash, then for a free name and id),
    which makes 1,500 letters take minutes; each QR code is new, so it is added directly.
    """
    image = DocxImage.from_blob(png)
    part = ImagePart.from_image(image, PackURI(f"/word/media/qr{number}.png"))
    rid = f"rIdQr{number}"
    doc.part.rels.add_relationship(RT.IMAGE, part, rid)
    cx, cy = image.scaled_dimensions(QR_WIDTH, None)
    inline = CT_Inline.new_pic_inline(QR_SHAPE_IDS + number, rid, f"qr{number}.png", cx, cy)
    paragraph.add_run()._r.add_drawing(inline)


@dataclass(frozen=True)
class Head:
    """What every letter of a run shares: the office, the bot, when the codes stop working."""

    office_name: str
    username: str
    until: str  # dd/mm/yyyy HH:MM, as the CSV has it
    last_day: str  # dd/mm/yyyy: the last whole day a code works, as the letter says it


def write_letters(
    path: Path, schools: Iterable[tuple[q.LetterSchool, str]], head: Head, t: Translator
) -> int:
    """One page per (school, code); how many pages."""
    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(13)
    pages = 0
    for school, code in schools:
        if pages:
            doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        pages += 1
        link = link_for(head.username, code)
        top = doc.add_paragraph()
        top.add_run(head.office_name.upper()).bold = True
        motto = doc.add_paragraph()
        motto.alignment = WD_ALIGN_PARAGRAPH.CENTER
        motto.add_run(t("letters.motto")).bold = True
        to = doc.add_paragraph()
        to.alignment = WD_ALIGN_PARAGRAPH.CENTER
        to.add_run(t("letters.to", school=school.name)).bold = True
        doc.add_paragraph(t("letters.purpose", office=head.office_name))
        doc.add_paragraph(t("letters.ask", until=head.last_day))
        picture = doc.add_paragraph()
        picture.alignment = WD_ALIGN_PARAGRAPH.CENTER
        add_qr(doc, picture, qr_png(link), pages)
        code_line = doc.add_paragraph()
        code_line.alignment = WD_ALIGN_PARAGRAPH.CENTER
        code_line.add_run(t("letters.code") + " ")
        big = code_line.add_run(code)
        big.bold = True
        big.font.size = Pt(20)
        link_line = doc.add_paragraph(link)
        link_line.alignment = WD_ALIGN_PARAGRAPH.CENTER
        for step in ("step1", "step2", "step3"):
            doc.add_paragraph(t(f"letters.{step}", code=code, until=head.last_day))
        doc.add_paragraph(t("letters.closing"))
    doc.save(str(path))
    return pages


def write_codes_csv(path: Path, rows: list[tuple[q.LetterSchool, str]], username: str, until: str) -> None:
    """The codes as `invites --out` writes them (code, role, target, expires_at, link)."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_HEADER)
        for school, code in rows:
            writer.writerow(
                (code, "principal", f"{school.code} – {school.name}", until, link_for(username, code))
            )


def make_letters(
    settings: Settings,
    office: str,
    letters: Path,
    *,
    levels: str | None,
    out: Path | None,
    expires: int | None,
    include_registered: bool,
) -> int:
    """The letters command; how many letters were written. Exit 2 on a usage mistake, 1 when nothing to do."""
    from bot.app import open_app

    zone = ZoneInfo(settings.timezone)
    try:
        if letters.suffix.lower() != ".docx":
            raise InviteError(f"--letters must name a .docx file (got {letters.name})")
        csv_path = out if out is not None else letters.with_suffix(".csv")
        days = check_numbers(settings, 1, expires, csv_path)
        wanted = school_levels(levels)
        with open_app(settings) as built:
            with built.db.session() as s:
                found = q.office_by_code(s, office.strip()) or q.office_by_code(s, office.strip().upper())
                if found is None or found.id is None:
                    raise InviteError(f"no office has the code {office.strip()!r}")
                office_name, office_code = found.name, found.code
                conditions = scopes.in_scope(scopes.Scope(found.id, wanted))
                every = q.schools_to_invite(s, conditions, include_registered=True)
                schools = every if include_registered else q.schools_to_invite(s, conditions, False)
            shown = f" of level {','.join(wanted)}" if wanted else ""
            if not every:
                typer.echo(
                    f"{office_code} has no schools{shown}: no letters written (schoolbot schools import)"
                )
                raise typer.Exit(1)
            if not schools:
                typer.echo(
                    f"All {len(every)} schools{shown} of {office_code} already have a registered principal: "
                    "no letters written (--include-registered writes them all)"
                )
                raise typer.Exit(1)
            username, note = bot_username(settings)
            if not username:
                why = note.split(": codes are shown")[0]
                raise InviteError(
                    f"{why}: set telegram.username in the config file; no codes were made (a letter needs its link)"
                )
            now = built.clock.now()
            codes = unique_codes(len(schools))
            rows = list(zip(schools, codes, strict=True))
            expires_at = now + timedelta(days=days)
            until = local_time(expires_at, zone)
            last_day = (expires_at.astimezone(zone) - timedelta(days=1)).strftime("%d/%m/%Y")
            t = built.catalog.translator(settings.locale)
            count = store_with_files(
                built.db,
                rows,
                now,
                days,
                (letters, csv_path),
                Head(office_name, username, until, last_day),
                t,
            )
    except InviteError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    skipped = len(every) - len(schools)
    typer.echo(
        f"{count} letter(s) for the principals of {office_code}{shown}, codes valid until {until} "
        f"({settings.timezone}): {letters}; codes in {csv_path}"
        + (f"; {skipped} school(s) with a registered principal left out" if skipped else "")
    )
    return count


def unique_codes(count: int) -> list[str]:
    """`count` fresh codes, none twice in the batch (the table's unique index guards the rest)."""
    codes: dict[str, None] = {}
    while len(codes) < count:
        codes[q.new_code()] = None
    return list(codes)


def store_with_files(
    db: Database,
    rows: list[tuple[q.LetterSchool, str]],
    now: datetime,
    days: int,
    files: tuple[Path, Path],
    head: Head,
    t: Translator,
) -> int:
    """Write both files beside their targets, store the codes, then move the files into place."""
    letters, csv_path = files
    parts = [letters.with_name(f".{letters.name}.part"), csv_path.with_name(f".{csv_path.name}.part")]
    try:
        count = write_letters(parts[0], rows, head, t)
        write_codes_csv(parts[1], rows, head.username, head.until)
        with db.session() as s:
            q.create_codes(s, [(school.id, code) for school, code in rows], now, days)
        os.replace(parts[0], letters)
        os.replace(parts[1], csv_path)
    except OSError as exc:
        raise InviteError(f"cannot write {exc.filename or letters}: {exc.strerror or exc}") from None
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return count
