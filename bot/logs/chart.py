"""The PNG chart Slack gets with ``/incident diag logs``: requests per minute
by status class, 5xx in red, detected spikes shaded."""

from __future__ import annotations

import io
from datetime import UTC

from bot.logs.report import LogReport

# Status classes bottom to top; 5xx last and red so the eye goes there.
_COLOURS = {"2xx": "#9ccc9c", "3xx": "#9ec5e8", "4xx": "#f2c27b", "1xx": "#cccccc", "5xx": "#d62728"}


def _days(seconds: float) -> float:
    """Matplotlib's date number: days since its epoch, 1970-01-01 UTC."""
    return seconds / 86400


def status_chart_png(report: LogReport, title: str) -> bytes:
    """A PNG of status classes over time; empty logs give a chart that says so."""
    # Imported here: matplotlib is heavy and only this chart needs it.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import dates as mdates
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 3.2), dpi=100)
    try:
        minutes = [_days(row.minute) for row in report.minutes]
        bottom = [0.0] * len(minutes)
        width = 1 / (24 * 60)  # one minute, in days
        for name, colour in _COLOURS.items():
            heights = [row.classes.get(name, 0) for row in report.minutes]
            if any(heights):
                axes.bar(minutes, heights, width=width, bottom=bottom, color=colour, label=name, align="edge")
                bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        for spike in report.spikes:
            start, end = _days(spike.spike.start), _days(spike.spike.end)
            axes.axvspan(start, end, color="#d62728", alpha=0.12, lw=0)
        if not minutes:
            axes.text(0.5, 0.5, "no requests", ha="center", va="center", transform=axes.transAxes)
        axes.set_title(title, fontsize=10, loc="left")
        axes.set_ylabel("requests / min", fontsize=8)
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
        axes.tick_params(labelsize=8)
        if minutes:
            axes.legend(fontsize=7, loc="upper left", ncols=5, frameon=False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)
