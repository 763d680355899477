"""The press bundle's names and documents: short names as offices write them, folders that Windows
opens, and the article laid out as it would be published.

Names keep their Vietnamese letters (NFC): the office's own convention does (domain.md,
`THCS Thị Trấn Điện Biên Đông_Khaigiang`), officers find folders by the school's name, and no legacy
code page holds Vietnamese whole, so a transliteration or an OEM encoding would lose or garble what the
UTF-8 flag that zipfile sets on such names keeps (Windows 10/11 Explorer, 7-Zip, macOS and Linux read
it). What Windows refuses (reserved characters, trailing dots, device names) goes, and a whole path
inside a ZIP stays within PATH_LIMIT UTF-16 units so that Explorer can extract it under a usual folder.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from storage.media import safe_filename
from storage.text import fold

PUNCTUATION = ",.:;!?\"'()“”"
PATH_LIMIT = 120  # UTF-16 units of a whole path inside a ZIP (folder/file)
Translate = Callable[..., str]

# Vocabulary is written folded (no diacritics, lower case), as names are compared.
# A school's type words, dropped from its short name when a school level follows them.
TYPE_WORDS = (
    ("pho thong dan toc ban tru", "PTDTBT"),
    ("pho thong dan toc noi tru", "PTDTNT"),
    ("pt dtbt", "PTDTBT"),
    ("pt dtnt", "PTDTNT"),
    ("ptdtbt", "PTDTBT"),
    ("ptdtnt", "PTDTNT"),
    ("dan toc ban tru", "DTBT"),
    ("dan toc noi tru", "DTNT"),
    ("dtbt", "DTBT"),
    ("dtnt", "DTNT"),
)
# School levels, written out or abbreviated, and the abbreviation offices use.
LEVEL_WORDS = (
    ("trung hoc pho thong", "THPT"),
    ("trung hoc co so", "THCS"),
    ("tieu hoc", "TH"),
    ("mam non", "MN"),
    ("mau giao", "MG"),
    ("thpt", "THPT"),
    ("thcs", "THCS"),
    ("th", "TH"),
    ("mn", "MN"),
    ("mg", "MG"),
    ("ptcs", "PTCS"),
    ("pths", "PTTH"),
)
LEVEL_JOINS = ("&", "va", "-", "+")
EDUCATION = "giao duc va dao tao"
# Words an article's title often opens with once the school's name is gone ("… tổ chức Lễ …").
OPENING_VERBS = ("long trong to chuc", "da to chuc", "to chuc")
# Administrative words after "GD&ĐT" in an office's name ("Phòng GD&ĐT huyện X" -> "Phòng GD&ĐT X").
PLACE_WORDS = ("thanh pho", "thi xa", "huyen", "quan", "tinh", "tp.", "tp")


def utf16_len(text: str) -> int:
    """A name's length as Windows counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def cut_words(text: str, limit: int) -> str:
    """The longest run of whole words from the start within `limit` UTF-16 units (letters if one word
    is already longer), without a trailing dot, space or dash."""
    kept = ""
    for word in text.split():
        candidate = f"{kept} {word}" if kept else word
        if utf16_len(candidate) > limit:
            break
        kept = candidate
    if not kept and text.strip():
        kept = text.strip()
        while kept and utf16_len(kept) > limit:
            kept = kept[:-1]
    return kept.rstrip(" .-,;:–")


def _words(text: str) -> list[str]:
    return text.split()


def _match(words: list[str], start: int, phrase: str) -> int:
    """How many of `words` from `start` spell `phrase` (folded, whole words); 0 when they do not."""
    wanted = fold(phrase).split()
    got = [fold(w).strip(PUNCTUATION) or fold(w) for w in words[start : start + len(wanted)]]
    return len(wanted) if got == wanted else 0


