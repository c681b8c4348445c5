"""A worker that stops on an error says why in its last log line (real broker and
redis-server): one line, after Faust's shutdown lines, exit code 1."""

import pytest
import redis

from tests.helpers import wait_for
from tests.kafka_tools import create_topic

pytestmark = pytest.mark.integration


def test_a_restore_failure_is_the_last_log_line(kafka, redis_url, topic_prefix, start_worker):
    create_topic(kafka.bootstrap, f"{topic_prefix}events", 1)
    create_topic(kafka.bootstrap, f"{topic_prefix}feedback", 1)
    client = redis.Redis.from_url(redis_url)  # a version that does not verify
    client.lpush(f"driftline:ckpt:{topic_prefix}app:{topic_prefix}events:0:default", b"x" * 64)
    client.close()
    worker = start_worker()
    wait_for(lambda: not worker.alive(), 90, "the worker to stop")
    assert worker.stop() == 1
    why = ("partition 0 model default: no stored version verifies: checkpoint signature does "
           "not verify (wrong DRIFTLINE_CHECKPOINT_KEY, or altered in Redis?); not starting "
           "it blank (set DRIFTLINE_CHECKPOINT_UNVERIFIABLE=fresh to start it afresh)")
    lines = worker.log().strip().splitlines()
    assert lines[-1].endswith(f"ERROR streams.commands.worker: worker stopped: {why}")
    # The reason is said without its traceback (under load mode may still log one of a
    # child service's own stop, which is not the reason).
    assert "streams.exceptions.ServiceError" not in worker.log()
