"""ZIP files that fit a size limit: entries streamed from disk, kept together by group, split into parts.

Each part is a whole ZIP of its own (Windows Explorer opens any of them alone; a spanned archive it
cannot open). An entry's room in a part is known before anything is written: photos, videos and Office
files are already compressed and are stored as they are, so an entry takes its size plus its headers;
only small texts are deflated, bounded by zlib's worst case. Names are NFC, so every letter is one
code unit and zipfile marks a non-ASCII name as UTF-8 (general purpose flag bit 11, APPNOTE 6.3).
"""

from __future__ import annotations

import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

END_RECORD = 22 + 56 + 20  # end of central directory, with room for the ZIP64 records
HEADERS = 30 + 46  # a local header and its central directory entry, before the name and extras
EXTRAS = 2 * 32  # ZIP64 sizes and offsets, should an entry or an offset need them
MARGIN = 5  # percent of a limit left free (a platform's "50 MB" may count in decimal)


@dataclass(frozen=True)
class Entry:
    """One file in a ZIP: streamed from `path`, or small `data` made in memory; `size` its bytes."""

    name: str
    size: int
    path: Path | None = None
    data: bytes = b""
    deflate: bool = False  # only for small texts; everything else is stored as it is

    @classmethod
    def file(cls, name: str, path: Path) -> Entry:
        """A file on disk, streamed when written."""
        return cls(name, path.stat().st_size, path=path)

    @classmethod
    def text(cls, name: str, data: bytes, deflate: bool = False) -> Entry:
        """Bytes made in memory (a sheet, a short text)."""
        return cls(name, len(data), data=data, deflate=deflate)

    def renamed(self, name: str) -> Entry:
        """The same file under another name."""
        return replace(self, name=name)

    @property
    def room(self) -> int:
        """The most it can take in a ZIP: data (deflate's worst case when deflated) and headers."""
        data = self.size + self.size // 1000 + 64 if self.deflate else self.size
        return data + HEADERS + 2 * len(self.name.encode("utf-8")) + EXTRAS


def capacity(limit: int | None) -> int | None:
    """The bytes a part may hold under an upload limit (None: no limit, one ZIP)."""
    return None if limit is None else limit * (100 - MARGIN) // 100 - END_RECORD


@dataclass
class Plan:
    """Which entries go in which part, and those too large for any part."""

    parts: list[list[Entry]]
    too_large: list[Entry]


def plan_parts(groups: Sequence[Sequence[Entry]], room: int | None, reserved: int = 0) -> Plan:
    """Lay groups out in parts of at most `room` bytes, each part keeping `reserved` bytes free.

    A group goes whole into the current part when it fits, else whole into a new part when it fits an
    empty one; a group larger than a part is spread over as many parts as it needs, in order. An entry
    larger than a part is in no part (`too_large`). With no `room`, everything is one part.
    """
    if room is None:
        return Plan([[e for g in groups for e in g]], [])
    space = room - reserved
    parts: list[list[Entry]] = [[]]
    used = [0]
    too_large: list[Entry] = []
    for group in groups:
        fitting = [e for e in group if e.room <= space]
        too_large += [e for e in group if e.room > space]
        whole = sum(e.room for e in fitting)
        if parts[-1] and used[-1] + whole > space and whole <= space:
            parts.append([])
            used.append(0)
        for entry in fitting:
            if used[-1] + entry.room > space:
                parts.append([])
                used.append(0)
            parts[-1].append(entry)
            used[-1] += entry.room
    return Plan(parts, too_large)


def write_zip(out: Path, entries: Sequence[Entry]) -> int:
    """Write one ZIP, each file streamed from disk in chunks; its size in bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for entry in entries:
            name = unicodedata.normalize("NFC", entry.name)
            method = zipfile.ZIP_DEFLATED if entry.deflate else zipfile.ZIP_STORED
            if entry.path is not None:
                archive.write(entry.path, name, compress_type=method)
            else:
                archive.writestr(name, entry.data, compress_type=method)
    return out.stat().st_size