def _level_at(words: list[str], start: int) -> tuple[int, str]:
    """A school level (or levels joined: "TH&THCS", "Tiểu học và THCS") at `start`: (words, short form)."""
    parts: list[str] = []
    at = start
    while at < len(words):
        token = words[at]
        pieces = re.split(r"\s*[&+\-]\s*", token) if re.search(r"[&+\-]", token) else None
        if pieces and len(pieces) > 1 and all(_abbrev(p) for p in pieces):
            parts += [_abbrev(p) for p in pieces]
            at += 1
        else:
            found = next(
                ((n, short) for phrase, short in LEVEL_WORDS if (n := _match(words, at, phrase))), None
            )
            if found is None:
                break
            parts.append(found[1])
            at += found[0]
        if at < len(words) - 1 and fold(words[at]) in LEVEL_JOINS and _level_at(words, at + 1)[0]:
            at += 1
            continue
        break
    return (at - start, "&".join(parts)) if parts else (0, "")


def _abbrev(token: str) -> str:
    return next((short for phrase, short in LEVEL_WORDS if " " not in phrase and fold(token) == phrase), "")


def school_short_name(name: str) -> str:
    """The school's usual short form: Trường PTDTBT THCS Pú Nhi -> THCS Pú Nhi.

    The word for school goes; a type prefix (PTDTBT, PTDTNT, written out or not) goes when a school
    level follows it, else it stays abbreviated; levels are abbreviated (written-out primary becomes
    TH, two levels joined become TH&THCS). A name that is nothing but these words, or not a school's
    (a centre's), is kept as it is. tests/handlers/test_press.py lists realistic names.
    """
    words = _words(" ".join(name.split()))
    original = " ".join(words)
    at = 1 if words and fold(words[0]) == "truong" else 0
    kind = next(((n, short) for phrase, short in TYPE_WORDS if (n := _match(words, at, phrase))), (0, ""))
    level = _level_at(words, at + kind[0])
    rest = words[at + kind[0] + level[0] :]
    if not rest or (at == 0 and not kind[0] and not level[0]):
        return original
    head = [level[1]] if level[0] else [kind[1]] if kind[0] else []
    return " ".join(head + rest)


def office_short_name(name: str) -> str:
    """An office's short form: Phòng Giáo dục và Đào tạo huyện Điện Biên Đông -> Phòng GD&ĐT Điện Biên Đông.

    The abbreviation is made of the name's own initials, or of its own short form written another
    way (GDĐT, GD-ĐT); the administrative word after it (district, province…) goes.
    """
    words = name.split()
    for n in range(len(words)):
        short = ""
        if taken := _match(words, n, EDUCATION):
            short = f"{words[n][0]}{words[n + 1][0]}&{words[n + 3][0]}{words[n + 4][0]}".upper()
        elif re.fullmatch(r"gd\s*[-&]?\s*dt", fold(words[n])):
            letters = re.sub(r"[\s&-]", "", words[n])
            short, taken = f"{letters[:2]}&{letters[2:]}".upper(), 1
        if short:
            rest = words[n + taken :]
            place = next((k for p in PLACE_WORDS if (k := _match(rest, 0, p)) and k < len(rest)), 0)
            return " ".join([*words[:n], short, *rest[place:]])
    return " ".join(words)


def activity_name(title: str, school_names: Iterable[str]) -> str:
    """An article's activity for its folder: its title without the school's name in any form (nor the
    verb for organising left in front of what was organised), dates' slashes as dashes."""
    words = _words(title.replace("/", "-").replace("\\", "-"))
    forms = sorted({fold(n) for n in school_names if n.strip()}, key=len, reverse=True)
    at = 0
    kept: list[str] = []
    while at < len(words):
        taken = next((n for form in forms if (n := _match(words, at, form))), 0)
        if not taken and fold(words[at]) == "truong":
            taken = next((n + 1 for form in forms if (n := _match(words, at + 1, form))), 0)
        if taken:
            at += taken
            continue
        kept.append(words[at])
        at += 1
    while kept and re.fullmatch(r"[\W_]+", kept[0]):
        kept.pop(0)
    for verb in OPENING_VERBS:
        if (taken := _match(kept, 0, verb)) and taken < len(kept):
            kept = kept[taken:]
            break
    text = " ".join(kept).strip(" -–:,")
    return text[:1].upper() + text[1:]


