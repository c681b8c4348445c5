"""BatchHistogram exposes what prometheus_client's Histogram would for the same values."""

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.batch_histogram import BatchHistogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
seconds = st.one_of(st.floats(min_value=0.0, max_value=30.0), st.sampled_from(BUCKETS))


def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    text = generate_latest(registry).decode()
    return {(s.name, s.labels.get("le", "")): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if not s.name.endswith("_created")}


@given(st.lists(st.lists(seconds, max_size=30), max_size=5))
def test_same_exposition_as_prometheus_client(batches):
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batched = BatchHistogram("lat_seconds", "Latency.", BUCKETS, ours)
    reference = Histogram("lat_seconds", "Latency.", buckets=BUCKETS, registry=theirs)
    for batch in batches:
        batched.observe_many(batch)
        for value in batch:
            reference.observe(value)
    got, want = samples(ours), samples(theirs)
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key[0] == "lat_seconds_sum":
            assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-12)
        else:
            assert got[key] == value, key
