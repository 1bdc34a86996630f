"""The distribution of scores for the class summary: histograms and the late policy's counts.

:func:`section` returns the HTML of ``summary.html``'s "Distribution of scores" part, from the grade
rows of :func:`grading.autograde.feedback.scores`: a histogram of the totals (after the late penalty)
and one per question (matplotlib PNGs embedded as data URIs, so the page stays one file), then a
table counting on-time and late submissions, penalties at the cap, points deducted, extensions,
overridden times, and every policy flag raised (late policy and any other: ``StudentResult.flags``).
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter

from course.registry import load as load_registry

__all__ = ["histogram_figure", "histogram_png", "late_counts", "section"]


def histogram_figure(values: list[float], top: float, title: str):
    """A small histogram of ``values`` on [0, ``top``] (a matplotlib ``Figure``, no pyplot); the axis
    of students has whole-number ticks only."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(4.2, 2.4), dpi=90)
    ax = fig.add_subplot()
    bins = max(1, min(20, int(top))) if top > 0 else 1
    ax.hist(values, bins=bins, range=(0, max(top, max(values, default=0), 1e-9)), color="#4a7ab5",
            edgecolor="white")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("points", fontsize=8)
    ax.set_ylabel("students", fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def histogram_png(values: list[float], top: float, title: str) -> bytes:
    """:func:`histogram_figure` as PNG bytes (matplotlib's Agg canvas)."""
    buf = io.BytesIO()
    histogram_figure(values, top, title).savefig(buf, format="png")
    return buf.getvalue()


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def late_counts(rows: list[dict]) -> dict:
    """Counts of the late policy and the flags over the grade rows."""
    late = [r for r in rows if r.get("late_days", 0) > 0]
    flags = Counter(f for r in rows for f in r.get("flags", []))
    return {"submissions": len(rows), "on time": len(rows) - len(late), "late": len(late),
            "penalty at the cap": sum(1 for r in late if r.get("late_capped")),
            "points deducted": round(sum(r.get("late_penalty", 0.0) for r in rows), 2),
            "extensions": sum(1 for r in rows if r.get("extension")),
            "times set by the overrides file": sum(1 for r in rows if r.get("time_source", "").startswith("overrides")),
            "flags": flags}


def section(rows: list[dict]) -> str:
    """The HTML section: histograms of totals and per question, the late policy's counts, the flags."""
    points = load_registry()
    extra = sum(q.points for q in points.questions.values() if q.extra_credit)
    parts = ["<h2>Distribution of scores</h2>"]
    if not rows:
        return parts[0] + "<p class='muted'>No grades yet.</p>"
    totals = [r["total"] for r in rows]
    parts.append(_img(histogram_png(totals, points.max_total + extra, "total (after late penalties)"), "totals"))
    for q, question in points.questions.items():
        parts.append(_img(histogram_png([r[q] for r in rows], question.points, f"{q} {question.title}"), q))
    counts = late_counts(rows)
    by_days = Counter(r.get("late_days", 0) for r in rows if r.get("late_days", 0) > 0)
    parts.append("<h2>Late policy and flags</h2><table><tr><th>what</th><th>count</th></tr>")
    for key, value in counts.items():
        if key != "flags":
            parts.append(f"<tr><td>{html.escape(key)}</td><td>{value:g}</td></tr>")
    for days, n in sorted(by_days.items()):
        parts.append(f"<tr><td>{days} day(s) late</td><td>{n}</td></tr>")
    parts.append("</table>")
    if counts["flags"]:
        parts.append("<table><tr><th>flag</th><th>students</th></tr>" + "".join(
            f"<tr><td>{html.escape(f)}</td><td>{n}</td></tr>" for f, n in counts["flags"].most_common()) + "</table>")
    else:
        parts.append("<p class='ok'>No policy flags.</p>")
    return "\n".join(parts)
