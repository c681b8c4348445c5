"""Issue 13 acceptance: late labels joined to the exact features scored, exactly once,
across kill -9 and a rebalance (real broker, real redis-server).

20,000 unlabelled SEA events over 3 partitions, then their labels on the feedback topic
50 to 5,000 events later (5% never sent, 3% sent twice, 1% unknown ids, 1% sent before
their event). Every record carries an explicit Kafka timestamp (10 ms per event), so
event time, and with it every TTL and grace decision, is fixed by the test:

- a label more than ``feedback_ttl`` (40 s = 4,000 events) after its event finds the
  prediction expired: it is held, then dead-lettered ``unmatched_feedback``;
- a label up to 50 events before its event is held and joined when the event comes;
- a final "clock" event per partition, 10 minutes of event time later (model ``clock``,
  so the tested model is untouched), lets every grace and TTL run out.

The worker processes a partition's events and feedback merged by record timestamp
(events first on a tie, then offset), which is the rule the test's expectations and
its reference model follow: a normal label is learned at its feedback's time, an early
one at its event's. Probe predictions afterwards must equal an in-process River model
that learned the matched labels in that order from the same features.
"""

import asyncio
import random
import signal
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from river import linear_model, preprocessing

from learners.learner import class_key
from schemas.outputs import Prediction
from streams.output import partition_for
from streams.sources import synthetic_events
from tests.helpers import wait_for
from tests.kafka_tools import consume_until, count, create_topic

pytestmark = pytest.mark.integration

N, PARTITIONS, STEP_MS = 20_000, 3, 10
# An hour ago: a fixed date would be older than the test broker's retention (24 h), which
# deletes the whole log mid-test, and Kafka refuses timestamps more than an hour ahead.
T0 = (int(time.time()) - 3600) * 1000
TTL_S, GRACE_S = 40, 60
TTL_MS = TTL_S * 1000
PROBES = 40
FAST_GROUP = {"DRIFTLINE_SESSION_TIMEOUT": "2", "DRIFTLINE_HEARTBEAT_INTERVAL": "0.5"}
MODELS = f"""
[models.default]
task = "classification"
pipeline = "preprocessing.StandardScaler() | linear_model.LogisticRegression()"
feedback_ttl = {TTL_S}

[models.clock]
task = "classification"
pipeline = "linear_model.LogisticRegression()"
"""


@dataclass
class Plan:
    """What the test sends and what it expects, computed from its own schedule."""

    # (timestamp ms, rank: 0 events / 1 feedback, sequence, topic suffix, partition, key, value)
    records: list[tuple[int, int, int, str, int, bytes, bytes]] = field(default_factory=list)
    expected: Counter[str] = field(default_factory=Counter)
    # per partition: (learn time, rank, sequence, features, label), sorted = learning order
    learns: dict[int, list[tuple[int, int, int, dict, bool]]] = field(
        default_factory=lambda: defaultdict(list))
    dead_letters: list[bytes] = field(default_factory=list)
    probes: dict[str, tuple[int, dict]] = field(default_factory=dict)

    def add(self, at: int, suffix: str, partition: int, key: bytes, message: dict) -> int:
        sequence = len(self.records)
        self.records.append((at, 0 if suffix == "events" else 1, sequence, suffix, partition,
                             key, orjson.dumps(message)))
        return sequence


def make_plan(seed: int) -> Plan:
    rng = random.Random(seed)
    plan = Plan()
    events = list(synthetic_events("sea", N, None, seed, "default"))
    kinds = ["never"] * (N * 5 // 100) + ["twice"] * (N * 3 // 100) + ["early"] * (N // 100)
    kinds += ["normal"] * (N - len(kinds))
    rng.shuffle(kinds)
    for i, (event, kind) in enumerate(zip(events, kinds, strict=True)):
        key = event["event_id"].encode()
        partition = partition_for(key, list(range(PARTITIONS)))
        event_at = T0 + STEP_MS * i
        label = event.pop("label")
        plan.add(event_at, "events", partition, key, event)
        feedback = {"event_id": event["event_id"], "model": "default", "label": label}
        if kind == "never":
            plan.expected["expired"] += 1
            continue
        if kind == "early" and i >= 50:
            at = event_at - STEP_MS * rng.randint(1, 50) + 5
            sequence = plan.add(at, "feedback", partition, key, feedback)
            plan.expected.update(early=1, matched=1)
            plan.learns[partition].append((event_at, 0, sequence, event["features"], label))
            continue
        delay = rng.randint(50, 2_500 if kind == "twice" else 5_000)
        at = event_at + STEP_MS * delay + 5
        sequence = plan.add(at, "feedback", partition, key, feedback)
        if at - event_at > TTL_MS:  # the prediction expired before its label came
            plan.expected.update(expired=1, early=1, unmatched=1)
            plan.dead_letters.append(orjson.dumps(feedback))
            continue
        plan.expected["matched"] += 1
        plan.learns[partition].append((at, 1, sequence, event["features"], label))
        if kind == "twice":
            plan.add(at + STEP_MS * rng.randint(10, 100), "feedback", partition, key, feedback)
            plan.expected["duplicate"] += 1
    for k in range(N // 100):  # feedback for events that never existed
        key = f"ghost-{k}".encode()
        ghost = {"event_id": f"ghost-{k}", "model": "default", "label": bool(k % 2)}
        plan.add(T0 + rng.randint(0, N * STEP_MS), "feedback",
                 partition_for(key, list(range(PARTITIONS))), key, ghost)
        plan.expected.update(early=1, unmatched=1)
        plan.dead_letters.append(orjson.dumps(ghost))
    end = T0 + STEP_MS * N + 600_000  # every grace and TTL runs out before the probes
    for partition in range(PARTITIONS):
        plan.add(end, "events", partition, b"clock", {
            "event_id": f"clock-{partition}", "model": "clock", "features": {"x": 1.0}})
        probes = synthetic_events("sea", PROBES, None, seed=900 + partition, model="default")
        for j, probe in enumerate(probes):
            probe.pop("label")
            probe["event_id"] = f"probe-{partition}-{j}"
            plan.probes[probe["event_id"]] = (partition, probe["features"])
            plan.add(end + 1_000 + j, "events", partition, probe["event_id"].encode(), probe)
    plan.records.sort()
    for learns in plan.learns.values():
        learns.sort(key=lambda item: item[:3])
    return plan


def send(bootstrap: str, prefix: str, plan: Plan) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    enable_idempotence=True)
        await producer.start()
        try:
            futures = [await producer.send(f"{prefix}{suffix}", value, key=key,
                                           partition=partition, timestamp_ms=at)
                       for at, _, _, suffix, partition, key, value in plan.records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
    asyncio.run(run())


def models_view(port: str) -> dict:
    return orjson.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/models",
                                               timeout=5).read())


