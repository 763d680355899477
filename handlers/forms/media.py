"""What a photo or video is, read from its bytes or metadata, and the office's rules for them."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, SupportsFloat

if TYPE_CHECKING:
    from PIL.Image import Exif

MIN_LONG_SIDE = 1280
VIDEO_LONG = (1280, 1920)  # 720p to 1080p, either orientation
VIDEO_SHORT = (720, 1080)
CLIP_SECONDS = (30, 60)


@dataclass(frozen=True)
class ImageInfo:
    """An image's size and what its EXIF says of when and where."""

    width: int
    height: int
    format: str
    taken: date | None = None
    gps: tuple[float, float] | None = None


def inspect_image(data: bytes) -> ImageInfo | None:
    """Read an image's size and EXIF; None when the bytes are not an image Pillow can read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning etc.: we only read headers
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
            with Image.open(io.BytesIO(data)) as img:
                width, height, fmt = img.width, img.height, img.format or ""
                exif = img.getexif()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        struct.error,
        Image.DecompressionBombError,
    ):
        return None
    return ImageInfo(width, height, fmt, exif_date(exif), exif_gps(exif))


def exif_date(exif: Exif) -> date | None:
    """DateTimeOriginal (or DateTime), when the camera set it."""
    try:
        sub = exif.get_ifd(0x8769)
        raw = sub.get(0x9003) or exif.get(0x0132)
        return datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S").date() if raw else None
    except (ValueError, KeyError, AttributeError, TypeError):
        return None


def exif_gps(exif: Exif) -> tuple[float, float] | None:
    """Latitude and longitude in degrees, when the camera recorded them."""
    try:
        gps = exif.get_ifd(0x8825)
        if not gps or 2 not in gps or 4 not in gps:
            return None

        def degrees(values: tuple[SupportsFloat, ...], ref: str, negative: str) -> float:
            d, m, s = (float(v) for v in values)
            value = d + m / 60 + s / 3600
            return -value if ref == negative else value

        lat = degrees(gps[2], gps.get(1, "N"), "S")
        lon = degrees(gps[4], gps.get(3, "E"), "W")
        return (round(lat, 6), round(lon, 6)) if abs(lat) <= 90 and abs(lon) <= 180 else None
    except (ValueError, KeyError, AttributeError, TypeError, ZeroDivisionError):
        return None


@dataclass(frozen=True)
class VideoInfo:
    """A video's frame size and length."""

    width: int
    height: int
    seconds: float


def mp4_info(data: bytes) -> VideoInfo | None:
    """Width, height and duration from an MP4's moov box (mvhd and the video track's tkhd)."""
    moov = _find_box(data, 0, len(data), b"moov")
    if moov is None:
        return None
    seconds = None
    width = height = 0
    for kind, body_start, box_end in _boxes(data, *moov, open_ended=False):
        body = data[body_start:box_end]
        if kind == b"mvhd" and body:
            seconds = _mvhd_seconds(body)
        elif kind == b"trak":
            tkhd = _find_box(body, 0, len(body), b"tkhd")
            if tkhd is not None:
                w, h = _tkhd_size(body[tkhd[0] : tkhd[1]])
                if w and h and w * h > width * height:
                    width, height = w, h
    if seconds is None or not width:
        return None
    return VideoInfo(width, height, seconds)


def _boxes(data: bytes, start: int, end: int, *, open_ended: bool) -> Iterator[tuple[bytes, int, int]]:
    """The boxes between `start` and `end`: kind, where the body starts, where the box ends.

    Stops at the first box that does not fit. A size of 0 (the box runs to `end`) is read as such only
    when `open_ended`; otherwise it does not fit.
    """
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1 and offset + 16 <= end:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
            header = 16
        elif size == 0 and open_ended:
            size = end - offset
        if size < header or offset + size > end:
            return
        yield kind, offset + header, offset + size
        offset += size


def _find_box(data: bytes, start: int, end: int, wanted: bytes) -> tuple[int, int] | None:
    for kind, body_start, box_end in _boxes(data, start, end, open_ended=True):
        if kind == wanted:
            return body_start, box_end
    return None


def _mvhd_seconds(body: bytes) -> float | None:
    version = body[0]
    if version == 1 and len(body) >= 32:
        timescale, duration = struct.unpack(">IQ", body[20:32])
    elif len(body) >= 20:
        timescale, duration = struct.unpack(">II", body[12:20])
    else:
        return None
    return duration / timescale if timescale else None


def _tkhd_size(body: bytes) -> tuple[int, int]:
    if len(body) < 8:
        return 0, 0
    tail = body[-8:]
    width, height = struct.unpack(">II", tail)
    return width >> 16, height >> 16


def video_problem(
    width: int | None, height: int | None, seconds: float | None
) -> tuple[str, dict[str, int]] | None:
    """Why a video breaks the rules (a locale key and its fields), or None when it is fine."""
    if not width or not height or seconds is None:
        return ("media.video_no_metadata", {})
    long_side, short_side = max(width, height), min(width, height)
    if not (VIDEO_LONG[0] <= long_side <= VIDEO_LONG[1] and VIDEO_SHORT[0] <= short_side <= VIDEO_SHORT[1]):
        return ("media.video_size", {"width": width, "height": height})
    if not CLIP_SECONDS[0] <= round(seconds) <= CLIP_SECONDS[1]:
        minutes, rest = divmod(round(seconds), 60)
        return ("media.video_length", {"minutes": minutes, "seconds": rest})
    return None
