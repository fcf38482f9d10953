"""Small SVG charts of model evaluations, drawn on the server for the admin: no JavaScript, no external assets.

Curves and tables come from ``ml.evaluation``. Every piece of text is escaped; everything else interpolated
into the markup is a number formatted here.
"""

import math
from datetime import date
from html import escape

WIDTH = 360
CURVE_HEIGHT = 270
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 52, 344, 14, 196
TICK_COUNT = 5
LEGEND_COLUMN_WIDTH = 150
LEGEND_ROW_HEIGHT = 16
LABEL_MAX_CHARS = 22
BAR_ROW_HEIGHT = 14
BAR_LEFT = 140
# Okabe-Ito colours stay apart for the common colour-vision deficiencies and in greyscale print.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7")
MUTED = "#888888"


def roc_chart(curves: dict[str, list[list[float]]]) -> str:
    """Return an SVG of ROC curves, with the diagonal of a model that ranks at random."""
    return _curve_chart("ROC curve", "False positive rate", "True positive rate", curves, 1.0, markers=False)


def gains_chart(curves: dict[str, list[list[float]]]) -> str:
    """Return an SVG of cumulative gains curves, with the diagonal of random targeting."""
    return _curve_chart(
        "Cumulative gains", "Share of customers targeted", "Share of positives captured", curves, 1.0, markers=False
    )


def calibration_chart(tables: dict[str, list[dict]]) -> str:
    """Return an SVG of observed rate against mean prediction per calibration bin, with the diagonal."""
    curves = {name: [[row["mean_predicted"], row["observed_rate"]] for row in table] for name, table in tables.items()}
    largest = max((value for points in curves.values() for point in points for value in point), default=0.0)
    # Scaling to the data keeps a 2% base rate readable instead of a cluster in the corner.
    scale = min(1.0, _nice_ceiling(largest))
    return _curve_chart("Calibration", "Mean predicted probability", "Observed rate", curves, scale, markers=True)


