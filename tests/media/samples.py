"""Sample media made in the test: JPEGs with or without EXIF, PNGs, and minimal but valid MP4s."""

from __future__ import annotations

import io
import struct
from pathlib import Path


def jpeg(
    width: int = 1600, height: int = 1200, color: str = "red", taken: str = "", gps: bool = False
) -> bytes:
    """A JPEG of that size; `taken` ("2026:11:02 08:30:00") and `gps` set EXIF fields."""
    from PIL import Image

    img = Image.new("RGB", (width, height), color)
    exif = Image.Exif()
    if taken:
        exif[0x0132] = taken
    if gps:
        exif[0x8825] = {1: "N", 2: (21.0, 23.0, 30.0), 3: "E", 4: (103.0, 1.0, 12.0)}
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def mp4(width: int = 1920, height: int = 1080, seconds: float = 45, timescale: int = 1000) -> bytes:
    """A minimal MP4 (ftyp, moov with mvhd and one video track's tkhd) carrying that metadata."""
    mvhd = bytes(4) + struct.pack(">IIII", 0, 0, timescale, int(seconds * timescale)) + bytes(80)
    tkhd = bytes(4) + bytes(76) + struct.pack(">II", width << 16, height << 16)
    trak = _box(b"trak", _box(b"tkhd", tkhd))
    moov = _box(b"moov", _box(b"mvhd", mvhd) + trak)
    return _box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41") + moov + _box(b"mdat", b"\x00" * 64)


def write(folder: Path, name: str, data: bytes) -> Path:
    """Put `data` in a file and return its path."""
    path = folder / name
    path.write_bytes(data)
    return path
