"""Issue 14, champion / challenger on the real broker and Redis: a Hoeffding-tree
challenger beats a linear champion after a concept drift and is promoted once; the
promotion is on ``<prefix>incidents``; it survives a kill -9; every prediction before
the swap is the champion's and after it the challenger's, bit-identical to two plain
River models fed the same events in-process."""

import signal
from collections import defaultdict

import orjson
import pytest
import redis
from river import linear_model, preprocessing, tree

from learners.learner import Learner, class_key
from schemas.models_file import ModelsConfig
from schemas.outputs import Prediction, Promotion
from tests.helpers import wait_for
from tests.integration.test_recovery import FAST_GROUP, metric
from tests.kafka_tools import (
    consume,
    consume_until,
    consume_until_ids,
    count,
    create_topic,
    produce,
)
from tests.learners.test_challenger import DRIFT_AT, LINEAR, TREE, sea_then_xor

MODEL = "m"
MODELS_TOML = f'''[models.{MODEL}]
task = "classification"
pipeline = "{LINEAR}"
[models.{MODEL}.challenger]
pipeline = "{TREE}"
promote_on = "drift"
window = 500
min_events = 500
'''
FIRST, SECOND, PROBES = 6_000, 4_000, 30


def send(bootstrap: str, topic: str, rows: list[tuple[dict, bool | None]], first: int,
         prefix: str = "e") -> None:
    messages = []
    for i, (x, y) in enumerate(rows, start=first):
        event = {"event_id": f"{prefix}{i}", "model": MODEL, "features": x, "label": y}
        messages.append((event["event_id"].encode(), orjson.dumps(event)))
    produce(bootstrap, topic, messages, partition=0)


def parsed(records) -> list[Promotion]:
    """The promotions among the incidents topic's messages (drift incidents share it)."""
    return [Promotion.model_validate_json(r.value) for r in records
            if orjson.loads(r.value).get("type") == "promotion"]


def all_promotions(bootstrap: str, prefix: str) -> list[Promotion]:
    topic = f"{prefix}incidents"
    return parsed(consume(bootstrap, topic, count(bootstrap, topic), timeout=60))


@pytest.mark.parametrize("checkpointed", [True, False], ids=["checkpointed", "replayed"])
def test_promotion_survives_kill_9_and_serves_like_river_swapped_there(
        kafka, redis_url, topic_prefix, start_worker, tmp_path, checkpointed):
    """``checkpointed``: killed once a checkpoint covers the promotion (restored as it
    was); else killed with no checkpoint at all, so the restart replays the promotion
    (published again, with the same id)."""
    topic = f"{topic_prefix}events"
    create_topic(kafka.bootstrap, topic, partitions=1)
    models = tmp_path / "models.toml"
    models.write_text(MODELS_TOML)
    env = {**FAST_GROUP, "DRIFTLINE_MODELS": str(models),
           "DRIFTLINE_CHECKPOINT_EVERY": "500" if checkpointed else "1000000",
           "DRIFTLINE_CHECKPOINT_INTERVAL": "5" if checkpointed else "3600"}
    events = sea_then_xor(FIRST + SECOND)
    probes = [(x, None) for x, _ in sea_then_xor(PROBES, seed=7)]

    send(kafka.bootstrap, topic, events[:FIRST], 0)
    first = start_worker(**env)
    promoted = parsed(consume_until(kafka.bootstrap, f"{topic_prefix}incidents",
                                    lambda rs: parsed(rs), timeout=120))[0]
    assert DRIFT_AT < promoted.offset < FIRST, promoted
    client = redis.Redis.from_url(redis_url)
    offsets_key = f"driftline:ckpt-offsets:{topic_prefix}app:{topic}:0"
    if checkpointed:
        wait_for(lambda: int(client.hget(offsets_key, MODEL) or -1) > promoted.offset, 60,
                 "a checkpoint after the promotion")
    else:
        assert client.hget(offsets_key, MODEL) is None
    client.close()
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL

    send(kafka.bootstrap, topic, events[FIRST:], FIRST)
    send(kafka.bootstrap, topic, probes, FIRST + SECOND, prefix="probe")
    second = start_worker(**env)
    probe_ids = {f"probe{i}" for i in range(FIRST + SECOND, FIRST + SECOND + PROBES)}
    records = consume_until_ids(kafka.bootstrap, f"{topic_prefix}predictions", probe_ids,
                                timeout=240)
    predictions = [Prediction.model_validate_json(r.value) for r in records]
    assert second.alive(), second.log()[-3000:]
    # One promotion: published once when the checkpoint covered it, else replayed by the
    # restarted worker at the same event, with the same id and content.
    published = all_promotions(kafka.bootstrap, topic_prefix)
    again = 0 if checkpointed else 1
    assert ("restored at offset" in second.log()) == checkpointed
    assert [p.promotion_id for p in published] == [promoted.promotion_id] * (1 + again)
    assert {p.model_dump_json(exclude={"at"}) for p in published} == {
        promoted.model_dump_json(exclude={"at"})}
    assert metric(second.env["DRIFTLINE_WEB_PORT"], "driftline_promotions_total") == again
    assert (promoted.model, promoted.partition, promoted.generation) == (MODEL, 0, 1)
    assert promoted.challenger_metric - promoted.champion_metric >= promoted.margin
    assert (promoted.champion_pipeline, promoted.challenger_pipeline) == (LINEAR, TREE)
    assert promoted.event_id == f"e{promoted.offset}"

    # The same promotion in-process, at the same event.
    spec = ModelsConfig.from_toml(MODELS_TOML).models[MODEL]
    learner = Learner.from_spec(spec, cooldown=1000)
    swaps = [i for i, (x, y) in enumerate(events) if learner.step(x, y).promoted]
    assert swaps == [promoted.offset]

    # Every prediction (repeats after the crash included) is the reference's.
    by_offset: dict[int, list[Prediction]] = defaultdict(list)
    for p in predictions:
        by_offset[p.offset].append(p)
    assert sorted(by_offset) == list(range(FIRST + SECOND + PROBES))
    champion = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    challenger = tree.HoeffdingTreeClassifier(grace_period=50)
    for offset, (x, y) in enumerate(events + probes):
        served = champion if offset <= promoted.offset else challenger
        proba = served.predict_proba_one(x)
        for p in by_offset[offset]:
            assert p.generation == (0 if offset <= promoted.offset else 1), offset
            assert p.scores == {class_key(c): v for c, v in proba.items()}, offset
            assert p.model_version == min(offset, FIRST + SECOND)
        if y is not None:
            champion.learn_one(x, y)
            challenger.learn_one(x, y)
    repeats = sum(len(ps) - 1 for ps in by_offset.values())
    if not checkpointed:  # replayed from the start, the promoting event included
        assert repeats > promoted.offset
    print(f"\npromotion at offset {promoted.offset} ({promoted.metric} "
          f"{promoted.champion_metric:.3f} -> {promoted.challenger_metric:.3f}); "
          f"{len(predictions)} predictions, {repeats} repeated after kill -9")
