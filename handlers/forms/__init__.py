"""The form engine and its step kinds: forms declared as data, run over Draft rows.

A feature declares a `Form` of `Step`s and hands it to the router's `Engine`; nothing here
imports a feature. `engine` runs forms, `steps` holds the step kinds that read typed answers,
`media_steps` the ones that take photos, videos and files, `media` reads their bytes, and
`kinds` is the table joining each `StepKind` to its parser.
"""

from __future__ import annotations

from handlers.forms.engine import Action, Engine, Form, button, display, has_content, media_name
from handlers.forms.steps import Answers, Option, Parsed, Step, StepKind, options_from
from storage.models import DraftMode

__all__ = [
    "Action",
    "Answers",
    "DraftMode",
    "Engine",
    "Form",
    "Option",
    "Parsed",
    "Step",
    "StepKind",
    "button",
    "display",
    "has_content",
    "media_name",
    "options_from",
]
