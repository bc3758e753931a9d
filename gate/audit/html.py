"""The audit report as one self-contained HTML page: inline CSS and SVG charts, no JavaScript, nothing fetched.

Every string in the report may come from the logs (User-Agents, paths, file names), so each one is escaped with
`html.escape` wherever it lands, text, attribute or SVG; colours and sizes are only ever gate's own numbers.
A Content-Security-Policy meta tag keeps scripts and fetches out even if something slipped through.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from gate.audit.report import human_bytes

MAX_HOURS = 200  # more hours than this in the period: the charts show days
MAX_GAP_FILLED = 800  # buckets drawn between the first and the last, empty ones included
MAX_SERIES = 9  # agent classes with their own colour in the chart; the rest are drawn together as "other"
SAMPLE_CHARS = 200
LABEL_CHARS = 54  # a path beside its bar; the whole path (up to 500 characters) is in its tooltip

ACTION_COLOURS = {
    "allow": "#3b9e5a",
    "challenge": "#e0a526",
    "throttle": "#4a7fd4",
    "terms": "#9a63c9",
    "deny": "#d6453d",
}
# Agent classes: the first colours are not the actions', so the two charts are not read as one legend.
PALETTE = ("#2aa8b8", "#e07b39", "#c65b9c", "#7f8c3a", "#4a7fd4", "#a8703f", "#9a63c9", "#e0a526", "#3b9e5a")
OTHER_COLOUR = "#8c8c8c"

CSS = """
:root{color-scheme:light dark;--fg:#1d2126;--muted:#5d6670;--bg:#fff;--panel:#f4f6f8;--line:#d9dee3;--bar:#4a7fd4}
@media (prefers-color-scheme:dark){:root{--fg:#e3e6ea;--muted:#9aa3ad;--bg:#15181c;--panel:#1e2228;--line:#363c44}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:72rem;padding:1.5rem 1rem 3rem;font:15px/1.5 system-ui,sans-serif;color:var(--fg);
background:var(--bg)}
h1{font-size:1.6rem;margin:0 0 .5rem}
h2{font-size:1.2rem;margin:2.2rem 0 .6rem;padding-bottom:.2rem;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:1.2rem 0 .4rem}
p.note,.meta dt,caption{color:var(--muted)}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
.meta dd{margin:0;overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:.6rem 1rem;min-width:12rem}
.card b{display:block;font-size:1.4rem;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;margin:.4rem 0;font-variant-numeric:tabular-nums}
th,td{padding:.25rem .7rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--panel);font-weight:600}
td.n,th.n{text-align:right;white-space:nowrap}
td.s{overflow-wrap:anywhere;max-width:34rem}
tr.total td{font-weight:600}
code{font:13px/1.4 ui-monospace,monospace;overflow-wrap:anywhere}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.35em;vertical-align:-.05em}
.legend{display:flex;flex-wrap:wrap;gap:.3rem 1.1rem;margin:.3rem 0;padding:0;list-style:none}
svg.chart{display:block;width:100%;height:auto;max-width:60rem}
svg.chart text{fill:var(--muted);font:12px system-ui,sans-serif}
svg.hbars text{fill:var(--fg);font:13px ui-monospace,monospace}
svg.chart .axis{stroke:var(--line);stroke-width:1}
svg.chart .bar{fill:var(--bar)}
.nodata{color:var(--muted);font-style:italic}
"""


def render_html(report: Mapping[str, Any]) -> str:
    """The whole report as one HTML document (a str; write it out as UTF-8)."""
    actions = [str(action) for action in report["actions"]]
    action_colours = _colours(actions, ACTION_COLOURS)
    sections = [
        _header(report),
        _summary(report, actions, action_colours),
        _charts(report, actions, action_colours),
        _class_table(report, actions),
        _agents(report),
        _networks(report),
        _paths(report),
        _banned(report),
        _violators(report),
        _malformed(report),
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        f"<title>gate audit: {_e(', '.join(map(str, report['files'])) or 'no files')}</title>\n"
        f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


# Formatting


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _count(value: object) -> str:
    return f"{round(value):,}" if isinstance(value, int | float) else _e(value)


def _bytes(value: object) -> str:
    return human_bytes(value) if isinstance(value, int | float) else _e(value)


def _share(part: object, whole: object) -> str:
    if not isinstance(part, int | float) or not isinstance(whole, int | float) or whole <= 0:
        return "&ndash;"
    return f"{100 * part / whole:.1f}%"


def _clip(text: object, limit: int) -> str:
    """Shortened before escaping, so no entity is ever cut in half."""
    value = str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _actions_text(actions: Mapping[str, Any]) -> str:
    ordered = sorted(actions.items(), key=lambda item: -float(item[1]))
    return ", ".join(f"{_e(name)} {_count(count)}" for name, count in ordered) or "&ndash;"


def _colours(names: Sequence[str], known: Mapping[str, str]) -> dict[str, str]:
    colours: dict[str, str] = {}
    spare = [colour for colour in PALETTE if colour not in known.values()] or list(PALETTE)
    for index, name in enumerate(names):
        colours[name] = known.get(name) or spare[index % len(spare)]
    return colours


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = (), total: bool = False
) -> str:
    """Cells are already escaped HTML; `numeric` columns are right-aligned, text columns wrap anywhere."""
    right = set(numeric)
    head = "".join(f'<th class="{"n" if i in right else ""}">{h}</th>' for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(f'<td class="{"n" if i in right else "s"}">{cell}</td>' for i, cell in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    if not body:
        return '<p class="nodata">None.</p>'
    if total:
        body[-1] = body[-1].replace("<tr>", '<tr class="total">', 1)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _legend(colours: Mapping[str, str]) -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{colour}"></span>{_e(name)}</li>'
        for name, colour in colours.items()
    )
    return f'<ul class="legend">{items}</ul>'


# Charts


def _nice_ceiling(value: float) -> tuple[float, float]:
    """A round top for an axis at or above value (> 0), and its tick step: at most five steps, whole numbers."""
    magnitude = 10 ** max(math.floor(math.log10(value / 5)), 0) if value > 5 else 1
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * magnitude
        if step * 5 >= value and step == int(step):
            return math.ceil(value / step) * step, step
    raise AssertionError("unreachable")


def _stacked_bars(
    buckets: Sequence[tuple[datetime, Mapping[str, float]]], colours: Mapping[str, str], daily: bool
) -> str:
    """One stacked bar per bucket, series in the order of `colours`; each segment has a tooltip (<title>)."""
    if not buckets or not any(sum(counts.values()) for _, counts in buckets):
        return '<p class="nodata">No data.</p>'
    width, height, left, right, top, bottom = 960, 260, 56, 8, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    peak, step = _nice_ceiling(max(sum(counts.values()) for _, counts in buckets))
    slot = plot_w / len(buckets)
    gap = min(slot * 0.15, 2.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="stacked bar chart, one bar per {"day" if daily else "hour"}">'
    ]
    for index in range(1, round(peak / step) + 1):
        y = top + plot_h - plot_h * index * step / peak
        parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_count(index * step)}</text>')
    parts.append(f'<text x="{left - 6}" y="{top + plot_h + 4}" text-anchor="end">0</text>')
    label_every = _label_step(len(buckets), daily)
    for index, (when, counts) in enumerate(buckets):
        x = left + index * slot
        y = top + plot_h
        label = when.strftime("%Y-%m-%d") if daily else when.strftime("%Y-%m-%d %H:00")
        for name, colour in colours.items():
            value = counts.get(name, 0)
            if value <= 0:
                continue
            h = plot_h * value / peak
            y -= h
            parts.append(
                f'<rect x="{x + gap / 2:.2f}" y="{y:.2f}" width="{max(slot - gap, 0.5):.2f}" height="{h:.2f}" '
                f'fill="{colour}"><title>{_e(label)} UTC · {_e(name)}: {_count(value)}</title></rect>'
            )
        if _labelled(when, label_every, daily):
            text = when.strftime("%b %d") if daily or when.hour == 0 else when.strftime("%H:00")
            tx = x + slot / 2
            parts.append(
                f'<line class="axis" x1="{tx:.1f}" x2="{tx:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}"/>'
            )
            parts.append(f'<text x="{tx:.1f}" y="{top + plot_h + 17}" text-anchor="middle">{text}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    parts.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle">'
        f"{'day' if daily else 'hour'} (UTC)</text></svg>"
    )
    return "".join(parts)


def _label_step(count: int, daily: bool) -> int:
    """Hours (or days) between x-axis labels: at most about 12 labels."""
    steps = (1, 2, 7, 14, 28, 56, 91, 182, 364) if daily else (1, 2, 3, 6, 12, 24, 48, 72, 168)
    return next((step for step in steps if count / step <= 12), steps[-1])


def _labelled(when: datetime, step: int, daily: bool) -> bool:
    if daily:
        return when.toordinal() % step == 0
    if step <= 24:
        return when.hour % step == 0
    return when.hour == 0 and when.toordinal() % (step // 24) == 0


def _time_buckets(
    hourly: Sequence[Mapping[str, Any]], field: str
) -> tuple[list[tuple[datetime, dict[str, float]]], bool]:
    """Counts per hour, or per day past MAX_HOURS; hours (days) without requests are empty bars, not skipped."""
    counts: dict[datetime, dict[str, float]] = {}
    for entry in hourly:
        try:
            hour = datetime.fromisoformat(str(entry["hour"]))
        except ValueError:
            continue
        hour = (hour.astimezone(UTC) if hour.tzinfo else hour.replace(tzinfo=UTC)).replace(
            minute=0, second=0, microsecond=0
        )
        into = counts.setdefault(hour, {})
        for name, value in dict(entry.get(field) or {}).items():
            if isinstance(value, int | float):
                into[str(name)] = into.get(str(name), 0) + value
    if not counts:
        return [], False
    first, last = min(counts), max(counts)
    daily = (last - first) / timedelta(hours=1) + 1 > MAX_HOURS
    if daily:
        days: dict[datetime, dict[str, float]] = {}
        for hour, values in counts.items():
            into = days.setdefault(hour.replace(hour=0), {})
            for name, value in values.items():
                into[name] = into.get(name, 0) + value
        counts, first = days, first.replace(hour=0)
    step = timedelta(days=1) if daily else timedelta(hours=1)
    if (last - first) / step > MAX_GAP_FILLED:  # years between a few lines: the days with requests only
        return sorted(counts.items()), daily
    buckets = []
    when = first
    while when <= last:
        buckets.append((when, counts.get(when, {})))
        when += step
    return buckets, daily


def _hbars(items: Sequence[Mapping[str, Any]], key: str) -> str:
    """Horizontal bars: label on the left (shortened, full text in its tooltip), count at the bar's end."""
    rows = [(str(item.get(key, "")), float(item.get("requests") or 0)) for item in items]
    if not rows:
        return '<p class="nodata">No data.</p>'
    width, row_h, label_w, count_w = 960, 24, 440, 70
    peak = max(value for _, value in rows) or 1.0
    bar_max = width - label_w - count_w
    parts = [
        f'<svg class="chart hbars" viewBox="0 0 {width} {row_h * len(rows) + 4}" role="img" aria-label="bar chart">'
    ]
    for index, (label, value) in enumerate(rows):
        y = index * row_h + 2
        w = max(bar_max * value / peak, 1.0)
        parts.append(
            f"<g><title>{_e(_clip(label, 500))}: {_count(value)}</title>"
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{_e(_clip(label, LABEL_CHARS))}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 16}">{_count(value)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


