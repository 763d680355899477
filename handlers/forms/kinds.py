"""Every step kind and the parser that reads it: the one table the form engine consults."""

from __future__ import annotations

from handlers.forms import media_steps
from handlers.forms.steps import BASIC_KINDS, Parser, StepKind

KINDS: dict[StepKind, Parser] = {
    **BASIC_KINDS,
    StepKind.PHOTO: media_steps.parse_photo,
    StepKind.PHOTOS: media_steps.parse_photos,
    StepKind.VIDEOS: media_steps.parse_videos,
    StepKind.APPEND: media_steps.parse_append,
    StepKind.DOCUMENT: media_steps.parse_document,
    StepKind.ATTACHMENT: media_steps.parse_attachment,
}
