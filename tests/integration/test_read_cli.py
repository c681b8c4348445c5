"""``driftline read`` prints a topic's records as JSON lines, on a real broker."""

import os

import orjson

from tests.helpers import run_cli
from tests.kafka_tools import create_topic, produce


def test_read_prints_each_record_once_as_a_json_line(kafka):
    prefix = "read-cli."
    create_topic(kafka.bootstrap, f"{prefix}alerts", 2)
    sent = [{"model": "m", "n": i} for i in range(5)]
    produce(kafka.bootstrap, f"{prefix}alerts",
            [(b"m", orjson.dumps(m)) for m in sent] + [(b"m", None)])
    env = {**os.environ, "DRIFTLINE_KAFKA_BOOTSTRAP": kafka.bootstrap,
           "DRIFTLINE_TOPIC_PREFIX": prefix}
    done = run_cli("read", "alerts", "--idle", "1", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(lines, key=str) == sorted([orjson.dumps(m).decode() for m in sent]
                                            + ["null"], key=str)
    first = run_cli("read", "alerts", "--n", "2", env=env)
    assert first.returncode == 0 and len(first.stdout.splitlines()) == 2


def test_read_refuses_an_unknown_topic_in_one_line():
    done = run_cli("read", "nope")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "driftline: unknown topic 'nope'; choose from predictions, alerts, deadletter, "
        "incidents, events, feedback"]
