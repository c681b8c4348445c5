"""``driftline produce`` sends late labels to the real broker, on their events' partitions."""

import os

import orjson
import pytest

from tests.helpers import run_cli
from tests.kafka_tools import consume, count, create_topic

pytestmark = pytest.mark.integration


def env_for(kafka, topic_prefix):
    return {**os.environ, "DRIFTLINE_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "DRIFTLINE_TOPIC_PREFIX": topic_prefix}


def test_label_delay_withholds_labels_and_sends_them_co_partitioned(kafka, topic_prefix):
    for suffix in ("events", "feedback"):
        create_topic(kafka.bootstrap, f"{topic_prefix}{suffix}", 3)
    result = run_cli("produce", "--synthetic", "sea", "--n", "300", "--label-delay", "5:20",
                     "--seed", "3", "--no-progress", env=env_for(kafka, topic_prefix))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"sent 300 messages to {topic_prefix}events, "
                                     f"sent 300 messages to {topic_prefix}feedback")
    events = consume(kafka.bootstrap, f"{topic_prefix}events", 300, timeout=60, settle=0.5)
    feedback = consume(kafka.bootstrap, f"{topic_prefix}feedback", 300, timeout=60, settle=0.5)
    assert len(events) == 300 and len(feedback) == 300
    assert not any("label" in orjson.loads(r.value) for r in events)
    partition_of = {orjson.loads(r.value)["event_id"]: r.partition for r in events}
    assert {r.partition for r in events} == {0, 1, 2}
    for record in feedback:
        message = orjson.loads(record.value)
        assert record.key == message["event_id"].encode()
        assert record.partition == partition_of.pop(message["event_id"])
        assert type(message["label"]) is bool
    assert partition_of == {}


def test_feedback_file_is_sent_as_it_is(kafka, topic_prefix, tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_bytes(b'{"event_id": "a", "model": "m", "label": 1.5}\n'
                     b'{"event_id": "b", "model": "m", "label": true, "extra": 1}\n')
    result = run_cli("produce", "--feedback", str(path), "--no-progress",
                     env=env_for(kafka, topic_prefix))
    assert result.returncode == 0, result.stderr
    records = consume(kafka.bootstrap, f"{topic_prefix}feedback", 2, timeout=60, settle=0.5)
    # produce created the topic with DRIFTLINE_TOPIC_PARTITIONS partitions: the two records
    # may sit on different partitions, whose relative order a consumer does not define
    got = sorted(((r.key, orjson.loads(r.value)) for r in records), key=lambda kv: kv[0] or b"")
    assert got == [(b"a", {"event_id": "a", "model": "m", "label": 1.5}),
                   (b"b", {"event_id": "b", "model": "m", "label": True, "extra": 1})]


def test_conflicting_sources_are_one_line(kafka, topic_prefix, tmp_path):
    result = run_cli("produce", "--feedback", str(tmp_path / "x.jsonl"), "--label-delay",
                     "1:2", env=env_for(kafka, topic_prefix))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "driftline: --label-delay withholds the labels of events: use it with --synthetic "
        "or --file, not --feedback"]


@pytest.mark.parametrize("option, suffix, bad, error", [
    ("--feedback", "feedback", b"{not json", "not a JSON object"),
    ("--feedback", "feedback", b"[1, 2]", "not a JSON object"),
    ("--feedback", "feedback", b'{"event_id": "u2", "model": "default", "label": [1]}',
     "label."),
    ("--feedback", "feedback", b'{"event_id": "u2", "model": "default"}',
     "label: Field required"),
    ("--file", "events", b"{not json", "not a JSON object"),
    ("--file", "events", b'"a string"', "not a JSON object"),
    ("--file", "events", b'{"event_id": "u2", "features": {}}', "features: "),
])
def test_a_bad_line_in_the_middle_of_a_file_sends_nothing(kafka, topic_prefix, tmp_path,
                                                           option, suffix, bad, error):
    create_topic(kafka.bootstrap, f"{topic_prefix}{suffix}", 1)
    path = tmp_path / "in.jsonl"
    good = [orjson.dumps({"event_id": f"e{i}", "model": "m", "label": True,
                          "features": {"x": i}}) for i in range(50)]
    path.write_bytes(b"\n".join([*good[:30], bad, *good[30:]]) + b"\n")
    result = run_cli("produce", option, str(path), "--no-progress",
                     env=env_for(kafka, topic_prefix))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"driftline: {path}:31: {error}")
    assert result.stdout == ""
    assert count(kafka.bootstrap, f"{topic_prefix}{suffix}") == 0


@pytest.mark.parametrize("options", [
    ("--label-column", "nosuch"),
    ("--label-column", "is_fraud", "--id-column", "nosuch"),
])
@pytest.mark.parametrize("name", ["data.csv", "data.jsonl"])
def test_a_column_the_file_lacks_sends_nothing(kafka, topic_prefix, tmp_path, options, name):
    create_topic(kafka.bootstrap, f"{topic_prefix}events", 1)
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_text("a,b,is_fraud\n" + "".join(f"{i},x,true\n" for i in range(20)))
    else:
        path.write_bytes(b"".join(orjson.dumps({"a": i, "b": "x", "is_fraud": True}) + b"\n"
                                  for i in range(20)))
    result = run_cli("produce", "--file", str(path), *options, "--no-progress",
                     env=env_for(kafka, topic_prefix))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"driftline: {path}: no column 'nosuch' (columns: a, b, is_fraud)"]
    assert result.stdout == ""
    assert count(kafka.bootstrap, f"{topic_prefix}events") == 0


def test_an_empty_id_cell_sends_nothing(kafka, topic_prefix, tmp_path):
    create_topic(kafka.bootstrap, f"{topic_prefix}events", 1)
    path = tmp_path / "data.csv"
    path.write_text("a,id,y\n1,u1,true\n2,,false\n3,u3,true\n")
    result = run_cli("produce", "--file", str(path), "--id-column", "id", "--label-column", "y",
                     "--no-progress", env=env_for(kafka, topic_prefix))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"driftline: {path}:3: no event id in column 'id'"]
    assert count(kafka.bootstrap, f"{topic_prefix}events") == 0


def test_a_model_the_models_file_lacks_is_a_one_line_warning(kafka, topic_prefix, tmp_path):
    create_topic(kafka.bootstrap, f"{topic_prefix}events", 1)
    env = {k: v for k, v in env_for(kafka, topic_prefix).items() if k != "DRIFTLINE_MODELS"}
    result = run_cli("produce", "--synthetic", "sea", "--n", "5", "--model", "fraud",
                     "--no-progress", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "driftline: warning: model 'fraud' is not in the built-in models file "
        "(models: default): the worker makes its events unknown_model dead letters"]
    assert result.stdout.strip() == f"sent 5 messages to {topic_prefix}events"
    models = tmp_path / "models.toml"
    models.write_text('[models.fraud]\ntask = "classification"\n')
    result = run_cli("produce", "--synthetic", "sea", "--n", "5", "--model", "fraud",
                     "--no-progress", env={**env, "DRIFTLINE_MODELS": str(models)})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert count(kafka.bootstrap, f"{topic_prefix}events") == 10