# Sections


def _header(report: Mapping[str, Any]) -> str:
    lines, period = report["lines"], report["period"]
    files = ", ".join(f"<code>{_e(name)}</code>" for name in report["files"]) or "none"
    if period.get("first") and period.get("last"):
        span = f"{_e(period['first'])} to {_e(period['last'])}"
    else:
        span = "no requests"
    return (
        "<header><h1>gate audit</h1>"
        "<p>What gate would have done with these access logs, had it stood in front of the site.</p>"
        '<dl class="meta">'
        f"<dt>Log files</dt><dd>{files}</dd>"
        f"<dt>Period</dt><dd>{span}</dd>"
        f"<dt>Rules</dt><dd>{_e(report['rules'])}</dd>"
        f"<dt>Lines</dt><dd>{_count(lines['total'])} read, {_count(lines['parsed'])} parsed, "
        f"{_count(lines['malformed'])} malformed</dd>"
        f"<dt>Generated</dt><dd>{_e(report['generated'])}</dd>"
        "</dl></header>"
    )


def _summary(report: Mapping[str, Any], actions: Sequence[str], colours: Mapping[str, str]) -> str:
    totals, by_action, saved = report["totals"], report["by_action"], report["saved"]
    rows = []
    for action in actions:
        counts = by_action.get(action) or {}
        requests, size = counts.get("requests", 0), counts.get("bytes", 0)
        rows.append(
            (
                f'<span class="swatch" style="background:{colours[action]}"></span>{_e(action)}',
                _count(requests),
                _share(requests, totals["requests"]),
                _bytes(size),
                _share(size, totals["bytes"]),
            )
        )
    rows.append(
        (
            "all",
            _count(totals["requests"]),
            _share(totals["requests"], totals["requests"]),
            _bytes(totals["bytes"]),
            _share(totals["bytes"], totals["bytes"]),
        )
    )
    table = _table(("Action", "Requests", "Share", "Bytes", "Share"), rows, numeric=(1, 2, 3, 4), total=True)
    shares = (
        f"{100 * float(saved.get('requests_share') or 0):.1f}%",
        f"{100 * float(saved.get('bytes_share') or 0):.1f}%",
    )
    return (
        "<section><h2>What gate would have done</h2>" + table + '<h3>Upstream load saved</h3><div class="cards">'
        f'<div class="card">Requests not forwarded<b>{_count(saved["requests"])}</b>{shares[0]} of all requests</div>'
        f'<div class="card">Bytes not sent by the site<b>{_bytes(saved["bytes"])}</b>{shares[1]} of all bytes</div>'
        f'<div class="card">Unverified crawler claims<b>{_count(report["unverified_claims"])}</b>'
        "claimed a crawler's name, not verified</div></div>"
        '<p class="note">Load saved: the requests gate would have answered itself instead of passing them to the '
        "site, and the bytes the site sent for them.</p></section>"
    )


