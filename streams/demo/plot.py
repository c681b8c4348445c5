"""The demo's picture: rolling accuracy per model over the stream, true drifts and alerts.

>>> rolling([True, True, False, None, True], 2)
[nan, 1.0, 0.5, 0.0, 1.0]
"""

import math
from pathlib import Path

from streams.demo.tracker import Tracker

_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def rolling(correct: list[bool | None], window: int) -> list[float]:
    """Accuracy over the last ``window`` rows at each row; rows without a prediction are
    left out, and the first ``window - 1`` rows (or windows with no prediction) are NaN."""
    out: list[float] = []
    hits = seen = 0
    for i, value in enumerate(correct):
        if value is not None:
            hits, seen = hits + value, seen + 1
        if i >= window and correct[i - window] is not None:
            hits, seen = hits - bool(correct[i - window]), seen - 1
        out.append(hits / seen if seen and i + 1 >= window else math.nan)
    return out


def draw(path: Path, tracker: Tracker, drifts: tuple[int, ...], actions: dict[str, str],
         title: str, window: int) -> Path:
    """Write the PNG to ``path`` (1000 x 480 pixels) and return ``path``.

    ``actions`` maps each model to its ``on_drift`` setting, shown in the legend.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=100)
    series = {m: rolling(tracker.correct[m], window) for m in tracker.models}
    low = min((v for s in series.values() for v in s if not math.isnan(v)), default=0.0)
    bottom = max(0.0, low - 0.05)
    top = 1.0 + 0.04 * (1.0 - bottom) * (len(tracker.models) + 1)  # a strip for the alerts
    for k, (model, colour) in enumerate(zip(tracker.models, _COLOURS, strict=False)):
        ax.plot(range(len(series[model])), series[model], color=colour, linewidth=1.4,
                label=f"{model} (on_drift = {actions.get(model, '?')})")
        mine = [a.row for a in tracker.alerts if a.model == model]
        strip = 1.0 + 0.04 * (1.0 - bottom) * (k + 1)
        ax.scatter(mine, [strip] * len(mine), marker="v", s=80, color=colour,
                   edgecolors="black", zorder=3, label=f"{model}: drift alert ({len(mine)})")
    for k, row in enumerate(drifts):
        ax.axvline(row, color="black", linestyle="--", linewidth=1,
                   label="true drift" if k == 0 else None)
    ax.axhline(1.0, color="grey", linewidth=0.5)
    ax.set_ylim(bottom, top)
    ax.set_xlim(0, len(tracker.labels))
    ax.set_xlabel("event (stream order)")
    ax.set_ylabel(f"accuracy over the last {window:,} events")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
