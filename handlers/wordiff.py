"""A word-by-word diff that reads in a chat: removed and added words marked, unchanged stretches cut.

Plain characters only (no Markdown): Telegram sends our texts without a parse mode, and Zalo and the
console show text as it is. The marks come from the locales (`vetting.diff.*`), so the officer's language
and channel decide how they look. Every part is bounded: a text that grew from 50 to 5,000 words gives
a few lines and the counts, never the 5,000 words again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher

CONTEXT = 5  # unchanged words kept on each side of a change
RUN = 16  # words of one removed or added stretch shown before it is cut
CHANGES = 10  # places of change shown; the rest are counted


@dataclass(frozen=True)
class Marks:
    """How the diff is written: `removed`/`added` wrap a stretch of words (`{words}`), `cut` stands for
    words left out of a long stretch (`{count}`), `gap` for an unchanged stretch, `more` for the places
    of change not shown (`{count}`)."""

    removed: Callable[[str], str]
    added: Callable[[str], str]
    cut: Callable[[int], str]
    more: Callable[[int], str]
    gap: str = "…"


@dataclass(frozen=True)
class WordDiff:
    """The readable diff, and how many words went and came."""

    text: str
    removed: int
    added: int
    changes: int

    @property
    def same(self) -> bool:
        """Nothing changed in the words (maybe only spaces or line breaks)."""
        return self.changes == 0


def word_diff(old: str, new: str, marks: Marks) -> WordDiff:
    """`old` → `new`, word by word, with at most CHANGES places of change of bounded length."""
    a, b = old.split(), new.split()
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    groups = list(matcher.get_grouped_opcodes(CONTEXT))
    ops = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    removed = sum(i2 - i1 for _, i1, i2, _, _ in ops)
    added = sum(j2 - j1 for _, _, _, j1, j2 in ops)
    if not ops:
        return WordDiff("", 0, 0, 0)
    pieces = [marks.gap] if groups[0][0][1] > 0 else []
    shown = 0
    for index, group in enumerate(groups):
        if index:
            pieces.append(marks.gap)
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                pieces.append(" ".join(b[j1:j2]))
                continue
            if shown == CHANGES:
                pieces.append(marks.more(len(ops) - shown))
                return WordDiff(" ".join(p for p in pieces if p), removed, added, len(ops))
            shown += 1
            if i2 > i1:
                pieces.append(marks.removed(shortened(a[i1:i2], marks)))
            if j2 > j1:
                pieces.append(marks.added(shortened(b[j1:j2], marks)))
    last = groups[-1][-1]
    if last[2] < len(a) or last[4] < len(b):
        pieces.append(marks.gap)
    return WordDiff(" ".join(p for p in pieces if p), removed, added, len(ops))


def shortened(words: list[str], marks: Marks) -> str:
    """A stretch of words, its middle left out when it is longer than RUN."""
    if len(words) <= RUN:
        return " ".join(words)
    half = RUN // 2
    return f"{' '.join(words[:half])} {marks.cut(len(words) - RUN)} {' '.join(words[-half:])}"