def _charts(report: Mapping[str, Any], actions: Sequence[str], action_colours: Mapping[str, str]) -> str:
    by_action, daily = _time_buckets(report["hourly"], "actions")
    by_class, _ = _time_buckets(report["hourly"], "classes")
    classes = _ranked_classes(report)
    if len(classes) > MAX_SERIES:
        kept = set(classes[: MAX_SERIES - 1])
        classes = [*classes[: MAX_SERIES - 1], "other"]
        for _, counts in by_class:
            other = sum(value for name, value in counts.items() if name not in kept)
            for name in [name for name in counts if name not in kept]:
                del counts[name]
            if other:
                counts["other"] = other
    class_colours = {
        name: (OTHER_COLOUR if name == "other" else PALETTE[i % len(PALETTE)]) for i, name in enumerate(classes)
    }
    unit = "day" if daily else "hour"
    return (
        f"<section><h2>Requests per {unit} by action</h2>"
        + _legend(action_colours)
        + _stacked_bars(by_action, action_colours, daily)
        + f"</section><section><h2>Requests per {unit} by agent class</h2>"
        + _legend(class_colours)
        + _stacked_bars(by_class, class_colours, daily)
        + "</section>"
    )


def _ranked_classes(report: Mapping[str, Any]) -> list[str]:
    totals: dict[str, float] = {}
    for name, counts in report["by_class"].items():
        totals[str(name)] = sum(float(value) for value in counts.values())
    for entry in report["hourly"]:
        for name in entry.get("classes") or {}:
            totals.setdefault(str(name), 0.0)
    return sorted(totals, key=lambda name: (-totals[name], name))