def totals(port: str) -> Counter[str]:
    """The checkpointed outcome totals of model ``default`` over every partition."""
    found: Counter[str] = Counter()
    for state in models_view(port).get("default", {}).values():
        found.update(state["feedback"]["totals"])
    return found


def run_scenario(kafka, topic_prefix, start_worker, tmp_path, scenario: str) -> None:
    for suffix in ("events", "feedback"):
        create_topic(kafka.bootstrap, f"{topic_prefix}{suffix}", PARTITIONS)
    plan = make_plan(seed=13)
    send(kafka.bootstrap, topic_prefix, plan)
    models = tmp_path / "models.toml"
    models.write_text(MODELS)
    env = {**FAST_GROUP, "DRIFTLINE_MODELS": str(models),
           "DRIFTLINE_FEEDBACK_GRACE": str(GRACE_S), "DRIFTLINE_CHECKPOINT_EVERY": "500"}
    predictions_topic = f"{topic_prefix}predictions"
    worker = start_worker(**env)
    if scenario == "kill_twice":
        for point in (6_000, 13_000):
            wait_for(lambda p=point: count(kafka.bootstrap, predictions_topic) >= p, 180,
                     f"{point} predictions")
            assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
            worker = start_worker(**env)
    elif scenario == "two_workers_one_killed":
        survivor = start_worker(**env)
        wait_for(lambda: count(kafka.bootstrap, predictions_topic) >= 8_000, 180,
                 "both workers scoring")
        worker.stop(signal.SIGKILL)
        worker = survivor

    def all_probes(records) -> bool:
        return plan.probes.keys() <= {orjson.loads(r.value)["event_id"] for r in records}
    records = consume_until(kafka.bootstrap, predictions_topic, all_probes, 300)
    predictions = [Prediction.model_validate_json(r.value) for r in records]

    # Unknown ids and labels of expired predictions: unmatched_feedback dead letters
    # (each at least once, the payload kept), once their grace has passed.
    def dead_enough(records) -> bool:
        return len({r.value for r in records}) >= len(plan.dead_letters)
    dead = consume_until(kafka.bootstrap, f"{topic_prefix}deadletter", dead_enough, 120)
    unmatched = [orjson.loads(r.value) for r in dead]
    assert {d["error"]["type"] for d in unmatched} == {"unmatched_feedback"}
    assert sorted({d["payload"].encode() for d in unmatched}) == sorted(plan.dead_letters)

    # Counters (checkpointed totals) equal the test's own counts.
    port = worker.env["DRIFTLINE_WEB_PORT"]
    wait_for(lambda: +totals(port) == +plan.expected, 60,
             f"totals {dict(plan.expected)} (have {dict(totals(port))})")
    assert totals(port)["evicted"] == 0

    # Each matched label learned exactly once, in order, from the features as scored.
    latest = {p.event_id: p for p in predictions if p.event_id in plan.probes}
    for partition in range(PARTITIONS):
        reference = preprocessing.StandardScaler() | linear_model.LogisticRegression()
        for _, _, _, features, label in plan.learns[partition]:
            reference.learn_one(features, label)
        for event_id, (where, x) in plan.probes.items():
            if where != partition:
                continue
            got = latest[event_id]
            assert got.model_version == len(plan.learns[partition])
            assert got.scores == {class_key(c): p
                                  for c, p in reference.predict_proba_one(x).items()}
            assert got.prediction == reference.predict_one(x)
    assert worker.alive()


def test_plan_counts_add_up():
    """The schedule itself: the counts the acceptance runs compare against."""
    plan = make_plan(seed=13)
    e = plan.expected
    assert e["matched"] + e["duplicate"] + e["unmatched"] == sum(
        r[3] == "feedback" for r in plan.records)
    assert e["matched"] == sum(map(len, plan.learns.values()))
    assert e["unmatched"] == len(plan.dead_letters) and e["duplicate"] == N * 3 // 100
    assert e["expired"] == N * 5 // 100 + e["unmatched"] - N // 100
    assert all(e[k] > 0 for k in ("matched", "duplicate", "unmatched", "early", "expired"))
    assert [r[:3] for r in plan.records] == sorted(r[:3] for r in plan.records)
    print(f"\nexpected outcomes: {dict(e)}")


@pytest.mark.parametrize("scenario", ["plain", "kill_twice", "two_workers_one_killed"])
def test_late_labels_are_learned_exactly_once(kafka, topic_prefix, start_worker, tmp_path,
                                              scenario):
    run_scenario(kafka, topic_prefix, start_worker, tmp_path, scenario)
