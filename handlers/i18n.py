"""Words on screen, by key, from locales/<lang>.toml; nothing user-visible lives in code."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


class Catalog:
    """Every locale's sentences, loaded once at start."""

    def __init__(self, directory: Path = LOCALES_DIR, default: str = "vi") -> None:
        self.default = default
        self.messages = {
            p.stem: _flatten(tomllib.loads(p.read_text(encoding="utf-8")))
            for p in sorted(directory.glob("*.toml"))
        }
        if default not in self.messages:
            raise ValueError(f"no locale file for the default locale {default!r} in {directory}")

    @property
    def languages(self) -> list[str]:
        """The locale codes available."""
        return list(self.messages)

    def translator(self, lang: str | None) -> Translator:
        """A translator for `lang`, falling back to the default locale."""
        return Translator(self, lang if lang in self.messages else self.default)


class Translator:
    """Looks up a key in one locale and fills in its fields."""

    def __init__(self, catalog: Catalog, lang: str) -> None:
        self.catalog = catalog
        self.lang = lang

    def __call__(self, key: str, **fields: Any) -> str:
        """The sentence for `key` with `fields` filled in."""
        text = self.catalog.messages[self.lang].get(key)
        if text is None:
            text = self.catalog.messages[self.catalog.default].get(key, key)
        return text.format(**fields) if fields else text

    def has(self, key: str) -> bool:
        """Whether `key` exists in this locale."""
        return key in self.catalog.messages[self.lang]
