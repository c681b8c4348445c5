"""The processor's champion / challenger hook, in-process: the promotion is one message on
``<prefix>incidents`` (a valid :class:`Promotion`), predictions say which model served
them, the counters feed Prometheus, and ``/models`` shows the running comparison."""

from types import SimpleNamespace

import orjson

from learners.registry import ModelRegistry
from schemas.models_file import ModelsConfig
from schemas.outputs import Prediction, Promotion
from schemas.settings import Settings
from streams import web
from streams.metrics import Metrics
from streams.processor import EventProcessor
from streams.records import Record
from streams.safe_json import dumps
from streams.scoring import model_gauges
from tests.learners.test_challenger import LINEAR, TREE, sea_then_xor

TOML = f'''[models.m]
task = "classification"
pipeline = "{LINEAR}"
[models.m.challenger]
pipeline = "{TREE}"
promote_on = "drift"
window = 500
min_events = 500
'''


def run(n: int) -> tuple[EventProcessor, list]:
    proc = EventProcessor(Settings(topic_prefix="d."),
                          ModelRegistry(ModelsConfig.from_toml(TOML), cooldown=1000))
    records = [Record("d.events", 0, i, b"k", orjson.dumps(
        {"event_id": f"e{i}", "model": "m", "features": x, "label": y}), None)
        for i, (x, y) in enumerate(sea_then_xor(n))]
    proc.partition(0)
    return proc, proc.process_batch(records, at="2026-01-01T00:00:00.000+00:00")


def test_one_promotion_message_and_predictions_say_who_served():
    _, result = run(5000)
    out = result.outputs
    promotions = [Promotion.model_validate_json(o.value) for o in out
                  if o.topic == "d.incidents"]
    assert len(promotions) == 1 and result.promoted == {"m": 1}
    p = promotions[0]
    assert (p.model, p.partition, p.generation, p.champion_pipeline, p.challenger_pipeline) == (
        "m", 0, 1, LINEAR, TREE)
    predictions = [Prediction.model_validate_json(o.value) for o in out
                   if o.topic == "d.predictions"]
    assert len(predictions) == 5000
    assert [q.generation for q in predictions] == [0] * (p.offset + 1) + [1] * (
        4999 - p.offset)
    at = next(i for i, o in enumerate(out) if o.topic == "d.incidents")
    assert orjson.loads(out[at - 1].value)["offset"] == p.offset  # after its event's output


def test_models_view_and_prometheus_show_both_metrics():
    proc, result = run(4000)
    body = orjson.loads(dumps(web.models_view(SimpleNamespace(processor=proc,
                                                              checkpointer=None))))
    shown = body["m"]["0"]
    learner = proc.partitions.get(0).learners["m"]
    champion, challenger = learner.challenger.values()
    assert shown["generation"] == 1
    assert shown["challenger"]["champion"] == champion
    assert shown["challenger"]["challenger"] == challenger
    assert shown["challenger"]["pipeline"] == TREE and shown["challenger"]["serving"] == TREE
    metrics = Metrics()
    model_gauges(metrics, proc.partitions)
    metrics.observe_batch(result, 0.01, 0.0)
    text = metrics.render().decode()
    assert (f'driftline_window_metric{{metric="Accuracy",model="m",partition="0",'
            f'role="challenger"}} {challenger}') in text
    assert 'driftline_promotions_total{model="m"} 1.0' in text
