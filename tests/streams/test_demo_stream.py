"""The demo's promise, checked in-process: on the default stream, both shipped models alert
once per true drift, soon after it, and the resetting one recovers faster."""

import io

import pytest
from rich.console import Console

from streams.demo.dataset import load
from streams.demo.summary import accuracy, summarize, tables
from streams.demo.tracker import AlertSeen, Tracker
from tests.demo_reference import expected_run


@pytest.fixture(scope="module")
def default_run():
    return load("sea", 50_000, seed=42), expected_run("sea", 50_000)


def test_each_model_alerts_once_per_drift_soon_after_it(default_run):
    stream, runs = default_run
    assert stream.drifts == (16_666, 33_333)
    for alerts, _ in runs.values():
        assert len(alerts) == 2
        for alert, drift in zip(alerts, stream.drifts, strict=True):
            assert 0 <= alert - drift < 1000  # ADWIN, then 400 events to confirm the rise


def test_the_resetting_model_recovers_faster(default_run):
    stream, runs = default_run
    for drift in stream.drifts:
        after = {m: accuracy(correct, drift, drift + 2000) for m, (_, correct) in runs.items()}
        before = {m: accuracy(correct, drift - 2000, drift) for m, (_, correct) in runs.items()}
        assert after["reset"] > after["keep"] + 0.03
        assert min(before.values()) > 0.98 > max(after.values())


def test_late_labels_on_three_partitions_attribute_every_alert_to_its_drift():
    # The newcomer's run: --events 15000 --partitions 3 --label-delay 300 gave six
    # partition alerts 1,432 to 1,929 events after the true changes (5,000 and 10,000).
    stream = load("sea", 15_000, seed=42)
    assert stream.drifts == (5_000, 10_000)
    tracker = Tracker(["reset"], stream.labels, window=10)
    delays = {0: (1_432, 1_650, 1_929), 1: (1_500, 1_700, 1_900)}
    for k, drift in enumerate(stream.drifts):
        for partition, delay in enumerate(delays[k]):
            tracker.alerts.append(AlertSeen("reset", partition, 100 + partition, drift + delay,
                                            "reset", 0.05, 0.3))
    tracker.alerts.append(AlertSeen("reset", 0, 999, 13_400, "reset", 0.05, 0.3))  # too late

    summary = summarize(stream, tracker, {}, 30_000, 1.0, partitions=3, label_delay=300,
                        labels_sent=30_000, labels_matched={"reset": 15_000})
    assert summary.alert_window == 1_000 * 3 + 300
    assert [r.alerts["reset"] for r in summary.drifts] == [3, 3]
    assert [r.delay["reset"] for r in summary.drifts] == [1_432, 1_500]
    assert [r.first_offset["reset"] for r in summary.drifts] == ["0:100", "0:100"]
    assert [a["row"] for a in summary.other_alerts] == [13_400]
    assert (summary.events_sent, summary.labels_sent, summary.labels_matched) == (
        30_000, 30_000, {"reset": 15_000})

    # The old window (1,000 events after each change) called all six "not detected".
    old = summarize(stream, tracker, {}, 30_000, 1.0)
    assert [r.delay["reset"] for r in old.drifts] == [None, None]
    assert len(old.other_alerts) == 7

    text = render(summary)
    assert "alerts within 3,300 events after each change" in text
    assert "late labels (feedback topic)" in text and "15,000 matched" in text
    assert "not detected" not in text


def render(summary) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    for table in tables(summary):
        console.print(table)
    return console.export_text()