def _class_table(report: Mapping[str, Any], actions: Sequence[str]) -> str:
    rows = []
    for name in _ranked_classes(report):
        counts = report["by_class"].get(name) or {}
        total = sum(float(value) for value in counts.values())
        rows.append((_e(name), *(_count(counts.get(action, 0)) for action in actions), _count(total)))
    headers = ("Agent class", *(_e(action) for action in actions), "All")
    table = _table(headers, rows, numeric=range(1, len(actions) + 2))
    return f"<section><h2>Agent classes and actions</h2>{table}</section>"


def _agents(report: Mapping[str, Any]) -> str:
    agents = _table(
        ("Agent", "Class", "Requests", "Bytes", "Actions"),
        (
            (
                _e(a["agent"]),
                _e(a["agent_class"]),
                _count(a["requests"]),
                _bytes(a["bytes"]),
                _actions_text(a["actions"]),
            )
            for a in report["agents"]
        ),
        numeric=(2, 3),
    )
    crawlers = _table(
        ("AI crawler", "Requests", "Bytes", "Actions", "robots.txt violations"),
        (
            (
                _e(a["agent"]),
                _count(a["requests"]),
                _bytes(a["bytes"]),
                _actions_text(a["actions"]),
                _count(a.get("robots_violations", 0)),
            )
            for a in report["ai_crawlers"]
        ),
        numeric=(1, 2, 4),
    )
    return (
        f"<section><h2>Top agents</h2>{agents}</section>"
        f"<section><h2>AI crawlers</h2>{crawlers}"
        '<p class="note">A robots.txt violation is a request for a path the site\'s robots.txt (as gate would '
        "publish it) disallows for that crawler.</p></section>"
    )


