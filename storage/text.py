"""Text folding for accent- and case-insensitive search of Vietnamese names; withholding a name."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence


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


def initials(name: str) -> str:
    """ "Nguyễn Văn An" -> "N.V.A."."""
    return "".join(f"{word[0].upper()}." for word in name.split() if word[:1].isalpha()) or "—"


# Name syllables that are also everyday words: one of them alone names a person only where the text
# marks it as a name (see `withhold_names`). A part not listed here ("Páo", "Nguyễn") is a name anywhere.
_COMMON = """a an anh bảo bắc bình ca cà cao châu chí chung công cúc cường dũng duy dương đào đạt đình đông
    đỗ đức gia giang hà hạ hải hạnh hằng hiền hiếu hoa hoà hòa hoài hoàng học hồ hồng hùng hưng hương
    hữu huy huyền khang khánh khoa kim lan lâm lê lễ liên linh lò loan long lộc lợi lý mai mạnh minh
    mùa mỹ my nam nga ngân nghĩa ngọc nguyên nhàn nhân nhật nhi như phong phú phúc phương quang quân
    quốc quý quỳnh sang sơn tài tâm tân tây thái thanh thành thảo thắng thị thiện thịnh thơ thu thủy
    thuỷ thư thương tiến tín toàn trang trần trí trinh trọng trung trúc tú tuấn tùng tuyết tư uyên
    văn vân vàng việt vinh vui vũ vy xuân yên yến"""
COMMON_WORDS = frozenset(_COMMON.split())
_WORD = re.compile(r"\w+")
_OPENERS = "\"'“‘([«-–—•*"
_ENDS = ".!?:;…"


def _bare(word: str) -> bool:
    return fold(word) == word.lower()


def _is_part(word: str, part: str) -> bool:
    """The same word, any case; a word typed without diacritics also matches the part's bare form."""
    return word.lower() == part.lower() or (_bare(word) and fold(word) == fold(part))


def _sentence_start(text: str, at: int) -> bool:
    before = text[:at].rstrip(" \t" + _OPENERS)
    return not before or before[-1] in _ENDS + "\n\r"


def _capitalised(word: str) -> bool:
    return word[:1].isupper() and (len(word) == 1 or not word.isupper())


def withhold_names(text: str, names: Sequence[str]) -> str:
    """`text` with every mention of these people replaced by their initials (`Giàng A Páo` -> `G.A.P.`).

    A word is a part of a name when it is that part in any case, or typed without diacritics (a word
    with other diacritics is another word: `giảng` is not `Giàng`). A run of such words separated by
    spaces is the person:
    - the whole name, in any case and order (`GIÀNG A PÁO`, `giang a pao`);
    - two or more of its parts, each capitalised (`A Páo`, `Bình An`);
    - one part that is not an everyday word (`COMMON_WORDS`), in any case (`Páo`, `páo`);
    - one part that is an everyday word (`An`, `Bình`), only capitalised in the middle of a sentence
      (`em An`, `bạn Bình nói`): `An toàn là trên hết`, `bình thường`, `các em an toàn` stay; a single
      letter (`A`) only with the other parts.
    The run becomes the initials of the full name, so every mention reads the same.
    """
    text = unicodedata.normalize("NFC", text) if text else text
    wanted = [(name, nfc(name).split()) for name in names if name and name.strip()]
    if not text or not wanted:
        return text
    for name, parts in wanted:
        text = _withhold_one(text, initials(name), parts)
    return text


def _withhold_one(text: str, short: str, parts: list[str]) -> str:
    words = [m for m in _WORD.finditer(text)]
    runs: list[list[re.Match[str]]] = []
    for m in words:
        if not any(_is_part(m.group(), p) for p in parts):
            continue
        if runs and text[runs[-1][-1].end() : m.start()].strip(" \t") == "":
            runs[-1].append(m)
        else:
            runs.append([m])
    out, last = [], 0
    for run in runs:
        tokens = [m.group() for m in run]
        whole = len(tokens) >= len(parts) and all(any(_is_part(w, p) for w in tokens) for p in parts)
        if whole or (len(tokens) > 1 and all(_capitalised(w) for w in tokens)):
            spans = [(run[0].start(), run[-1].end())]
        else:
            spans = [(m.start(), m.end()) for m in run if _names(text, m, parts)]
        for start, end in _merged(text, spans):
            out.append(text[last:start])
            out.append(short[:-1] if text[end : end + 1] == "." else short)
            last = end
    out.append(text[last:])
    return "".join(out)


def _names(text: str, m: re.Match[str], parts: list[str]) -> bool:
    """Whether one part alone names the person here."""
    word = m.group()
    part = next(p for p in parts if _is_part(word, p))
    if part.lower() not in COMMON_WORDS and fold(part) not in COMMON_WORDS:
        return len(part) > 1
    return len(part) > 1 and _capitalised(word) and not _sentence_start(text, m.start())


def _merged(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Neighbouring spans (only spaces between) as one."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and text[merged[-1][1] : start].strip(" \t") == "":
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