def importance_chart(importances: list[tuple[str, float]], limit: int = 15) -> str:
    """Return an SVG of horizontal bars for the ``limit`` most important features, largest first."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    shown = sorted(importances, key=lambda item: item[1], reverse=True)[:limit]
    scale = _nice_ceiling(max((value for _, value in shown), default=0.0))
    bottom = PLOT_TOP + BAR_ROW_HEIGHT * len(shown)
    height = bottom + 46
    title = f"Feature importance, top {len(shown)}"
    body = [
        f'<rect x="{BAR_LEFT}" y="{PLOT_TOP}" width="{PLOT_RIGHT - BAR_LEFT}" height="{bottom - PLOT_TOP}" fill="none" stroke="#cccccc"/>'
    ]
    for step in range(TICK_COUNT + 1):
        value = scale * step / TICK_COUNT
        x = BAR_LEFT + (PLOT_RIGHT - BAR_LEFT) * step / TICK_COUNT
        body.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#333333"/>')
        body.append(_text(x, bottom + 14, _tick_label(value), anchor="middle"))
    body.append(_text((BAR_LEFT + PLOT_RIGHT) / 2, bottom + 32, "Importance", anchor="middle"))
    for row, (name, value) in enumerate(shown):
        y = PLOT_TOP + row * BAR_ROW_HEIGHT
        # Negative importances (a shuffled feature that helped by chance) get no bar, only their label.
        width = (PLOT_RIGHT - BAR_LEFT) * max(0.0, min(value, scale)) / scale
        body.append(
            f'<rect x="{BAR_LEFT}" y="{y + 2}" width="{width:.1f}" height="{BAR_ROW_HEIGHT - 4}" fill="{PALETTE[0]}">'
            f"<title>{escape(str(name))}: {value:.6g}</title></rect>"
        )
        body.append(_text(BAR_LEFT - 4, y + BAR_ROW_HEIGHT - 4, _shortened(str(name)), anchor="end"))
    return _document(title, body, height)


def _curve_chart(
    title: str, x_title: str, y_title: str, curves: dict[str, list[list[float]]], scale: float, *, markers: bool
) -> str:
    """Return an SVG with one line per named curve over a 0..scale square and its dashed diagonal."""
    if len(curves) > len(PALETTE):
        raise ValueError(f"a chart draws at most {len(PALETTE)} curves so each keeps its own colour, not {len(curves)}")
    body = _axes(x_title, y_title, scale)
    body.append(
        f'<line x1="{PLOT_LEFT}" y1="{PLOT_BOTTOM}" x2="{PLOT_RIGHT}" y2="{PLOT_TOP}" '
        f'stroke="{MUTED}" stroke-dasharray="4 4"/>'
    )
    for colour, points in zip(PALETTE, curves.values(), strict=False):
        coordinates = " ".join(f"{_x(x, scale):.1f},{_y(y, scale):.1f}" for x, y in points)
        body.append(f'<polyline points="{coordinates}" fill="none" stroke="{colour}" stroke-width="2"/>')
        if markers:
            body.extend(
                f'<circle cx="{_x(x, scale):.1f}" cy="{_y(y, scale):.1f}" r="2.5" fill="{colour}"/>' for x, y in points
            )
    body.extend(_legend(list(curves)))
    names = ", ".join(curves) or "no curves"
    return _document(f"{title}: {names}", body, CURVE_HEIGHT)


def _axes(x_title: str, y_title: str, scale: float) -> list[str]:
    """Return the frame, grid, tick labels and axis titles of a 0..scale square plot."""
    parts = [
        f'<rect x="{PLOT_LEFT}" y="{PLOT_TOP}" width="{PLOT_RIGHT - PLOT_LEFT}" '
        f'height="{PLOT_BOTTOM - PLOT_TOP}" fill="none" stroke="#333333"/>'
    ]
    for step in range(TICK_COUNT + 1):
        value = scale * step / TICK_COUNT
        x, y = _x(value, scale), _y(value, scale)
        parts.append(f'<line x1="{x:.1f}" y1="{PLOT_TOP}" x2="{x:.1f}" y2="{PLOT_BOTTOM}" stroke="#eeeeee"/>')
        parts.append(f'<line x1="{PLOT_LEFT}" y1="{y:.1f}" x2="{PLOT_RIGHT}" y2="{y:.1f}" stroke="#eeeeee"/>')
        parts.append(_text(x, PLOT_BOTTOM + 14, _tick_label(value), anchor="middle"))
        parts.append(_text(PLOT_LEFT - 6, y + 3, _tick_label(value), anchor="end"))
    middle_x, middle_y = (PLOT_LEFT + PLOT_RIGHT) / 2, (PLOT_TOP + PLOT_BOTTOM) / 2
    parts.append(_text(middle_x, PLOT_BOTTOM + 32, x_title, anchor="middle"))
    parts.append(
        f'<text x="12" y="{middle_y:.1f}" text-anchor="middle" transform="rotate(-90 12 {middle_y:.1f})">'
        f"{escape(y_title)}</text>"
    )
    return parts


def _legend(names: list[str]) -> list[str]:
    """Return a two-column legend of coloured swatches below the plot."""
    parts = []
    for index, (colour, name) in enumerate(zip(PALETTE, names, strict=False)):
        x = PLOT_LEFT + LEGEND_COLUMN_WIDTH * (index % 2)
        y = PLOT_BOTTOM + 50 + LEGEND_ROW_HEIGHT * (index // 2)
        parts.append(f'<line x1="{x}" y1="{y - 3}" x2="{x + 14}" y2="{y - 3}" stroke="{colour}" stroke-width="3"/>')
        parts.append(_text(x + 18, y, _shortened(name)))
    return parts


def _document(title: str, body: list[str], height: int, width: int = WIDTH) -> str:
    """Return the SVG element around ``body``, labelled for screen readers."""
    label = escape(title)
    opening = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{label}" font-family="sans-serif" font-size="10" fill="#333333">'
    )
    return "\n".join([opening, f"<title>{label}</title>", *body, "</svg>"])


def _text(x: float, y: float, content: str, anchor: str = "start") -> str:
    """Return an escaped text element."""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(content)}</text>'


def _shortened(name: str) -> str:
    """Return ``name`` cut to fit a label, marked with an ellipsis when cut."""
    return name if len(name) <= LABEL_MAX_CHARS else name[: LABEL_MAX_CHARS - 1] + "…"


def _tick_label(value: float) -> str:
    """Return a tick value without float noise such as 0.6000000000000001."""
    return f"{round(value, 10):g}"


def _nice_ceiling(value: float) -> float:
    """Return the smallest of 1, 2 or 5 times a power of ten that is at least ``value``, or 1 for nothing."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(round(step * magnitude, 12) for step in (1, 2, 5, 10) if step * magnitude >= value)


