"""Small server-rendered charts as inline SVG: a probe's value across versions, a scan's
candidates and a sweep's curve.

Plain functions, no Django; no scripts and no style attributes (the page's
Content-Security-Policy forbids inline styles), only SVG presentation attributes.
"""

from html import escape

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 360, 140, 44, 12, 12, 28
COLOURS = {"passed": "#1a7f4b", "failed": "#c0292b", "inconclusive": "#b25e09", "error": "#8a8f98"}


def _fmt(value):
    return f"{value:.3g}"


def value_chart_svg(points, *, threshold=None, title=""):
    """A line of a probe's value across model versions, with the threshold dashed.

    `points`: [{"label": "v1", "value": float|None, "status": str, "ci_low", "ci_high"}]
    in version order. Points without a value are skipped but keep their x position.
    """
    values = [p["value"] for p in points if p.get("value") is not None]
    values += [p[k] for p in points for k in ("ci_low", "ci_high") if p.get(k) is not None]
    if threshold is not None:
        values.append(threshold)
    if not values:
        return ""
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    span = high - low
    low, high = low - 0.08 * span, high + 0.08 * span
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    n = max(len(points), 1)

    def x(i):
        return PAD_L + (plot_w * (i + 0.5) / n)

    def y(v):
        return PAD_T + plot_h * (1 - (v - low) / (high - low))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{PAD_T + plot_h}" stroke="#cbd2dd"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{WIDTH - PAD_R}" y2="{PAD_T + plot_h}" '
        'stroke="#cbd2dd"/>',
    ]
    for v in (low + 0.08 * span / 1.16, high - 0.08 * span / 1.16):
        parts.append(
            f'<text x="{PAD_L - 4}" y="{y(v) + 4:.1f}" font-size="10" '
            f'text-anchor="end" fill="#667085">{_fmt(v)}</text>'
        )
    if threshold is not None:
        ty = y(threshold)
        parts.append(
            f'<line class="threshold" x1="{PAD_L}" y1="{ty:.1f}" x2="{WIDTH - PAD_R}" '
            f'y2="{ty:.1f}" stroke="#2f5bea" stroke-dasharray="5 4"/>'
        )
        parts.append(
            f'<text x="{WIDTH - PAD_R}" y="{ty - 4:.1f}" font-size="10" '
            f'text-anchor="end" fill="#2f5bea">threshold {_fmt(threshold)}</text>'
        )
    path = []
    for i, p in enumerate(points):
        parts.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - 8}" font-size="10" text-anchor="middle" '
            f'fill="#667085">{escape(str(p["label"]))}</text>'
        )
        if p.get("value") is None:
            continue
        if p.get("ci_low") is not None and p.get("ci_high") is not None:
            parts.append(
                f'<line x1="{x(i):.1f}" y1="{y(p["ci_low"]):.1f}" x2="{x(i):.1f}" '
                f'y2="{y(p["ci_high"]):.1f}" stroke="#98a2b3"/>'
            )
        path.append(f"{x(i):.1f},{y(p['value']):.1f}")
    if len(path) > 1:
        parts.append(f'<polyline fill="none" stroke="#3a4556" points="{" ".join(path)}"/>')
    for i, p in enumerate(points):
        if p.get("value") is None:
            continue
        colour = COLOURS.get(p.get("status"), "#3a4556")
        parts.append(
            f'<circle class="point {escape(p.get("status") or "")}" cx="{x(i):.1f}" '
            f'cy="{y(p["value"]):.1f}" r="4" fill="{colour}">'
            f"<title>{escape(str(p['label']))}: {_fmt(p['value'])} "
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
