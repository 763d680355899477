"""Where files go: content-addressed by sha256 under the media dir; names safe for any file system."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

# Characters no file system (Windows, macOS, Linux, FAT on a USB stick) accepts in a name.
FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}


def sha256_of(data: bytes) -> str:
    """The hex digest that names a stored file."""
    return hashlib.sha256(data).hexdigest()


class MediaStore:
    """Files by content: a photo sent twice is stored once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def check(self) -> None:
        """Make the folder and write a file in it (at start); OSError when it cannot be written."""
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / f".write-check.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()

    def save(self, data: bytes, suffix: str = "") -> tuple[str, str]:
        """Store `data`; (sha256, path relative to the root). Written atomically, once."""
        digest = sha256_of(data)
        suffix = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix or "") else ""
        relative = f"{digest[:2]}/{digest}{suffix}"
        target = self.root / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.part")
            partial.write_bytes(data)
            partial.replace(target)
        return digest, relative

    def path(self, relative: str) -> Path:
        """The absolute path of a stored file."""
        return self.root / relative


def safe_filename(name: str, max_bytes: int = 180) -> str:
    """A name any file system accepts that keeps the Vietnamese letters and can never leave its folder.

    Path separators, reserved characters, control characters, leading dots and trailing dots or
    spaces go; Windows' reserved device names get a suffix; the UTF-8 length is capped.
    """
    text = unicodedata.normalize("NFC", name)
    text = FORBIDDEN.sub(" ", text)
    text = " ".join(text.split()).strip(" .")
    text = text.lstrip(".-") or "tep"
    if text.split(".")[0].upper() in RESERVED:
        text = f"{text}_"
    encoded = text.encode("utf-8")[:max_bytes]
    return encoded.decode("utf-8", errors="ignore").strip(" .") or "tep"


def export_name(school: str, activity: str) -> str:
    """The office convention `<Unit name>_<Activity>` (domain.md), made safe."""
    return safe_filename(f"{' '.join(school.split())}_{' '.join(activity.split())}")
