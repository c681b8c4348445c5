"""The demo's final figures: counts, alerts against the true drifts, accuracy around them.

Pure: computed from the stream sent and the :class:`~streams.demo.tracker.Tracker`.

Alerts are per (model, partition): each partition has its own learner and ADWIN, so with
P partitions one change raises up to P alerts. Each model's alerts are therefore grouped
per true drift: those whose event lies within :func:`alert_window` rows after the change
(and before the next one) detect it; the first gives the detection delay.

>>> from streams.demo.tracker import AlertSeen
>>> a = AlertSeen("m", 0, 130, 130, "reset", 0.01, 0.2)
>>> detection(a, drifts=(100, 200), window=50)
(0, 30)
>>> accuracy([True, False, None, True], 0, 4)
0.6666666666666666
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

from streams.demo.dataset import DemoStream
from streams.demo.tracker import AlertSeen, Tracker


def base_window(n: int) -> int:
    """Events one learner needs to notice a change: ADWIN, then 400 events to confirm a
    rise (at least 1,000; 4 % of a long stream). Also the span of the accuracy before /
    after each change.

    >>> base_window(15_000), base_window(50_000)
    (1000, 2000)
    """
    return max(1000, n // 25)


def alert_window(n: int, partitions: int = 1, label_delay: int = 0) -> int:
    """Stream rows after a true change within which an alert is taken to detect it.

    Derivation: each (model, partition) learner needs about :func:`base_window` of *its
    own* events to alert. Rows are spread over ``partitions`` partitions, so those are
    ``base_window * partitions`` stream rows. With late labels a row's error is only known
    when its label comes, ``label_delay`` stream rows later, so every alert comes that
    much later still.

    >>> alert_window(15_000), alert_window(15_000, partitions=3, label_delay=300)
    (1000, 3300)
    """
    return base_window(n) * partitions + label_delay


def detection(alert: AlertSeen, drifts: tuple[int, ...], window: int) -> tuple[int, int] | None:
    """(drift index, delay in rows) when ``alert`` detects a true drift, else None."""
    for k, start in enumerate(drifts):
        end = start + window
        if k + 1 < len(drifts):
            end = min(end, drifts[k + 1])
        if start <= alert.row < end:
            return k, alert.row - start
    return None


def accuracy(correct: list[bool | None], lo: int, hi: int) -> float | None:
    """Share of correct predictions among rows ``lo:hi`` that have one (None if none)."""
    seen = [c for c in correct[max(0, lo):hi] if c is not None]
    return sum(seen) / len(seen) if seen else None


@dataclass
class DriftReport:
    """One true drift, per model: its partition alerts, the first one's delay, accuracy."""

    row: int
    alerts: dict[str, int] = field(default_factory=dict)
    first_offset: dict[str, str | None] = field(default_factory=dict)
    delay: dict[str, int | None] = field(default_factory=dict)
    before: dict[str, float | None] = field(default_factory=dict)
    after: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Summary:
    """Everything the demo reports at the end (also written as JSON).

    ``events_sent``: messages sent to the events topic (rows x models, plus the malformed
    ones); ``labels_sent``: late labels sent to the feedback topic (0 without
    ``--label-delay``); ``labels_matched``: per model, the feedback the worker joined with
    its prediction (its ``/models`` feedback totals, None if it did not say). ``window``:
    events of accuracy before / after each change; ``alert_window``: see
    :func:`alert_window`.
    """

    dataset: str
    rows: int
    models: list[str]
    events_sent: int
    labels_sent: int
    labels_matched: dict[str, int | None]
    malformed_sent: dict[str, int]
    predictions: dict[str, int]
    deadletters: dict[str, int]
    accuracy: dict[str, float | None]
    drifts: list[DriftReport]
    other_alerts: list[dict[str, Any]]
    window: int
    alert_window: int
    seconds: float
    png: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``summary.json``."""
        return asdict(self)


def summarize(stream: DemoStream, tracker: Tracker, malformed_sent: dict[str, int],
              events_sent: int, seconds: float, partitions: int = 1, label_delay: int = 0,
              labels_sent: int = 0, labels_matched: dict[str, int | None] | None = None,
              ) -> Summary:
    """Compare what came out with what was sent (``partitions`` and ``label_delay`` as
    given to the demo: they widen :func:`alert_window`)."""
    n = len(stream.rows)
    window = base_window(n)
    within = alert_window(n, partitions, label_delay)
    drifts = [DriftReport(row=d) for d in stream.drifts]
    other: list[dict[str, Any]] = []
    for model in tracker.models:
        correct = tracker.correct[model]
        for k, report in enumerate(drifts):
            mine = [a for a in tracker.alerts if a.model == model
                    and (hit := detection(a, stream.drifts, within)) and hit[0] == k]
            first = min(mine, key=lambda a: a.row, default=None)
            report.alerts[model] = len(mine)
            report.first_offset[model] = None if first is None else \
                f"{first.partition}:{first.offset}"
            report.delay[model] = None if first is None else first.row - report.row
            report.before[model] = accuracy(correct, report.row - window, report.row)
            report.after[model] = accuracy(correct, report.row, report.row + window)
    for a in sorted(tracker.alerts, key=lambda a: a.row):
        if detection(a, stream.drifts, within) is None:
            other.append({"model": a.model, "partition": a.partition, "offset": a.offset,
                          "row": a.row, "action": a.action})
    return Summary(
        dataset=stream.name, rows=n, models=list(tracker.models), events_sent=events_sent,
        labels_sent=labels_sent,
        labels_matched=(labels_matched or dict.fromkeys(tracker.models)) if labels_sent
        else {}, malformed_sent=malformed_sent, predictions=dict(tracker.predictions),
        deadletters=dict(tracker.deadletters),
        accuracy={m: accuracy(tracker.correct[m], 0, n) for m in tracker.models},
        drifts=drifts, other_alerts=other, window=window, alert_window=within,
        seconds=seconds)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def tables(summary: Summary) -> list[Table]:
    """The summary as rich tables: counts, then alerts and accuracy per true drift."""
    counts = Table(title=f"demo summary: {summary.dataset}, {summary.rows:,} events, "
                         f"{summary.seconds:.0f} s", title_justify="left")
    counts.add_column("what")
    counts.add_column("sent", justify="right")
    counts.add_column("came out", justify="right")
    models = len(summary.models)
    counts.add_row(f"events x {models} models", f"{summary.rows * models:,}",
                   f"{sum(summary.predictions.values()):,} predictions")
    for model in summary.models:
        counts.add_row(f"  {model}", f"{summary.rows:,}",
                       f"{summary.predictions.get(model, 0):,} predictions, accuracy "
                       f"{_pct(summary.accuracy.get(model))}")
    if summary.labels_sent:
        matched = [v for v in summary.labels_matched.values() if v is not None]
        counts.add_row("late labels (feedback topic)", f"{summary.labels_sent:,}",
                       f"{sum(matched):,} matched" if matched else "-")
        for model in summary.models:
            got = summary.labels_matched.get(model)
            counts.add_row(f"  {model}", "", "-" if got is None else f"{got:,} matched")
    reasons = sorted(set(summary.malformed_sent) | set(summary.deadletters))
    counts.add_row("malformed messages", f"{sum(summary.malformed_sent.values())}",
                   f"{sum(summary.deadletters.values())} dead letters")
    for reason in reasons:
        counts.add_row(f"  {reason}", str(summary.malformed_sent.get(reason, 0)),
                       str(summary.deadletters.get(reason, 0)))
    alerts = len(summary.other_alerts) + sum(sum(r.alerts.values()) for r in summary.drifts)
    counts.add_row("drift alerts", "", f"{alerts} (one per model and partition that "
                   "saw a change)" if alerts else "none")
    out = [counts]
    if summary.drifts:
        drifts = Table(title=f"true drifts: alerts within {summary.alert_window:,} events after "
                             f"each change; accuracy over {summary.window:,} events before / after",
                       title_justify="left",
                       caption="partition alerts: each (model, partition) has its own learner "
                               "and ADWIN, so one change can raise one alert per partition",
                       caption_justify="left")
        for column in ("true drift at", "model", "partition alerts", "first at (p:offset)",
                       "delay (events)", "accuracy before", "accuracy after"):
            drifts.add_column(column, justify="left" if column == "model" else "right")
        for report in summary.drifts:
            for model in summary.models:
                delay = report.delay[model]
                drifts.add_row(f"{report.row:,}", model, str(report.alerts[model]),
                               report.first_offset[model] or "-",
                               "not detected" if delay is None else f"{delay:,}",
                               _pct(report.before[model]), _pct(report.after[model]))
        out.append(drifts)
    if summary.other_alerts:
        other = Table(title="other alerts (no true drift just before)" if summary.drifts
                      else "alerts (real data: no true drift points known)",
                      title_justify="left", min_width=60)
        for column in ("model", "partition", "offset", "event", "action"):
            other.add_column(column)
        for a in summary.other_alerts:
            other.add_row(a["model"], str(a["partition"]), f"{a['offset']:,}",
                          f"{a['row']:,}", a["action"])
        out.append(other)
    return out
