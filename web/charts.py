"""Charts drawn on the server as SVG: no JavaScript, no chart library, nothing from a CDN.

The SVG is written into the page. It carries no `style` attribute (the Content Security Policy
allows no inline style): colours and fonts come from classes in the site's stylesheet. Every
label is escaped; every bar carries its number as text, so the chart reads without colour and
a screen reader gets the `<title>` and the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
ROW = 24
LABEL_WIDTH = 170
VALUE_WIDTH = 60
COLUMN_HEIGHT = 180
AXIS_SPACE = 36


@dataclass(frozen=True)
class Bar:
    """One labelled number."""

    label: str
    value: int


def _title(title: str) -> Markup:
    return Markup("<title>{}</title>").format(title)


def bar_chart(title: str, bars: Sequence[Bar]) -> Markup:
    """Horizontal bars, one row per label, longest at full width."""
    height = max(1, len(bars)) * ROW + 8
    top = max((b.value for b in bars), default=0) or 1
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    parts = [
        Markup('<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
               'viewBox="0 0 {w} {h}" width="{w}" height="{h}">').format(w=WIDTH, h=height),
        _title(title),
    ]
    if not bars:
        parts.append(Markup('<text class="chart-empty" x="0" y="18">—</text>'))
    for row, bar in enumerate(bars):
        y = row * ROW + 4
        length = round(span * bar.value / top)
        parts.append(Markup(
            '<text class="chart-label" x="{lx}" y="{ty}" text-anchor="end">{label}</text>'
            '<rect class="chart-bar" x="{x}" y="{y}" width="{len}" height="{bh}"/>'
            '<text class="chart-value" x="{vx}" y="{ty}">{value}</text>'
        ).format(lx=LABEL_WIDTH - 8, ty=y + 15, label=escape(bar.label), x=LABEL_WIDTH, y=y,
                 len=length, bh=ROW - 6, vx=LABEL_WIDTH + length + 6, value=bar.value))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def column_chart(title: str, columns: Sequence[Bar], *, label_every: int = 7) -> Markup:
    """Vertical columns left to right (a time series); the last and every `label_every`th
    before it are labelled."""
    count = max(1, len(columns))
    slot = WIDTH / count
    top = max((c.value for c in columns), default=0) or 1
    height = COLUMN_HEIGHT + AXIS_SPACE
    parts = [
        Markup('<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
               'viewBox="0 0 {w} {h}" width="{w}" height="{h}">').format(w=WIDTH, h=height),
        _title(title),
        Markup('<line class="chart-axis" x1="0" y1="{y}" x2="{w}" y2="{y}"/>').format(
            y=COLUMN_HEIGHT, w=WIDTH),
    ]
    for index, column in enumerate(columns):
        bar_height = round((COLUMN_HEIGHT - 16) * column.value / top)
        x = round(index * slot + slot * 0.15, 1)
        parts.append(Markup(
            '<rect class="chart-bar" x="{x}" y="{y}" width="{w}" height="{h}">'
            "<title>{label}: {value}</title></rect>"
        ).format(x=x, y=COLUMN_HEIGHT - bar_height, w=round(slot * 0.7, 1), h=bar_height,
                 label=escape(column.label), value=column.value))
        if column.value:
            parts.append(Markup(
                '<text class="chart-value" x="{x}" y="{y}" text-anchor="middle">{v}</text>'
            ).format(x=round(index * slot + slot / 2, 1), y=COLUMN_HEIGHT - bar_height - 3,
                     v=column.value))
        from_end = len(columns) - 1 - index
        if from_end % label_every == 0:
            # Counted back from the newest, which always has its label, flush right so it
            # stays inside the picture.
            last = from_end == 0
            parts.append(Markup(
                '<text class="chart-label" x="{x}" y="{y}" text-anchor="{anchor}">{label}</text>'
            ).format(x=WIDTH if last else round(index * slot + slot / 2, 1),
                     y=COLUMN_HEIGHT + 20, anchor="end" if last else "middle",
                     label=escape(column.label)))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