def _x(value: float, scale: float) -> float:
    """Return the horizontal pixel of ``value`` on a 0..scale axis, kept inside the plot."""
    return PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * min(max(value / scale, 0.0), 1.0)


def _y(value: float, scale: float) -> float:
    """Return the vertical pixel of ``value`` on a 0..scale axis, kept inside the plot."""
    return PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * min(max(value / scale, 0.0), 1.0)


FORECAST_WIDTH = 720
FORECAST_PLOT_RIGHT = 704
DATE_TICKS = 6


def forecast_chart(
    title: str,
    y_title: str,
    history: list[tuple[date, float]],
    forecast: list[tuple[date, float, float, float]],
    forecast_label: str,
    interval_label: str,
) -> str:
    """Return an SVG of weekly history, then the forecast line over its shaded prediction interval.

    `history` holds (week, value); `forecast` holds (week, forecast, low, high), in week order.
    """
    weeks = [week for week, _ in history] + [week for week, *_ in forecast]
    if not weeks:
        return _document(f"{title}: no weeks", [_text(PLOT_LEFT, PLOT_TOP + 20, "No weeks to show.")], CURVE_HEIGHT, FORECAST_WIDTH)
    largest = max([value for _, value in history] + [high for *_, high in forecast] + [0.0])
    scale = _nice_ceiling(largest)
    count = len(weeks)

    def x(index: int) -> float:
        return PLOT_LEFT + (FORECAST_PLOT_RIGHT - PLOT_LEFT) * (index / max(count - 1, 1))

    def y(value: float) -> float:
        return _y(value, scale)

    body = [
        f'<rect x="{PLOT_LEFT}" y="{PLOT_TOP}" width="{FORECAST_PLOT_RIGHT - PLOT_LEFT}" '
        f'height="{PLOT_BOTTOM - PLOT_TOP}" fill="none" stroke="#333333"/>'
    ]
    for step in range(TICK_COUNT + 1):
        value = scale * step / TICK_COUNT
        body.append(
            f'<line x1="{PLOT_LEFT}" y1="{y(value):.1f}" x2="{FORECAST_PLOT_RIGHT}" y2="{y(value):.1f}" stroke="#eeeeee"/>'
        )
        body.append(_text(PLOT_LEFT - 6, y(value) + 3, _tick_label(value), anchor="end"))
    ticks = sorted({round(k * (count - 1) / (DATE_TICKS - 1)) for k in range(DATE_TICKS)})
    for index in ticks:
        body.append(f'<line x1="{x(index):.1f}" y1="{PLOT_BOTTOM}" x2="{x(index):.1f}" y2="{PLOT_BOTTOM + 4}" stroke="#333333"/>')
        # The end labels lean inwards, so the last week's date is not cut at the edge.
        anchor = "end" if index == ticks[-1] and len(ticks) > 1 else "start" if index == 0 else "middle"
        body.append(_text(x(index), PLOT_BOTTOM + 14, weeks[index].isoformat(), anchor=anchor))
    middle_y = (PLOT_TOP + PLOT_BOTTOM) / 2
    body.append(
        f'<text x="12" y="{middle_y:.1f}" text-anchor="middle" transform="rotate(-90 12 {middle_y:.1f})">'
        f"{escape(y_title)}</text>"
    )
    first = len(history)
    if forecast:
        band = [f"{x(first + k):.1f},{y(high):.1f}" for k, (*_, high) in enumerate(forecast)]
        band += [f"{x(first + k):.1f},{y(low):.1f}" for k, (_, _, low, _) in reversed(list(enumerate(forecast)))]
        body.append(f'<polygon points="{" ".join(band)}" fill="{PALETTE[1]}" fill-opacity="0.2" stroke="none"/>')
        start = x(first - 1) if history else x(first)
        body.append(
            f'<line x1="{start:.1f}" y1="{PLOT_TOP}" x2="{start:.1f}" y2="{PLOT_BOTTOM}" stroke="{MUTED}" stroke-dasharray="4 4"/>'
        )
    if history:
        points = " ".join(f"{x(k):.1f},{y(value):.1f}" for k, (_, value) in enumerate(history))
        body.append(f'<polyline points="{points}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.5"/>')
    if forecast:
        joined = ([(first - 1, history[-1][1])] if history else []) + [
            (first + k, mean) for k, (_, mean, _, _) in enumerate(forecast)
        ]
        points = " ".join(f"{x(k):.1f},{y(value):.1f}" for k, value in joined)
        body.append(f'<polyline points="{points}" fill="none" stroke="{PALETTE[1]}" stroke-width="2"/>')
    legend = [("History", PALETTE[0]), (forecast_label, PALETTE[1]), (interval_label, PALETTE[1])]
    for index, (name, colour) in enumerate(legend):
        left = PLOT_LEFT + 200 * index
        top = PLOT_BOTTOM + 40
        if index == 2:
            body.append(f'<rect x="{left}" y="{top - 8}" width="14" height="10" fill="{colour}" fill-opacity="0.2"/>')
        else:
            body.append(f'<line x1="{left}" y1="{top - 3}" x2="{left + 14}" y2="{top - 3}" stroke="{colour}" stroke-width="3"/>')
        body.append(_text(left + 18, top, name))
    return _document(title, body, CURVE_HEIGHT - 10, FORECAST_WIDTH)


