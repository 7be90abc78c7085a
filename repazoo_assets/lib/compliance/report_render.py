"""The compliance report as Markdown, with an SVG chart embedded as a `data:` image.

The Dagster UI renders Markdown metadata, images with `data:` URIs included; no plotting library
is needed for two panels of bars. Everything drawn or written comes from a `ComplianceDay`,
which holds counts, durations and known kinds only.
"""

from __future__ import annotations

import base64
from datetime import UTC
from html import escape

from repazoo_assets.lib.compliance.report import ComplianceDay

COLOURS = {
    "exports": "#2563eb",
    "failed": "#dc2626",
    "erasure": "#7c3aed",
    "retention": "#0d9488",
    "pii": "#d97706",
    "alerts": "#be123c",
    "consent": "#4b5563",
    "latency": "#2563eb",
}


def duration(seconds: float | None) -> str:
    """A short human duration: 0.8 s, 42 s, 3 min 05 s, 2 h 07 min, 1 d 4 h."""
    if seconds is None:
        return "–"
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _md(name: str) -> str:
    """A kind, status or rule name as code: no Markdown inside it is interpreted."""
    return f"`{name.replace('`', '')}`"


# --- chart --------------------------------------------------------------------------------------
def chart_bars(report: ComplianceDay) -> list[tuple[str, int, str]]:
    """(label, count, colour) of the day's counts, in the order drawn."""
    check = report.pii_check
    bars = [
        ("exports served", report.exports.served, COLOURS["exports"]),
        ("exports failed", report.exports.failed, COLOURS["failed"]),
        ("erasures", report.erasures.entries, COLOURS["erasure"]),
        ("retention deletions", report.retention.deleted, COLOURS["retention"]),
        ("tweets redacted", report.pii.tweets_redacted, COLOURS["pii"]),
        ("PII items redacted", report.pii.items, COLOURS["pii"]),
    ]
    if check is not None:
        bars.append(("PII check failures", check.failed, COLOURS["failed"]))
    bars += [
        ("alerts", report.alert_count, COLOURS["alerts"]),
        ("consent changes", report.consent_changes, COLOURS["consent"]),
    ]
    return bars


def _label(left: float, y: float, text: str) -> str:
    return f'<text x="{left - 6}" y="{y + 12}" text-anchor="end" fill="#374151">{escape(text)}</text>'


def _value(end: float, y: float, text: str) -> str:
    return f'<text x="{end + 4:.1f}" y="{y + 12}" fill="#111827">{escape(text)}</text>'


def chart_svg(report: ComplianceDay) -> str:
    """Counts by category (horizontal bars, each labelled with its number) and, below, the
    exports' latency p50 / p95 / max."""
    bars = chart_bars(report)
    x = report.exports
    latency = [("p50", x.p50_seconds), ("p95", x.p95_seconds), ("max", x.max_seconds)]
    width, left, right, row = 640, 150, 80, 20
    top = 34
    counts_bottom = top + row * len(bars)
    latency_top = counts_bottom + 36
    height = latency_top + row * len(latency) + 12
    span = width - left - right
    most = max([n for _, n, _ in bars] + [1])
    slowest = max([v or 0.0 for _, v in latency] + [0.0]) or 1.0

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold" fill="#1f2937">'
        f"Compliance, {escape(report.day.isoformat())} (UTC)</text>",
        f'<line x1="{left}" y1="{top - 4}" x2="{left}" y2="{counts_bottom}" stroke="#d1d5db"/>',
    ]
    for i, (label, n, colour) in enumerate(bars):
        y = top + i * row
        # Any non-zero count stays visible however large the others are.
        w = 0.0 if not n else max(2.0, n / most * span)
        parts.append(_label(left, y, label))
        if w:
            parts.append(
                f'<rect class="count" x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" '
                f'fill="{colour}"/>'
            )
        parts.append(_value(left + w, y, str(n)))
    parts.append(
        f'<text x="{left}" y="{latency_top - 10}" font-weight="bold" fill="#1f2937">'
        f"Export latency, request to completion ({report.exports.served} served)</text>"
    )
    for i, (label, seconds) in enumerate(latency):
        y = latency_top + i * row
        w = 0.0 if not seconds else max(2.0, seconds / slowest * span)
        parts.append(_label(left, y, label))
        if w:
            parts.append(
                f'<rect class="latency" x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" '
                f'fill="{COLOURS["latency"]}" fill-opacity="{0.45 + 0.25 * i:.2f}"/>'
            )
        parts.append(_value(left + w, y, duration(seconds)))
    parts.append("</svg>")
    return "".join(parts)


