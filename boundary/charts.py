"""Small server-rendered charts as inline SVG (no scripts, no inline CSS: the page's
Content-Security-Policy stays strict). Plain functions, no Django."""

from html import escape

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 360, 140, 44, 12, 12, 28
COLOURS = {"passed": "#1a7f4b", "failed": "#c0292b", "inconclusive": "#b25e09",
           "error": "#8a8f98"}


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
        parts.append(f'<text x="{PAD_L - 4}" y="{y(v) + 4:.1f}" font-size="10" '
                     f'text-anchor="end" fill="#667085">{_fmt(v)}</text>')
    if threshold is not None:
        ty = y(threshold)
        parts.append(f'<line class="threshold" x1="{PAD_L}" y1="{ty:.1f}" x2="{WIDTH - PAD_R}" '
                     f'y2="{ty:.1f}" stroke="#2f5bea" stroke-dasharray="5 4"/>')
        parts.append(f'<text x="{WIDTH - PAD_R}" y="{ty - 4:.1f}" font-size="10" '
                     f'text-anchor="end" fill="#2f5bea">threshold {_fmt(threshold)}</text>')
    path = []
    for i, p in enumerate(points):
        parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - 8}" font-size="10" text-anchor="middle" '
                     f'fill="#667085">{escape(str(p["label"]))}</text>')
        if p.get("value") is None:
            continue
        if p.get("ci_low") is not None and p.get("ci_high") is not None:
            parts.append(f'<line x1="{x(i):.1f}" y1="{y(p["ci_low"]):.1f}" x2="{x(i):.1f}" '
                         f'y2="{y(p["ci_high"]):.1f}" stroke="#98a2b3"/>')
        path.append(f'{x(i):.1f},{y(p["value"]):.1f}')
    if len(path) > 1:
        parts.append(f'<polyline fill="none" stroke="#3a4556" points="{" ".join(path)}"/>')
    for i, p in enumerate(points):
        if p.get("value") is None:
            continue
        colour = COLOURS.get(p.get("status"), "#3a4556")
        parts.append(f'<circle class="point {escape(p.get("status") or "")}" cx="{x(i):.1f}" '
                     f'cy="{y(p["value"]):.1f}" r="4" fill="{colour}">'
                     f'<title>{escape(str(p["label"]))}: {_fmt(p["value"])} '
                     f'({escape(p.get("status") or "")})</title></circle>')
    parts.append("</svg>")
    return "".join(parts)