BAR_GROUP_GAP = 18


def grouped_bar_chart(title: str, groups: dict[str, dict[str, float]], percent: bool = False) -> str:
    """Return an SVG of vertical bars: one group per measure, one coloured bar per model, with a legend.

    `groups` maps a measure's label to {model label: value}; every group names the same models in order.
    """
    names = list(next(iter(groups.values()), {}))
    if len(names) > len(PALETTE):
        raise ValueError(f"at most {len(PALETTE)} models per chart, not {len(names)}")
    scale = _nice_ceiling(max((value for values in groups.values() for value in values.values()), default=0.0))
    body = [
        f'<rect x="{PLOT_LEFT}" y="{PLOT_TOP}" width="{PLOT_RIGHT - PLOT_LEFT}" '
        f'height="{PLOT_BOTTOM - PLOT_TOP}" fill="none" stroke="#333333"/>'
    ]
    for step in range(TICK_COUNT + 1):
        value = scale * step / TICK_COUNT
        y = _y(value, scale)
        label = f"{value:.0%}" if percent else _tick_label(value)
        body.append(f'<line x1="{PLOT_LEFT}" y1="{y:.1f}" x2="{PLOT_RIGHT}" y2="{y:.1f}" stroke="#eeeeee"/>')
        body.append(_text(PLOT_LEFT - 6, y + 3, label, anchor="end"))
    group_width = (PLOT_RIGHT - PLOT_LEFT) / max(len(groups), 1)
    bar_width = (group_width - BAR_GROUP_GAP) / max(len(names), 1)
    for index, (measure, values) in enumerate(groups.items()):
        left = PLOT_LEFT + index * group_width + BAR_GROUP_GAP / 2
        for position, name in enumerate(names):
            value = values[name]
            top = _y(value, scale)
            shown = f"{value:.1%}" if percent else f"{value:.4g}"
            body.append(
                f'<rect x="{left + position * bar_width:.1f}" y="{top:.1f}" width="{bar_width - 2:.1f}" '
                f'height="{PLOT_BOTTOM - top:.1f}" fill="{PALETTE[position]}">'
                f"<title>{escape(name)}, {escape(measure)}: {shown}</title></rect>"
            )
        body.append(_text(left + (group_width - BAR_GROUP_GAP) / 2, PLOT_BOTTOM + 14, measure, anchor="middle"))
    for index, (colour, name) in enumerate(zip(PALETTE, names, strict=False)):
        x = PLOT_LEFT + LEGEND_COLUMN_WIDTH * (index % 2)
        y = PLOT_BOTTOM + 36 + LEGEND_ROW_HEIGHT * (index // 2)
        body.append(f'<rect x="{x}" y="{y - 9}" width="12" height="10" fill="{colour}"/>')
        body.append(_text(x + 18, y, _shortened(name)))
    height = PLOT_BOTTOM + 44 + LEGEND_ROW_HEIGHT * ((len(names) + 1) // 2)
    return _document(title, [_text(PLOT_LEFT, PLOT_TOP - 2, title), *body], height)