def chart_markdown(report: ComplianceDay) -> str:
    svg = base64.b64encode(chart_svg(report).encode()).decode()
    alt = f"Compliance counts and export latency, {report.day.isoformat()} UTC"
    return f"![{alt}](data:image/svg+xml;base64,{svg})"


# --- Markdown -----------------------------------------------------------------------------------
def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in r) + " |" for r in rows]
    return lines


def _counts(header: tuple[str, str], counts: dict[str, int]) -> list[str]:
    return _table(header, [(_md(name), n) for name, n in counts.items()])


def _exports(report: ComplianceDay) -> list[str]:
    x = report.exports
    lines = ["## Data exports", ""]
    lines.append(
        f"{x.completed} completed this day: **{x.served} served**, {x.failed} failed. "
        f"{x.requested} requested this day, {x.still_open} of them still pending or running when this "
        "report was made."
    )
    if x.completed_by_status:
        lines += ["", *_counts(("status now", "completed"), x.completed_by_status)]
    lines += ["", "Latency, request to completion, of the exports served:", ""]
    lines += _table(
        ("p50", "p95", "max"), [(duration(x.p50_seconds), duration(x.p95_seconds), duration(x.max_seconds))]
    )
    return lines


def _erasures(report: ComplianceDay) -> list[str]:
    e = report.erasures
    lines = ["## Erasures", "", f"**{e.entries}** erasures recorded in the audit log"]
    if e.entries:
        outcomes = ", ".join(f"{n} {o}" for o, n in e.by_outcome.items())
        lines[-1] += f" ({outcomes}); {_n(e.rows, 'row')} and {_n(e.objects, 'object')} deleted."
        if e.rows_by_table:
            lines += ["", *_counts(("table", "rows deleted"), e.rows_by_table)]
    else:
        lines[-1] += "."
    return lines


def _retention(report: ComplianceDay) -> list[str]:
    r = report.retention
    lines = [
        "## Retention deletions", "",
        f"**{r.deleted}** rows and objects deleted in {_n(r.runs, 'retention run')}.",
    ]
    if r.runs:
        lines += ["", *_counts(("rule", "deleted"), r.by_rule)]
    return lines


def _pii(report: ComplianceDay) -> list[str]:
    p, check = report.pii, report.pii_check
    lines = [
        "## PII checks",
        "",
        f"**{p.tweets_redacted}** tweets sanitized for the first time, {p.tweets_with_pii} of them with "
        f"personal data redacted ({p.items} items).",
    ]
    if p.items_by_kind:
        lines += ["", *_counts(("kind", "items redacted"), p.items_by_kind)]
    lines.append("")
    if check is None:
        lines.append(
            "Evaluations of the `sanitized_tweets_pii_free` check: not available from this Dagster instance."
        )
    else:
        lines.append(
            f"Evaluations of the blocking `sanitized_tweets_pii_free` check: {check.evaluations}, "
            f"**{check.passed} passed**, **{check.failed} failed**."
        )
    return lines


def _alerts(report: ComplianceDay) -> list[str]:
    lines = ["## Alerts", "", f"**{report.alert_count}** alerts raised."]
    if report.alerts:
        rows = [(_md(c), _md(s), n) for (c, s), n in report.alerts.items()]
        lines += ["", *_table(("check", "severity", "alerts"), rows)]
    return lines


def _consent(report: ComplianceDay) -> list[str]:
    lines = ["## Consent changes", "", f"**{report.consent_changes}** consent changes recorded."]
    if report.consent_by_action:
        by_source = ", ".join(f"{_md(s)} {n}" for s, n in report.consent_by_source.items())
        lines += ["", *_counts(("action", "changes"), report.consent_by_action)]
        lines += ["", f"By source: {by_source}."]
    return lines


def render_markdown(report: ComplianceDay) -> str:
    lines = [
        f"# Compliance report, {report.day.isoformat()} (UTC)",
        "",
        chart_markdown(report),
        "",
    ]
    for section in (_exports, _erasures, _retention, _pii, _alerts, _consent):
        lines += section(report) + [""]
    lines.append(
        f"_Counts, durations and kinds only; tables as they stood at "
        f"{report.generated_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M')} UTC._"
    )
    return "\n".join(lines)
