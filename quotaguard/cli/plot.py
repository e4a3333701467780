"""``quotaguard report --plot``: the series as a PNG or SVG, with matplotlib (extra ``plot``).

matplotlib is imported here only, when a plot is asked for: without the extra every other
part of ``report`` works, and ``--plot`` says what to install in one line. One panel per
budget, 800 px wide: the committed spend as a step line, ``used`` now as a dot, the limit,
the forecast line from now, and the window's reset.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from quotaguard._extras import missing
from quotaguard.cli.chart import Series, forecast_at
from quotaguard.cli.output import short_key

__all__ = ["FORMATS", "render", "require_matplotlib"]

#: The file suffixes ``--plot`` writes.
FORMATS = (".png", ".svg")
_WIDTH_IN, _DPI, _PANEL_IN = 8.0, 100, 2.8


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the file-only backend, or the missing extra's error."""
    try:
        import matplotlib
    except ImportError:
        raise missing("plot", "quotaguard report --plot") from None
    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def render(series: Sequence[Series], path: Path) -> None:
    """Draw every series into ``path`` (its suffix picks PNG or SVG), 800 px wide."""
    plt = require_matplotlib()
    import matplotlib.dates as mdates

    rows = max(1, len(series))
    fig, axes = plt.subplots(
        rows, 1, figsize=(_WIDTH_IN, _PANEL_IN * rows), dpi=_DPI, squeeze=False
    )
    try:
        for ax, s in zip(axes[:, 0], series, strict=False):
            _panel(ax, s, mdates)
        if not series:
            axes[0, 0].text(0.5, 0.5, "no budgets", ha="center", va="center")
            axes[0, 0].set_axis_off()
        fig.tight_layout()
        fig.savefig(path, format=path.suffix.lstrip("."), metadata=_metadata(path))
    finally:
        plt.close(fig)


def _metadata(path: Path) -> dict[str, Any]:
    # No timestamps or versions in the file: the same data draws the same bytes.
    return {"Software": None} if path.suffix == ".png" else {"Date": None, "Creator": None}


def _panel(ax: Any, s: Series, mdates: Any) -> None:
    f, state = s.forecast, s.state
    limit, now = float(state.limit), state.at
    times = [at for at, _ in s.points] + [now]
    spent = [float(v) for _, v in s.points] + [float(s.points[-1][1])]
    ax.step(times, spent, where="post", color="tab:blue", linewidth=2, label="committed")
    ax.plot([now], [float(state.used)], "o", color="tab:blue", label="used now")
    ends = [now, s.end]
    if f.runs_out_at is not None and f.runs_out_at < s.end:
        ends = [now, f.runs_out_at]
    ax.plot(
        ends,
        [float(forecast_at(f, t)) for t in ends],
        linestyle="--",
        color="tab:orange",
        linewidth=2,
        label=f"forecast ({_floor(f.rate_per_day)} {s.unit}/day)",
    )
    ax.axhline(limit, color="tab:red", linewidth=1.5, label=f"limit {state.limit} {s.unit}")
    if f.resets_at is not None and f.resets_at <= s.end:
        ax.axvline(f.resets_at, color="grey", linestyle=":", label="window resets")
    ax.axvline(now, color="grey", linewidth=0.8)
    ax.set_xlim(s.start, s.end)
    ax.set_ylim(0, max(limit, float(state.used)) * 1.15 or 1)
    ax.set_title(f.line(short_key(s.key, 40)), fontsize=9, loc="left")
    ax.set_ylabel(f"{'seconds' if s.unit == 'seconds' else s.unit} used")
    ax.set_xlabel("time (UTC)")
    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=7, framealpha=0.9)


def _floor(amount: Decimal) -> Decimal:
    """To the cent, down: as the forecast's own line words its rate."""
    return amount.quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
