"""Small server-rendered charts as inline SVG: a probe's value across versions, a scan's
candidates, a sweep's curve and a heatmap over a two-feature grid.

Plain functions, no Django; no scripts and no style attributes (the page's
Content-Security-Policy forbids inline styles), only SVG presentation attributes.
"""

import math
from html import escape

# A probe's value chart: wide enough for a dozen version names under the axis.
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 640, 260, 64, 16, 16, 52
COLOURS = {"passed": "#1a7f4b", "failed": "#c0292b", "inconclusive": "#b25e09", "error": "#8a8f98"}
FAIL_BAND = "#c0292b"


def _fmt(value):
    return f"{value:.3g}"


def _ticks(low, high, count=5):
    """Round tick values covering [low, high], about `count` of them: steps of 1, 2, 2.5
    or 5 times a power of ten. Returns (ticks, decimals to print them with)."""
    span = high - low
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        step = mult * power
        if span / step <= count:
            break
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if mult == 2.5 else 0)
    return [round(i * step, 12) for i in range(first, last + 1)], decimals


def value_chart_svg(
    points,
    *,
    threshold=None,
    title="",
    comparator=None,
    y_label="value",
    x_label="model version",
    threshold_label="threshold",
):
    """A probe's value across model versions as an SVG line chart with axes.

    `points`: [{"label": "v1", "value": float|None, "status": str, "ci_low", "ci_high"}]
    in version order; the labels name the versions under the x axis. Points without a value
    are skipped but keep their x position. Each point's interval is an error bar; the
    threshold is a dashed line (named by `threshold_label`), and with a comparator ("<=" or
    ">=") the failing side of it is shaded as a band. The y axis has round tick values with
    grid lines. The output depends on the arguments only (no ids, no randomness), so an
    evidence pack that holds it hashes the same every time.
    """
    values = [p["value"] for p in points if p.get("value") is not None]
    values += [p[k] for p in points for k in ("ci_low", "ci_high") if p.get(k) is not None]
    if threshold is not None:
        values.append(threshold)
    if not values:
        return ""
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.05 * (abs(low) or 1), high + 0.05 * (abs(high) or 1)
    margin = 0.08 * (high - low)
    low = max(low - margin, 0.0) if min(values) >= 0 else low - margin
    high = min(high + margin, 1.0) if max(values) <= 1 and high < 1 else high + margin
    ticks, decimals = _ticks(low, high)
    low, high = ticks[0], ticks[-1]
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    bottom, right = PAD_T + plot_h, WIDTH - PAD_R
    n = max(len(points), 1)

    def x(i):
        return PAD_L + (plot_w * (i + 0.5) / n)

    def y(v):
        return PAD_T + plot_h * (1 - (v - low) / (high - low))

    parts = [
        f'<svg class="chart value-chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-label="{escape(title)}" '
        'font-family="system-ui, sans-serif" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    # Grid and y tick labels.
    for t in ticks:
        ty = y(t)
        parts.append(
            f'<line class="grid" x1="{PAD_L}" y1="{ty:.1f}" x2="{right}" y2="{ty:.1f}" '
            'stroke="#eef1f5"/>'
        )
        parts.append(
            f'<text class="tick" x="{PAD_L - 6}" y="{ty + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#475467">{t:.{decimals}f}</text>'
        )
    if threshold is not None:
        ty = y(threshold)
        if comparator in ("<=", ">="):
            # The failing side: above a "<=" threshold, below a ">=" one.
            top, height = (PAD_T, ty - PAD_T) if comparator == "<=" else (ty, bottom - ty)
            if height > 0:
                parts.append(
                    f'<rect class="threshold-band" x="{PAD_L}" y="{top:.1f}" width="{plot_w}" '
                    f'height="{height:.1f}" fill="{FAIL_BAND}" fill-opacity="0.07">'
                    f"<title>fails {'above' if comparator == '<=' else 'below'} the "
                    f"{escape(threshold_label)} {_fmt(threshold)}</title></rect>"
                )
        parts.append(
            f'<line class="threshold" x1="{PAD_L}" y1="{ty:.1f}" x2="{right}" '
            f'y2="{ty:.1f}" stroke="#2f5bea" stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text class="threshold-label" x="{right - 4}" y="{ty - 5:.1f}" font-size="11" '
            f'text-anchor="end" fill="#2f5bea">{escape(threshold_label)} {_fmt(threshold)}</text>'
        )
    # Axes and their titles.
    parts.append(
        f'<line class="axis" x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{bottom}" '
        'stroke="#98a2b3"/>'
    )
    parts.append(
        f'<line class="axis" x1="{PAD_L}" y1="{bottom}" x2="{right}" y2="{bottom}" '
        'stroke="#98a2b3"/>'
    )
    if y_label:
        cy = PAD_T + plot_h / 2
        parts.append(
            f'<text class="axis-title" x="14" y="{cy:.1f}" font-size="11" text-anchor="middle" '
            f'fill="#475467" transform="rotate(-90 14 {cy:.1f})">{escape(y_label)}</text>'
        )
    if x_label:
        parts.append(
            f'<text class="axis-title" x="{PAD_L + plot_w / 2:.1f}" y="{HEIGHT - 6}" '
            f'font-size="11" text-anchor="middle" fill="#475467">{escape(x_label)}</text>'
        )
    # Version names under the x axis; with many versions, every k-th (and the last).
    every = max(1, math.ceil(n / 12))
    for i, p in enumerate(points):
        if i % every and i != n - 1:
            continue
        label = str(p["label"])
        label = label if len(label) <= 12 else label[:11] + "…"
        parts.append(
            f'<line x1="{x(i):.1f}" y1="{bottom}" x2="{x(i):.1f}" y2="{bottom + 4}" '
            'stroke="#98a2b3"/>'
        )
        parts.append(
            f'<text class="version" x="{x(i):.1f}" y="{bottom + 18}" font-size="11" '
            f'text-anchor="middle" fill="#344054">{escape(label)}</text>'
        )
    # Error bars (the interval of each value), the line, then the points on top.
    path = []
    for i, p in enumerate(points):
        if p.get("value") is None:
            continue
        if p.get("ci_low") is not None and p.get("ci_high") is not None:
            xi, y1, y2 = x(i), y(p["ci_low"]), y(p["ci_high"])
            parts.append(
                f'<g class="interval" stroke="#667085"><line x1="{xi:.1f}" y1="{y1:.1f}" '
                f'x2="{xi:.1f}" y2="{y2:.1f}"/><line x1="{xi - 5:.1f}" y1="{y1:.1f}" '
                f'x2="{xi + 5:.1f}" y2="{y1:.1f}"/><line x1="{xi - 5:.1f}" y1="{y2:.1f}" '
                f'x2="{xi + 5:.1f}" y2="{y2:.1f}"/></g>'
            )
        path.append(f"{x(i):.1f},{y(p['value']):.1f}")
    if len(path) > 1:
        parts.append(
            f'<polyline fill="none" stroke="#3a4556" stroke-width="1.5" points="{" ".join(path)}"/>'
        )
    for i, p in enumerate(points):
        if p.get("value") is None:
            continue
        colour = COLOURS.get(p.get("status"), "#3a4556")
        interval = ""
        if p.get("ci_low") is not None and p.get("ci_high") is not None:
            interval = f", 95% interval {_fmt(p['ci_low'])}–{_fmt(p['ci_high'])}"
        parts.append(
            f'<circle class="point {escape(p.get("status") or "")}" cx="{x(i):.1f}" '
            f'cy="{y(p["value"]):.1f}" r="5" fill="{colour}" stroke="#ffffff">'
            f"<title>{escape(str(p['label']))}: {_fmt(p['value'])}{interval} "
            f"({escape(p.get('status') or '')})</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


# -- introspection: scan candidates and sweep curves ------------------------------------

INK, MUTED, LINE, ACCENT, BAD = "#3a4556", "#667085", "#cbd2dd", "#2f5bea", "#c0292b"


def _pct(v):
    return f"{100 * v:.1f}%"


def _open(width, height, title):
    return [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]


def candidates_chart_svg(candidates, overall_rate, *, title="Error rate per candidate slice"):
    """Horizontal bars: each candidate's error rate with its 95% interval, and the whole
    dataset's error rate as a dashed line. Empty string when there is nothing to draw."""
    if not candidates:
        return ""
    row_h, pad_l, pad_r, pad_t, pad_b, width = 22, 36, 60, 8, 24, 420
    height = pad_t + pad_b + row_h * len(candidates)
    top = max([c["ci_high"] for c in candidates] + [overall_rate, 1e-9])
    top = min(1.0, top * 1.08)
    plot_w = width - pad_l - pad_r

    def x(v):
        return pad_l + plot_w * v / top

    parts = _open(width, height, title)
    parts.append(
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{height - pad_b}" stroke="{LINE}"/>'
    )
    for i, c in enumerate(candidates):
        y = pad_t + i * row_h
        parts.append(
            f'<text x="{pad_l - 6}" y="{y + row_h * 0.65:.1f}" font-size="11" '
            f'text-anchor="end" fill="{MUTED}">#{i + 1}</text>'
        )
        parts.append(
            f'<rect class="bar" x="{pad_l}" y="{y + 4}" width="{x(c["error_rate"]) - pad_l:.1f}" '
            f'height="{row_h - 8}" fill="{BAD}" fill-opacity="0.75">'
            f"<title>#{i + 1}: {_pct(c['error_rate'])} of {c['support']} rows "
            f"(95% CI {_pct(c['ci_low'])}–{_pct(c['ci_high'])})</title></rect>"
        )
        cy = y + row_h / 2
        parts.append(
            f'<line x1="{x(c["ci_low"]):.1f}" y1="{cy:.1f}" x2="{x(c["ci_high"]):.1f}" '
            f'y2="{cy:.1f}" stroke="{INK}"/>'
        )
        parts.append(
            f'<text x="{x(c["ci_high"]) + 4:.1f}" y="{y + row_h * 0.65:.1f}" '
            f'font-size="10" fill="{INK}">{_pct(c["error_rate"])}</text>'
        )
    ox = x(overall_rate)
    parts.append(
        f'<line class="overall" x1="{ox:.1f}" y1="{pad_t}" x2="{ox:.1f}" '
        f'y2="{height - pad_b}" stroke="{ACCENT}" stroke-dasharray="4 3"/>'
    )
    parts.append(
        f'<text x="{ox:.1f}" y="{height - 8}" font-size="10" text-anchor="middle" '
        f'fill="{ACCENT}">overall {_pct(overall_rate)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def sweep_chart_svg(points, x_key, *, title="", xlabel=""):
    """Flip rate against the swept setting (noise scale or feature value).

    Numeric settings are placed on a linear axis, categories at even positions. Each point
    carries a tooltip and its index, so the table below the chart can refer to it.
    """
    if not points:
        return ""
    width, height, pad_l, pad_r, pad_t, pad_b = 420, 170, 44, 14, 12, 36
    xs = [p[x_key] for p in points]
    ys = [float(p["flip_rate"]) for p in points]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs)
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max(max(ys) * 1.1, 0.01)
    if numeric and max(xs) > min(xs):
        lo, hi = min(xs), max(xs)

        def x(i):
            return pad_l + plot_w * (xs[i] - lo) / (hi - lo)
    else:

        def x(i):
            return pad_l + plot_w * (i + 0.5) / len(xs)

    def y(v):
        return pad_t + plot_h * (1 - v / top)

    parts = _open(width, height, title)
    parts.append(
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + plot_h}" stroke="{LINE}"/>'
    )
    parts.append(
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" '
        f'y2="{pad_t + plot_h}" stroke="{LINE}"/>'
    )
    for v in (0.0, top / 1.1):
        parts.append(
            f'<text x="{pad_l - 4}" y="{y(v) + 4:.1f}" font-size="10" '
            f'text-anchor="end" fill="{MUTED}">{_pct(v)}</text>'
        )
    ticks = range(len(xs)) if len(xs) <= 8 else sorted({0, len(xs) // 2, len(xs) - 1})
    shown, last = [], None
    for i in ticks:  # a label too close to the previous one (crowded small scales) is left out
        if last is None or x(i) - last >= 30:
            shown.append(i)
            last = x(i)
    for i in shown:
        label = f"{xs[i]:.3g}" if numeric else str(xs[i])[:12]
        parts.append(
            f'<text x="{x(i):.1f}" y="{pad_t + plot_h + 14}" font-size="10" '
            f'text-anchor="middle" fill="{MUTED}">{escape(label)}</text>'
        )
    if xlabel:
        parts.append(
            f'<text x="{pad_l + plot_w / 2:.1f}" y="{height - 4}" font-size="10" '
            f'text-anchor="middle" fill="{MUTED}">{escape(xlabel)}</text>'
        )
    path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(ys))
    parts.append(f'<polyline fill="none" stroke="{ACCENT}" points="{path}"/>')
    for i, v in enumerate(ys):
        label = f"{xs[i]:.4g}" if numeric else str(xs[i])
        parts.append(
            f'<circle class="point" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" '
            f'fill="{ACCENT}"><title>#{i + 1} {escape(xlabel)} {escape(label)}: '
            f"{_pct(v)} of decisions flip</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


# -- heatmaps: a value per cell of a two-feature grid -----------------------------------

HEAT_NEGATIVE, HEAT_POSITIVE, HEAT_MISSING = (47, 91, 234), (192, 41, 43), "#e3e7ee"
# Cells beyond this many carry no tooltip of their own (the page's table has the values).
HEAT_TITLED_CELLS = 400


def grid_label(value):
    """A grid value as axes print it: 3 significant digits, whole thousands with commas
    (never 1.23e+04)."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _diverging(value, peak):
    """White at 0, blue towards -peak, red towards +peak, as a hex colour."""
    if value is None or not math.isfinite(value):
        return HEAT_MISSING
    share = 0.0 if peak <= 0 else max(-1.0, min(1.0, value / peak))
    end = HEAT_POSITIVE if share > 0 else HEAT_NEGATIVE
    t = abs(share)
    red, green, blue = (round(255 + (c - 255) * t) for c in end)
    return f"#{red:02x}{green:02x}{blue:02x}"


def _spaced(count, length, gap):
    """Which of `count` evenly spaced labels along `length` pixels to print, so that
    printed ones are at least `gap` pixels apart (always the first and the last)."""
    every = max(1, math.ceil(gap / (length / max(count, 1))))
    shown = set(range(0, count, every))
    if count and (count - 1) not in shown:
        highest = max(shown)
        if highest and count - 1 - highest < every:
            shown.discard(highest)  # the last label replaces its too-close neighbour
        shown.add(count - 1)
    return shown


def heatmap_svg(
    values,
    rows,
    columns,
    *,
    row_title,
    column_title,
    title="",
    legend_title="value",
    cell_notes=None,
):
    """A grid of values as an SVG heatmap with a diverging colour scale centred on 0.

    `values[i][j]` (a number or None) belongs to `rows[i]` (the y axis, increasing upward)
    and `columns[j]` (the x axis, increasing to the right); both are the grid values,
    printed as axis tick labels under the axis titles `row_title` and `column_title`. The
    colour runs from blue (the most negative) through white (0) to red (the largest
    magnitude, positive); the legend under the plot shows the scale with its ends and 0.
    Each cell's tooltip names its grid values and value, then `cell_notes[i][j]` if given
    (up to HEAT_TITLED_CELLS cells). Empty string when there is nothing to draw.
    """
    n_rows, n_cols = len(rows), len(columns)
    if not n_rows or not n_cols or len(values) != n_rows:
        return ""
    finite = [abs(v) for line in values for v in line if v is not None and math.isfinite(float(v))]
    peak = max(finite, default=0.0)
    # Narrow enough to be drawn near its own size on a phone (the page scales it to fit).
    pad_l, pad_r, pad_t = 66, 12, 10
    plot_w, plot_h = 300, 220
    width = pad_l + plot_w + pad_r
    bottom = pad_t + plot_h
    height = bottom + 92
    cell_w, cell_h = plot_w / n_cols, plot_h / n_rows
    titled = n_rows * n_cols <= HEAT_TITLED_CELLS
    parts = [
        f'<svg class="chart heatmap-chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}" '
        'font-family="system-ui, sans-serif" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, line in enumerate(values):
        y = bottom - (i + 1) * cell_h
        for j, value in enumerate(line):
            x = pad_l + j * cell_w
            cell = (
                f'<rect class="cell" x="{x:.1f}" y="{y:.1f}" width="{cell_w:.1f}" '
                f'height="{cell_h:.1f}" fill="{_diverging(value, peak)}" stroke="#ffffff" '
                'stroke-width="0.5"'
            )
            if titled:
                shown = "no value" if value is None else f"{value:+.3g}"
                note = f"; {cell_notes[i][j]}" if cell_notes else ""
                cell += (
                    f"><title>{escape(str(row_title))} {grid_label(rows[i])}, "
                    f"{escape(str(column_title))} {grid_label(columns[j])}: "
                    f"{escape(legend_title)} {shown}{escape(note)}</title></rect>"
                )
            else:
                cell += "/>"
            parts.append(cell)
    parts.append(
        f'<rect x="{pad_l}" y="{pad_t}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#98a2b3"/>'
    )
    for i in sorted(_spaced(n_rows, plot_h, 15)):
        y = bottom - (i + 0.5) * cell_h
        parts.append(
            f'<text class="tick" x="{pad_l - 5}" y="{y + 4:.1f}" font-size="12" '
            f'text-anchor="end" fill="#475467">{grid_label(rows[i])}</text>'
        )
    for j in sorted(_spaced(n_cols, plot_w, 44)):
        x = pad_l + (j + 0.5) * cell_w
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" font-size="12" '
            f'text-anchor="middle" fill="#475467">{grid_label(columns[j])}</text>'
        )
    cy = pad_t + plot_h / 2
    parts.append(
        f'<text class="axis-title" x="13" y="{cy:.1f}" font-size="13" text-anchor="middle" '
        f'fill="#344054" transform="rotate(-90 13 {cy:.1f})">{escape(str(row_title))}</text>'
    )
    parts.append(
        f'<text class="axis-title" x="{pad_l + plot_w / 2:.1f}" y="{bottom + 34}" '
        f'font-size="13" text-anchor="middle" fill="#344054">{escape(str(column_title))}</text>'
    )
    # The legend: eleven steps from -peak to +peak.
    steps, step_w = 11, 20
    left = pad_l + (plot_w - steps * step_w) / 2
    top = bottom + 58
    parts.append(
        f'<text class="legend-title" x="{pad_l + plot_w / 2:.1f}" y="{top - 6}" '
        f'font-size="12" text-anchor="middle" fill="#344054">{escape(legend_title)}</text>'
    )
    for k in range(steps):
        level = peak * (2 * k / (steps - 1) - 1)
        parts.append(
            f'<rect class="legend-step" x="{left + k * step_w:.1f}" y="{top}" '
            f'width="{step_w}" height="10" fill="{_diverging(level, peak)}" stroke="#98a2b3" '
            'stroke-width="0.5"/>'
        )
    for k, label in ((0, f"{-peak:+.2g}" if peak else "0"), (5, "0"), (10, f"{peak:+.2g}")):
        if k != 5 and not peak:
            continue
        parts.append(
            f'<text class="legend-tick" x="{left + (k + 0.5) * step_w:.1f}" y="{top + 24}" '
            f'font-size="12" text-anchor="middle" fill="#475467">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