def _networks(report: Mapping[str, Any]) -> str:
    table = _table(
        ("Network", "Requests (at least)", "Bytes (at least)", "Actions"),
        (
            (f"<code>{_e(n['network'])}</code>", _count(n["requests"]), _bytes(n["bytes"]), _actions_text(n["actions"]))
            for n in report["networks"]
        ),
        numeric=(1, 2),
    )
    return (
        f"<section><h2>Top networks</h2>{table}"
        '<p class="note">Counts per network are lower bounds: the audit counts networks approximately, so a '
        "network may have sent more requests than shown, never fewer.</p></section>"
    )


def _paths(report: Mapping[str, Any]) -> str:
    paths = report["paths"]
    return (
        "<section><h2>Top paths</h2>"
        f"<h3>Fetched by AI crawlers</h3>{_hbars(paths.get('ai') or [], 'path')}"
        f"<h3>Fetched by HTTP libraries</h3>{_hbars(paths.get('libraries') or [], 'path')}</section>"
    )


def _banned(report: Mapping[str, Any]) -> str:
    table = _table(
        ("Client", "Banned at", "Limit"),
        ((f"<code>{_e(b['ip'])}</code>", _e(b["at"]), _e(b["limit"])) for b in report["banned"]),
    )
    return f"<section><h2>Banned clients</h2>{table}</section>"


def _violators(report: Mapping[str, Any]) -> str:
    table = _table(
        ("Agent", "Network", "Violations"),
        (
            (_e(v["agent"]), f"<code>{_e(v['network'])}</code>", _count(v["violations"]))
            for v in report["robots_violators"]
        ),
        numeric=(2,),
    )
    return f"<section><h2>robots.txt violators</h2>{table}</section>"


def _malformed(report: Mapping[str, Any]) -> str:
    lines = report["lines"]
    samples = lines.get("malformed_samples") or []
    table = _table(
        ("File", "Line", "Reason", "Sample"),
        (
            (_e(s["file"]), _count(s["line"]), _e(s["reason"]), f"<code>{_e(_clip(s['sample'], SAMPLE_CHARS))}</code>")
            for s in samples
        ),
        numeric=(1,),
    )
    shown = f'<p class="note">{len(samples):,} of {_count(lines["malformed"])} shown</p>' if samples else ""
    return f"<section><h2>Malformed lines</h2>{shown}{table}</section>"
