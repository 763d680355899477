"""Words on screen, by key, from locales/<lang>.toml; nothing user-visible lives in code.

Some sentences are only true on one channel ("send the photo as a File" is Telegram advice; Zalo
never passes files to bots). Such a sentence has a channel override: the same key under
`channel.<channel>.`, written in the locale files as

    [channel.zalo.article]
    photo_wide = "..."        # the key "channel.zalo.article.photo_wide" overrides "article.photo_wide"

A translator knows its reader's language and channel, and `t(key)` takes the first of: the
channel's override in the reader's language, the override in the default language, the plain
sentence in the reader's language, the plain sentence in the default language, the key itself.
Handlers name only plain keys and never ask which channel they are on; every override must have a
plain sentence under the same key (tests/handlers/test_i18n.py checks it), and both locale files
keep the same keys, overrides included.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
OVERRIDES = "channel"  # the top-level table of channel overrides: [channel.<channel>.<section>]


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


@lru_cache(maxsize=32)
def _parsed(path: Path, mtime_ns: int, size: int) -> MappingProxyType[str, str]:
    """One locale file's sentences, read-only; parsed once per version of the file (tests open many apps)."""
    return MappingProxyType(_flatten(tomllib.loads(path.read_text(encoding="utf-8"))))


def load_locale(path: Path) -> MappingProxyType[str, str]:
    """The sentences of `path`, parsed again only when the file changed."""
    stat = path.stat()
    return _parsed(path, stat.st_mtime_ns, stat.st_size)


def override_key(channel: str, key: str) -> str:
    """The key of `key`'s sentence on `channel`: "channel.zalo.article.photo_wide"."""
    return f"{OVERRIDES}.{channel}.{key}"


class Catalog:
    """Every locale's sentences, loaded once at start."""

    def __init__(self, directory: Path = LOCALES_DIR, default: str = "vi") -> None:
        self.default = default
        self.messages = {p.stem: load_locale(p) for p in sorted(directory.glob("*.toml"))}
        if default not in self.messages:
            raise ValueError(f"no locale file for the default locale {default!r} in {directory}")

    @property
    def languages(self) -> list[str]:
        """The locale codes available."""
        return list(self.messages)

    def translator(self, lang: str | None, channel: str = "") -> Translator:
        """A translator for `lang` (else the default locale) on `channel` ("": plain sentences only)."""
        return Translator(self, lang if lang in self.messages else self.default, channel)


class Translator:
    """Looks up a key in one locale, preferring the channel's override, and fills in its fields."""

    def __init__(self, catalog: Catalog, lang: str, channel: str = "") -> None:
        self.catalog = catalog
        self.lang = lang
        self.channel = channel

    def __call__(self, key: str, **fields: Any) -> str:
        """The sentence for `key` with `fields` filled in."""
        text = self.find(key)
        return text.format(**fields) if fields else text

    def find(self, key: str) -> str:
        """The sentence for `key`, unfilled: the channel's, then the plain one; the key when none."""
        messages, default = self.catalog.messages, self.catalog.default
        wanted = [override_key(self.channel, key), key] if self.channel else [key]
        for candidate in wanted:
            for lang in (self.lang, default):
                text = messages[lang].get(candidate)
                if text is not None:
                    return text
        return key

    def has(self, key: str) -> bool:
        """Whether `key` exists in this locale."""
        return key in self.catalog.messages[self.lang]
