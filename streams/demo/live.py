"""The demo's terminal view: a rich live screen on a TTY, plain progress lines otherwise.

>>> from streams.demo.tracker import RunState, Tracker
>>> state = RunState(total=4, tracker=Tracker(["reset", "keep"], [True, True], 10), started=0.0)
>>> print(progress_line(state, now=2.0))  # doctest: +NORMALIZE_WHITESPACE
[   2s] sent 0/4  outputs 0 (0/s)  lag -  accuracy reset -  keep -
dead letters 0  alerts 0  checkpoints -
"""

import time
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams.demo.tracker import AlertSeen, RunState

PLAIN_EVERY = 5.0
"""Seconds between progress lines without a TTY."""
REDRAW_EVERY = 0.25
"""Seconds between redraws of the live screen (and throughput samples)."""


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def describe(alert: AlertSeen, drifts: tuple[int, ...]) -> str:
    """One line for one drift alert, with its delay after the last true change if known.

    >>> describe(AlertSeen("keep", 0, 33474, 16735, "none", 0.012, 0.014), (16666, 33333))
    'keep: partition 0 offset 33,474, event 16,735 (69 after the change at 16,666), action none'
    """
    before = [d for d in drifts if d <= alert.row]
    where = f" ({alert.row - before[-1]:,} after the change at {before[-1]:,})" if before else ""
    return (f"{alert.model}: partition {alert.partition} offset {alert.offset:,}, "
            f"event {alert.row:,}{where}, action {alert.action}")


def progress_line(state: RunState, now: float) -> str:
    """One plain line with the run's figures, for logs."""
    t = state.tracker
    accuracy = "  ".join(f"{m} {_pct(t.rolling_accuracy(m))}" for m in t.models)
    return (f"[{now - state.started:4.0f}s] sent {state.sent:,}/{state.total:,}  "
            f"outputs {t.outputs:,} ({state.outputs_per_second():,.0f}/s)  "
            f"lag {_num(state.stats.lag)}  accuracy {accuracy}  "
            f"dead letters {sum(t.deadletters.values())}  alerts {len(t.alerts)}  "
            f"checkpoints {_num(state.stats.checkpoints)}")


def screen(state: RunState, title: str, now: float) -> RenderableType:
    """The live screen: throughput, models, dead letters, alerts, checkpoints."""
    t = state.tracker
    head = Text.assemble(
        (f"{title}\n", "bold"),
        f"{now - state.started:.0f} s   sent {state.sent:,} / {state.total:,}   "
        f"processed {t.outputs:,} ({state.outputs_per_second():,.0f} events/s)   "
        f"consumer lag {_num(state.stats.lag)}   "
        f"checkpoints written {_num(state.stats.checkpoints)}")
    models = Table(title="models", title_justify="left", expand=False)
    for column in ("model", f"rolling accuracy (last {t.recent[t.models[0]].maxlen})",
                   "predictions", "learned (version)", "resets", "checkpoint offsets"):
        models.add_column(column, justify="left" if column == "model" else "right")
    for m in t.models:
        stats = state.stats.models.get(m)
        models.add_row(m, _pct(t.rolling_accuracy(m)), f"{t.predictions[m]:,}",
                       _num(stats.version if stats else None),
                       _num(stats.resets if stats else None),
                       ", ".join(f"p{p}@{o:,}" for p, o in sorted(stats.checkpoint_offsets.items()))
                       if stats and stats.checkpoint_offsets else "-")
    dead = Table(title="dead letters", title_justify="left")
    dead.add_column("reason")
    dead.add_column("count", justify="right")
    for reason, count in sorted(t.deadletters.items()):
        dead.add_row(reason, str(count))
    alerts = Table(title=f"drift alerts ({len(t.alerts)})", title_justify="left")
    alerts.add_column("as they happened (latest 6)")
    for alert in t.alerts[-6:]:
        alerts.add_row(describe(alert, state.drifts))
    return Group(head, models, dead, alerts)


class LiveView:
    """Draws ``state`` on ``console``: a live screen on a TTY, else a line every few
    seconds plus one per drift alert. Use as a context manager; call :meth:`tick` often."""

    def __init__(self, console: Console, state: RunState, title: str) -> None:
        self.console = console
        self.state = state
        self.title = title
        self.live: Live | None = None
        self._next_line = 0.0
        self._next_draw = 0.0
        self._alerts_shown = 0

    def __enter__(self) -> "LiveView":
        if self.console.is_terminal:
            self.live = Live(console=self.console, auto_refresh=False, transient=False)
            self.live.__enter__()
        self._next_line = time.monotonic() + PLAIN_EVERY
        return self

    def tick(self) -> None:
        """Sample the throughput and redraw (or print a line when one is due)."""
        now = time.monotonic()
        if now < self._next_draw:
            return
        self._next_draw = now + REDRAW_EVERY
        self.state.sample(now)
        if self.live is not None:
            self.live.update(screen(self.state, self.title, now), refresh=True)
            return
        for alert in self.state.tracker.alerts[self._alerts_shown:]:
            self.console.print(f"drift alert {describe(alert, self.state.drifts)}",
                               highlight=False, soft_wrap=True)
        self._alerts_shown = len(self.state.tracker.alerts)
        if now >= self._next_line:
            self.console.print(progress_line(self.state, now), highlight=False, soft_wrap=True)
            self._next_line = now + PLAIN_EVERY

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:  # the final figures, drawn or printed once more
            self._next_draw = self._next_line = 0.0
            self.tick()
        if self.live is not None:
            self.live.__exit__(kind, error, tb)
