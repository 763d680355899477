"""Text folding for accent- and case-insensitive search of Vietnamese names."""

from __future__ import annotations

import unicodedata


def nfc(text: str) -> str:
    """The composed (NFC) form, so the same name is stored the same way whatever the keyboard sent."""
    return unicodedata.normalize("NFC", text).strip()


def fold(text: str) -> str:
    """Lower case, no diacritics, single spaces: "THCS Pú Nhi" -> "thcs pu nhi"."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return " ".join(bare.lower().split())


def label_key(text: str) -> str:
    """A button label as a typed answer would match it: folded, without emoji or punctuation."""
    return fold("".join(ch if ch.isalnum() or ch.isspace() else " " for ch in text))