def folder_name(school_short: str, activity: str, used: set[str], files_longest: int) -> str:
    """`<School short>_<Activity short>`, safe on every file system, unique among `used` (Windows does
    not tell case apart), and short enough that folder/file stays within PATH_LIMIT."""
    budget = PATH_LIMIT - 1 - files_longest - len(" (99)")
    school = safe_filename(school_short)
    if utf16_len(school) > budget - 20:
        school = cut_words(school, budget - 20)
    activity = cut_words(safe_filename(activity) if activity.strip() else "", budget - utf16_len(school) - 1)
    base = safe_filename(f"{school}_{activity}" if activity else school)
    return unique(base, used)


def unique(name: str, used: set[str]) -> str:
    """`name`, or `name (2)`, `name (3)`… when it is taken (compared without case)."""
    candidate, n = name, 2
    while candidate.casefold() in used:
        candidate = f"{name} ({n})"
        n += 1
    used.add(candidate.casefold())
    return candidate


# ---- the article as it would be published --------------------------------------------------------

PHOTO_WIDTH = 1280  # pixels of a photo embedded in the .docx (the original is next to it)
ORIENTATION = 0x0112  # the EXIF tag


def embedded_photo(path: Path) -> io.BytesIO:
    """The photo for the document: the original when it is an upright JPEG at most PHOTO_WIDTH wide,
    else a JPEG copy, upright (EXIF) and PHOTO_WIDTH wide, decoded at a reduced scale where JPEG
    allows, so that a large photo never sits in memory whole."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        orientation = img.getexif().get(ORIENTATION, 1)
        if img.format == "JPEG" and img.width <= PHOTO_WIDTH and orientation == 1:
            return io.BytesIO(path.read_bytes())
        sideways = orientation in (5, 6, 7, 8)  # turned a quarter: its height becomes the width
        bounds = (PHOTO_WIDTH * 4, PHOTO_WIDTH) if sideways else (PHOTO_WIDTH, PHOTO_WIDTH * 4)
        img.thumbnail(bounds, Image.Resampling.BILINEAR, reducing_gap=2.0)
        upright = ImageOps.exif_transpose(img) if orientation != 1 else img
        out = io.BytesIO()
        (upright if upright.mode == "RGB" else upright.convert("RGB")).save(out, "JPEG", quality=85)
    out.seek(0)
    return out


def write_article_docx(
    out: Path,
    t: Translate,
    title: str,
    lead: str,
    paragraphs: list[str],
    photos: list[tuple[str, str, Path]],
    after: list[str],
) -> None:
    """Title, lead (bold), the first photo, the body, the other photos (each at column width with its
    role and caption), then `after` (videos, author, source), written to `out`."""
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH

    doc = Document()
    section = doc.sections[0]
    width = (section.page_width or 0) - (section.left_margin or 0) - (section.right_margin or 0)
    doc.add_heading(title, level=1)
    if lead:
        doc.add_paragraph().add_run(lead).bold = True

    def photo(role: str, caption: str, path: Path) -> None:
        doc.add_picture(embedded_photo(path), width=width)
        doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
        text = t("bundle.doc.caption", role=role, caption=caption) if caption else role
        doc.add_paragraph(text, style="Caption")

    for item in photos[:1]:
        photo(*item)
    for text in paragraphs:
        doc.add_paragraph(text)
    for item in photos[1:]:
        photo(*item)
    for line in after:
        doc.add_paragraph(line).alignment = WD_ALIGN_PARAGRAPH.RIGHT
    doc.save(str(out))


def article_layout(t: Translate, answers: dict[str, Any], when: str) -> tuple[str, list[str]]:
    """The lead (when, where, what) and the body's paragraphs; without a body, who and how."""
    what = str(answers.get("what", "")).strip().rstrip(".")
    where = str(answers.get("where", "")).strip()
    lead = t("bundle.doc.lead", when=when, where=where, what=what) if what else ""
    body = [p.strip() for p in str(answers.get("body", "")).splitlines() if p.strip()]
    if not body:
        body = [
            t(key, text=str(answers[field]).strip())
            for field, key in (("who", "bundle.doc.who"), ("how", "bundle.doc.how"))
            if answers.get(field)
        ]
    return lead, body
