"""The feedback topic must be co-partitioned with the events topic (real broker)."""

import pytest

from tests.helpers import wait_for
from tests.kafka_tools import create_topic

pytestmark = pytest.mark.integration


def test_a_feedback_topic_with_another_partition_count_stops_the_worker_in_one_line(
        kafka, topic_prefix, start_worker):
    create_topic(kafka.bootstrap, f"{topic_prefix}events", 3)
    create_topic(kafka.bootstrap, f"{topic_prefix}feedback", 2)
    worker = start_worker()
    wait_for(lambda: not worker.alive(), 90, "the worker to stop")
    assert worker.stop() == 1
    line = (f"topic {topic_prefix}feedback has 2 partitions and {topic_prefix}events has 3: "
            "they must be co-partitioned (same key, same partition count)")
    assert line in worker.log()
    # The last log line says why, in one line, after Faust's shutdown lines; no traceback.
    last = worker.log().strip().splitlines()[-1]
    assert last.endswith(f"ERROR streams.commands.worker: worker stopped: {line}")
    assert "Traceback" not in worker.log()
