"""Log lines: plain text, or one JSON object a line (`log.format = "json"`) with the ids of what a
line concerns (the update, the chat, the outbox row) where they are known.

    with log_ids(update=msg.update_id, chat=msg.chat_id):
        log.info("...")          # in JSON: {"time": ..., "level": "INFO", ..., "update": "42", "chat": "7"}

The ids live in a context variable, so each asyncio task and each unit's worker thread (the
dispatcher runs the unit in a copy of the context) carries its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_IDS: ContextVar[dict[str, str]] = ContextVar("schoolbot_log_ids", default={})  # noqa: B039 (never mutated)


@contextmanager
def log_ids(**ids: object) -> Iterator[None]:
    """Within the block, every log line of this task or thread carries these ids (empty ones left out)."""
    token = _IDS.set({**_IDS.get(), **{k: str(v) for k, v in ids.items() if v not in (None, "", 0)}})
    try:
        yield
    finally:
        _IDS.reset(token)


class JsonLines(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, the ids known, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_IDS.get())
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def formatter(kind: str) -> logging.Formatter:
    """The formatter of `log.format`: "json", or the plain one."""
    if kind == "json":
        return JsonLines()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
