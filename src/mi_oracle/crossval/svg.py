"""Small self-contained SVG bar charts for the report (no plotting library, no network)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 220, 56, 64, 24


def bar_chart(
    title: str, labels: Sequence[str], values: Sequence[float], log: bool = False, limit: float | None = None
) -> str:
    """A vertical bar chart; ``log`` plots log10 (values <= 0 sit at the floor); ``limit``: a dashed line."""
    if not values:
        return f'<p class="muted">{escape(title)}: nothing to plot</p>'
    transform = (lambda v: math.log10(v) if v > 0 else None) if log else (lambda v: v)
    points = [transform(v) for v in values] + ([transform(limit)] if limit else [])
    finite = [p for p in points if p is not None]
    low = min([*finite, 0.0]) if not log else math.floor(min(finite, default=-8)) - 1
    high = max(finite, default=low)
    high = high + 0.05 * (high - low) if high > low else low + 1
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    step = plot_w / len(values)

    def y(value: float | None) -> float:
        value = low if value is None else value
        return TOP + plot_h * (1 - (value - low) / (high - low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}"><title>{escape(title)}</title>',
        f'<text x="{LEFT}" y="14" class="chart-title">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" stroke="#888"/>',
    ]
    for tick in (low, (low + high) / 2, high):
        label = f"1e{tick:.0f}" if log else f"{tick:.3g}"
        parts.append(
            f'<text x="{LEFT - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">{label}</text>'
        )
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        top = y(transform(value))
        x = LEFT + i * step + step * 0.15
        parts.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{step * 0.7:.1f}" height="{TOP + plot_h - top:.1f}" '
            f'fill="#4c78a8"><title>{escape(label)}: {value:.3g}</title></rect>'
        )
        parts.append(
            f'<text x="{x + step * 0.35:.1f}" y="{TOP + plot_h + 10}" class="tick" text-anchor="end" '
            f'transform="rotate(-45 {x + step * 0.35:.1f} {TOP + plot_h + 10})">{escape(label)}</text>'
        )
    if limit:
        at = y(transform(limit))
        parts.append(
            f'<line x1="{LEFT}" y1="{at:.1f}" x2="{WIDTH - 8}" y2="{at:.1f}" '
            'stroke="#d62728" stroke-dasharray="4 3"><title>bar</title></line>'
        )
    parts.append("</svg>")
    return "".join(parts)
