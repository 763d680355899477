"""Leaders' charts: PNG files drawn with matplotlib's Agg canvas; every label comes in already translated.

No pyplot and no global backend switch: each chart is its own Figure on its own Agg canvas, so charts
can be drawn in worker threads. The font is matplotlib's own DejaVu Sans, which has every Vietnamese
letter (tests fail on any missing-glyph warning). matplotlib is imported by the first chart drawn,
not with this module: most processes never draw one, and it costs half a second and tens of MB.
"""

from __future__ import annotations

import io
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FONT = "DejaVu Sans"
DPI = 100
COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
# on time, late, missing, not yet due, not registered ("chưa đăng ký": its own colour, in the legend)
STATE_COLOURS = ("#2e7d32", "#f9a825", "#c62828", "#9e9e9e", "#90caf9")


@dataclass(frozen=True)
class Series:
    """One line: a label and a value per x position (None: nothing to show there)."""

    label: str
    values: tuple[float | None, ...]


def text(value: str) -> str:
    """Composed Unicode, so each Vietnamese letter is one glyph of the font."""
    return unicodedata.normalize("NFC", value)


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of this size in inches, on its own Agg canvas (matplotlib loads on first use)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches the Agg canvas to this figure only
    return figure


def save(figure: Figure, path: Path) -> Path:
    """Render to PNG and write it atomically (a reader never sees half a file)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)
    return path


def rate_chart(path: Path, title: str, axis: str, months: Sequence[str], series: Sequence[Series]) -> Path:
    """Per cent by month, one line per series (the submission rate by level)."""
    figure = new_figure(8, 4.5)
    ax = figure.add_subplot()
    positions = list(range(len(months)))
    for n, line in enumerate(series):
        points = [(x, v) for x, v in zip(positions, line.values, strict=True) if v is not None]
        if not points:
            continue
        ax.plot(
            [x for x, _ in points],
            [v for _, v in points],
            marker="o",
            linewidth=2,
            color=COLOURS[n % len(COLOURS)],
            label=text(line.label),
        )
    ax.set_xticks(positions, [text(m) for m in months], fontfamily=FONT)
    ax.set_ylim(0, 105)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(text(axis), fontfamily=FONT)
    ax.set_title(text(title), fontfamily=FONT, fontsize=12)
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        figure.legend(loc="outside lower center", ncols=min(6, len(series)), prop={"family": FONT, "size": 9})
    return save(figure, path)


def school_chart(
    path: Path,
    title: str,
    axis: str,
    schools: Sequence[str],
    counts: Sequence[Sequence[int]],
    states: Sequence[str],
    months: int,
) -> Path:
    """Per school, its months stacked: on time, late, missing, not yet due, not registered (a small office).

    Every state has its colour and its legend entry, counted or not, so the legend always reads the same.
    """
    height = max(3.0, 0.45 * len(schools) + 1.6)
    figure = new_figure(8, height)
    ax = figure.add_subplot()
    rows = list(range(len(schools)))
    left = [0] * len(schools)
    for k, (label, colour) in enumerate(zip(states, STATE_COLOURS, strict=True)):
        widths = [c[k] for c in counts]
        ax.barh(rows, widths, left=left, color=colour, label=text(label), height=0.6)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_yticks(rows, [text(name) for name in schools], fontfamily=FONT, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, months)
    ax.set_xticks(range(months + 1))
    ax.set_xlabel(text(axis), fontfamily=FONT)
    ax.set_title(text(title), fontfamily=FONT, fontsize=12)
    figure.legend(loc="outside lower center", ncols=len(states), prop={"family": FONT, "size": 9})
    return save(figure, path)
