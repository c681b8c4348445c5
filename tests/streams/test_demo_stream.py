"""The demo's promise, checked in-process: on the default stream, both shipped models alert
once per true drift, soon after it, and the resetting one recovers faster."""

import pytest

from streams.demo.dataset import load
from streams.demo.summary import accuracy
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
