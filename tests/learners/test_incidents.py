"""Incidents: grouping by event time, deterministic ids, idempotent merges (hypothesis)."""

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from learners.incidents import absorb, incident_id

WINDOW = 600_000


def alert(partition: int, offset: int, event_time: int, signal: str = "error",
          feature: str | None = None) -> dict:
    return {"model": "m", "partition": partition, "offset": offset, "signal": signal,
            "feature": feature, "detector": "ADWIN", "event_id": f"e{offset}",
            "event_time": event_time, "mean_before": 0.1, "mean_after": 0.4}


def run(alerts: list[dict]) -> tuple[list[dict], list[dict]]:
    incidents: list[dict] = []
    published = []
    for a in alerts:
        incidents, out = absorb(incidents, a, WINDOW)
        if out is not None:
            published.append(out)
    return incidents, published


alerts_strategy = st.lists(
    # Event times over 4 windows: fewer incidents than KEEP, so none is evicted.
    st.builds(alert, st.integers(0, 11), st.integers(0, 10**6), st.integers(0, 4 * WINDOW),
              st.sampled_from(["error", "feature", "prediction"]),
              st.sampled_from([None, "x0", "x1"])),
    max_size=40)


@given(alerts_strategy)
@settings(max_examples=200, deadline=None)
def test_replaying_the_same_alerts_publishes_nothing_new(alerts):
    incidents, _ = run(alerts)
    again, republished = incidents, []
    for a in alerts:  # an at-least-once consumer sees them all a second time
        again, out = absorb(again, a, WINDOW)
        if out is not None:
            republished.append(out)
    assert republished == []
    assert again == incidents


@given(alerts_strategy)
@settings(max_examples=200, deadline=None)
def test_every_distinct_alert_is_in_one_incident_anchored_within_the_window(alerts):
    incidents, published = run(alerts)
    distinct = {(a["partition"], a["offset"], a["signal"], a["feature"]): a for a in alerts}
    # Older incidents fall out beyond KEEP, so check those still kept.
    listed = [(d["partition"], d["offset"], d["signal"], d["feature"])
              for i in incidents for d in i["detections"]]
    assert len(listed) == len(set(listed))
    for incident in incidents:
        first = incident["detections"][0]
        assert incident["incident_id"] == incident_id("m", first)
        assert incident["first_event_time"] == first["event_time"]
        for d in incident["detections"]:
            assert abs(d["event_time"] - incident["first_event_time"]) <= WINDOW
        assert incident["partitions"] == sorted({d["partition"] for d in incident["detections"]})
        assert incident["version"] == incident["n_alerts"] == len(incident["detections"])
    assert set(listed) <= set(distinct)
    # Each publication of an id has a higher version than the one before.
    versions: dict[str, int] = {}
    for p in published:
        assert p["version"] > versions.get(p["incident_id"], 0)
        versions[p["incident_id"]] = p["version"]


@given(st.integers(1, 12), st.integers(0, 10**9), st.randoms())
def test_alerts_of_one_change_on_many_partitions_are_one_incident(partitions, start, rng):
    alerts = [alert(p, rng.randrange(10**5), start + rng.randrange(WINDOW))
              for p in range(partitions)]
    incidents, published = run(alerts)
    assert len(incidents) == 1
    assert {p["incident_id"] for p in published} == {incident_id("m", alerts[0])}
    assert incidents[0]["partitions"] == list(range(partitions))
    assert [p["version"] for p in published] == list(range(1, partitions + 1))


def test_two_changes_far_apart_are_two_incidents():
    rng = random.Random(4)
    first = [alert(p, 100 + p, 1_000_000 + rng.randrange(60_000)) for p in range(6)]
    second = [alert(p, 5_000 + p, 90_000_000 + rng.randrange(60_000)) for p in range(6)]
    incidents, published = run(first + second)
    assert len(incidents) == 2
    assert len({p["incident_id"] for p in published}) == 2
    assert [i["partitions"] for i in incidents] == [list(range(6))] * 2


def test_a_late_alert_joins_the_incident_of_its_own_time():
    early = [alert(0, 10, 1_000), alert(1, 11, 2_000)]
    late = [alert(2, 500, 50_000_000)]
    straggler = alert(3, 12, 3_000)  # arrives after the second incident opened
    incidents, _ = run([*early, *late, straggler])
    assert [i["partitions"] for i in incidents] == [[0, 1, 3], [2]]


def test_ids_name_the_first_alert_whole():
    ids = {incident_id(m, alert(p, o, t, s, f)) for m, p, o, t, (s, f) in itertools.product(
        "ab", (0, 1), (5, 6), (0, 1), (("error", None), ("feature", "x"), ("feature", "y")))}
    assert len(ids) == 2 * 2 * 2 * 2 * 3
    assert incident_id("m", alert(0, 5, 0)) == incident_id("m", {**alert(0, 5, 0),
                                                                  "mean_after": 0.9})


def test_one_offset_seen_again_far_later_is_another_incident_with_another_id():
    # the same partition and offset at another time (a recreated topic): two incidents
    incidents, published = run([alert(0, 0, 0), alert(0, 0, 0), alert(0, 0, WINDOW + 1, "feature",
                                                                     "x0")])
    assert len(incidents) == 2 and len({i["incident_id"] for i in incidents}) == 2
    assert [p["version"] for p in published] == [1, 1]
